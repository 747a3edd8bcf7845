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
//!
//! For load runs (`make bench`): `--delay-ms N` answers every request N ms late (a
//! distant STS), `--no-record` keeps no request (only counts them), `--fixed` answers
//! every `GetCallerIdentity` with the first identity without checking the signature (see
//! `StsEmulator::answer_fixed`: the stand-in then costs the shared cores as little as it
//! can), and
//! `--write-reviews PATH --count N --cluster-id ID [--region R]` writes N TokenReview
//! bodies, one a line, each with a distinct valid token of the first identity, and exits.

#[path = "../tests/common/sts_emulator.rs"]
mod sts_emulator;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use sts_emulator::{Identity, StsEmulator};

const USAGE: &str = "usage: sts_emulator [--identity AKID,SECRET,ARN,ACCOUNT,USERID]... \
                     [--ca-file PATH] [--port PORT] [--stdin] [--delay-ms N] [--no-record] [--fixed]\n\
                     \x20      sts_emulator --identity ... --write-reviews PATH --count N \
                     --cluster-id ID [--region REGION]";

#[derive(Debug, Default)]
struct Options {
    identities: Vec<(String, String, Identity)>,
    ca_file: Option<PathBuf>,
    port: u16,
    stdin: bool,
    delay: Duration,
    no_record: bool,
    fixed: bool,
    write_reviews: Option<PathBuf>,
    count: usize,
    cluster_id: String,
    region: String,
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
    let mut opts = Options {
        region: "us-west-2".to_owned(),
        ..Options::default()
    };
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
            "--no-record" => opts.no_record = true,
            "--fixed" => opts.fixed = true,
            "--delay-ms" => {
                let ms = value()?
                    .parse()
                    .map_err(|e| format!("--delay-ms: {e}\n{USAGE}"))?;
                opts.delay = Duration::from_millis(ms);
            }
            "--write-reviews" => opts.write_reviews = Some(PathBuf::from(value()?)),
            "--count" => {
                opts.count = value()?
                    .parse()
                    .map_err(|e| format!("--count: {e}\n{USAGE}"))?;
            }
            "--cluster-id" => opts.cluster_id = value()?,
            "--region" => opts.region = value()?,
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
    if let Some(path) = &opts.write_reviews {
        return match write_reviews(path, &opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sts_emulator: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let emu = match StsEmulator::start_with(opts.ca_file.as_deref(), opts.port) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("sts_emulator: could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if opts.fixed {
        let Some((_, _, identity)) = opts.identities.first() else {
            eprintln!("sts_emulator: --fixed needs an --identity\n{USAGE}");
            return ExitCode::from(2);
        };
        emu.answer_fixed(identity, opts.delay);
    }
    for (akid, secret, identity) in opts.identities {
        emu.add_identity(&akid, &secret, identity);
    }
    emu.set_delay(opts.delay);
    emu.set_recording(!opts.no_record);
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

/// Writes `opts.count` TokenReview bodies, one a line, each token distinct and valid for
/// the next 13 minutes: signed by the first identity's key, within the last couple of
/// minutes (one second per 901 tokens), each second with every `X-Amz-Expires` from 0 to
/// 900 (which STS ignores).
fn write_reviews(path: &Path, opts: &Options) -> Result<(), String> {
    let Some((akid, secret, _)) = opts.identities.first() else {
        return Err(format!("--write-reviews needs an --identity\n{USAGE}"));
    };
    if opts.cluster_id.is_empty() {
        return Err(format!("--write-reviews needs --cluster-id\n{USAGE}"));
    }
    let host = format!("sts.{}.amazonaws.com", opts.region);
    let now = SystemTime::now();
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for i in 0..opts.count {
        let second = u64::try_from(i / 901).unwrap_or(u64::MAX);
        let expires = u32::try_from(i % 901).unwrap_or(0);
        let url = sts_emulator::presign_with_expires(
            &host,
            akid,
            secret,
            &opts.region,
            &opts.cluster_id,
            now - Duration::from_secs(second),
            expires,
        );
        let token = format!(
            "k8s-aws-v1.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
        );
        writeln!(
            out,
            r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{token}"}}}}"#
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    out.flush().map_err(|e| format!("{}: {e}", path.display()))
}
