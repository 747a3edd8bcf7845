//! The local STS emulator as a program, for the demo and for trying the binary by hand.
//!
//! ```text
//! cargo run --example sts_emulator -- \
//!     --identity 'AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,arn:aws:iam::111122223333:user/alice,111122223333,AIDAEXAMPLEALICE'
//! ```
//!
//! Prints one JSON line, `{"addr":"127.0.0.1:PORT","ca_file":"/…/ca.pem"}`, then
//! serves until SIGTERM/SIGINT (or, with `--stdin`, until standard input closes).
//! Identities come from `--identity AKID,SECRET,ARN,ACCOUNT,USERID` (repeatable) and
//! from `STS_EMULATOR_IDENTITIES` (the same, separated by `;`).

#[path = "../tests/common/sts_emulator.rs"]
mod sts_emulator;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use sts_emulator::{Identity, StsEmulator};

const USAGE: &str = "usage: sts_emulator [--identity AKID,SECRET,ARN,ACCOUNT,USERID]... \
                     [--ca-file PATH] [--port PORT] [--stdin]";

#[derive(Debug, Default)]
struct Options {
    identities: Vec<(String, String, Identity)>,
    ca_file: Option<PathBuf>,
    port: u16,
    stdin: bool,
}

fn parse_identity(spec: &str) -> Result<(String, String, Identity), String> {
    let parts: Vec<&str> = spec.split(',').collect();
    match parts[..] {
        [akid, secret, arn, account, user_id] if !akid.is_empty() && !secret.is_empty() => Ok((
            akid.to_owned(),
            secret.to_owned(),
            Identity::new(arn, account, user_id),
        )),
        _ => Err(format!(
            "bad identity {spec:?}: expected AKID,SECRET,ARN,ACCOUNT,USERID"
        )),
    }
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options::default();
    if let Ok(list) = std::env::var("STS_EMULATOR_IDENTITIES") {
        for spec in list.split(';').filter(|s| !s.trim().is_empty()) {
            opts.identities.push(parse_identity(spec.trim())?);
        }
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--identity" => opts.identities.push(parse_identity(&value()?)?),
            "--ca-file" => opts.ca_file = Some(PathBuf::from(value()?)),
            "--port" => {
                opts.port = value()?
                    .parse()
                    .map_err(|e| format!("--port: {e}\n{USAGE}"))?;
            }
            "--stdin" => opts.stdin = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let emu = match StsEmulator::start_with(opts.ca_file.as_deref(), opts.port) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("sts_emulator: could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (akid, secret, identity) in opts.identities {
        emu.add_identity(&akid, &secret, identity);
    }
    let line = serde_json::json!({
        "addr": emu.addr().to_string(),
        "ca_file": emu.ca_file().to_string_lossy(),
    });
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }

    if opts.stdin {
        // Until standard input closes (the parent went away).
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    } else {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("sts_emulator: {e}");
                return ExitCode::FAILURE;
            }
        };
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        });
    }
    eprintln!(
        "sts_emulator: stopping after {} request(s)",
        emu.request_count()
    );
    drop(emu);
    ExitCode::SUCCESS
}
