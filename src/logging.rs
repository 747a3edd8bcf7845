//! Logs: `tracing` to **stderr**, always (stdout belongs to `token`'s ExecCredential and
//! to the other subcommands' machine-readable output).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `key=value` text lines (upstream's logrus text formatter shape).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `text`/`json`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Upstream's first line of `init` and `server`: `Authenticator Version: "0.7.18", "<commit>"`.
pub fn version_line() -> String {
    format!(
        "Authenticator Version: {:?}, {:?}",
        crate::VERSION,
        crate::COMMIT
    )
}

/// Announces the version as `init` and `server` do first thing.
///
/// upstream: cmd/aws-iam-authenticator/{init,server}.go print this line with `fmt.Printf` on
/// stdout whatever the log format; in text mode we print it the same way, byte for byte
/// (scripts grep for it). With `--log-format=json` we log it instead, as one JSON record
/// on stderr with `version` and `commit` fields, because then every line the process
/// prints must be JSON: a log pipeline (the Talos extension's `LOG_FORMAT=json`) parses
/// each line, and a plain one breaks it. Nothing else of `init` or `server` goes to stdout.
pub fn announce_version(format: &str) {
    if LogFormat::parse(format) == Some(LogFormat::Json) {
        tracing::info!(
            version = crate::VERSION,
            commit = crate::COMMIT,
            "{}",
            version_line()
        );
    } else {
        println!("{}", version_line());
    }
}

/// Maps upstream's logrus level names onto tracing's. `panic`/`fatal` have no tracing
/// equivalent and become `error`.
pub fn parse_level(s: &str) -> Option<tracing::Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => tracing::Level::ERROR,
        "warn" | "warning" => tracing::Level::WARN,
        "info" => tracing::Level::INFO,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => return None,
    })
}

/// The message upstream prints for an invalid `--log-verbosity`.
pub fn invalid_level_message(level: &str) -> String {
    format!(
        "Invalid log level \"{level}\". Valid values are: panic, fatal, error, warning, info, debug, trace"
    )
}

/// Installs the global subscriber. Our own crate logs at `level`; dependencies only at
/// `warn` and above, so hyper or the AWS SDK don't flood the webhook's log.
/// `AWS_IAM_AUTHENTICATOR_LOG_FILTER` (an `EnvFilter` directive) overrides that, for debugging.
pub fn init(format: LogFormat, level: tracing::Level) {
    let filter = std::env::var("AWS_IAM_AUTHENTICATOR_LOG_FILTER")
        .ok()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "warn,aws_iam_authenticator={}",
                level.as_str().to_ascii_lowercase()
            ))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests that call the CLI entry point twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("WARNING"), Some(tracing::Level::WARN));
        assert_eq!(parse_level("fatal"), Some(tracing::Level::ERROR));
        assert_eq!(parse_level("loud"), None);
        assert!(invalid_level_message("loud").starts_with("Invalid log level \"loud\""));
    }

    #[test]
    fn formats() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("yaml"), None);
    }
}
