//! Logs: `tracing` to **stderr**, always (stdout belongs to `token`'s ExecCredential and
//! to the other subcommands' machine-readable output), in upstream's logrus shapes so that
//! existing log queries and alerts keep working:
//!
//! - text: `time="2006-01-02T15:04:05Z" level=info msg="…" key=value`, logrus's
//!   `TextFormatter` as it prints without a terminal;
//! - JSON: `{"level":"info","msg":"…","time":"…",…}`, logrus's `JSONFormatter`.
//!
//! Our structured fields follow as extra keys in both.
//!
//! Setup here; the lines' shapes in `record`, the layer that prints events in `layer`.
//!
//! The server writes its lines off the request path ([`Output::Background`]): a request
//! formats its line and hands it to a bounded queue that one thread drains to stderr, in
//! batches. When that thread falls behind (stderr blocked: a stalled log collector), the
//! queue fills and the next line waits for room: requests slow down, but no line (an
//! audit record of who was let in) is ever dropped. [`flush`] empties the queue before
//! the process exits or execs.

mod layer;
mod record;
pub mod writer;

use std::io::Write as _;
use std::sync::Mutex;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The target of the last error a command reports before it exits 1; logged at level
/// `fatal`, as upstream's `logrus.Fatalf` does.
pub const FATAL_TARGET: &str = "aws_iam_authenticator::fatal";

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

/// Where log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// On the calling thread, line by line: for the short commands, whose few lines must
    /// keep their order with what the command prints itself.
    Direct,
    /// Through the bounded queue of the background writer ([`writer`]): for the server.
    Background,
}

/// Joins the background writer once it has written every queued line.
static BACKGROUND: Mutex<Option<writer::Guard>> = Mutex::new(None);

/// Installs the global subscriber, filtered by [`filter`].
pub fn init(format: LogFormat, level: tracing::Level, output: Output) {
    let filter = filter(
        std::env::var("AWS_IAM_AUTHENTICATOR_LOG_FILTER")
            .ok()
            .as_deref(),
        level,
    );
    match output {
        Output::Direct => {
            install(filter, format, std::io::stderr);
        }
        Output::Background => {
            let (writer, guard) = match writer::Background::start(std::io::stderr()) {
                Ok(started) => started,
                Err(e) => {
                    // No thread to spare: log on the calling thread rather than not at all.
                    install(filter, format, std::io::stderr);
                    tracing::warn!(error = %e, "could not start the log writer thread; logging directly");
                    return;
                }
            };
            if install(filter, format, writer) {
                *BACKGROUND
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(guard);
            }
        }
    }
}

/// Installs the subscriber writing to `writer`; whether it was installed. A second init
/// (tests that call the CLI entry point twice) is harmless: the first stays.
fn install<W>(filter: Targets, format: LogFormat, writer: W) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(filter)
        .with(layer::Logrus::new(format, writer))
        .try_init()
        .is_ok()
}

/// What gets logged: our own crate at `level`; dependencies only at `warn` and above, so
/// hyper or the AWS SDK don't flood the webhook's log. `directives`
/// (`AWS_IAM_AUTHENTICATOR_LOG_FILTER`, for debugging) replaces that when it parses:
/// comma-separated `target=level` pairs and a bare default level, e.g.
/// `warn,aws_iam_authenticator=debug,h2=trace`.
///
/// A target prefix and a level are all we need, so this is `Targets` and not `EnvFilter`:
/// `EnvFilter`'s span and field directives cost a regex engine with a DFA builder in the
/// binary (`matchers`), for no setting we document.
fn filter(directives: Option<&str>, level: tracing::Level) -> Targets {
    directives.and_then(|d| d.parse().ok()).unwrap_or_else(|| {
        Targets::new()
            .with_default(LevelFilter::WARN)
            .with_target(env!("CARGO_CRATE_NAME"), level)
    })
}

/// Writes out every queued line and stops the background writer (a no-op for
/// [`Output::Direct`]). Call it before the process exits or execs: lines logged after it
/// are lost.
pub fn flush() {
    let guard = BACKGROUND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(guard) = guard {
        guard.close();
    }
    let _ = std::io::stderr().flush();
}

/// A list of strings as a log field (`groups = ?StringList(&groups)`): the text `?vec`
/// prints (`["a", "b"]`), without the formatting machinery for the usual strings
/// (printable ASCII but `"` and `\`, which `Debug` would escape), as every review logs
/// its groups.
pub struct StringList<'a>(pub &'a [String]);

impl std::fmt::Debug for StringList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if s.bytes()
                .all(|b| matches!(b, 0x20..0x7f) && b != b'"' && b != b'\\')
            {
                f.write_str("\"")?;
                f.write_str(s)?;
                f.write_str("\"")?;
            } else {
                write!(f, "{s:?}")?;
            }
        }
        f.write_str("]")
    }
}

/// A client's address as a log field (`client = %Peer(addr)`): what `%addr` prints,
/// without the formatting machinery for an IPv4 address, as every review logs its client.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let std::net::SocketAddr::V4(addr) = self.0 else {
            return self.0.fmt(f);
        };
        // "255.255.255.255:65535"
        let mut buf = [0u8; 21];
        let mut len = 0;
        for (i, octet) in addr.ip().octets().into_iter().enumerate() {
            if i > 0 {
                buf[len] = b'.';
                len += 1;
            }
            len += decimal(&mut buf[len..], u16::from(octet));
        }
        buf[len] = b':';
        len += 1;
        len += decimal(&mut buf[len..], addr.port());
        f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| std::fmt::Error)?)
    }
}

/// `v` in decimal at the start of `out` (room for five digits); how many digits.
fn decimal(out: &mut [u8], mut v: u16) -> usize {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - start;
    out[..len].copy_from_slice(&digits[start..]);
    len
}

/// Logs the error a command ends with, at logrus's `fatal` level.
pub fn fatal(message: &str) {
    tracing::error!(target: FATAL_TARGET, "{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn peers_print_as_socket_addresses_do(addr: std::net::SocketAddr) {
            proptest::prop_assert_eq!(Peer(addr).to_string(), addr.to_string());
        }

        #[test]
        fn string_lists_print_as_vecs_do(list in proptest::collection::vec(proptest::prelude::any::<String>(), 0..4), ascii in "[ -~]{0,12}") {
            proptest::prop_assert_eq!(format!("{:?}", StringList(&list)), format!("{list:?}"));
            let list = vec![ascii.clone(), ascii];
            proptest::prop_assert_eq!(format!("{:?}", StringList(&list)), format!("{list:?}"));
        }
    }

    #[test]
    fn levels() {
        assert_eq!(parse_level("WARNING"), Some(tracing::Level::WARN));
        assert_eq!(parse_level("fatal"), Some(tracing::Level::ERROR));
        assert_eq!(parse_level("loud"), None);
        assert!(invalid_level_message("loud").starts_with("Invalid log level \"loud\""));
    }

    #[test]
    fn filters() {
        use tracing::Level;
        let ours = "aws_iam_authenticator::server::listener";
        let default = filter(None, Level::DEBUG);
        assert!(default.would_enable(ours, &Level::DEBUG));
        assert!(!default.would_enable(ours, &Level::TRACE));
        assert!(default.would_enable("hyper::proto", &Level::WARN));
        assert!(!default.would_enable("hyper::proto", &Level::INFO));

        let custom = filter(
            Some("error,h2=trace,aws_iam_authenticator=off"),
            Level::DEBUG,
        );
        assert!(custom.would_enable("h2::codec", &Level::TRACE));
        assert!(!custom.would_enable(ours, &Level::ERROR));
        assert!(custom.would_enable("rustls", &Level::ERROR));
        assert!(!custom.would_enable("rustls", &Level::WARN));

        // What does not parse (an `EnvFilter` span directive) leaves the default.
        let bad = filter(Some("[request{id=1}]=trace"), Level::INFO);
        assert!(bad.would_enable(ours, &Level::INFO));
        assert!(!bad.would_enable("hyper", &Level::INFO));
    }

    #[test]
    fn formats() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("yaml"), None);
    }
}
