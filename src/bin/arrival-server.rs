//! `arrival-server`: parse arguments, set up logging and signals, bind, run, turn the outcome into
//! an exit status. All behaviour lives in the library (`arrival::server`).

use std::process::exit;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use arrival::cli::{
    flush_logging, init_logging, labels_for, parse_args, parse_seconds, raise_open_files,
};
use arrival::round::Style;
use arrival::server::{self, Config, Mode, Wire};
use arrival::transcript::Transcript;
use futures::channel::oneshot;
use signal_hook::consts::{SIGINT, SIGTERM};
use structopt::StructOpt;

/// Exit statuses (also in docs/operations.md).
const EXIT_ROUND_FAILED: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_CANNOT_START: i32 = 3;

#[derive(Debug, StructOpt)]
#[structopt(
    name = "arrival-server",
    about = "Waits for every party, then tells all of them whose message arrived first. Clients \
             that join with `arrival-client --stay` play quiz sessions instead: many rounds in a \
             room, with scores.",
    after_help = "Durations take units (5s, 250ms, 2m) or bare seconds, at most one day. Exit \
                  statuses: 0 every round completed and every acknowledgment was delivered (with \
                  --rounds 0, a stop by signal is the normal end); 1 a round was aborted or an \
                  acknowledgment not delivered; 2 usage; 3 cannot listen; 130 / 143 stopped by \
                  SIGINT / SIGTERM before its rounds were done."
)]
struct Opt {
    /// Address to listen on; port 0 picks a free port (the bound address is printed)
    #[structopt(long, default_value = "127.0.0.1:12000")]
    addr: String,
    /// `arbiter` decides arrival order; `echo` sends every byte back (RFC 862) until stopped
    #[structopt(long, default_value = "arbiter")]
    mode: Mode,
    /// `framed` (arrival's protocol, versions 1 to 4: PROTOCOL.md) or `text` (the assignment's raw
    /// text; works with nc)
    #[structopt(long, default_value = "framed")]
    wire: Wire,
    /// After the acknowledgment, relay lines between the parties until one says `Bye` (framed wire
    /// only: the assignment's text clients close after the acknowledgment)
    #[structopt(long)]
    chat: bool,
    /// Rounds to run before exiting; 0 runs until SIGINT/SIGTERM
    #[structopt(long, default_value = "1")]
    rounds: u64,
    /// Parties per round, labelled X, Y, Z, A, B, ... [default: 2]
    #[structopt(long, conflicts_with = "labels")]
    parties: Option<usize>,
    /// Labels of a round's parties, comma-separated, in the order connections take them [default: X,Y]
    #[structopt(long, use_delimiter = true)]
    labels: Option<Vec<String>>,
    /// Seconds a new connection has to complete its handshake and be placed in a round
    #[structopt(long, default_value = "10", parse(try_from_str = parse_seconds))]
    handshake_timeout: Duration,
    /// Seconds a frame may take from its first byte to its last (and a write may take)
    #[structopt(long, default_value = "10", parse(try_from_str = parse_seconds))]
    frame_timeout: Duration,
    /// Abort a round that has not completed this many seconds after its first party arrived; 0
    /// never [default: never with --rounds 1, 60 otherwise]
    #[structopt(long, parse(try_from_str = parse_seconds))]
    round_timeout: Option<Duration>,
    /// End a chat in which nobody has typed for this many seconds; 0 never
    #[structopt(long, default_value = "300", parse(try_from_str = parse_seconds))]
    chat_idle: Duration,
    /// Seconds a party has to send its message once told its label; then it is timed out and
    /// its round aborted; 0 never [default: never with --rounds 1, 60 otherwise]
    #[structopt(long, parse(try_from_str = parse_seconds))]
    message_timeout: Option<Duration>,
    /// Quiz sessions (clients joining with `arrival-client --stay`): rank a round's answers by
    /// `arrival` or by `reaction` time (arrival minus each party's measured round trip)
    #[structopt(long, default_value = "arrival")]
    order: arrival::session::Order,
    /// Quiz sessions: rounds before a session ends
    #[structopt(long, default_value = "5")]
    session_rounds: u64,
    /// Quiz sessions: seconds between rounds, spent measuring each party's round trip
    #[structopt(long, default_value = "2", parse(try_from_str = parse_seconds))]
    session_pause: Duration,
    /// Quiz sessions: seconds a round waits for answers
    #[structopt(long, default_value = "10", parse(try_from_str = parse_seconds))]
    answer_timeout: Duration,
    /// Quiz sessions: after the pause, `Go` waits a further random time in this range (`LOW..HIGH`,
    /// or one duration; 0 for none), so no client can time an answer to a go it has not seen
    #[structopt(long, default_value = "1s..4s")]
    go_jitter: arrival::session::Jitter,
    /// Quiz sessions, reaction order: an answer with a reaction time below this is a false start
    /// (the sprint start rule); 0 turns the rule off
    #[structopt(long, default_value = "100ms", parse(try_from_str = parse_seconds))]
    min_reaction: Duration,
    /// Quiz sessions: where a party's round trip comes from. `kernel` bounds what Ping/Pong show
    /// by the kernel's own figure for the connection (TCP_INFO), falling back to `ping` where there
    /// is none; `ping` trusts Ping/Pong alone, capped by --max-compensation (use it behind a
    /// TCP-terminating proxy, whose kernel figure is the proxy's, not the player's)
    #[structopt(long, default_value = "kernel")]
    rtt_source: RttPolicy,
    /// Quiz sessions: how far a party's Ping/Pong round trip may exceed the kernel's figure
    #[structopt(long, default_value = "5ms", parse(try_from_str = parse_seconds))]
    rtt_slack: Duration,
    /// Quiz sessions: the most round trip compensated where only Ping/Pong measures it
    #[structopt(long, default_value = "150ms", parse(try_from_str = parse_seconds))]
    max_compensation: Duration,
    /// Rounds an address's connections may abort (leaving before their message, or sending none
    /// in time) before it is refused for a while; 0 never refuses. Once is never refused
    #[structopt(long, default_value = "2")]
    cooldown_strikes: u32,
    /// The first refusal of an address that aborts rounds; each further abort doubles it
    #[structopt(long, default_value = "10s", parse(try_from_str = parse_seconds))]
    cooldown: Duration,
    /// The longest refusal of an address that aborts rounds
    #[structopt(long, default_value = "10m", parse(try_from_str = parse_seconds))]
    cooldown_max: Duration,
    /// An address's aborted rounds are forgotten after this long without one (or at once when
    /// it completes a round with another address)
    #[structopt(long, default_value = "10m", parse(try_from_str = parse_seconds))]
    cooldown_forget: Duration,
    /// Every connection starts with a PROXY protocol v2 header (HAProxy's send-proxy-v2): the
    /// client's address is the one it names (transcript, logs, --max-per-address, cooldowns);
    /// a connection without a valid one is closed with a log line; quiz round trips come from
    /// pings alone (the kernel sees the balancer)
    #[structopt(long)]
    proxy_protocol: bool,
    /// Browsers on the same port: the player page (/), the host page (/host) and their
    /// WebSocket. `auto` is on for a service (--rounds other than 1) on the framed wire, where a
    /// quiz night wants phones to join with no install; off for the assignment's one round,
    /// which a browser's session would use up, and for echo and the text wire
    #[structopt(long, default_value = "auto")]
    web: WebPolicy,
    /// The room the printed player and host links open
    #[structopt(long, default_value = "quiz")]
    web_room: String,
    /// The key the host page (or any quiz host) must give to open rounds and end sessions
    /// [default: a random one, printed with the host link]
    #[structopt(long)]
    host_key: Option<String>,
    /// Connections held at once; further ones are told the server is busy and closed
    #[structopt(long, default_value = "1024")]
    max_connections: usize,
    /// Connections held at once from one IP address; further ones are told the server is busy;
    /// 0 no limit
    #[structopt(long, default_value = "256")]
    max_per_address: usize,
    /// Executor threads; 0 one per core. One was measured cheapest and fastest
    /// (docs/performance.md): the server's time is mostly the kernel's, and more threads add
    /// wake-ups
    #[structopt(long, default_value = "1")]
    threads: usize,
    /// Service mode: print no line per round, only the summary when the server stops
    #[structopt(short, long)]
    quiet: bool,
    /// Log diagnostics to stderr, with timestamps: -v warnings, -vv info, -vvv debug
    #[structopt(short, long, parse(from_occurrences))]
    verbose: u8,
}

/// Whether browsers are served (`--web`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebPolicy {
    Auto,
    On,
    Off,
}

impl std::str::FromStr for WebPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<WebPolicy, String> {
        match s {
            "auto" => Ok(WebPolicy::Auto),
            "on" => Ok(WebPolicy::On),
            "off" => Ok(WebPolicy::Off),
            _ => Err(format!("`{s}` is not a web setting (auto, on, off)")),
        }
    }
}

/// Where quiz sessions take a party's round trip from (`--rtt-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RttPolicy {
    Kernel,
    Ping,
}

impl std::str::FromStr for RttPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<RttPolicy, String> {
        match s {
            "kernel" => Ok(RttPolicy::Kernel),
            "ping" => Ok(RttPolicy::Ping),
            _ => Err(format!("`{s}` is not a round-trip source (kernel, ping)")),
        }
    }
}

/// The signal that stopped us, if any: 0 until one arrives.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// A repeat of the first signal within this window is the same request: `timeout`, shells and
/// supervisors signal both the process and its process group, so one stop can arrive twice.
const REPEAT_WINDOW: Duration = Duration::from_millis(200);

/// A future that resolves on the first SIGINT/SIGTERM; a further signal (other than a repeat of
/// the first within [`REPEAT_WINDOW`]) exits at once.
fn shutdown_on_signals(
    stop_is_normal: bool,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let (tx, rx) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut first: Option<(i32, Instant)> = None;
        for signal in signals.forever() {
            match first {
                None => {
                    first = Some((signal, Instant::now()));
                    SIGNAL.store(signal, Ordering::SeqCst);
                    eprintln!(
                        "arrival-server: {}, shutting down (send it again to exit at once)",
                        signal_name(signal)
                    );
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                Some((s, at)) if s == signal && at.elapsed() < REPEAT_WINDOW => {
                    log::info!(
                        "{} again within {REPEAT_WINDOW:?}: the same request",
                        signal_name(signal)
                    );
                }
                Some(_) => {
                    eprintln!("arrival-server: second signal, exiting now");
                    arrival::transcript::flush_queued(Duration::from_millis(200));
                    flush_logging();
                    // The status the graceful stop would have given: 0 where stopping is the
                    // normal end (--rounds 0, echo), 128 + the first signal otherwise.
                    let first = SIGNAL.load(Ordering::SeqCst);
                    exit(if stop_is_normal { 0 } else { 128 + first });
                }
            }
        }
    });
    Ok(async move {
        let _ = rx.await;
    })
}

fn main() {
    let opt: Opt = parse_args();
    arrival::rt::set_threads(Some(opt.threads));
    init_logging(opt.verbose);
    // On the executor, not the main thread: the accept loop then shares a thread with the
    // connections it starts instead of waking another one for each.
    let code = arrival::rt::block_on(arrival::rt::spawn(serve(opt)));
    // The transcript's last lines, unless stdout is stuck (then they are lost, not waited for).
    arrival::transcript::flush_queued(Duration::from_secs(1));
    flush_logging();
    exit(code);
}

/// A service-mode round that has not completed after this long is aborted, unless told otherwise.
const SERVICE_ROUND_TIMEOUT: Duration = Duration::from_secs(60);
/// A service-mode party that has not sent its message this long after learning its label is
/// timed out, unless told otherwise: a party that never sends cannot hold a round.
const SERVICE_MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

async fn serve(opt: Opt) -> i32 {
    let labels = match (opt.labels, opt.parties) {
        (Some(labels), _) => labels,
        (None, parties) => labels_for(parties.unwrap_or(2)),
    };
    if opt.chat && opt.wire == Wire::Text {
        eprintln!("arrival-server: --chat needs the framed wire (the text wire closes after the acknowledgment)");
        return EXIT_USAGE;
    }
    if opt.chat && opt.mode == Mode::Echo {
        eprintln!("arrival-server: --chat is for rounds; an echo server (--mode echo) has no chat");
        return EXIT_USAGE;
    }
    let web_possible = opt.mode == Mode::Arbiter && opt.wire == Wire::Framed;
    if opt.web == WebPolicy::On && !web_possible {
        eprintln!("arrival-server: --web on needs --mode arbiter and the framed wire");
        return EXIT_USAGE;
    }
    let web = match opt.web {
        WebPolicy::Auto => web_possible && opt.rounds != 1,
        WebPolicy::On => true,
        WebPolicy::Off => false,
    };
    if let Err(e) = arrival::names::validate(&opt.web_room) {
        eprintln!("arrival-server: --web-room {e}");
        return EXIT_USAGE;
    }
    let host_key = match opt.host_key.clone() {
        Some(key)
            if key.is_empty()
                || key.len() > 64
                || !key.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            eprintln!("arrival-server: --host-key takes 1 to 64 letters and digits");
            return EXIT_USAGE;
        }
        Some(key) => key,
        None => arrival::web::random_key(),
    };
    if let Err(e) = check_labels(&labels).and_then(|()| server::check_verdict_fits(&labels)) {
        eprintln!("arrival-server: {e}");
        return EXIT_USAGE;
    }
    // Every held connection is a descriptor; ask for the connection limit plus headroom.
    let want = opt.max_connections as u64 + 64;
    match raise_open_files(want) {
        Ok(got) if got < want => log::warn!(
            "open-file limit is {got}: fewer than --max-connections {} can be held",
            opt.max_connections
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot read the open-file limit: {e}"),
    }
    let listener = match server::bind(&opt.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("arrival-server: cannot listen on {}: {e}", opt.addr);
            return EXIT_CANNOT_START;
        }
    };
    let stop_is_normal = opt.mode == Mode::Echo || opt.rounds == 0;
    let shutdown = match shutdown_on_signals(stop_is_normal) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("arrival-server: cannot install signal handlers: {e}");
            return EXIT_CANNOT_START;
        }
    };
    // Through a writer thread: a reader that stops reading stdout must not stall the rounds.
    let transcript = Transcript::StdoutQueued;
    match listener.local_addr() {
        Ok(addr) => {
            transcript.line(format!("arrival-server listening on {addr}"));
            if web {
                for line in arrival::web::links(
                    addr,
                    &opt.web_room,
                    &host_key,
                    std::io::IsTerminal::is_terminal(&std::io::stdout()),
                ) {
                    transcript.line(line);
                }
            }
        }
        Err(e) => {
            eprintln!("arrival-server: cannot read the bound address: {e}");
            return EXIT_CANNOT_START;
        }
    }
    let echo = opt.mode == Mode::Echo;
    // An echo server has no rounds: it runs until stopped.
    let rounds = if echo { 0 } else { opt.rounds };
    let one_shot = rounds == 1;
    let config = Config {
        labels,
        rounds,
        handshake_timeout: opt.handshake_timeout,
        frame_timeout: opt.frame_timeout,
        // 0 means never, whatever the mode.
        round_timeout: opt
            .round_timeout
            .or((!one_shot).then_some(SERVICE_ROUND_TIMEOUT))
            .filter(|t| !t.is_zero()),
        chat_idle: Some(opt.chat_idle).filter(|t| !t.is_zero()),
        message_timeout: opt
            .message_timeout
            .or((!one_shot).then_some(SERVICE_MESSAGE_TIMEOUT))
            .filter(|t| !t.is_zero()),
        max_connections: opt.max_connections,
        max_per_address: opt.max_per_address,
        transcript: transcript.clone(),
        style: match (one_shot, opt.quiet) {
            (true, _) => Style::Assignment,
            (false, false) => Style::Summary,
            (false, true) => Style::Quiet,
        },
        mode: opt.mode,
        wire: opt.wire,
        chat: opt.chat,
        kernel_timestamps: true,
        kernel_rtt: opt.rtt_source == RttPolicy::Kernel,
        proxy_protocol: opt.proxy_protocol,
        web,
        host_key: Some(host_key),
        cooldown: arrival::server::cooldown::CooldownConfig {
            strikes: opt.cooldown_strikes,
            first: opt.cooldown,
            max: opt.cooldown_max.max(opt.cooldown),
            forget: opt.cooldown_forget,
        },
        session: arrival::session::SessionConfig {
            // At least two parties, or as many as --parties asks for, or as many as a session
            // holds if that is fewer.
            min_parties: opt
                .parties
                .unwrap_or(2)
                .max(2)
                .min(arrival::session::fitting_parties()),
            rounds: opt.session_rounds.max(1),
            order: opt.order,
            answer_timeout: opt.answer_timeout,
            ping_every: opt.session_pause / 5,
            pings: 5,
            go_jitter: opt.go_jitter,
            min_reaction: opt.min_reaction,
            rtt_slack: opt.rtt_slack,
            max_compensation: opt.max_compensation,
            ..arrival::session::SessionConfig::default()
        },
    };
    let rounds = config.rounds;
    let summary = match server::run(listener, config, shutdown).await {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("arrival-server: {e}");
            return EXIT_CANNOT_START;
        }
    };
    // Every round is over, so the summary may wait a little for room behind a slow stdout.
    let last_words = Duration::from_secs(1);
    if echo {
        transcript.last_line(
            format!("Summary: {} connections served", summary.connections),
            last_words,
        );
    } else if !one_shot {
        transcript.last_line(format!("Summary: {}", summary.describe()), last_words);
    }
    if summary.interrupted && rounds == 0 {
        // Running until told to stop is what --rounds 0 means: stopping is the normal end.
        return 0;
    }
    if summary.interrupted {
        let signal = SIGNAL.load(Ordering::SeqCst);
        eprintln!(
            "arrival-server: stopped by {} after {} of {} rounds",
            signal_name(signal),
            summary.rounds_completed,
            if rounds == 0 {
                "unlimited".to_owned()
            } else {
                rounds.to_string()
            }
        );
        return 128 + signal;
    }
    if summary.is_clean() {
        0
    } else {
        EXIT_ROUND_FAILED
    }
}

fn signal_name(signal: i32) -> &'static str {
    if signal == SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

fn check_labels(labels: &[String]) -> Result<(), String> {
    if labels.is_empty() {
        return Err("--labels needs at least one label".into());
    }
    for (i, label) in labels.iter().enumerate() {
        arrival::names::validate(label).map_err(|e| format!("label {label:?} {e}"))?;
        if labels[..i].contains(label) {
            return Err(format!("label {label:?} is given twice"));
        }
    }
    Ok(())
}
