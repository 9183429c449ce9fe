//! Echo mode: connections each with one message in flight, and their report.

use super::common::Common;
use super::common::*;
use super::report::*;
use crate::rt::{self as task};
use futures::io::AsyncWriteExt;
use serde::Serialize;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// What to run in echo mode.
#[derive(Debug, Clone)]
pub struct EchoPlan {
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    pub duration: Duration,
}

/// Figures from echo mode.
#[derive(Default)]
pub struct EchoReport {
    /// Messages that came back whole and unchanged.
    pub messages: u64,
    pub elapsed: Duration,
    /// Round-trip latencies.
    pub latencies: Latencies,
    pub errors: Errors,
}

/// `plan.connections` connections, each with one message in flight: write `size` bytes, read
/// them back, check them, repeat until the duration is up.
pub async fn echo(
    addr: &str,
    plan: &EchoPlan,
    progress: Arc<AtomicU64>,
    fatal: Fatal,
) -> EchoReport {
    use futures::io::AsyncReadExt;
    let started = Instant::now();
    let deadline = started + plan.duration;
    let workers = (0..plan.connections).map(|c| {
        let addr = addr.to_owned();
        let size = plan.size;
        let (progress, fatal) = (Arc::clone(&progress), fatal.clone());
        task::spawn(async move {
            let mut report = EchoReport::default();
            let stream = match crate::rt::connect(&addr).await {
                Ok(s) => s,
                Err(e) => {
                    let error = format!("connect: {e}");
                    fatal.check(&error);
                    report.errors.insert(error, 1);
                    return report;
                }
            };
            let _ = stream.set_nodelay(true);
            let message: Vec<u8> = (0..size).map(|i| (i + c) as u8).collect();
            let mut back = vec![0u8; size];
            let (mut r, mut w) = (&stream, &stream);
            while Instant::now() < deadline && fatal.get().is_none() {
                let begin = Instant::now();
                let round_trip = async {
                    w.write_all(&message).await?;
                    r.read_exact(&mut back).await
                };
                let error = match task::timeout(IO_TIMEOUT, round_trip).await {
                    Some(Ok(())) if back == message => {
                        report.messages += 1;
                        report.latencies.record(begin.elapsed());
                        progress.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Some(Ok(())) => "bytes differ".to_owned(),
                    Some(Err(e)) => format!("io: {e}"),
                    None => "timeout".to_owned(),
                };
                *report.errors.entry(error).or_default() += 1;
                break;
            }
            report
        })
    });
    let mut total = EchoReport::default();
    for report in futures::future::join_all(workers).await {
        total.messages += report.messages;
        total.latencies.merge(&report.latencies);
        for (k, v) in report.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    total.elapsed = started.elapsed();
    total
}

#[derive(Serialize)]
pub(super) struct EchoResult {
    mode: &'static str,
    addr: String,
    connections: usize,
    size: usize,
    seconds: f64,
    /// Messages that came back whole and unchanged.
    messages: u64,
    messages_per_s: f64,
    latency_us: LatencySummary,
    errors: Errors,
    server: Option<ProcUse>,
    bench: Option<ProcUse>,
}

pub(super) async fn run_echo(run: &Run, plan: &EchoPlan) -> Ended {
    let measured = measure(run, "messages", None, Some(plan.duration), |counter| {
        echo(&run.addr, plan, counter, run.fatal.clone())
    })
    .await;
    let Some((report, server, own)) = measured else {
        return Ended::Fatal;
    };
    let secs = report.elapsed.as_secs_f64();
    let result = EchoResult {
        mode: "echo",
        addr: run.addr.clone(),
        connections: plan.connections,
        size: plan.size,
        seconds: secs,
        messages: report.messages,
        messages_per_s: report.messages as f64 / secs,
        latency_us: report.latencies.summary(),
        errors: report.errors,
        server,
        bench: own,
    };
    if run.json {
        print_json(&result);
    } else {
        let r = &result;
        println!(
            "echo: {} connections, {}-byte messages, one in flight each, {secs:.2} s against {}",
            r.connections, r.size, r.addr
        );
        println!(
            "  messages          {:>10}   ({:.0}/s)",
            r.messages, r.messages_per_s
        );
        println!("  latency us        {}", latency_text(&r.latency_us));
        println!("  errors            {}", errors_text(&r.errors));
        print_usage(r.server, r.bench, "");
    }
    status(&result.errors)
}

// `arrival-bench echo`'s options. Not a doc comment: structopt would show it as the mode's
// description.
#[derive(Debug, structopt::StructOpt)]
pub struct Args {
    /// Connections
    #[structopt(short = "c", long, default_value = "10")]
    pub connections: usize,
    /// Bytes per message
    #[structopt(short, long, default_value = "32")]
    pub size: usize,
    /// How long to run
    #[structopt(short, long, default_value = "10s", parse(try_from_str = crate::cli::parse_seconds))]
    pub duration: Duration,
    #[structopt(flatten)]
    pub common: Common,
}
