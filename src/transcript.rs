//! Where user-facing lines go.
//!
//! Owns the one decision of where the transcript (the lines a user of the binaries reads on
//! stdout) is written: the process's stdout, directly or through a writer thread of its own, an
//! in-memory list for tests, or nowhere. Diagnostics are not transcript; they go through `log`.
//!
//! The server writes through the thread ([`Transcript::StdoutQueued`]): the actors that print
//! must never wait for whoever reads stdout, or a reader that stops reading (a paused pager, a
//! full pipe) would stall every client. Lines keep their order; a line that finds the queue full
//! is dropped and counted, and the count is printed once stdout moves again.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub enum Transcript {
    /// Lines go to stdout, written by the caller. A closed stdout (say, `| head`) is not an
    /// error worth dying for.
    Stdout,
    /// Lines go to stdout through a writer thread, so the caller never waits for stdout (see the
    /// module docs); [`flush_queued`] before the process exits.
    StdoutQueued,
    /// Lines are collected for a test to inspect.
    Memory(Arc<Mutex<Vec<String>>>),
    /// Lines are dropped (benchmarks, embedding).
    #[default]
    Silent,
}

impl Transcript {
    pub fn memory() -> Transcript {
        Transcript::Memory(Arc::default())
    }

    pub fn line(&self, line: impl AsRef<str>) {
        match self {
            Transcript::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", line.as_ref());
                let _ = out.flush();
            }
            Transcript::StdoutQueued => queued::send(line.as_ref().to_owned()),
            Transcript::Memory(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line.as_ref().to_owned());
                }
            }
            Transcript::Silent => {}
        }
    }

    /// A line said when nothing else is running (the server's summary): queued, it may wait (at
    /// most `limit`) for room behind a slow stdout instead of being dropped.
    pub fn last_line(&self, line: impl AsRef<str>, limit: Duration) {
        match self {
            Transcript::StdoutQueued => queued::send_waiting(line.as_ref().to_owned(), limit),
            other => other.line(line),
        }
    }

    /// A line that starts with the time it was written (UTC, RFC 3339 with milliseconds), for
    /// service-mode lines read long after the fact.
    pub fn stamped(&self, line: impl AsRef<str>) {
        if matches!(self, Transcript::Silent) {
            return;
        }
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        self.line(format!("{now} {}", line.as_ref()));
    }

    /// The lines collected so far (empty unless this is a `Memory` transcript).
    pub fn lines(&self) -> Vec<String> {
        match self {
            Transcript::Memory(lines) => lines.lock().map(|l| l.clone()).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Waits (at most `limit`) until every queued line has been written to stdout; binaries call it
/// just before they exit. Returns whether the queue emptied.
pub fn flush_queued(limit: Duration) -> bool {
    queued::flush(limit)
}

mod queued {
    use std::io::{self, Write};
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// Lines held while stdout is not being read; beyond them, lines are dropped and counted.
    const QUEUE: usize = 1024;
    /// The most a line waits for the lines after it, so that they go out together.
    const BATCH_EVERY: Duration = Duration::from_millis(2);

    static WRITER: OnceLock<SyncSender<String>> = OnceLock::new();
    /// Lines queued and not yet written.
    static PENDING: AtomicUsize = AtomicUsize::new(0);
    /// Lines dropped since the writer last said so.
    static DROPPED: AtomicU64 = AtomicU64::new(0);

    pub(super) fn send(line: String) {
        let writer = writer();
        PENDING.fetch_add(1, Ordering::SeqCst);
        if writer.try_send(line).is_err() {
            PENDING.fetch_sub(1, Ordering::SeqCst);
            if DROPPED.fetch_add(1, Ordering::SeqCst) == 0 {
                log::warn!("stdout is not being read: transcript lines are being dropped");
            }
        }
    }

    /// The queue to the writer thread, started on first use.
    fn writer() -> &'static SyncSender<String> {
        WRITER.get_or_init(|| {
            let (tx, rx) = sync_channel::<String>(QUEUE);
            std::thread::spawn(move || {
                let mut stdout = io::stdout();
                let mut batch = Vec::new();
                while let Ok(first) = rx.recv() {
                    let dropped = DROPPED.swap(0, Ordering::SeqCst);
                    if dropped > 0 {
                        let note = format!(
                            "({dropped} transcript lines dropped: stdout was not being read)\n"
                        );
                        batch.extend_from_slice(note.as_bytes());
                    }
                    let mut lines = 0;
                    let mut next = Some(first);
                    while let Some(line) = next {
                        batch.extend_from_slice(line.as_bytes());
                        batch.push(b'\n');
                        lines += 1;
                        next = rx.try_recv().ok();
                    }
                    // A closed stdout is no reason to stop the server; the lines are lost.
                    let _ = stdout.write_all(&batch);
                    let _ = stdout.flush();
                    batch.clear();
                    PENDING.fetch_sub(lines, Ordering::SeqCst);
                    // Lines sent meanwhile wait for the next batch without waking this thread:
                    // under load one wake-up and one write per batch, not per line.
                    std::thread::sleep(BATCH_EVERY);
                }
            });
            tx
        })
    }

    pub(super) fn send_waiting(mut line: String, limit: Duration) {
        let until = Instant::now() + limit;
        let writer = writer();
        PENDING.fetch_add(1, Ordering::SeqCst);
        loop {
            match writer.try_send(line) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) if Instant::now() < until => {
                    line = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => {
                    PENDING.fetch_sub(1, Ordering::SeqCst);
                    DROPPED.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
    }

    pub(super) fn flush(limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while PENDING.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }
}
