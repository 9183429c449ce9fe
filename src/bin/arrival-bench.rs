//! `arrival-bench`: drive an arrival server with real clients and report honest figures. Parses
//! arguments, optionally starts a server, calls `arrival::bench`, prints a table or JSON.

use std::io::IsTerminal;
use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrival::bench::{self, proc_stats, quantile, Errors, ProcStats, RoundsPlan, SpawnedServer};
use arrival::cli::{
    init_logging, parse_args, parse_seconds, raise_open_files, set_executor_threads,
};
use structopt::StructOpt;

#[derive(Debug, StructOpt)]
#[structopt(
    name = "arrival-bench",
    about = "Load generator for arrival-server: throughput, latency, idle memory, fairness."
)]
struct Opt {
    /// Server to drive (ignored with --spawn-server)
    #[structopt(long, default_value = "127.0.0.1:12000")]
    addr: String,
    /// Start an arrival-server (found next to this binary) on a free port, and stop it afterwards
    #[structopt(long)]
    spawn_server: bool,
    /// Executor threads of the spawned server [default: one per core]
    #[structopt(long)]
    server_threads: Option<usize>,
    /// Pid of the server, to report its CPU time and memory (known already with --spawn-server)
    #[structopt(long)]
    server_pid: Option<u32>,
    /// Print one JSON object instead of a table
    #[structopt(long)]
    json: bool,
    /// Executor threads [default: one per core]
    #[structopt(long)]
    threads: Option<usize>,
    /// Log diagnostics to stdout: -v warnings, -vv info, -vvv debug
    #[structopt(short, long, parse(from_occurrences))]
    verbose: u8,
    #[structopt(subcommand)]
    mode: Mode,
}

#[derive(Debug, StructOpt)]
enum Mode {
    /// Complete rounds, C at a time, each of P parties: connect, handshake, barrier, messages,
    /// acknowledgments, close
    Rounds {
        #[structopt(short, long, default_value = "64")]
        concurrency: usize,
        #[structopt(short, long, default_value = "2")]
        parties: usize,
        /// Seconds to run (unless --rounds is given)
        #[structopt(short, long, default_value = "10", parse(try_from_str = parse_seconds))]
        duration: Duration,
        /// Run exactly this many rounds instead of for a duration
        #[structopt(long)]
        rounds: Option<u64>,
    },
    /// Hold K connections that wait for partners that never come; report server memory per
    /// connection (and the idle server's CPU use before them)
    Idle {
        #[structopt(short = "k", long, default_value = "20000")]
        connections: usize,
        /// Seconds to watch the idle server's CPU before connecting
        #[structopt(long, default_value = "5", parse(try_from_str = parse_seconds))]
        idle_window: Duration,
    },
    /// Echo: N connections, M-byte messages, one in flight per connection (with --spawn-server, the
    /// server runs in --mode echo)
    Echo {
        #[structopt(short = "n", long, default_value = "10")]
        connections: usize,
        /// Bytes per message
        #[structopt(short, long, default_value = "32")]
        size: usize,
        #[structopt(short, long, default_value = "10", parse(try_from_str = parse_seconds))]
        duration: Duration,
    },
    /// Two parties send G microseconds apart; how often does the server name the right one first?
    Fairness {
        /// Gaps to try, in microseconds
        #[structopt(long, default_value = "1000,100,50,20,10,5", use_delimiter = true)]
        gaps: Vec<u64>,
        #[structopt(short, long, default_value = "1000")]
        trials: usize,
    },
}

fn main() {
    let opt: Opt = parse_args();
    set_executor_threads(opt.threads);
    init_logging(opt.verbose);
    // On the executor, so the drivers are not woken across threads by the main one.
    exit(async_std::task::block_on(async_std::task::spawn(run(opt))));
}

fn fail(message: impl std::fmt::Display) -> i32 {
    eprintln!("arrival-bench: {message}");
    3
}

async fn run(opt: Opt) -> i32 {
    let needed = match &opt.mode {
        Mode::Rounds {
            concurrency,
            parties,
            ..
        } => concurrency * parties,
        Mode::Idle { connections, .. } => *connections,
        Mode::Fairness { .. } => 2,
        Mode::Echo { connections, .. } => *connections,
    } as u64;
    // Each connection is a descriptor, here and in a spawned server; the margin covers the rest.
    match raise_open_files(needed + 1024) {
        Ok(limit) if limit < needed + 16 => eprintln!(
            "arrival-bench: warning: the open-file limit is {limit}, too low for the {needed} \
             connections asked for; expect `Too many open files` errors"
        ),
        _ => {}
    }
    let server = if opt.spawn_server {
        let program = match std::env::current_exe() {
            Ok(exe) => exe.with_file_name("arrival-server"),
            Err(e) => return fail(format!("cannot find arrival-server: {e}")),
        };
        let mut args: Vec<String> = ["--addr", "127.0.0.1:0", "--rounds", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--max-connections".into(), (needed + 1024).to_string()]);
        if let Some(t) = opt.server_threads {
            args.extend(["--threads".into(), t.to_string()]);
        }
        if let Mode::Rounds { parties, .. } = &opt.mode {
            args.extend(["--parties".into(), parties.to_string()]);
        }
        if let Mode::Echo { .. } = &opt.mode {
            args.extend(["--mode".into(), "echo".into()]);
        }
        if let Mode::Idle { .. } = &opt.mode {
            args.extend(["--round-timeout".into(), "3600".into()]);
        }
        match SpawnedServer::start(&program, &args) {
            Ok(s) => Some(s),
            Err(e) => return fail(format!("cannot start {}: {e}", program.display())),
        }
    } else {
        None
    };
    let addr = server.as_ref().map_or(opt.addr.clone(), |s| s.addr.clone());
    let pid = server.as_ref().map(SpawnedServer::pid).or(opt.server_pid);
    let show_progress = !opt.json && std::io::stdout().is_terminal();

    let code = match opt.mode {
        Mode::Rounds {
            concurrency,
            parties,
            duration,
            rounds,
        } => {
            let plan = RoundsPlan {
                concurrency,
                parties,
                duration: rounds.is_none().then_some(duration),
                rounds,
            };
            run_rounds(&addr, &plan, pid, opt.json, show_progress).await
        }
        Mode::Idle {
            connections,
            idle_window,
        } => run_idle(&addr, connections, idle_window, pid, opt.json).await,
        Mode::Fairness { gaps, trials } => run_fairness(&addr, &gaps, trials, opt.json).await,
        Mode::Echo {
            connections,
            size,
            duration,
        } => {
            let plan = bench::EchoPlan {
                connections,
                size,
                duration,
            };
            run_echo(&addr, &plan, pid, opt.json, show_progress).await
        }
    };
    if let Some(server) = server {
        let tail = server.stop();
        if let Some(summary) = tail.iter().rev().find(|l| l.starts_with("Summary:")) {
            if !opt.json {
                println!("server: {summary}");
            }
        }
    }
    code
}

fn errors_json(errors: &Errors) -> String {
    let items: Vec<String> = errors
        .iter()
        .map(|(k, v)| format!("{:?}: {v}", k))
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn errors_text(errors: &Errors) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn server_json(before: Option<ProcStats>, after: Option<ProcStats>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!(
            "{{\"cpu_seconds\": {:.2}, \"peak_rss_kib\": {}}}",
            a.cpu_secs - b.cpu_secs,
            a.peak_rss_kib
        ),
        _ => "null".into(),
    }
}

/// Runs a measurement with a progress line on stderr (when asked for) counting what it finishes.
async fn with_progress<F: std::future::Future>(
    label: &str,
    show: bool,
    measure: impl FnOnce(Arc<AtomicU64>) -> F,
) -> F::Output {
    let counter = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let ticker =
        show.then(|| bench::progress_ticker(label.into(), Arc::clone(&counter), Arc::clone(&done)));
    let out = measure(counter).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(t) = ticker {
        t.await;
    }
    out
}

/// Latency percentiles of sorted microsecond figures, as JSON and as a table cell.
fn latency_json(lat: &[u64]) -> String {
    format!(
        "{{\"p50\": {}, \"p90\": {}, \"p99\": {}, \"p99_9\": {}, \"max\": {}}}",
        quantile(lat, 0.5),
        quantile(lat, 0.9),
        quantile(lat, 0.99),
        quantile(lat, 0.999),
        lat.last().copied().unwrap_or(0)
    )
}

fn latency_text(lat: &[u64]) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        quantile(lat, 0.5),
        quantile(lat, 0.9),
        quantile(lat, 0.99),
        quantile(lat, 0.999),
        lat.last().copied().unwrap_or(0)
    )
}

async fn run_rounds(
    addr: &str,
    plan: &RoundsPlan,
    pid: Option<u32>,
    json: bool,
    show_progress: bool,
) -> i32 {
    let before = pid.and_then(proc_stats);
    let report = with_progress("rounds", show_progress, |counter| {
        bench::rounds(addr, plan, counter)
    })
    .await;
    let after = pid.and_then(proc_stats);
    let secs = report.elapsed.as_secs_f64();
    let lat = &report.latencies_us;
    if json {
        println!(
            "{{\"mode\": \"rounds\", \"concurrency\": {}, \"parties\": {}, \"seconds\": {secs:.2}, \
             \"rounds\": {}, \"rounds_per_s\": {:.0}, \"connections_per_s\": {:.0}, \
             \"latency_us\": {}, \
             \"errors\": {}, \"server\": {}}}",
            plan.concurrency,
            plan.parties,
            report.rounds,
            report.rounds as f64 / secs,
            report.connections as f64 / secs,
            latency_json(lat),
            errors_json(&report.errors),
            server_json(before, after)
        );
    } else {
        println!(
            "rounds of {} parties, concurrency {}",
            plan.parties, plan.concurrency
        );
        println!("  rounds            {:>10}   in {secs:.2} s", report.rounds);
        println!("  rounds/s          {:>10.0}", report.rounds as f64 / secs);
        println!(
            "  connections/s     {:>10.0}",
            report.connections as f64 / secs
        );
        println!("  latency us        {}", latency_text(lat));
        println!("  errors            {}", errors_text(&report.errors));
        if let (Some(b), Some(a)) = (before, after) {
            println!(
                "  server            {:.2} CPU s ({:.0}% of a core), peak RSS {} KiB",
                a.cpu_secs - b.cpu_secs,
                100.0 * (a.cpu_secs - b.cpu_secs) / secs,
                a.peak_rss_kib
            );
        }
    }
    i32::from(report.error_count() > 0)
}

async fn run_idle(addr: &str, count: usize, window: Duration, pid: Option<u32>, json: bool) -> i32 {
    // The idle server first: CPU over a window with no clients at all.
    let idle_cpu = match pid.and_then(proc_stats) {
        Some(b) => {
            async_std::task::sleep(window).await;
            pid.and_then(proc_stats).map(|a| a.cpu_secs - b.cpu_secs)
        }
        None => None,
    };
    let baseline = pid.and_then(proc_stats);
    let started = Instant::now();
    let idle = bench::open_idle(addr, count, 256).await;
    let opened_in = started.elapsed();
    let held = pid.and_then(proc_stats);
    let per_conn = match (baseline, held) {
        (Some(b), Some(h)) if !idle.held.is_empty() => {
            Some((h.rss_kib.saturating_sub(b.rss_kib) * 1024) as f64 / idle.held.len() as f64)
        }
        _ => None,
    };
    let fmt = |v: Option<f64>, digits: usize| v.map_or("null".into(), |v| format!("{v:.digits$}"));
    if json {
        println!(
            "{{\"mode\": \"idle\", \"requested\": {count}, \"held\": {}, \"open_seconds\": {:.2}, \
             \"server_rss_kib_before\": {}, \"server_rss_kib_held\": {}, \"bytes_per_connection\": {}, \
             \"idle_server_cpu_seconds\": {}, \"idle_window_seconds\": {}, \"errors\": {}}}",
            idle.held.len(),
            opened_in.as_secs_f64(),
            baseline.map_or("null".into(), |b| b.rss_kib.to_string()),
            held.map_or("null".into(), |h| h.rss_kib.to_string()),
            fmt(per_conn, 0),
            fmt(idle_cpu, 2),
            window.as_secs_f64(),
            errors_json(&idle.errors)
        );
    } else {
        println!("idle connections");
        if let Some(cpu) = idle_cpu {
            println!(
                "  idle server CPU   {cpu:.2} s over {:.0} s with no clients",
                window.as_secs_f64()
            );
        }
        println!(
            "  held              {:>10} of {count}   (opened in {:.2} s)",
            idle.held.len(),
            opened_in.as_secs_f64()
        );
        if let (Some(b), Some(h)) = (baseline, held) {
            println!(
                "  server RSS        {} KiB before, {} KiB holding them",
                b.rss_kib, h.rss_kib
            );
        }
        if let Some(p) = per_conn {
            println!("  per connection    {p:.0} bytes of server RSS");
        }
        println!("  errors            {}", errors_text(&idle.errors));
    }
    drop(idle.held);
    i32::from(!idle.errors.is_empty())
}

async fn run_echo(
    addr: &str,
    plan: &bench::EchoPlan,
    pid: Option<u32>,
    json: bool,
    show_progress: bool,
) -> i32 {
    let before = pid.and_then(proc_stats);
    let report = with_progress("echo", show_progress, |counter| {
        bench::echo(addr, plan, counter)
    })
    .await;
    let after = pid.and_then(proc_stats);
    let secs = report.elapsed.as_secs_f64();
    let lat = &report.latencies_us;
    if json {
        println!(
            "{{\"mode\": \"echo\", \"connections\": {}, \"size\": {}, \"seconds\": {secs:.2}, \
             \"messages\": {}, \"messages_per_s\": {:.0}, \
             \"latency_us\": {}, \
             \"errors\": {}, \"server\": {}}}",
            plan.connections,
            plan.size,
            report.messages,
            report.messages as f64 / secs,
            latency_json(lat),
            errors_json(&report.errors),
            server_json(before, after)
        );
    } else {
        println!(
            "echo: {} connections, {}-byte messages, one in flight each",
            plan.connections, plan.size
        );
        println!(
            "  messages          {:>10}   in {secs:.2} s",
            report.messages
        );
        println!(
            "  messages/s        {:>10.0}",
            report.messages as f64 / secs
        );
        println!("  latency us        {}", latency_text(lat));
        println!("  errors            {}", errors_text(&report.errors));
        if let (Some(b), Some(a)) = (before, after) {
            println!(
                "  server            {:.2} CPU s, peak RSS {} KiB",
                a.cpu_secs - b.cpu_secs,
                a.peak_rss_kib
            );
        }
    }
    i32::from(!report.errors.is_empty())
}

async fn run_fairness(addr: &str, gaps: &[u64], trials: usize, json: bool) -> i32 {
    let mut rows = Vec::new();
    let mut failed = false;
    for &gap in gaps {
        let r = bench::fairness(addr, Duration::from_micros(gap), trials).await;
        failed |= !r.errors.is_empty();
        rows.push(r);
    }
    if json {
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"gap_us\": {}, \"trials\": {}, \"correct\": {}, \"server_gap_p50_us\": {}, \"errors\": {}}}",
                    r.gap.as_micros(),
                    r.trials,
                    r.correct,
                    quantile(&r.server_gaps_us, 0.5),
                    errors_json(&r.errors)
                )
            })
            .collect();
        println!(
            "{{\"mode\": \"fairness\", \"results\": [{}]}}",
            items.join(", ")
        );
    } else {
        println!("fairness: two parties, messages sent G us apart, first sender alternating");
        println!(
            "  {:>8}  {:>7}  {:>8}  {:>9}  {:>18}",
            "gap us", "trials", "correct", "fraction", "server-seen gap p50"
        );
        for r in &rows {
            println!(
                "  {:>8}  {:>7}  {:>8}  {:>9.4}  {:>18}",
                r.gap.as_micros(),
                r.trials,
                r.correct,
                r.correct as f64 / r.trials.max(1) as f64,
                quantile(&r.server_gaps_us, 0.5)
            );
            if !r.errors.is_empty() {
                println!("            errors: {}", errors_text(&r.errors));
            }
        }
    }
    i32::from(failed)
}
