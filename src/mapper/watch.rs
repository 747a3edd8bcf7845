//! Following a file while the server runs: the DynamicFile mappings, the dynamic
//! backend-mode file and the config file's MountedFile mappings all use this. (The
//! Kubernetes backends follow the API through [`super::kube_watch`].)
//!
//! The file is polled (every [`POLL_INTERVAL`]) by its size, modification and change
//! times, inode and device, with no platform file-notification API. Polling by path
//! sees what inotify on the file would miss:
//! - an atomic replace (a temp file renamed over the path, as editors, `init` and
//!   kubelet's projected volumes do) gives a new inode, so it is a change even when the
//!   size and times happen to match;
//! - deletion is reported once, and a file created again is read again;
//! - a hostPath *directory* mount shows the host's renames; a mount of the single file
//!   keeps showing the old inode, so that kind of mount never sees an atomic replace.
//!
//! upstream: pkg/fileutil/util.go watches with fsnotify and re-adds the watch after a
//! rename; we poll because it needs no platform API, sees a replace through any mount
//! of the directory, and costs one `stat` per file per tick.
//!
//! Torn reads are avoided in two ways: a changed file is read only once it has looked
//! the same at two checks in a row (a writer still at work moves its times), and a file
//! that changes while it is being read is read again at a later check.

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_util::task::AbortOnDropHandle;

/// How often followed files are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl Fingerprint {
    fn of(md: &std::fs::Metadata) -> Self {
        Self {
            len: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
            ino: md.ino(),
            dev: md.dev(),
        }
    }
}

/// A change seen by [`FileWatch::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The file appeared or changed: its new contents.
    Changed(Vec<u8>),
    /// The file was there and is gone.
    Deleted,
    /// The file changed but could not be read (reported once per version).
    Unreadable(String),
}

/// Polls one file for changes (see the module docs).
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    /// The version last reported (read, or found unreadable); `None` while absent.
    last: Option<Fingerprint>,
    /// A new version seen at the previous check and not read yet.
    pending: Option<Fingerprint>,
    /// Whether the file's metadata could not be read at the last check (reported once).
    stat_failed: bool,
    /// Whether a check was made: the first one reads at once (the server is starting, no
    /// writer is racing it that a restart would not race too).
    started: bool,
}

impl FileWatch {
    /// A watch that reports the file's current contents at the first check.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            last: None,
            pending: None,
            stat_failed: false,
            started: false,
        }
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file once: `None` when there is nothing new to report.
    pub async fn check(&mut self) -> Option<Event> {
        let first = !self.started;
        self.started = true;
        let md = match tokio::fs::metadata(&self.path).await {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.pending = None;
                self.stat_failed = false;
                return self.last.take().map(|_| Event::Deleted);
            }
            Err(e) => {
                self.pending = None;
                if self.stat_failed {
                    return None;
                }
                self.stat_failed = true;
                self.last = None;
                return Some(Event::Unreadable(e.to_string()));
            }
        };
        self.stat_failed = false;
        let fp = Fingerprint::of(&md);
        if self.last == Some(fp) {
            self.pending = None;
            return None;
        }
        if !first && self.pending != Some(fp) {
            // Seen for the first time: read it once it has stayed the same for a check.
            self.pending = Some(fp);
            return None;
        }
        self.pending = None;
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(b) => b,
            // Removed between stat and read: the next check reports the deletion.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.last = Some(fp);
                return Some(Event::Unreadable(e.to_string()));
            }
        };
        // A writer at work during the read: look again at a later check rather than
        // report a torn read.
        match tokio::fs::metadata(&self.path).await {
            Ok(after) if Fingerprint::of(&after) == fp => {}
            _ => return None,
        }
        self.last = Some(fp);
        Some(Event::Changed(bytes))
    }
}

/// A background task that is stopped when this handle is dropped.
pub type Task = AbortOnDropHandle<()>;

/// Follows `watch` in a background task: every [`POLL_INTERVAL`], a change is handed to
/// `on_event` with `target`, one at a time. The task ends when `target` is dropped (or
/// the returned [`Task`] is). Needs a tokio runtime.
pub fn follow<T, F, Fut>(target: &Arc<T>, mut watch: FileWatch, mut on_event: F) -> Task
where
    T: Send + Sync + 'static,
    F: FnMut(Arc<T>, Event) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let target: Weak<T> = Arc::downgrade(target);
    AbortOnDropHandle::new(tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if target.strong_count() == 0 {
                return;
            }
            let Some(event) = watch.check().await else {
                continue;
            };
            let Some(target) = target.upgrade() else {
                return;
            };
            on_event(target, event).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(text: &str) -> Option<Event> {
        Some(Event::Changed(text.as_bytes().to_vec()))
    }

    /// Checks until the watch reports something (a new version is read at the second
    /// check that sees it); at most three checks.
    async fn settle(w: &mut FileWatch) -> Option<Event> {
        for _ in 0..3 {
            if let Some(e) = w.check().await {
                return Some(e);
            }
        }
        None
    }

    #[tokio::test]
    async fn first_check_reads_at_once_then_nothing_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yaml");
        std::fs::write(&p, "one").unwrap();
        let mut w = FileWatch::new(p);
        assert_eq!(w.check().await, changed("one"));
        for _ in 0..3 {
            assert_eq!(w.check().await, None);
        }
    }

    #[tokio::test]
    async fn missing_at_first_is_silent_and_creation_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yaml");
        let mut w = FileWatch::new(p.clone());
        assert_eq!(w.check().await, None);
        std::fs::write(&p, "new").unwrap();
        assert_eq!(settle(&mut w).await, changed("new"));
    }

    #[tokio::test]
    async fn a_change_is_read_once_it_held_still_for_one_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yaml");
        std::fs::write(&p, "one").unwrap();
        let mut w = FileWatch::new(p.clone());
        w.check().await;
        // A writer part-way through: seen, not read.
        std::fs::write(&p, "tw").unwrap();
        assert_eq!(w.check().await, None);
        // It went on writing before the next check: still not read.
        std::fs::write(&p, "two, complete").unwrap();
        assert_eq!(w.check().await, None);
        // Unchanged since the last check: read now.
        assert_eq!(w.check().await, changed("two, complete"));
        assert_eq!(w.check().await, None);
    }

    #[tokio::test]
    async fn atomic_rename_is_a_change_even_with_the_same_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yaml");
        std::fs::write(&p, "aaaa").unwrap();
        let mut w = FileWatch::new(p.clone());
        w.check().await;
        let tmp = dir.path().join(".f.yaml.tmp");
        std::fs::write(&tmp, "bbbb").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        assert_eq!(settle(&mut w).await, changed("bbbb"));
        assert_eq!(w.check().await, None);
    }

    #[tokio::test]
    async fn deletion_is_reported_once_and_recreation_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yaml");
        std::fs::write(&p, "one").unwrap();
        let mut w = FileWatch::new(p.clone());
        w.check().await;
        std::fs::remove_file(&p).unwrap();
        assert_eq!(w.check().await, Some(Event::Deleted));
        assert_eq!(w.check().await, None);
        std::fs::write(&p, "one").unwrap();
        assert_eq!(settle(&mut w).await, changed("one"));
    }

    #[tokio::test]
    async fn an_unreadable_version_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        // A directory at the path: metadata works, reading fails.
        let p = dir.path().join("f.yaml");
        std::fs::create_dir(&p).unwrap();
        let mut w = FileWatch::new(p.clone());
        assert!(matches!(w.check().await, Some(Event::Unreadable(_))));
        assert_eq!(w.check().await, None);
        assert_eq!(w.check().await, None);
        std::fs::remove_dir(&p).unwrap();
        assert_eq!(w.check().await, Some(Event::Deleted));
        std::fs::write(&p, "fixed").unwrap();
        assert_eq!(settle(&mut w).await, changed("fixed"));
    }

    #[tokio::test]
    async fn follow_stops_with_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yaml");
        std::fs::write(&p, "one").unwrap();
        let target = Arc::new(());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = follow(&target, FileWatch::new(p), move |_, e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        });
        assert_eq!(rx.recv().await, changed("one"));
        drop(target);
        // The loop ends at its next tick and drops the sender.
        assert_eq!(rx.recv().await, None);
        drop(task);
    }
}
