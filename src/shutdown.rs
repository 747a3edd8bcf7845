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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_trigger() {
        let s = Shutdown::manual();
        assert!(!s.graceful().is_cancelled());
        s.trigger();
        assert!(s.graceful().is_cancelled());
        assert!(!s.immediate().is_cancelled());
    }
}
