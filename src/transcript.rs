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
    use std::sync::mpsc::{sync_channel, SyncSender};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// Lines held while stdout is not being read; beyond them, lines are dropped and counted.
    const QUEUE: usize = 1024;

    static WRITER: OnceLock<SyncSender<String>> = OnceLock::new();
    /// Lines queued and not yet written.
    static PENDING: AtomicUsize = AtomicUsize::new(0);
    /// Lines dropped since the writer last said so.
    static DROPPED: AtomicU64 = AtomicU64::new(0);

    pub(super) fn send(line: String) {
        let writer = WRITER.get_or_init(|| {
            let (tx, rx) = sync_channel::<String>(QUEUE);
            std::thread::spawn(move || {
                let mut stdout = io::stdout();
                for line in rx {
                    let dropped = DROPPED.swap(0, Ordering::SeqCst);
                    if dropped > 0 {
                        let _ = writeln!(
                            stdout,
                            "({dropped} transcript lines dropped: stdout was not being read)"
                        );
                    }
                    // A closed stdout is no reason to stop the server; the line is lost.
                    let _ = writeln!(stdout, "{line}");
                    let _ = stdout.flush();
                    PENDING.fetch_sub(1, Ordering::SeqCst);
                }
            });
            tx
        });
        PENDING.fetch_add(1, Ordering::SeqCst);
        if writer.try_send(line).is_err() {
            PENDING.fetch_sub(1, Ordering::SeqCst);
            if DROPPED.fetch_add(1, Ordering::SeqCst) == 0 {
                log::warn!("stdout is not being read: transcript lines are being dropped");
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
