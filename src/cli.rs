//! Helpers the binaries share: argument parsers, logging setup, signals and the open-file limit.
//! Nothing here runs a server or a client.

use std::time::Duration;

/// Parses the command line. A usage error is one line on stderr, `<program>: <what is wrong>`,
/// with no colour codes, and exit status 2 (clap 2 would print a usage block and use 1);
/// `--help` and `--version` print to stdout and exit 0.
pub fn parse_args<T: structopt::StructOpt>() -> T {
    parse_args_from(std::env::args_os())
}

/// [`parse_args`] over arguments given (the program's name first).
pub fn parse_args_from<T: structopt::StructOpt>(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> T {
    match T::from_iter_safe(args) {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            let program = T::clap().get_name().to_owned();
            eprintln!("{program}: {}", usage_error_line(&e.message));
            std::process::exit(2);
        }
        Err(e) => {
            println!("{}", e.message);
            std::process::exit(0);
        }
    }
}

/// clap's usage error (several lines, maybe coloured) as one plain line: what is wrong, the
/// suggestion if clap has one, and where to look.
pub fn usage_error_line(message: &str) -> String {
    let plain = strip_ansi(message);
    let mut lines = plain.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error:").unwrap_or(first).trim();
    let hint = lines
        .find(|l| l.starts_with("Did you mean"))
        .map(|l| format!(" ({})", l.trim_end_matches('?').to_owned() + "?"))
        .unwrap_or_default();
    format!("{first}{hint}; see --help")
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The longest duration any flag takes: one day. Longer ones are usage errors, not silently
/// clamped, and no deadline computed from one can overflow `Instant`.
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// Parses a duration: bare (possibly fractional) seconds (`10`, `0.5`) or with units, as wrk and
/// `s` as one of `choices` (a command-line word and the value it names), or why not, saying
/// what `what` is and listing the choices: "`x` is not a mode (arbiter, echo)".
pub fn one_of<T: Copy>(s: &str, what: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(word, _)| *word == s)
        .map(|&(_, value)| value)
        .ok_or_else(|| {
            let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
            format!("`{s}` is not {what} ({})", words.join(", "))
        })
}

/// hey take them (`5s`, `250ms`, `2m`, `1m30s`). At most [`MAX_DURATION`].
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}` is not a valid duration"))?,
        Err(_) => humantime::parse_duration(s)
            .map_err(|_| format!("`{s}` is not a duration (say 10, 0.5, 5s, 250ms or 2m)"))?,
    };
    if d > MAX_DURATION {
        return Err(format!(
            "`{s}` is longer than the maximum of {} s (one day)",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(d)
}

/// Diagnostics are off unless asked for: `-v` warnings, `-vv` info, `-vvv` debug. They go to
/// stderr with a timestamp, never to stdout (the transcript), and through [`LogSink`], so logging
/// can neither panic nor block the actor that logs, whatever happens to stderr.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => log::LevelFilter::Warn,
        2 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(LogSink::start())))
        .try_init();
}

/// Waits a little (at most 200 ms) for queued diagnostics to reach stderr; binaries call it just
/// before they exit.
pub fn flush_logging() {
    let until = std::time::Instant::now() + Duration::from_millis(200);
    while log_sink::PENDING.load(std::sync::atomic::Ordering::SeqCst) > 0
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub use log_sink::LogSink;

mod log_sink {
    use std::io::{self, Write};
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

    /// Records queued for the stderr thread and not yet written.
    pub(super) static PENDING: AtomicUsize = AtomicUsize::new(0);
    /// Records dropped because stderr was not keeping up.
    static DROPPED: AtomicU64 = AtomicU64::new(0);

    /// Records held while stderr is slow; beyond them, records are dropped and counted.
    const QUEUE: usize = 1024;

    /// The logger's output: a `Write` that never blocks and never fails. env_logger writes a
    /// record and flushes it; the flush hands the record to a thread of its own that writes it to
    /// stderr. A full pipe or a closed stderr holds up only that thread.
    pub struct LogSink {
        tx: SyncSender<Vec<u8>>,
        record: Vec<u8>,
    }

    impl LogSink {
        pub fn start() -> LogSink {
            let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
            std::thread::spawn(move || {
                let mut stderr = io::stderr();
                for record in rx {
                    let dropped = DROPPED.swap(0, Ordering::SeqCst);
                    if dropped > 0 {
                        let _ = writeln!(
                            stderr,
                            "({dropped} log records dropped: stderr was not read)"
                        );
                    }
                    // A closed stderr is no reason to stop the program; the record is lost.
                    let _ = stderr.write_all(&record);
                    PENDING.fetch_sub(1, Ordering::SeqCst);
                }
            });
            LogSink {
                tx,
                record: Vec::new(),
            }
        }
    }

    impl Write for LogSink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.record.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            if self.record.is_empty() {
                return Ok(());
            }
            let record = std::mem::take(&mut self.record);
            PENDING.fetch_add(1, Ordering::SeqCst);
            match self.tx.try_send(record) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    PENDING.fetch_sub(1, Ordering::SeqCst);
                    DROPPED.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(())
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit, and the hard limit too where
/// the process may (root), up to `want`. Returns the soft limit in force afterwards. Holding
/// thousands of connections needs more than the common default of 1024.
// `rlim_t` is not `u64` on every platform, so the casts are kept.
#[allow(clippy::unnecessary_cast)]
pub fn raise_open_files(want: u64) -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur as u64 >= want {
        return Ok(lim.rlim_cur as u64);
    }
    let raised = libc::rlimit {
        rlim_cur: want as libc::rlim_t,
        rlim_max: lim.rlim_max.max(want as libc::rlim_t),
    };
    // SAFETY: as above; asking for more than allowed fails without side effects.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(want);
    }
    let soft = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 {
        return Ok(lim.rlim_max as u64);
    }
    Ok(lim.rlim_cur as u64)
}

/// Labels for `n` parties: `X`, `Y`, `Z`, then `A` to `W`; beyond 26, `P1` to `Pn`.
pub fn labels_for(n: usize) -> Vec<String> {
    if n <= 26 {
        "XYZABCDEFGHIJKLMNOPQRSTUVW"
            .chars()
            .take(n)
            .map(String::from)
            .collect()
    } else {
        (1..=n).map(|i| format!("P{i}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_error_is_one_plain_line() {
        let clap =
            "\u{1b}[1;31merror:\u{1b}[0m Found argument '\u{1b}[33m--duraton\u{1b}[0m' which \
                    wasn't expected, or isn't valid in this context\n\tDid you mean \
                    \u{1b}[32m--\u{1b}[0m\u{1b}[32mduration\u{1b}[0m?\n\nUSAGE:\n    arrival-bench \
                    rounds [OPTIONS]\n\nFor more information try --help\n";
        assert_eq!(
            usage_error_line(clap),
            "Found argument '--duraton' which wasn't expected, or isn't valid in this context \
             (Did you mean --duration?); see --help"
        );
    }

    #[test]
    fn labels() {
        assert_eq!(labels_for(2), ["X", "Y"]);
        assert_eq!(labels_for(4), ["X", "Y", "Z", "A"]);
        assert_eq!(labels_for(27)[26], "P27");
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("ten").is_err());
        assert_eq!(parse_seconds("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_seconds("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_seconds("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_seconds("86400"), Ok(MAX_DURATION));
        assert!(parse_seconds("86401").is_err());
        assert!(parse_seconds("1e19").unwrap_err().contains("maximum"));
        assert!(parse_seconds("2d").is_err());
    }
}
