//! `arrival-bench`: drive an arrival server with real clients and report honest figures. Parses
//! arguments, optionally starts a server, calls `arrival::bench`, prints a table or JSON.
//!
//! Results go to stdout and nothing else does: progress, warnings and a spawned server's lines go
//! to stderr. Exit statuses: 0 every unit of work completed; 1 the run finished but some work
//! failed (counted under `errors`); 2 bad command line; 3 the run could not go on (nothing
//! listening, the server refused every round, the server could not be started).

use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrival::bench::{
    self, proc_stats, Errors, Fatal, LatencySummary, ProcStats, RoundsPlan, SpawnedServer,
};
use arrival::cli::{flush_logging, init_logging, parse_args_from, parse_seconds, raise_open_files};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use structopt::StructOpt;

const EXIT_ERRORS: i32 = 1;
const EXIT_CANNOT_RUN: i32 = 3;

// Options every mode takes, before or after the mode's name (`arrival-bench --json rounds` and
// `arrival-bench rounds --json` are the same). Not a doc comment: structopt would make it the
// description of the program and of every mode that flattens these in.
#[derive(Debug, Default, StructOpt)]
struct Common {
    /// Server to drive [default: 127.0.0.1:12000] (ignored with --spawn-server)
    #[structopt(long)]
    addr: Option<String>,
    /// Start an arrival-server (found next to this binary) on a free port, and stop it afterwards
    #[structopt(long)]
    spawn_server: bool,
    /// Executor threads of the spawned server [default: the server's own, 1]
    #[structopt(long)]
    server_threads: Option<usize>,
    /// Pid of the server, to report its CPU time and memory (known already with --spawn-server)
    #[structopt(long)]
    server_pid: Option<u32>,
    /// Print one JSON object instead of a table
    #[structopt(long)]
    json: bool,
    /// Executor threads of the bench itself [default: one per core]
    #[structopt(long)]
    threads: Option<usize>,
    /// Log diagnostics to stderr, with timestamps: -v warnings, -vv info, -vvv debug
    #[structopt(short, long, parse(from_occurrences))]
    verbose: u8,
}

impl Common {
    /// Options given before the mode, completed by those given after it.
    fn merge(self, after: Common) -> Common {
        Common {
            addr: after.addr.or(self.addr),
            spawn_server: self.spawn_server || after.spawn_server,
            server_threads: after.server_threads.or(self.server_threads),
            server_pid: after.server_pid.or(self.server_pid),
            json: self.json || after.json,
            threads: after.threads.or(self.threads),
            verbose: self.verbose + after.verbose,
        }
    }
}

#[derive(Debug, StructOpt)]
#[structopt(
    name = "arrival-bench",
    about = "Load generator for arrival-server: throughput, latency, idle memory, fairness, echo.",
    after_help = "Durations take units (5s, 250ms, 2m) or bare seconds. Exit statuses: 0 all work \
                  completed, 1 some work failed, 2 usage, 3 the run could not go on."
)]
struct Opt {
    #[structopt(flatten)]
    common: Common,
    #[structopt(subcommand)]
    mode: Mode,
}

#[derive(Debug, StructOpt)]
enum Mode {
    /// Complete rounds, C at a time, each of P parties: connect, handshake, barrier, messages,
    /// acknowledgments, close
    Rounds {
        /// Rounds in flight at once
        #[structopt(short = "c", long, default_value = "64")]
        concurrency: usize,
        /// Parties per round
        #[structopt(short, long, default_value = "2")]
        parties: usize,
        /// How long to run (unless --rounds is given)
        #[structopt(short, long, default_value = "10s", parse(try_from_str = parse_seconds))]
        duration: Duration,
        /// Run exactly this many rounds instead of for a duration
        #[structopt(short = "n", long)]
        rounds: Option<u64>,
        #[structopt(flatten)]
        common: Common,
    },
    /// Hold C connections that wait for partners that never come; report server memory per
    /// connection (and the idle server's CPU use before them)
    Idle {
        /// Connections to hold
        #[structopt(short = "c", long, default_value = "20000")]
        connections: usize,
        /// How long to watch the idle server's CPU before connecting
        #[structopt(long, default_value = "5s", parse(try_from_str = parse_seconds))]
        idle_window: Duration,
        #[structopt(flatten)]
        common: Common,
    },
    /// Echo: C connections, S-byte messages, one in flight per connection (with --spawn-server,
    /// the server runs in --mode echo)
    Echo {
        /// Connections
        #[structopt(short = "c", long, default_value = "10")]
        connections: usize,
        /// Bytes per message
        #[structopt(short, long, default_value = "32")]
        size: usize,
        /// How long to run
        #[structopt(short, long, default_value = "10s", parse(try_from_str = parse_seconds))]
        duration: Duration,
        #[structopt(flatten)]
        common: Common,
    },
    /// Two parties send G microseconds apart; how often does the server name the right one first?
    Fairness {
        /// Gaps to try, in microseconds
        #[structopt(long, default_value = "1000,100,50,20,10,5", use_delimiter = true)]
        gaps: Vec<u64>,
        /// Trials per gap
        #[structopt(short, long, default_value = "1000")]
        trials: usize,
        #[structopt(flatten)]
        common: Common,
    },
    /// The quiz against modified clients, in reaction order: an honest far player (over a
    /// packet-level delayed link between network namespaces: needs root and /dev/net/tun), one
    /// that holds its Pongs, one that sends Answer every 3 ms, one that answers at a predicted go.
    /// How often is each named first? Always starts its own server
    Quiz {
        /// Rounds of each scenario
        #[structopt(short = "n", long, default_value = "100")]
        rounds: u64,
        /// How much further away the far player is, each way, in milliseconds
        #[structopt(long, default_value = "40")]
        delay_ms: u64,
        /// Scenarios to play (far, pong-holder, spammer, predictor) [default: all]
        #[structopt(long, use_delimiter = true)]
        scenarios: Vec<String>,
        #[structopt(flatten)]
        common: Common,
    },
    /// Quiz sessions: C sessions of P parties held open, every party answering at once; rounds
    /// per second (the server's --session-rounds ends them)
    Sessions {
        /// Sessions at once
        #[structopt(short = "c", long, default_value = "8")]
        sessions: usize,
        /// Parties in each session
        #[structopt(short, long, default_value = "3")]
        parties: usize,
        /// Rounds per session (given to a spawned server)
        #[structopt(short = "n", long, default_value = "100")]
        rounds: u64,
        #[structopt(flatten)]
        common: Common,
    },
}

impl Mode {
    /// Takes the options given after the mode's name out of it.
    fn take_common(&mut self) -> Common {
        let common = match self {
            Mode::Rounds { common, .. }
            | Mode::Idle { common, .. }
            | Mode::Echo { common, .. }
            | Mode::Fairness { common, .. }
            | Mode::Quiz { common, .. }
            | Mode::Sessions { common, .. } => common,
        };
        std::mem::take(common)
    }

    /// Connections the run holds at once, here and in a spawned server.
    fn connections(&self) -> u64 {
        (match self {
            Mode::Rounds {
                concurrency,
                parties,
                ..
            } => concurrency * parties,
            Mode::Idle { connections, .. } | Mode::Echo { connections, .. } => *connections,
            Mode::Fairness { .. } => 2,
            Mode::Quiz { .. } => 8,
            Mode::Sessions {
                sessions, parties, ..
            } => sessions * parties,
        }) as u64
    }
}

/// The modes' names: options may come before the mode or after it.
const MODES: [&str; 6] = ["rounds", "idle", "echo", "fairness", "quiz", "sessions"];

fn main() {
    // Every option is the mode's (the shared ones are flattened into each), so the mode goes
    // first and the options follow in the order given: `-d 5s rounds` is `rounds -d 5s`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(at) = args
        .iter()
        .skip(1)
        .position(|a| MODES.iter().any(|m| a == m))
    {
        let mode = args.remove(at + 1);
        args.insert(1, mode);
    }
    let mut opt: Opt = parse_args_from(args);
    let after = opt.mode.take_common();
    let common = std::mem::take(&mut opt.common).merge(after);
    arrival::rt::set_threads(common.threads);
    init_logging(common.verbose);
    // On the executor, so the drivers are not woken across threads by the main one.
    let code = arrival::rt::block_on(arrival::rt::spawn(run(common, opt.mode)));
    flush_logging();
    exit(code);
}

fn fail(message: impl std::fmt::Display) -> i32 {
    eprintln!("arrival-bench: {message}");
    EXIT_CANNOT_RUN
}

async fn run(common: Common, mode: Mode) -> i32 {
    let needed = mode.connections();
    // Each connection is a descriptor, here and in a spawned server; the margin covers the rest.
    match raise_open_files(needed + 1024) {
        Ok(limit) if limit < needed + 16 => eprintln!(
            "arrival-bench: warning: the open-file limit is {limit}, too low for the {needed} \
             connections asked for; expect `Too many open files` errors"
        ),
        _ => {}
    }
    // The quiz trial starts its own, where its far player can reach it.
    let server = if common.spawn_server && !matches!(mode, Mode::Quiz { .. }) {
        match spawn_server(&common, &mode, needed) {
            Ok(s) => Some(s),
            Err(message) => return fail(message),
        }
    } else {
        None
    };
    let addr = server.as_ref().map_or_else(
        || {
            common
                .addr
                .clone()
                .unwrap_or_else(|| "127.0.0.1:12000".into())
        },
        |s| s.addr.clone(),
    );
    log::info!(
        "driving {addr}{}; {needed} connections at once",
        if server.is_some() { " (spawned)" } else { "" }
    );
    let run = Run {
        addr,
        server_pid: server
            .as_ref()
            .map(SpawnedServer::pid)
            .or(common.server_pid),
        json: common.json,
        fatal: Fatal::default(),
    };
    let code = match mode {
        Mode::Rounds {
            concurrency,
            parties,
            duration,
            rounds,
            ..
        } => {
            let plan = RoundsPlan {
                concurrency,
                parties,
                duration: rounds.is_none().then_some(duration),
                rounds,
            };
            run_rounds(&run, &plan).await
        }
        Mode::Idle {
            connections,
            idle_window,
            ..
        } => run_idle(&run, connections, idle_window).await,
        Mode::Fairness { gaps, trials, .. } => run_fairness(&run, &gaps, trials).await,
        Mode::Quiz {
            rounds,
            delay_ms,
            scenarios,
            ..
        } => run_quiz(run.json, rounds, delay_ms, scenarios).await,
        Mode::Sessions {
            sessions,
            parties,
            rounds,
            ..
        } => {
            let plan = bench::SessionsPlan { sessions, parties };
            run_sessions(&run, &plan, rounds).await
        }
        Mode::Echo {
            connections,
            size,
            duration,
            ..
        } => {
            let plan = bench::EchoPlan {
                connections,
                size,
                duration,
            };
            run_echo(&run, &plan).await
        }
    };
    if let Some(server) = server {
        server.stop();
    }
    if let Some(error) = run.fatal.get() {
        if error.contains("Connection refused") {
            return fail(format!(
                "no server is running at {}; start one (arrival-server --rounds 0), or let the \
                 bench start its own with --spawn-server",
                run.addr
            ));
        }
        return fail(format!(
            "the server at {} refused to go on ({error}); is it running, and in service mode \
             (--rounds 0)?",
            run.addr
        ));
    }
    code
}

fn spawn_server(common: &Common, mode: &Mode, needed: u64) -> Result<SpawnedServer, String> {
    let program = std::env::current_exe()
        .map_err(|e| format!("cannot find arrival-server: {e}"))?
        .with_file_name("arrival-server");
    // --quiet: one line per round would be thousands of lines a second.
    let mut args: Vec<String> = ["--addr", "127.0.0.1:0", "--rounds", "0", "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Every bench connection comes from one address.
    args.extend(["--max-connections".into(), (needed + 1024).to_string()]);
    args.extend(["--max-per-address".into(), "0".into()]);
    if let Some(t) = common.server_threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    match mode {
        Mode::Rounds { parties, .. } => args.extend(["--parties".into(), parties.to_string()]),
        Mode::Echo { .. } => args.extend(["--mode".into(), "echo".into()]),
        Mode::Idle { .. } => args.extend(["--round-timeout".into(), "3600".into()]),
        Mode::Fairness { .. } | Mode::Quiz { .. } => {}
        Mode::Sessions {
            parties, rounds, ..
        } => {
            let session = [
                "--session-rounds",
                &rounds.to_string(),
                "--session-pause",
                "0",
                // Throughput of the session machinery, not of a quiz host's pauses.
                "--go-jitter",
                "0",
            ]
            .map(str::to_owned);
            args.extend(session);
            args.extend(["--parties".into(), parties.to_string()]);
        }
    }
    SpawnedServer::start(&program, &args)
        .map_err(|e| format!("cannot start {}: {e}", program.display()))
}

/// What every mode's run shares.
struct Run {
    addr: String,
    server_pid: Option<u32>,
    json: bool,
    fatal: Fatal,
}

/// CPU and memory a process used over a measurement.
#[derive(Debug, Clone, Copy, Serialize)]
struct ProcUse {
    cpu_seconds: f64,
    /// CPU time as a share of one core over the measurement's wall time.
    cpu_percent_of_core: f64,
    peak_rss_kib: u64,
}

impl ProcUse {
    fn between(
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

    fn text(&self) -> String {
        format!(
            "{:.2} CPU s ({:.0}% of a core), peak RSS {} KiB",
            self.cpu_seconds, self.cpu_percent_of_core, self.peak_rss_kib
        )
    }
}

/// The server's and our own resource use, sampled around a measurement.
struct Usage {
    server_pid: Option<u32>,
    server: Option<ProcStats>,
    bench: Option<ProcStats>,
    started: Instant,
}

impl Usage {
    fn start(server_pid: Option<u32>) -> Usage {
        Usage {
            server_pid,
            server: server_pid.and_then(proc_stats),
            bench: proc_stats(std::process::id()),
            started: Instant::now(),
        }
    }

    /// (server, bench)
    fn finish(self) -> (Option<ProcUse>, Option<ProcUse>) {
        let wall = self.started.elapsed();
        (
            ProcUse::between(self.server, self.server_pid.and_then(proc_stats), wall),
            ProcUse::between(self.bench, proc_stats(std::process::id()), wall),
        )
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal, fed from a counter of finished
/// work. With a duration it fills with time; with a total, with work; the message shows the rate.
struct Progress {
    done: Arc<AtomicBool>,
    ticker: arrival::rt::JoinHandle<()>,
}

impl Progress {
    fn start(
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
        let ticker = arrival::rt::spawn(async move {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let n = counter.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!("{n} {what}, {:.0}/s", n as f64 / secs));
                bar.set_position(match duration {
                    Some(_) => started.elapsed().as_millis() as u64,
                    None => n,
                });
                arrival::rt::sleep(Duration::from_millis(100)).await;
            }
            bar.finish_and_clear();
        });
        Progress { done, ticker }
    }

    async fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        self.ticker.await;
    }
}

/// Runs a measurement with its progress bar and both processes' resource use around it. `None`
/// when the run could not go on: no figures then, the caller says why.
async fn measure<F: std::future::Future>(
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

fn latency_text(l: &LatencySummary) -> String {
    format!(
        "n {}  mean {}  min {}  p50 {}  p90 {}  p95 {}  p99 {}  p99.9 {}  max {}",
        l.samples, l.mean, l.min, l.p50, l.p90, l.p95, l.p99, l.p99_9, l.max
    )
}

/// The server's and the bench's own resource use, as table rows; `extra` follows the server's.
fn print_usage(server: Option<ProcUse>, bench: Option<ProcUse>, extra: &str) {
    if let Some(s) = server {
        println!("  server            {}{extra}", s.text());
    }
    if let Some(b) = bench {
        println!("  arrival-bench     {}", b.text());
    }
}

fn print_json(value: &impl Serialize) {
    match serde_json::to_string(value) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("arrival-bench: cannot write JSON: {e}"),
    }
}

/// Exit status for a run that finished: 0, or 1 if any work failed.
fn status(errors: &Errors) -> i32 {
    if errors.is_empty() {
        0
    } else {
        EXIT_ERRORS
    }
}

#[derive(Serialize)]
struct RoundsResult {
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

async fn run_rounds(run: &Run, plan: &RoundsPlan) -> i32 {
    let measured = measure(run, "rounds", plan.rounds, plan.duration, |counter| {
        bench::rounds(&run.addr, plan, counter, run.fatal.clone())
    })
    .await;
    let Some((report, server, own)) = measured else {
        return EXIT_CANNOT_RUN;
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

#[derive(Serialize)]
struct IdleResult {
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

async fn run_idle(run: &Run, count: usize, window: Duration) -> i32 {
    let pid = run.server_pid;
    // The idle server first: CPU over a window with no clients at all.
    let idle_cpu = match pid.and_then(proc_stats) {
        Some(b) => {
            let watched = Arc::new(AtomicU64::new(0));
            let progress = Progress::start("idle server", watched, None, Some(window));
            arrival::rt::sleep(window).await;
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
    let idle = bench::open_idle(&run.addr, count, 256, counter, run.fatal.clone()).await;
    progress.finish().await;
    if run.fatal.get().is_some() {
        // No figures from a run that could not go on: the caller says why.
        return EXIT_CANNOT_RUN;
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

#[derive(Serialize)]
struct EchoResult {
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

async fn run_echo(run: &Run, plan: &bench::EchoPlan) -> i32 {
    let measured = measure(run, "messages", None, Some(plan.duration), |counter| {
        bench::echo(&run.addr, plan, counter, run.fatal.clone())
    })
    .await;
    let Some((report, server, own)) = measured else {
        return EXIT_CANNOT_RUN;
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

#[derive(Serialize)]
struct FairnessRow {
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
struct FairnessResult {
    mode: &'static str,
    addr: String,
    results: Vec<FairnessRow>,
}

async fn run_fairness(run: &Run, gaps: &[u64], trials: usize) -> i32 {
    let counter = Arc::new(AtomicU64::new(0));
    let total = (gaps.len() * trials) as u64;
    let progress = Progress::start("trials", Arc::clone(&counter), Some(total), None);
    let mut rows = Vec::new();
    for &gap in gaps {
        let r = bench::fairness(
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
        return EXIT_CANNOT_RUN;
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
        EXIT_ERRORS
    } else {
        0
    }
}

#[derive(Serialize)]
struct QuizResult {
    mode: &'static str,
    rounds: u64,
    delay_ms: u64,
    scenarios: Vec<bench::quiz::ScenarioReport>,
}

/// The quiz trial: its own server, every scenario at once, one line each.
async fn run_quiz(json: bool, rounds: u64, delay_ms: u64, scenarios: Vec<String>) -> i32 {
    let server = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("arrival-server"),
        Err(e) => return fail(format!("cannot find arrival-server: {e}")),
    };
    let plan = bench::quiz::QuizPlan {
        rounds,
        delay: Duration::from_millis(delay_ms),
        scenarios,
        server,
        server_args: Vec::new(),
    };
    let chosen = if plan.scenarios.is_empty() {
        4
    } else {
        plan.scenarios.len() as u64
    };
    let counter = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("rounds", Arc::clone(&counter), Some(rounds * chosen), None);
    let reports = bench::quiz::trial(&plan, counter).await;
    progress.finish().await;
    let reports = match reports {
        Ok(reports) => reports,
        Err(e) => return fail(e),
    };
    let fair = reports.iter().all(|r| r.fair());
    let result = QuizResult {
        mode: "quiz",
        rounds,
        delay_ms,
        scenarios: reports,
    };
    if json {
        print_json(&result);
    } else {
        println!("quiz, reaction order, {rounds} rounds a scenario; first = named first with a valid answer");
        for r in &result.scenarios {
            let standings: Vec<String> = r
                .subject_standings
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            let sources: Vec<String> = r
                .subject_rtt_sources
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            println!(
                "  {:<12} first in {:>3} of {:<3} [a fair share is {:.0}-{:.0}%: {}]  {}",
                r.scenario,
                r.subject_first,
                r.rounds,
                100.0 * r.fair_share.0,
                100.0 * r.fair_share.1,
                if r.fair() { "held" } else { "NOT HELD" },
                r.about
            );
            println!(
                "  {:<12} its standings: {}; round trip used {:.1}-{:.1} ms ({})",
                "",
                standings.join(", "),
                r.subject_rtt_us.0 as f64 / 1000.0,
                r.subject_rtt_us.1 as f64 / 1000.0,
                sources.join(", ")
            );
            if !r.errors.is_empty() {
                println!("  {:<12} errors: {}", "", errors_text(&r.errors));
            }
        }
    }
    if fair {
        0
    } else {
        EXIT_ERRORS
    }
}

#[derive(Serialize)]
struct SessionsResult {
    mode: &'static str,
    addr: String,
    sessions: usize,
    parties: usize,
    seconds: f64,
    rounds: u64,
    rounds_per_s: f64,
    server: Option<ProcUse>,
    bench: Option<ProcUse>,
    errors: Errors,
}

async fn run_sessions(run: &Run, plan: &bench::SessionsPlan, rounds: u64) -> i32 {
    let total = rounds * plan.sessions as u64;
    let measured = measure(run, "rounds", Some(total), None, |counter| {
        bench::sessions(&run.addr, plan, counter, run.fatal.clone())
    })
    .await;
    let Some((report, server, own)) = measured else {
        return EXIT_CANNOT_RUN;
    };
    let secs = report.elapsed.as_secs_f64();
    let result = SessionsResult {
        mode: "sessions",
        addr: run.addr.clone(),
        sessions: plan.sessions,
        parties: plan.parties,
        seconds: secs,
        rounds: report.rounds,
        rounds_per_s: report.rounds as f64 / secs,
        server,
        bench: own,
        errors: report.errors,
    };
    if run.json {
        print_json(&result);
    } else {
        let r = &result;
        println!(
            "sessions: {} sessions of {} parties held open, every party answering at once, {secs:.2} s",
            r.sessions, r.parties
        );
        println!(
            "  rounds            {:>10}   ({:.0}/s)",
            r.rounds, r.rounds_per_s
        );
        println!("  errors            {}", errors_text(&r.errors));
        print_usage(r.server, r.bench, "");
    }
    status(&result.errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> (Common, Mode) {
        let mut opt =
            Opt::from_iter_safe(std::iter::once("arrival-bench").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {}", e.message));
        let after = opt.mode.take_common();
        (std::mem::take(&mut opt.common).merge(after), opt.mode)
    }

    #[test]
    fn common_options_go_before_or_after_the_mode() {
        for args in [
            &["--json", "--spawn-server", "rounds", "-c", "8"][..],
            &["rounds", "-c", "8", "--json", "--spawn-server"][..],
            &["--json", "rounds", "--spawn-server", "-c", "8"][..],
        ] {
            let (common, mode) = parse(args);
            assert!(common.json && common.spawn_server, "{args:?}");
            assert!(
                matches!(mode, Mode::Rounds { concurrency: 8, .. }),
                "{args:?}"
            );
        }
        let (common, _) = parse(&["echo", "--addr", "127.0.0.1:9"]);
        assert_eq!(common.addr.as_deref(), Some("127.0.0.1:9"));
    }

    #[test]
    fn durations_take_units_and_c_means_connections_everywhere() {
        let (_, mode) = parse(&["rounds", "-d", "5s", "-c", "2"]);
        assert!(
            matches!(mode, Mode::Rounds { duration, concurrency: 2, .. } if duration == Duration::from_secs(5))
        );
        let (_, mode) = parse(&["echo", "-d", "250ms", "-c", "3"]);
        assert!(
            matches!(mode, Mode::Echo { duration, connections: 3, .. } if duration == Duration::from_millis(250))
        );
        let (_, mode) = parse(&["idle", "-c", "7", "--idle-window", "2"]);
        assert!(
            matches!(mode, Mode::Idle { connections: 7, idle_window, .. } if idle_window == Duration::from_secs(2))
        );
        assert!(Opt::from_iter_safe(["arrival-bench", "rounds", "-d", "five"]).is_err());
    }
}
