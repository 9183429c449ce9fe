//! Where user-facing lines go.
//!
//! Owns the one decision of where the transcript (the lines a user of the binaries reads on
//! stdout) is written: the process's stdout, an in-memory list for tests, or nowhere. Diagnostics
//! are not transcript; they go through `log`.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub enum Transcript {
    /// Lines go to stdout. A closed stdout (say, `| head`) is not an error worth dying for.
    Stdout,
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
