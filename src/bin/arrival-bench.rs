//! `arrival-bench`: drive an arrival server with real clients and report honest figures. Parses
//! arguments and turns how the run ended into an exit status; the modes, the server it may
//! start and the reports live in `arrival::bench`.
//!
//! Results go to stdout and nothing else does: progress, warnings and a spawned server's lines go
//! to stderr. Exit statuses: 0 every unit of work completed; 1 the run finished but some work
//! failed (counted under `errors`); 2 bad command line; 3 the run could not go on (nothing
//! listening, the server refused every round, the server could not be started).

use std::process::exit;

use arrival::bench::{self, Common, Ended, Job};
use arrival::cli::{flush_logging, init_logging, parse_args_from};
use structopt::StructOpt;

#[derive(Debug, StructOpt)]
#[structopt(
    name = "arrival-bench",
    about = "Load generator for arrival-server: throughput, latency, idle memory, fairness, echo.",
    after_help = "Durations take units (5s, 250ms, 2m) or bare seconds. Exit statuses: 0 all work \
                  completed, 1 some work failed, 2 usage, 3 the run could not go on."
)]
struct Opt {
    #[structopt(subcommand)]
    mode: Mode,
}

#[derive(Debug, StructOpt)]
enum Mode {
    /// Complete rounds, C at a time, each of P parties: connect, handshake, barrier, messages,
    /// acknowledgments, close
    Rounds(bench::rounds::Args),
    /// Hold C connections that wait for partners that never come; report server memory per
    /// connection (and the idle server's CPU use before them)
    Idle(bench::idle::Args),
    /// Echo: C connections, S-byte messages, one in flight per connection (with --spawn-server,
    /// the server runs in --mode echo)
    Echo(bench::echo::Args),
    /// Two parties send G microseconds apart; how often does the server name the right one first?
    Fairness(bench::fairness::Args),
    /// The quiz against modified clients, in reaction order: an honest far player (over a
    /// packet-level delayed link between network namespaces: needs root and /dev/net/tun), one
    /// that holds its Pongs, one that sends Answer every 3 ms, one that answers at a predicted go.
    /// How often is each named first? Always starts its own server
    Quiz(bench::quiz::Args),
    /// Quiz sessions: C sessions of P parties held open, every party answering at once; rounds
    /// per second (the server's --session-rounds ends them)
    Sessions(bench::sessions::Args),
    /// One quiz session of N players (WebSocket, framed or mixed, from several addresses) and a
    /// host: the join storm, memory per idle player, the spread of Go, buzz to every screen,
    /// the result's delivery, CPU per question per player
    Room(bench::room::Args),
}

impl Mode {
    fn into_job(self) -> (Common, Job) {
        match self {
            Mode::Rounds(args) => args.into_job(),
            Mode::Idle(args) => args.into_job(),
            Mode::Echo(args) => args.into_job(),
            Mode::Fairness(args) => args.into_job(),
            Mode::Quiz(args) => args.into_job(),
            Mode::Sessions(args) => args.into_job(),
            Mode::Room(args) => args.into_job(),
        }
    }
}

/// The modes' names: options may come before the mode or after it.
const MODES: [&str; 7] = [
    "rounds", "idle", "echo", "fairness", "quiz", "sessions", "room",
];

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
    let opt: Opt = parse_args_from(args);
    let (common, job) = opt.mode.into_job();
    arrival::rt::set_threads(common.threads);
    init_logging(common.verbose);
    // On the executor, so the drivers are not woken across threads by the main one.
    let ended = arrival::rt::block_on(arrival::rt::spawn(
        async move { bench::run(&common, job).await },
    ));
    let code = match ended {
        Ended::AllDone => 0,
        Ended::SomeFailed => 1,
        // The fatal error was said by the run.
        Ended::Fatal => 3,
        Ended::CannotRun(message) => {
            eprintln!("arrival-bench: {message}");
            3
        }
    };
    flush_logging();
    exit(code);
}
