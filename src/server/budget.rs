//! The process-wide budget of request-body bytes held in memory.
//!
//! Each request may collect up to [`MAX_BODY_BYTES`](super::authenticate::MAX_BODY_BYTES)
//! of body, and an HTTP/2 connection may have 16 requests open, so without a shared bound
//! N hostile connections could make the server hold N × 1 MiB of unfinished bodies. Every
//! byte a handler collects is taken from this budget first and given back when the request
//! ends; a request that finds the budget (or its peer's share of it) spent is answered 503
//! with `Retry-After` at once, dropping what it had collected. It never waits: waiting
//! requests would each keep their partial bodies, and the first ones to wait would hold the
//! budget that the others wait for.
//!
//! upstream: pkg/server/server.go reads each body whole with no limit; we bound each body
//! (413) and all of them together (503), so no client can exhaust memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Default budget: 16 MiB, 256 bodies at the 64 KiB limit or thousands of real
/// TokenReviews (about 5 KiB each) at once.
pub const DEFAULT_BODY_BUDGET: usize = 16 * 1024 * 1024;

/// The share of the budget one client IP address may hold: a quarter, as with connections,
/// so one address cannot take the whole budget from the others.
const PEER_SHARE_DIVISOR: usize = 4;

/// A budget of body bytes shared by every request of the process.
#[derive(Clone, Debug)]
pub struct BodyBudget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    total: usize,
    per_peer: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    used: usize,
    by_peer: HashMap<IpAddr, usize>,
}

impl BodyBudget {
    /// A budget of `total` bytes; one peer address may hold a quarter of it, at least one
    /// full body.
    pub fn new(total: usize) -> Self {
        let per_peer = (total / PEER_SHARE_DIVISOR)
            .max(super::authenticate::MAX_BODY_BYTES)
            .min(total);
        Self(Arc::new(Inner {
            total,
            per_peer,
            state: Mutex::new(State::default()),
        }))
    }

    /// The budget in bytes.
    pub fn total(&self) -> usize {
        self.0.total
    }

    /// The bytes one peer address may hold.
    pub fn per_peer(&self) -> usize {
        self.0.per_peer
    }

    /// The bytes held now.
    pub fn used(&self) -> usize {
        self.0.lock().used
    }

    /// An empty hold for one request from `peer`, to grow as its body arrives.
    pub fn hold(&self, peer: IpAddr) -> Held {
        Held {
            budget: self.clone(),
            peer,
            bytes: 0,
        }
    }
}

impl Default for BodyBudget {
    fn default() -> Self {
        Self::new(DEFAULT_BODY_BUDGET)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Each update is a few additions: the state is consistent whatever panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The budget spent, overall or by this peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body budget is spent")]
pub struct Spent;

/// The body bytes one request holds; given back on drop.
#[derive(Debug)]
pub struct Held {
    budget: BodyBudget,
    peer: IpAddr,
    bytes: usize,
}

impl Held {
    /// Takes `n` more bytes, unless the budget or the peer's share would be exceeded.
    pub fn grow(&mut self, n: usize) -> Result<(), Spent> {
        let inner = &self.budget.0;
        let mut state = inner.lock();
        let peer_used = state.by_peer.get(&self.peer).copied().unwrap_or(0);
        if state.used.saturating_add(n) > inner.total
            || peer_used.saturating_add(n) > inner.per_peer
        {
            return Err(Spent);
        }
        state.used += n;
        *state.by_peer.entry(self.peer).or_insert(0) += n;
        self.bytes += n;
        Ok(())
    }

    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut state = self.budget.0.lock();
        state.used = state.used.saturating_sub(self.bytes);
        if let Some(n) = state.by_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(self.bytes);
            if *n == 0 {
                state.by_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    #[test]
    fn holds_are_bounded_overall_and_per_peer_and_given_back() {
        let budget = BodyBudget::new(1024 * KIB);
        assert_eq!(budget.per_peer(), 256 * KIB);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let mut first = budget.hold(a);
        first.grow(200 * KIB).unwrap();
        let mut second = budget.hold(a);
        // The peer's share is 256 KiB: 56 more fit, 57 do not.
        assert_eq!(second.grow(57 * KIB), Err(Spent));
        second.grow(56 * KIB).unwrap();
        // Another address still gets its share.
        let mut other = budget.hold(b);
        other.grow(256 * KIB).unwrap();
        assert_eq!(budget.used(), 512 * KIB);
        drop(first);
        assert_eq!(budget.used(), 312 * KIB);
        second.grow(200 * KIB).unwrap();
        drop((second, other));
        assert_eq!(budget.used(), 0);
        assert!(budget.0.lock().by_peer.is_empty());
    }

    #[test]
    fn the_whole_budget_bounds_many_peers() {
        let budget = BodyBudget::new(256 * KIB);
        // A quarter of 256 KiB is one full body.
        assert_eq!(budget.per_peer(), 64 * KIB);
        let mut held = Vec::new();
        for i in 0..4u8 {
            let mut h = budget.hold([10, 0, 0, i].into());
            h.grow(64 * KIB).unwrap();
            held.push(h);
        }
        let mut fifth = budget.hold([10, 0, 0, 9].into());
        assert_eq!(fifth.grow(1), Err(Spent));
        held.pop();
        fifth.grow(64 * KIB).unwrap();
    }

    #[test]
    fn a_small_budget_still_admits_one_body() {
        for (total, want) in [(0, 0), (1000, 1000), (100 * KIB, 64 * KIB)] {
            assert_eq!(BodyBudget::new(total).per_peer(), want, "{total}");
        }
    }
}
