//! SIGTERM/SIGINT: the first signal starts a graceful shutdown, a second one ends the
//! process at once.
//!
//! Kubernetes sends SIGTERM when it deletes the pod, then SIGKILL after
//! `terminationGracePeriodSeconds` (30 s by default): the server stops accepting, lets the
//! requests it holds finish within a grace period shorter than that, and exits 0. An
//! operator pressing Ctrl-C twice means "now".
//!
//! upstream: cmd/aws-iam-authenticator/server.go has no graceful shutdown: the first signal
//! only stops the mappers while the listener keeps serving with frozen mappings until a
//! second signal (exit 1) or SIGKILL; we drain and exit 0 because in-flight kubectl calls
//! then finish instead of failing and the pod stops promptly.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The signal handling of one process.
#[derive(Debug, Clone)]
pub struct Shutdown {
    graceful: CancellationToken,
    immediate: CancellationToken,
}

impl Shutdown {
    /// Handling without signals, triggered by [`Shutdown::trigger`] (tests, embedding).
    pub fn manual() -> Self {
        Self {
            graceful: CancellationToken::new(),
            immediate: CancellationToken::new(),
        }
    }

    /// Installs SIGTERM and SIGINT handlers: the first signal cancels
    /// [`Shutdown::graceful`], the second cancels [`Shutdown::immediate`].
    pub fn install() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let this = Self::manual();
        let handle = this.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                if n == 0 {
                    tracing::info!(signal = name, "received signal, shutting down gracefully");
                    handle.graceful.cancel();
                } else {
                    tracing::warn!(signal = name, "received a second signal, exiting now");
                    handle.immediate.cancel();
                    break;
                }
            }
        });
        Ok(this)
    }

    /// Starts a graceful shutdown, as a first signal would.
    pub fn trigger(&self) {
        self.graceful.cancel();
    }

    /// Cancelled at the first signal: stop accepting, finish what is open.
    pub fn graceful(&self) -> CancellationToken {
        self.graceful.clone()
    }

    /// Cancelled at the second signal: give up at once.
    pub fn immediate(&self) -> CancellationToken {
        self.immediate.clone()
    }
}

/// Parses a duration as Go's `time.ParseDuration` writes the common ones (`20s`, `1m30s`,
/// `500ms`, `2h`), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let err = || format!("invalid duration {s:?} (examples: 20s, 1m30s, 500ms)");
    if s.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * scale).map_err(|_| err())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        for bad in ["", "s", "10x", "-1s", "1m30", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn manual_trigger() {
        let s = Shutdown::manual();
        assert!(!s.graceful().is_cancelled());
        s.trigger();
        assert!(s.graceful().is_cancelled());
        assert!(!s.immediate().is_cancelled());
    }
}
