//! `aws-iam-authenticator`: see the library's documentation for the module map.

use std::process::ExitCode;

use clap::Parser;

use aws_iam_authenticator::cli::{self, Cli, Command, UsageError};
use aws_iam_authenticator::logging::{self, LogFormat, Output};

// musl's malloc takes one lock for every allocation and free, so the server's worker
// threads queue on it; mimalloc keeps per-thread heaps. BENCHMARKS.md has the figures.
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Most threads the server's runtime starts for blocking work (file reads and writes).
const SERVER_BLOCKING_THREADS: usize = 4;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help goes to stdout with exit 0; every other parse error to stderr with
            // exit 1 (cobra's code for usage errors, which scripts already check).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // One rustls crypto provider for the process (and the only one in the tree).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    // `talos-init` is configured by its environment: LOG_FORMAT sets its log format.
    let (log_format, log_verbosity) = match &cli.command {
        Command::TalosInit(_) => (
            cli::talos_init::log_format(&cli.global),
            cli::talos_init::log_verbosity(&cli.global),
        ),
        _ => (
            cli.global.log_format.clone(),
            cli.global.log_verbosity.clone(),
        ),
    };
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
        return ExitCode::FAILURE;
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

    // The webhook serves many connections; every other subcommand is one short task,
    // for which a single-threaded runtime starts faster and spawns no threads.
    let runtime = match cli.command {
        // One worker per core (the default). The blocking pool only reads the key pair
        // and the mapping file now and then: a few threads, not tokio's 512.
        Command::Server(_) => tokio::runtime::Builder::new_multi_thread()
            .max_blocking_threads(SERVER_BLOCKING_THREADS)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let result = match runtime {
        Ok(rt) => rt.block_on(cli::run(cli)),
        Err(e) => Err(anyhow::Error::new(e).context("could not start the async runtime")),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(cli::Exit(code)) = e.downcast_ref::<cli::Exit>() {
                return ExitCode::from(*code);
            }
            if let Some(usage) = e.downcast_ref::<UsageError>() {
                logging::flush();
                eprintln!("Error: {}\n{}", usage.message, usage.usage());
            } else if format == Some(LogFormat::Json) {
                // With JSON logs every line on stderr is JSON, the last one too (upstream
                // ends with logrus.Fatalf, which uses the JSON formatter as well).
                logging::fatal(&format!("{e:#}"));
            } else {
                // Every queued line out before the last one, printed directly.
                logging::flush();
                eprintln!("{e:#}");
            }
            ExitCode::FAILURE
        }
    };
    logging::flush();
    code
}
