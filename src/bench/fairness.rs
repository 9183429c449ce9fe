//! Fairness mode: two parties sending a set gap apart, and how often the server names the
//! true first sender.

use super::common::Common;
use super::common::*;
use super::report::*;
use crate::protocol;
use crate::protocol::Frame;
use crate::rt::{self as task};
use serde::Serialize;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// Figures from fairness trials at one gap.
#[derive(Default)]
pub struct FairnessReport {
    /// The gap asked for.
    pub gap: Duration,
    pub trials: usize,
    pub correct: usize,
    /// The gap actually produced: from the end of the first send to the end of the second (on
    /// loopback a send ends once the data is in the server's socket).
    pub achieved: Latencies,
    /// The server's own measure of the gap (`after_micros` of the second arrival).
    pub server_gaps: Latencies,
    pub errors: Errors,
}

/// `trials` rounds of two parties whose messages leave `gap` apart, the first sender alternating
/// between the two labels. A trial is correct when the server's order names the true first sender.
/// `progress` counts finished trials.
pub async fn fairness(
    addr: &str,
    gap: Duration,
    trials: usize,
    progress: Arc<AtomicU64>,
    fatal: Fatal,
) -> FairnessReport {
    let mut report = FairnessReport {
        gap,
        ..FairnessReport::default()
    };
    for t in 0..trials {
        if fatal.get().is_some() {
            break;
        }
        let trial = task::timeout(IO_TIMEOUT, fairness_trial(addr, gap, t)).await;
        match trial.unwrap_or_else(|| Err("timeout".to_owned())) {
            Ok(outcome) => {
                report.trials += 1;
                report.correct += usize::from(outcome.correct);
                report.achieved.record(outcome.achieved);
                report
                    .server_gaps
                    .record(Duration::from_micros(outcome.server_gap_us));
            }
            Err(kind) => {
                fatal.check(&kind);
                *report.errors.entry(kind).or_default() += 1;
            }
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    report
}

struct TrialOutcome {
    correct: bool,
    achieved: Duration,
    server_gap_us: u64,
}

async fn fairness_trial(addr: &str, gap: Duration, trial: usize) -> Result<TrialOutcome, String> {
    let room = format!("fair-{}-{trial}", gap.as_nanos());
    let (a, b) = futures::join!(
        Peer::connect(addr, Some(room.clone())),
        Peer::connect(addr, Some(room))
    );
    let (mut a, mut b) = (a?, b?);
    let (la, lb) = futures::join!(a.connected(), b.connected());
    let (la, lb) = (la?, lb?);
    let (first, second, first_label) = if trial.is_multiple_of(2) {
        (&mut a, &mut b, la)
    } else {
        (&mut b, &mut a, lb)
    };
    let m1 = protocol::encode(&Frame::Message {
        name: "first".into(),
    })
    .map_err(|e| e.to_string())?;
    let m2 = protocol::encode(&Frame::Message {
        name: "second".into(),
    })
    .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    first.send_bytes(&m1).await?;
    let sent_first = Instant::now();
    // Sleep through most of a long gap and spin only the end: a timer alone is too coarse for
    // these gaps, and a long spin would take a core the server needs, on a two-core machine,
    // to read the first message while we wait to send the second.
    if gap > SPIN {
        task::sleep(gap - SPIN).await;
    }
    while t0.elapsed() < gap {
        std::hint::spin_loop();
    }
    second.send_bytes(&m2).await?;
    let achieved = sent_first.elapsed();
    let (oa, ob) = futures::join!(first.ack(), second.ack());
    let (order, _) = (oa?, ob?);
    Ok(TrialOutcome {
        correct: order.first().is_some_and(|a| a.label == first_label),
        achieved,
        server_gap_us: order.get(1).map_or(0, |a| a.after_micros),
    })
}

#[derive(Serialize)]
pub(super) struct FairnessRow {
    /// The gap asked for.
    gap_us: u64,
    /// The gap the bench really produced between the two sends (median and smallest).
    achieved_gap_p50_us: u64,
    achieved_gap_min_us: u64,
    trials: usize,
    correct: usize,
    /// The gap the server measured between the two arrivals (median).
    server_gap_p50_us: u64,
    errors: Errors,
}

#[derive(Serialize)]
pub(super) struct FairnessResult {
    mode: &'static str,
    addr: String,
    results: Vec<FairnessRow>,
}

pub(super) async fn run_fairness(run: &Run, gaps: &[u64], trials: usize) -> Ended {
    let counter = Arc::new(AtomicU64::new(0));
    let total = (gaps.len() * trials) as u64;
    let progress = Progress::start("trials", Arc::clone(&counter), Some(total), None);
    let mut rows = Vec::new();
    for &gap in gaps {
        let r = fairness(
            &run.addr,
            Duration::from_micros(gap),
            trials,
            Arc::clone(&counter),
            run.fatal.clone(),
        )
        .await;
        let achieved = r.achieved.summary();
        rows.push(FairnessRow {
            gap_us: gap,
            achieved_gap_p50_us: achieved.p50,
            achieved_gap_min_us: achieved.min,
            trials: r.trials,
            correct: r.correct,
            server_gap_p50_us: r.server_gaps.summary().p50,
            errors: r.errors,
        });
        if run.fatal.get().is_some() {
            break;
        }
    }
    progress.finish().await;
    if run.fatal.get().is_some() {
        // No figures from a run that could not go on: the caller says why.
        return Ended::Fatal;
    }
    for row in rows.iter().filter(|r| r.trials > 0) {
        // A send takes some microseconds itself, so the smallest gaps cannot be produced.
        if row.achieved_gap_p50_us > row.gap_us + row.gap_us / 2 + 1 {
            eprintln!(
                "arrival-bench: warning: {} us gaps were asked for; the sends were {} us apart \
                 (median): this machine cannot send two messages closer together",
                row.gap_us, row.achieved_gap_p50_us
            );
        }
    }
    let failed = rows.iter().any(|r| !r.errors.is_empty());
    let result = FairnessResult {
        mode: "fairness",
        addr: run.addr.clone(),
        results: rows,
    };
    if run.json {
        print_json(&result);
    } else {
        println!("fairness: two parties, messages sent G us apart, first sender alternating");
        println!(
            "  {:>8}  {:>12}  {:>7}  {:>8}  {:>9}  {:>15}",
            "gap us", "achieved p50", "trials", "correct", "fraction", "server-seen p50"
        );
        for r in &result.results {
            println!(
                "  {:>8}  {:>12}  {:>7}  {:>8}  {:>9.4}  {:>15}",
                r.gap_us,
                r.achieved_gap_p50_us,
                r.trials,
                r.correct,
                r.correct as f64 / r.trials.max(1) as f64,
                r.server_gap_p50_us
            );
            if !r.errors.is_empty() {
                println!("            errors: {}", errors_text(&r.errors));
            }
        }
    }
    if failed {
        Ended::SomeFailed
    } else {
        Ended::AllDone
    }
}

// `arrival-bench fairness`'s options. Not a doc comment: structopt would show it as the mode's
// description.
#[derive(Debug, structopt::StructOpt)]
pub struct Args {
    /// Gaps to try, in microseconds
    #[structopt(long, default_value = "1000,100,50,20,10,5", use_delimiter = true)]
    pub gaps: Vec<u64>,
    /// Trials per gap
    #[structopt(short, long, default_value = "1000")]
    pub trials: usize,
    #[structopt(flatten)]
    pub common: Common,
}
