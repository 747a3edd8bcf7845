//! The process around a command: how a parse error ends it, logging set up from the
//! global flags, the async runtime, and how the command's result becomes the exit status.

use std::process::ExitCode;

use clap::Parser;

use super::{Cli, Command, Exit, UsageError};
use crate::logging::{self, LogFormat, Output};

/// Most threads the server's runtime starts for blocking work (file reads and writes).
pub const SERVER_BLOCKING_THREADS: usize = 4;

/// Most worker threads the server's runtime runs, whatever the node's core count.
///
/// The webhook answers one control-plane node's kube-apiserver, which caches answers
/// itself; two workers serve tens of thousands of reviews a second (BENCHMARKS.md). Each
/// more worker costs memory and gains nothing a node needs: its stack, its allocator
/// heap or arena (what it freed stays resident there), its rustls and hyper buffers in
/// the connections it serves. `TOKIO_WORKER_THREADS` still sets the count, read as
/// tokio reads it but with an error rather than a panic for a bad value.
pub const SERVER_WORKER_THREADS: usize = 2;

/// How long an idle blocking-pool thread lives: the pool reads the key pair and a
/// mapping file now and then, and a thread kept 10 s (tokio's default) after start-up
/// stays resident with nothing to do.
const SERVER_BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// The whole process: parse, set up, run the command, exit.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failure(&e),
    };
    crate::tls::install_default_provider();
    let Some(format) = init_logging(&cli) else {
        return ExitCode::FAILURE;
    };
    let result = match runtime(&cli.command) {
        Ok(rt) => rt.block_on(super::run(cli)),
        Err(e) => Err(anyhow::Error::new(e).context("could not start the async runtime")),
    };
    if let Err(e) = &result {
        // An `Exit` follows the command's own answer: nothing more is printed.
        if e.downcast_ref::<Exit>().is_none() {
            report(e, format);
        }
    }
    logging::flush();
    ExitCode::from(status(&result))
}

/// Help goes to stdout with exit 0; every other parse error to stderr with exit 1
/// (cobra's code for usage errors, which scripts already check).
fn parse_failure(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The log format and verbosity asked for: `talos-init` is configured by its environment
/// (`LOG_FORMAT`), every other command by `-l` and `-v`.
fn log_settings(cli: &Cli) -> (String, String) {
    match &cli.command {
        Command::TalosInit(_) => (
            super::talos_init::log_format(&cli.global),
            super::talos_init::log_verbosity(&cli.global),
        ),
        _ => (
            cli.global.log_format.clone(),
            cli.global.log_verbosity.clone(),
        ),
    }
}

/// Starts logging; `None` (after saying why) when the verbosity is not a level. The
/// format is `None` when it is not one we know: text is used, with a warning.
fn init_logging(cli: &Cli) -> Option<Option<LogFormat>> {
    let (log_format, log_verbosity) = log_settings(cli);
    let format = LogFormat::parse(&log_format);
    let Some(level) = logging::parse_level(&log_verbosity) else {
        let message = logging::invalid_level_message(&log_verbosity);
        if format == Some(LogFormat::Json) {
            // JSON logs promise JSON lines only, this one included.
            logging::init(LogFormat::Json, tracing::Level::ERROR, Output::Direct);
            tracing::error!("{message}");
        } else {
            eprintln!("{message}");
        }
        return None;
    };
    // The server logs a line per review: off the request path. The other commands log a
    // few lines, in order with what they print themselves.
    let output = match cli.command {
        Command::Server(_) => Output::Background,
        _ => Output::Direct,
    };
    logging::init(format.unwrap_or_default(), level, output);
    if format.is_none() {
        tracing::warn!(
            "Unknown log format specified ({}), will use default text formatter instead.",
            log_format
        );
    }
    Some(format)
}

/// The webhook serves many connections; every other subcommand is one short task, for
/// which a single-threaded runtime starts faster and spawns no threads.
fn runtime(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    match command {
        // The blocking pool only reads the key pair and the mapping file now and then: a
        // few threads, not tokio's 512.
        Command::Server(_) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            builder
                .worker_threads(server_workers(
                    std::env::var_os("TOKIO_WORKER_THREADS"),
                    cores,
                )?)
                .max_blocking_threads(SERVER_BLOCKING_THREADS)
                .thread_keep_alive(SERVER_BLOCKING_KEEP_ALIVE)
                .enable_all()
                .build()
        }
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
}

/// The server's worker count on a node with `cores` cores: what `TOKIO_WORKER_THREADS`
/// says when it is set, else at most [`SERVER_WORKER_THREADS`].
///
/// upstream: the Go runtime runs GOMAXPROCS = cores threads; we run two unless told,
/// because a node's webhook needs no more and each thread costs resident memory.
fn server_workers(env: Option<std::ffi::OsString>, cores: usize) -> std::io::Result<usize> {
    // Read here rather than by tokio, which panics on a bad value.
    let Some(value) = env else {
        return Ok(cores.clamp(1, SERVER_WORKER_THREADS));
    };
    value
        .to_str()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "TOKIO_WORKER_THREADS={value:?}: not a positive number of threads"
            ))
        })
}

/// The exit status of a command's result: 0, the status an [`Exit`] carries (the
/// command printed its answer already), else 1.
fn status(result: &anyhow::Result<()>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(e) => e.downcast_ref::<Exit>().map_or(1, |Exit(code)| *code),
    }
}

/// Prints a failed command's error on stderr: a usage error as cobra does, else the
/// error and its causes on one line.
fn report(e: &anyhow::Error, format: Option<LogFormat>) {
    if let Some(usage) = e.downcast_ref::<UsageError>() {
        logging::flush();
        eprintln!("Error: {}\n{}", usage.message, usage.usage());
    } else if format == Some(LogFormat::Json) {
        // With JSON logs every line on stderr is JSON, the last one too (upstream ends
        // with logrus.Fatalf, which uses the JSON formatter as well).
        logging::fatal(&format!("{e:#}"));
    } else {
        // Every queued line out before the last one, printed directly.
        logging::flush();
        eprintln!("{e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_of_results() {
        let table: [(anyhow::Result<()>, u8); 5] = [
            (Ok(()), 0),
            (Err(Exit(1).into()), 1),
            (Err(Exit(3).into()), 3),
            (Err(UsageError::new(&["token"], "bad").into()), 1),
            (Err(anyhow::anyhow!("failed")), 1),
        ];
        for (result, want) in table {
            assert_eq!(status(&result), want, "{result:?}");
        }
    }

    #[test]
    fn server_workers_are_few_unless_the_environment_says_how_many() {
        let table = [
            (None, 1, Some(1)),
            (None, 2, Some(2)),
            (None, 16, Some(2)),
            (None, 0, Some(1)),
            (Some("8"), 2, Some(8)),
            (Some(" 1 "), 16, Some(1)),
            (Some("0"), 2, None),
            (Some("two"), 2, None),
            (Some(""), 2, None),
        ];
        for (env, cores, want) in table {
            let env = env.map(std::ffi::OsString::from);
            let got = server_workers(env.clone(), cores).ok();
            assert_eq!(got, want, "{env:?} {cores}");
        }
    }

    #[test]
    fn log_settings_come_from_the_global_flags() {
        let cli = Cli::try_parse_from([
            "aws-iam-authenticator",
            "version",
            "-l",
            "json",
            "-v",
            "debug",
        ])
        .unwrap();
        assert_eq!(log_settings(&cli), ("json".into(), "debug".into()));
    }
}
