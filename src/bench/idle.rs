//! Idle mode: connections held waiting for partners that never come, the server's memory per
//! connection and its CPU while idle.

use super::common::Common;
use super::common::*;
use super::report::*;
use crate::client::Link;
use crate::rt::{self as task};
use futures::stream;
use futures::stream::StreamExt;
use serde::Serialize;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// Connections that completed their handshake and wait, each alone in its own room, for partners
/// that never come. Dropping it closes them.
pub struct IdleConnections {
    pub held: Vec<Link>,
    pub errors: Errors,
}

/// Opens `count` idle connections, at most `parallel` connects in flight at a time; `progress`
/// counts those held. A [`Fatal`] error stops opening more.
pub async fn open_idle(
    addr: &str,
    count: usize,
    parallel: usize,
    progress: Arc<AtomicU64>,
    fatal: Fatal,
) -> IdleConnections {
    let results = stream::iter(0..count)
        .take_while(|_| futures::future::ready(fatal.get().is_none()))
        .map(|i| {
            let addr = addr.to_owned();
            let (progress, fatal) = (Arc::clone(&progress), fatal.clone());
            async move {
                let held = match task::timeout(
                    IO_TIMEOUT,
                    Peer::connect(&addr, Some(format!("idle-{i}"))),
                )
                .await
                {
                    Some(r) => r.map(|peer| peer.link),
                    None => Err("timeout".to_owned()),
                };
                match &held {
                    Ok(_) => {
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        fatal.check(e);
                    }
                }
                held
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut idle = IdleConnections {
        held: Vec::with_capacity(count),
        errors: Errors::new(),
    };
    for r in results {
        match r {
            Ok(stream) => idle.held.push(stream),
            Err(kind) => *idle.errors.entry(kind).or_default() += 1,
        }
    }
    idle
}

#[derive(Serialize)]
pub(super) struct IdleResult {
    mode: &'static str,
    addr: String,
    requested: usize,
    held: usize,
    open_seconds: f64,
    idle_window_seconds: f64,
    /// Server CPU over the window before any connection.
    idle_server_cpu_seconds: Option<f64>,
    server_rss_kib_before: Option<u64>,
    server_rss_kib_held: Option<u64>,
    bytes_per_connection: Option<f64>,
    errors: Errors,
}

pub(super) async fn run_idle(run: &Run, count: usize, window: Duration) -> Ended {
    let pid = run.server_pid;
    // The idle server first: CPU over a window with no clients at all.
    let idle_cpu = match pid.and_then(proc_stats) {
        Some(b) => {
            let watched = Arc::new(AtomicU64::new(0));
            let progress = Progress::start("idle server", watched, None, Some(window));
            crate::rt::sleep(window).await;
            progress.finish().await;
            pid.and_then(proc_stats).map(|a| a.cpu_secs - b.cpu_secs)
        }
        None => None,
    };
    let baseline = pid.and_then(proc_stats);
    let started = Instant::now();
    let counter = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(
        "connections",
        Arc::clone(&counter),
        Some(count as u64),
        None,
    );
    let idle = open_idle(&run.addr, count, 256, counter, run.fatal.clone()).await;
    progress.finish().await;
    if run.fatal.get().is_some() {
        // No figures from a run that could not go on: the caller says why.
        return Ended::Fatal;
    }
    let opened_in = started.elapsed();
    let held = pid.and_then(proc_stats);
    let per_conn = match (baseline, held) {
        (Some(b), Some(h)) if !idle.held.is_empty() => {
            Some((h.rss_kib.saturating_sub(b.rss_kib) * 1024) as f64 / idle.held.len() as f64)
        }
        _ => None,
    };
    let result = IdleResult {
        mode: "idle",
        addr: run.addr.clone(),
        requested: count,
        held: idle.held.len(),
        open_seconds: opened_in.as_secs_f64(),
        idle_window_seconds: window.as_secs_f64(),
        idle_server_cpu_seconds: idle_cpu,
        server_rss_kib_before: baseline.map(|b| b.rss_kib),
        server_rss_kib_held: held.map(|h| h.rss_kib),
        bytes_per_connection: per_conn,
        errors: idle.errors,
    };
    if run.json {
        print_json(&result);
    } else {
        let r = &result;
        println!("idle connections against {}", r.addr);
        if let Some(cpu) = r.idle_server_cpu_seconds {
            println!(
                "  idle server CPU   {cpu:.2} s over {:.0} s with no clients",
                r.idle_window_seconds
            );
        }
        println!(
            "  held              {:>10} of {}   (opened in {:.2} s)",
            r.held, r.requested, r.open_seconds
        );
        if let (Some(b), Some(h)) = (r.server_rss_kib_before, r.server_rss_kib_held) {
            println!("  server RSS        {b} KiB before, {h} KiB holding them");
        }
        if let Some(p) = r.bytes_per_connection {
            println!("  per connection    {p:.0} bytes of server RSS");
        }
        println!("  errors            {}", errors_text(&r.errors));
    }
    drop(idle.held);
    status(&result.errors)
}

// `arrival-bench idle`'s options. Not a doc comment: structopt would show it as the mode's
// description.
#[derive(Debug, structopt::StructOpt)]
pub struct Args {
    /// Connections to hold
    #[structopt(short = "c", long, default_value = "20000")]
    pub connections: usize,
    /// How long to watch the idle server's CPU before connecting
    #[structopt(long, default_value = "5s", parse(try_from_str = crate::cli::parse_seconds))]
    pub idle_window: Duration,
    #[structopt(flatten)]
    pub common: Common,
}
