//! The token bucket in front of every `DescribeInstances` call
//! (`--ec2-describeInstances-qps` / `--ec2-describeInstances-burst`).

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `capacity` calls at once, refilled at `rate` per second.
#[derive(Debug)]
pub(super) struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(super) fn new(qps: u32, burst: u32) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            rate: f64::from(qps),
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    pub(super) async fn acquire(&mut self) {
        if self.rate <= 0.0 {
            return;
        }
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
            self.last = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paused time: sleeps advance the clock at once and exactly, so the spacing is
    // checked without depending on the machine's load.
    #[tokio::test(start_paused = true)]
    async fn token_bucket_spaces_calls() {
        let mut b = TokenBucket::new(10, 2);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            b.acquire().await;
            at.push(start.elapsed());
        }
        // Two at once (the burst), then one every 100 ms.
        let ms = |n| Duration::from_millis(n);
        assert_eq!(at[..2], [ms(0), ms(0)]);
        for (k, t) in at.iter().enumerate().skip(2) {
            let want = ms(100 * (k as u64 - 1));
            let off = t.abs_diff(want);
            assert!(off < ms(2), "call {k} at {t:?}, want {want:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_rate_means_no_waiting() {
        let mut unlimited = TokenBucket::new(0, 0);
        let start = Instant::now();
        for _ in 0..100 {
            unlimited.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
