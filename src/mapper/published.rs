//! What a backend answers from while something else replaces it: the latest snapshot of
//! its mappings, swapped whole. Readers take an `Arc` of the snapshot and never wait on
//! the work that builds the next one (it is built apart, then stored).
//!
//! Used by the backends that follow a source: the MountedFile and DynamicFile files
//! ([`super::watch`]) and the Kubernetes objects ([`super::kube_watch`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// The current snapshot, replaced whole.
#[derive(Debug, Default)]
pub struct Snapshot<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Snapshot<T> {
    /// A snapshot holding `first`.
    pub fn new(first: T) -> Self {
        Self {
            current: RwLock::new(Arc::new(first)),
        }
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<T> {
        // A writer cannot panic while holding the lock (it only swaps an Arc), so a
        // poisoned lock still holds a whole snapshot.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the snapshot.
    pub fn store(&self, next: Arc<T>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
    }
}

/// A snapshot and whether it is whole yet: a followed source is not ready until its
/// first complete read or listing has been published.
#[derive(Debug, Default)]
pub struct Published<T> {
    snapshot: Snapshot<T>,
    ready: AtomicBool,
}

impl<T> Published<T> {
    /// The current snapshot.
    pub fn load(&self) -> Arc<T> {
        self.snapshot.load()
    }

    /// Replaces the snapshot.
    pub fn store(&self, snapshot: Arc<T>) {
        self.snapshot.store(snapshot);
    }

    /// Whether the first complete snapshot has been published.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Marks the first complete snapshot published.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_replaces_what_later_loads_see_and_readers_keep_theirs() {
        let s = Snapshot::new(1);
        let before = s.load();
        s.store(Arc::new(2));
        assert_eq!((*before, *s.load()), (1, 2));
    }

    #[test]
    fn ready_only_once_set() {
        let p: Published<u8> = Published::default();
        assert!(!p.is_ready());
        p.set_ready();
        assert!(p.is_ready());
    }
}
