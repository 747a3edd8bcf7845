//! The server's background log writer: request threads append their lines to one shared
//! buffer; one thread writes the buffer to stderr in batches.
//!
//! A line costs its writer a short critical section and a copy: no allocation, no
//! system call, no wake-up of another thread. The writer thread sleeps until there is
//! something to write, then lingers [`LINGER`] so that the lines of that moment leave
//! in one write (one wake-up and one `write` per batch, not per line); a buffer past
//! [`EAGER_BYTES`] wakes it at once.
//!
//! When stderr blocks (a stalled log collector) the buffer fills to [`BACKLOG_BYTES`] and
//! the next line waits for room: requests slow down, but no line (an audit record of who
//! was let in) is dropped. [`Guard::close`] writes out what is queued and stops the
//! thread; lines that come after it are written directly.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Bytes queued before a logging thread waits for room: a few seconds of a busy
/// server's reviews.
pub const BACKLOG_BYTES: usize = 1024 * 1024;
/// Queued bytes that wake the writer without waiting out [`LINGER`].
pub const EAGER_BYTES: usize = 64 * 1024;
/// How long the writer lets lines gather after the first one arrives.
pub const LINGER: Duration = Duration::from_millis(10);

struct Queue {
    bytes: Vec<u8>,
    /// The writer is waiting for a first line.
    writer_idle: bool,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled for the writer: a first line, a full batch, or close.
    work: Condvar,
    /// Signalled for logging threads: the queue was emptied.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writing end, a [`MakeWriter`]; cheap to clone.
#[derive(Clone)]
pub struct Background {
    shared: Arc<Shared>,
}

/// Joins the writer thread.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Background {
    /// Starts the writer thread, writing to `out`.
    pub fn start<W: Write + Send + 'static>(out: W) -> std::io::Result<(Self, Guard)> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                bytes: Vec::with_capacity(EAGER_BYTES),
                writer_idle: false,
                closed: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&shared, out)
            })?;
        Ok((
            Self {
                shared: Arc::clone(&shared),
            },
            Guard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    fn append(&self, line: &[u8]) {
        let mut q = self.shared.lock();
        while !q.closed && !q.bytes.is_empty() && q.bytes.len() + line.len() > BACKLOG_BYTES {
            q = self
                .shared
                .room
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if q.closed {
            drop(q);
            let _ = std::io::stderr().write_all(line);
            return;
        }
        q.bytes.extend_from_slice(line);
        if q.writer_idle || q.bytes.len() >= EAGER_BYTES {
            q.writer_idle = false;
            self.shared.work.notify_one();
        }
    }
}

/// The writer thread: waits for lines, lets them gather, writes them in one go.
fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::with_capacity(EAGER_BYTES);
    loop {
        let mut q = shared.lock();
        while q.bytes.is_empty() && !q.closed {
            q.writer_idle = true;
            q = shared.work.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        q.writer_idle = false;
        if !q.closed && q.bytes.len() < EAGER_BYTES {
            q = shared
                .work
                .wait_timeout(q, LINGER)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut q.bytes, &mut batch);
        let last = q.closed;
        drop(q);
        shared.room.notify_all();
        if !batch.is_empty() {
            // A failed write (stderr closed) loses the batch, as a direct write would.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if batch.capacity() > BACKLOG_BYTES {
                batch.shrink_to(EAGER_BYTES);
            }
        }
        if last && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

impl Guard {
    /// Writes out every queued line and stops the writer thread.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_one();
        self.shared.room.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One line's writer.
#[derive(Debug)]
pub struct Line<'a>(&'a Background);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Background {
    type Writer = Line<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut s = self.0.lock().unwrap();
            s.0.extend_from_slice(b);
            s.1 += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_and_close_drains_the_queue() {
        let sink = Sink::default();
        let (bg, guard) = Background::start(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let bg = bg.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        bg.make_writer()
                            .write_all(format!("{t} {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        guard.close();
        let (bytes, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..5000).collect::<Vec<_>>());
        }
        // Batched: far fewer writes than lines.
        assert!(writes < 20_000, "{writes} writes");
    }

    /// A writer that blocks until told to go on: stderr held by a stalled collector.
    struct Stalled(Arc<(Mutex<bool>, Condvar)>, Sink);

    impl Write for Stalled {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (go, cv) = &*self.0;
            let mut go = go.lock().unwrap();
            while !*go {
                go = cv.wait(go).unwrap();
            }
            self.1.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_makes_the_logger_wait_and_loses_nothing() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (bg, guard) = Background::start(Stalled(Arc::clone(&gate), sink.clone())).unwrap();
        let line = vec![b'x'; 1023];
        let lines = 3 * BACKLOG_BYTES / 1024;
        let logger = std::thread::spawn(move || {
            for _ in 0..lines {
                let mut l = line.clone();
                l.push(b'\n');
                bg.make_writer().write_all(&l).unwrap();
            }
        });
        // The logger cannot finish while the writer is stalled: the queue holds at most
        // BACKLOG_BYTES besides the batch being written.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!logger.is_finished());
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        logger.join().unwrap();
        guard.close();
        assert_eq!(sink.0.lock().unwrap().0.len(), lines * 1024);
    }
}
