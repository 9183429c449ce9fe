//! Rounds mode: complete rounds, C at a time, and their report.

use super::common::Common;
use super::common::*;
use super::report::*;
use crate::rt::{self as task};
use serde::Serialize;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// What to run in rounds mode.
#[derive(Debug, Clone)]
pub struct RoundsPlan {
    pub concurrency: usize,
    pub parties: usize,
    /// Stop starting rounds after this long...
    pub duration: Option<Duration>,
    /// ...or after this many rounds in all.
    pub rounds: Option<u64>,
}

/// Figures from rounds mode. Only completed rounds (every party acknowledged) count.
#[derive(Default)]
pub struct RoundsReport {
    pub rounds: u64,
    /// Connections of completed rounds.
    pub connections: u64,
    pub elapsed: Duration,
    /// Round latencies: first connect to last acknowledgment.
    pub latencies: Latencies,
    pub errors: Errors,
}

impl RoundsReport {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Runs `plan.concurrency` independent drivers, each playing complete rounds of `plan.parties`
/// parties back to back, every round in a room of its own so its parties meet each other.
/// `progress` counts finished rounds as they happen; a [`Fatal`] error stops every driver.
pub async fn rounds(
    addr: &str,
    plan: &RoundsPlan,
    progress: Arc<AtomicU64>,
    fatal: Fatal,
) -> RoundsReport {
    let started = Instant::now();
    let deadline = plan.duration.map(|d| started + d);
    let budget = Arc::new(AtomicU64::new(0));
    log::info!(
        "rounds: {} drivers of {} parties each",
        plan.concurrency,
        plan.parties
    );
    let drivers = (0..plan.concurrency).map(|driver| {
        let (addr, plan) = (addr.to_owned(), plan.clone());
        let (budget, progress, fatal) = (Arc::clone(&budget), Arc::clone(&progress), fatal.clone());
        task::spawn(async move {
            let mut report = RoundsReport::default();
            for seq in 0u64.. {
                if deadline.is_some_and(|d| Instant::now() >= d) || fatal.get().is_some() {
                    break;
                }
                if let Some(n) = plan.rounds {
                    if budget.fetch_add(1, Ordering::Relaxed) >= n {
                        break;
                    }
                }
                let room = format!("b{driver}-{seq}");
                let begin = Instant::now();
                let parties = (0..plan.parties)
                    .map(|i| party(&addr, room.clone(), format!("P{i}")))
                    .collect::<Vec<_>>();
                let outcome =
                    match task::timeout(IO_TIMEOUT, futures::future::join_all(parties)).await {
                        Some(outcome) => outcome,
                        None => vec![Err("timeout".to_owned())],
                    };
                let latency = begin.elapsed();
                let mut failed = false;
                for r in outcome {
                    let error = match r {
                        Ok(n) if n == plan.parties => continue,
                        Ok(n) => format!("ack with {n} entries"),
                        Err(kind) => kind,
                    };
                    failed = true;
                    fatal.check(&error);
                    *report.errors.entry(error).or_default() += 1;
                }
                if !failed {
                    report.rounds += 1;
                    report.connections += plan.parties as u64;
                    report.latencies.record(latency);
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }
            report
        })
    });
    let mut total = RoundsReport::default();
    for report in futures::future::join_all(drivers).await {
        total.rounds += report.rounds;
        total.connections += report.connections;
        total.latencies.merge(&report.latencies);
        for (k, v) in report.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    total.elapsed = started.elapsed();
    total
}

#[derive(Serialize)]
pub(super) struct RoundsResult {
    mode: &'static str,
    addr: String,
    concurrency: usize,
    parties: usize,
    seconds: f64,
    /// Completed rounds: every party got its acknowledgment.
    rounds: u64,
    rounds_per_s: f64,
    /// Connections of completed rounds.
    connections: u64,
    connections_per_s: f64,
    latency_us: LatencySummary,
    errors: Errors,
    server: Option<ProcUse>,
    /// Server CPU per completed round, microseconds.
    server_cpu_us_per_round: Option<f64>,
    bench: Option<ProcUse>,
}

pub(super) async fn run_rounds(run: &Run, plan: &RoundsPlan) -> Ended {
    let measured = measure(run, "rounds", plan.rounds, plan.duration, |counter| {
        rounds(&run.addr, plan, counter, run.fatal.clone())
    })
    .await;
    let Some((report, server, own)) = measured else {
        return Ended::Fatal;
    };
    let secs = report.elapsed.as_secs_f64();
    let result = RoundsResult {
        mode: "rounds",
        addr: run.addr.clone(),
        concurrency: plan.concurrency,
        parties: plan.parties,
        seconds: secs,
        rounds: report.rounds,
        rounds_per_s: report.rounds as f64 / secs,
        connections: report.connections,
        connections_per_s: report.connections as f64 / secs,
        latency_us: report.latencies.summary(),
        server_cpu_us_per_round: server
            .filter(|_| report.rounds > 0)
            .map(|s| s.cpu_seconds * 1e6 / report.rounds as f64),
        errors: report.errors,
        server,
        bench: own,
    };
    if run.json {
        print_json(&result);
    } else {
        let r = &result;
        println!(
            "rounds of {} parties, concurrency {}, {secs:.2} s against {}",
            r.parties, r.concurrency, r.addr
        );
        println!(
            "  rounds            {:>10}   ({:.0}/s)",
            r.rounds, r.rounds_per_s
        );
        println!(
            "  connections       {:>10}   ({:.0}/s)",
            r.connections, r.connections_per_s
        );
        println!("  latency us        {}", latency_text(&r.latency_us));
        println!("  errors            {}", errors_text(&r.errors));
        let per_round = r
            .server_cpu_us_per_round
            .map_or(String::new(), |us| format!(", {us:.0} us CPU per round"));
        print_usage(r.server, r.bench, &per_round);
    }
    status(&result.errors)
}

// `arrival-bench rounds`'s options. Not a doc comment: structopt would show it as the mode's
// description.
#[derive(Debug, structopt::StructOpt)]
pub struct Args {
    /// Rounds in flight at once
    #[structopt(short = "c", long, default_value = "64")]
    pub concurrency: usize,
    /// Parties per round
    #[structopt(short, long, default_value = "2")]
    pub parties: usize,
    /// How long to run (unless --rounds is given)
    #[structopt(short, long, default_value = "10s", parse(try_from_str = crate::cli::parse_seconds))]
    pub duration: Duration,
    /// Run exactly this many rounds instead of for a duration
    #[structopt(short = "n", long)]
    pub rounds: Option<u64>,
    #[structopt(flatten)]
    pub common: Common,
}
