//! The descriptor held in reserve for when the process runs out of them.

use std::io;
use std::time::{Duration, Instant};

use crate::rt::Listener;

/// A descriptor held in reserve for running out of them (the libev/nginx way): when `accept`
/// fails with `EMFILE`, the spare is closed, one waiting connection is accepted, told `Busy` and
/// closed, and the spare is taken again. Without it, connections beyond the limit wait unanswered
/// in the backlog. It also keeps the log to one line per [`Spare::LOG_EVERY`].
pub(crate) struct Spare {
    file: Option<std::fs::File>,
    last_log: Option<Instant>,
    since_log: u64,
}

impl Spare {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    pub(crate) fn open() -> Spare {
        Spare {
            file: std::fs::File::open("/dev/null").ok(),
            last_log: None,
            since_log: 0,
        }
    }

    /// Logs an accept failure, at most once per `LOG_EVERY`.
    pub(crate) fn note(&mut self, e: &io::Error) {
        self.since_log += 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= Self::LOG_EVERY) {
            log::warn!(
                "accept failed: {e} ({} times since the last such line)",
                self.since_log
            );
            self.last_log = Some(Instant::now());
            self.since_log = 0;
        }
    }

    /// Answers one waiting connection `busy` with the spare descriptor; returns how many were
    /// answered (0 or 1).
    pub(crate) fn shed(&mut self, listener: &Listener, busy: &[u8]) -> u64 {
        use std::os::fd::AsRawFd;
        self.note(&io::Error::from_raw_os_error(libc::EMFILE));
        let Some(file) = self.file.take() else {
            return 0;
        };
        drop(file);
        // SAFETY: accept4 on our listening socket with null address pointers; the descriptor it
        // returns is ours to close.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        let mut shed = 0;
        if fd >= 0 {
            let mut scratch = [0u8; 512];
            // SAFETY: `fd` is a connected socket we own; the buffers are live and sized.
            unsafe {
                libc::write(fd, busy.as_ptr().cast(), busy.len());
                // Whatever the client already sent is read off, so our close is a FIN, not
                // a reset that could destroy the refusal.
                while libc::read(fd, scratch.as_mut_ptr().cast(), scratch.len()) > 0 {}
                libc::shutdown(fd, libc::SHUT_WR);
                libc::close(fd);
            }
            shed = 1;
        }
        self.file = std::fs::File::open("/dev/null").ok();
        shed
    }
}

/// The process (or the system) has no descriptor left for an accepted connection.
pub(crate) fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}
