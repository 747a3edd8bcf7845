//! Bounded waits on a condition: a test polls instead of sleeping a fixed time, and a
//! broken build fails with what it waited for instead of hanging.

use std::time::Duration;

/// Polls `cond` every 10 ms until it holds; panics naming `what` after about 5 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}
