//! What every mode's report shares: the run's settings, a progress bar on stderr, both
//! processes' resource use around a measurement, and the table and JSON helpers. Results go to
//! stdout and nothing else does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::common::{proc_stats, Ended, Errors, Fatal, LatencySummary, ProcStats};

/// What every mode's run shares.
pub(super) struct Run {
    pub(super) addr: String,
    pub(super) server_pid: Option<u32>,
    pub(super) json: bool,
    pub(super) fatal: Fatal,
}

/// CPU and memory a process used over a measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct ProcUse {
    pub(super) cpu_seconds: f64,
    /// CPU time as a share of one core over the measurement's wall time.
    cpu_percent_of_core: f64,
    peak_rss_kib: u64,
}

impl ProcUse {
    pub(super) fn between(
        before: Option<ProcStats>,
        after: Option<ProcStats>,
        wall: Duration,
    ) -> Option<Self> {
        let (b, a) = (before?, after?);
        let cpu = (a.cpu_secs - b.cpu_secs).max(0.0);
        Some(ProcUse {
            cpu_seconds: cpu,
            cpu_percent_of_core: 100.0 * cpu / wall.as_secs_f64().max(1e-9),
            peak_rss_kib: a.peak_rss_kib,
        })
    }

    pub(super) fn text(&self) -> String {
        format!(
            "{:.2} CPU s ({:.0}% of a core), peak RSS {} KiB",
            self.cpu_seconds, self.cpu_percent_of_core, self.peak_rss_kib
        )
    }
}

/// The server's and our own resource use, sampled around a measurement.
pub(super) struct Usage {
    server_pid: Option<u32>,
    server: Option<ProcStats>,
    bench: Option<ProcStats>,
    started: Instant,
}

impl Usage {
    pub(super) fn start(server_pid: Option<u32>) -> Usage {
        Usage {
            server_pid,
            server: server_pid.and_then(proc_stats),
            bench: proc_stats(std::process::id()),
            started: Instant::now(),
        }
    }

    /// (server, bench)
    pub(super) fn finish(self) -> (Option<ProcUse>, Option<ProcUse>) {
        let wall = self.started.elapsed();
        (
            ProcUse::between(self.server, self.server_pid.and_then(proc_stats), wall),
            ProcUse::between(self.bench, proc_stats(std::process::id()), wall),
        )
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal, fed from a counter of finished
/// work. With a duration it fills with time; with a total, with work; the message shows the rate.
pub(super) struct Progress {
    done: Arc<AtomicBool>,
    ticker: crate::rt::JoinHandle<()>,
}

impl Progress {
    pub(super) fn start(
        what: &'static str,
        counter: Arc<AtomicU64>,
        total: Option<u64>,
        duration: Option<Duration>,
    ) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(duration.map_or(total.unwrap_or(0), |d| d.as_millis() as u64)),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {msg}, ETA {eta}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(what);
        let done = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&done);
        let ticker = crate::rt::spawn(async move {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let n = counter.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!("{n} {what}, {:.0}/s", n as f64 / secs));
                bar.set_position(match duration {
                    Some(_) => started.elapsed().as_millis() as u64,
                    None => n,
                });
                crate::rt::sleep(Duration::from_millis(100)).await;
            }
            bar.finish_and_clear();
        });
        Progress { done, ticker }
    }

    pub(super) async fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        self.ticker.await;
    }
}

/// Runs a measurement with its progress bar and both processes' resource use around it. `None`
/// when the run could not go on: no figures then, the caller says why.
pub(super) async fn measure<F: std::future::Future>(
    run: &Run,
    what: &'static str,
    total: Option<u64>,
    duration: Option<Duration>,
    body: impl FnOnce(Arc<AtomicU64>) -> F,
) -> Option<(F::Output, Option<ProcUse>, Option<ProcUse>)> {
    let counter = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(what, Arc::clone(&counter), total, duration);
    let usage = Usage::start(run.server_pid);
    let report = body(counter).await;
    let (server, own) = usage.finish();
    progress.finish().await;
    run.fatal.get().is_none().then_some((report, server, own))
}

pub(super) fn errors_text(errors: &Errors) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn latency_text(l: &LatencySummary) -> String {
    format!(
        "n {}  mean {}  min {}  p50 {}  p90 {}  p95 {}  p99 {}  p99.9 {}  max {}",
        l.samples, l.mean, l.min, l.p50, l.p90, l.p95, l.p99, l.p99_9, l.max
    )
}

/// The server's and the bench's own resource use, as table rows; `extra` follows the server's.
pub(super) fn print_usage(server: Option<ProcUse>, bench: Option<ProcUse>, extra: &str) {
    if let Some(s) = server {
        println!("  server            {}{extra}", s.text());
    }
    if let Some(b) = bench {
        println!("  arrival-bench     {}", b.text());
    }
}

pub(super) fn print_json(value: &impl Serialize) {
    match serde_json::to_string(value) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("arrival-bench: cannot write JSON: {e}"),
    }
}

/// How a run that finished ended: every unit of work completed, or some failed.
pub(super) fn status(errors: &Errors) -> Ended {
    if errors.is_empty() {
        Ended::AllDone
    } else {
        Ended::SomeFailed
    }
}
