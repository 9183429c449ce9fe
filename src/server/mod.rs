//! The server: listener, accept loop, limits and shutdown; the rooms below hold the rest.
//!
//! Actors and the channels between them (all bounded, the graph acyclic):
//!
//! ```text
//! accept loop ──spawns──▶ connection ──Join / Left (before the barrier)──▶ lobby
//!                          ▲  │                                  │ spawns at the barrier
//!                          │  └──── Arrived / Chat / Left ────▶ round (coordinator)
//!                          └────────── Outbound (outbox) ─────── lobby, round
//! lobby, round ──RoundReport──▶ accept loop
//! ```
//!
//! - This file: the accept loop owns the listener, the connection limit and the tally of finished
//!   rounds; it decides when the server stops (rounds done, or the caller's shutdown future).
//! - `lobby`: the rounds still filling, by room, as state: it alone creates rounds, and gives
//!   each a task of its own when it fills.
//! - `connection`: one task per socket, every wire, its only reader and writer; it hands a
//!   browser's connection to `web`.
//! - `close`: the last write and the close (linger) for every connection.
//! - `proxy`: the PROXY v2 header a balancer sends first (`--proxy-protocol`): read by a short
//!   task of its own per connection, which hands the accept loop the client's real address.
//! - [`cooldown`]: the addresses whose connections abort rounds, refused for a while; the accept
//!   loop alone holds the table, fed by the rounds' reports.
//! - `echo`: the RFC 862 echo connection.
//!
//! Shutdown: the accept loop fires a [`Stop`]; connections say what they have queued and then
//! `ShuttingDown`, rounds and the lobby return. `run` returns only after every connection task
//! and every round has ended: nothing is leaked, which [`Stats`] lets tests check.
//!
//! This module must not interpret bytes (wires do) or round rules (rounds do).

pub(crate) mod close;
pub(crate) mod connection;
pub mod cooldown;
mod echo;
mod lobby;
mod proxy;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};

use crate::protocol::ErrorKind;
use crate::round::{ConnId, Outbound, Outcome, RoundReport, Style};
use crate::rt::{self, Listener, Socket};
use crate::stamp::{self, StampedStream};
use crate::stop::Stop;
use crate::transcript::Transcript;
use crate::wire::framed::Framed;
use crate::wire::text::Text;
use crate::wire::Wire as _;
pub use crate::wire::WireKind as Wire;
use connection::Connection;
use lobby::{lobby_loop, ToLobby, LOBBY_CAPACITY};

/// Server settings. `Default` is the assignment: one round of X and Y, then exit.
#[derive(Debug, Clone)]
pub struct Config {
    /// One label per party of a round.
    pub labels: Vec<String>,
    /// Rounds to run before exiting; 0 runs until the shutdown future resolves. Only rounds that
    /// fill count: a party that joins and leaves never uses one up.
    pub rounds: u64,
    /// Time a new connection has to complete its `Hello`.
    pub handshake_timeout: Duration,
    /// Time from a frame's first byte to its last, and the bound on writing one frame.
    pub frame_timeout: Duration,
    /// Abort a round not complete this long after its first party arrived.
    pub round_timeout: Option<Duration>,
    /// End a chat in which nobody typed for this long.
    pub chat_idle: Option<Duration>,
    /// Time from the round's start (a party learning its label) to that party's message; a
    /// party that has not sent by then is timed out, and its round aborted.
    pub message_timeout: Option<Duration>,
    /// Connections held at once; more are answered `Busy` and closed.
    pub max_connections: usize,
    /// Connections held at once from one IP address (0: no limit); more are answered `Busy`.
    pub max_per_address: usize,
    /// Where the user-facing lines go.
    pub transcript: Transcript,
    /// The assignment's play-by-play, one line per round, or nothing per round.
    pub style: Style,
    /// Arbitrate rounds, or echo bytes back.
    pub mode: Mode,
    /// Length-prefixed frames, or the assignment's raw text.
    pub wire: Wire,
    /// After the acknowledgment, relay chat lines between the parties until one says `Bye`.
    pub chat: bool,
    /// Order by the kernel's receive time (see `stamp`); off, or where the platform has none,
    /// by the time each message was read.
    pub kernel_timestamps: bool,
    /// Quiz sessions: bound each party's round trip by the kernel's figure for its connection
    /// (`TCP_INFO`). Off where the server's peers are not the players (behind a TCP-terminating
    /// proxy): then `Ping`/`Pong` alone, capped by the session's `max_compensation`.
    pub kernel_rtt: bool,
    /// When an address whose connections abort rounds is refused, and for how long.
    pub cooldown: cooldown::CooldownConfig,
    /// Every connection starts with a PROXY v2 header from a balancer: the client's address is
    /// the one it names (for the transcript, the logs, `max_per_address` and cooldowns), and the
    /// kernel's round trip is the balancer's, so sessions take round trips from pings alone.
    pub proxy_protocol: bool,
    /// Serve the player and host pages, and browsers over WebSocket, on the framed port (see
    /// `web`): a connection whose first bytes are an HTTP request is a browser.
    pub web: bool,
    /// The key a quiz host (protocol 4's `Host`) must offer; `None`: nobody can host.
    pub host_key: Option<String>,
    /// How quiz sessions (protocol 2's `Join`) run; `room` and `style` are filled in per session.
    pub session: crate::session::SessionConfig,
}

/// What the server does with a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Rounds: decide whose message arrived first.
    #[default]
    Arbiter,
    /// RFC 862 echo (see `echo`).
    Echo,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "arbiter" => Ok(Mode::Arbiter),
            "echo" => Ok(Mode::Echo),
            _ => Err(format!("`{s}` is not a mode (arbiter, echo)")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            labels: vec!["X".into(), "Y".into()],
            rounds: 1,
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(10),
            round_timeout: None,
            chat_idle: Some(Duration::from_secs(300)),
            message_timeout: None,
            max_connections: 1024,
            max_per_address: 256,
            transcript: Transcript::Silent,
            style: Style::Assignment,
            mode: Mode::Arbiter,
            wire: Wire::Framed,
            chat: false,
            kernel_timestamps: true,
            kernel_rtt: true,
            cooldown: cooldown::CooldownConfig::default(),
            proxy_protocol: false,
            web: false,
            host_key: None,
            session: crate::session::SessionConfig::default(),
        }
    }
}

/// Live counters, shared read-only with whoever embeds the server.
#[derive(Debug, Default)]
pub struct Stats {
    live: AtomicUsize,
    accepted: AtomicU64,
    refused_busy: AtomicU64,
    /// Connections held per client address: admission control, not game state. Touched once
    /// when a connection is admitted and once when it ends; entries at zero are removed, so it
    /// never holds more than `max_connections` entries.
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Rounds whose coordinator is running.
    rounds_live: AtomicUsize,
    /// Rounds still filling, and sessions, in the lobby's tables.
    rooms_filling: AtomicUsize,
}

impl Stats {
    /// Connection tasks currently alive (reader and writer both count as one connection).
    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
    pub fn refused_busy(&self) -> u64 {
        self.refused_busy.load(Ordering::SeqCst)
    }
}

impl Stats {
    /// Takes a place for a connection from `ip`, unless that address holds `limit` already
    /// (0: no limit).
    fn admit(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<LiveGuard> {
        let mut table = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let held = table.entry(ip).or_default();
        if limit != 0 && *held >= limit {
            if *held == 0 {
                table.remove(&ip);
            }
            return None;
        }
        *held += 1;
        self.live.fetch_add(1, Ordering::SeqCst);
        Some(LiveGuard(Arc::clone(self), ip))
    }

    /// Rounds whose coordinator task is running.
    pub fn rounds_live(&self) -> usize {
        self.rounds_live.load(Ordering::SeqCst)
    }

    /// Rounds still filling in the lobby, and quiz sessions running (an ended session stays in
    /// the lobby's table until its next sweep).
    pub fn rooms_filling(&self) -> usize {
        self.rooms_filling.load(Ordering::SeqCst)
    }

    /// Addresses currently holding connections.
    pub fn addresses(&self) -> usize {
        self.per_address.lock().map_or(0, |t| t.len())
    }
}

/// Gives a connection's places back however its task ends.
struct LiveGuard(Arc<Stats>, IpAddr);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        let mut table = self.0.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = table.get_mut(&self.1) {
            *held -= 1;
            if *held == 0 {
                table.remove(&self.1);
            }
        }
    }
}

impl Config {
    /// Whether a connection's kernel round trip is its player's: not behind a balancer, whose
    /// kernel figure is the balancer's own.
    pub(crate) fn players_kernel_rtt(&self) -> bool {
        self.kernel_rtt && !self.proxy_protocol
    }
}

/// What a server run amounted to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rounds_completed: u64,
    /// Rounds that filled and then completed or were aborted: what `--rounds N` counts.
    pub rounds_played: u64,
    /// Completed rounds in which some acknowledgment could not be delivered.
    pub rounds_undelivered: u64,
    pub rounds_aborted: u64,
    pub connections: u64,
    /// Quiz sessions that played at least one round, and the rounds they played. Each such
    /// session is also one of `rounds_completed` (one round of the server's budget).
    pub sessions: u64,
    pub session_rounds: u64,
    /// The shutdown future resolved before the rounds were done.
    pub interrupted: bool,
}

impl Summary {
    fn record(&mut self, report: &RoundReport) {
        if let Some(rounds) = report.session_rounds.filter(|&r| r > 0) {
            self.sessions += 1;
            self.session_rounds += rounds;
        }
        match &report.outcome {
            Outcome::Completed { undelivered, .. } => {
                self.rounds_completed += 1;
                if !undelivered.is_empty() {
                    self.rounds_undelivered += 1;
                }
            }
            Outcome::Aborted { .. } => self.rounds_aborted += 1,
            Outcome::Abandoned => {}
        }
        if report.started {
            self.rounds_played += 1;
        }
    }

    /// The service's one-line summary: `2 rounds completed, 0 aborted, 1 quiz session of 3
    /// rounds in all, 9 connections served`, each part only where it has something to count.
    pub fn describe(&self) -> String {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let rounds = self.rounds_completed - self.sessions.min(self.rounds_completed);
        let mut parts = Vec::new();
        if rounds > 0 || self.rounds_aborted > 0 || self.sessions == 0 {
            parts.push(format!(
                "{} completed, {} aborted",
                plural(rounds, "round", "rounds"),
                self.rounds_aborted
            ));
        }
        if self.sessions > 0 {
            parts.push(format!(
                "{} of {} in all",
                plural(self.sessions, "quiz session", "quiz sessions"),
                plural(self.session_rounds, "round", "rounds")
            ));
        }
        format!(
            "{}, {} served",
            parts.join(", "),
            plural(self.connections, "connection", "connections")
        )
    }

    /// Every round completed and every acknowledgment was delivered.
    pub fn is_clean(&self) -> bool {
        !self.interrupted && self.rounds_aborted == 0 && self.rounds_undelivered == 0
    }
}

/// A bound listener with its configuration, ready to [`run`](Server::run).
pub struct Server {
    listener: std::net::TcpListener,
    config: Config,
    stats: Arc<Stats>,
}

/// Pending connections the kernel queues before `accept`; std's fixed 128 overflows under a burst
/// of connects, and an overflowed SYN costs its client a one-second retry.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds a listener on `addr` (`host:port`; port 0 picks one) with `SO_REUSEADDR`, so a restarted
/// server can bind at once, a deep accept backlog, and kernel receive timestamps switched on
/// before it listens. A listener bound elsewhere gets its timestamps in [`Server::new`]; any
/// connection the kernel accepted on it before that is ordered by read time.
pub fn bind(addr: &str) -> io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(
        io::ErrorKind::InvalidInput,
        "the address resolves to nothing",
    );
    for candidate in addr.to_socket_addrs()? {
        let attempt = (|| {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(candidate),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.bind(&candidate.into())?;
            // Before `listen`: a connection accepted before the option is on never inherits
            // it, and its messages would be ordered by read time against others' kernel time.
            if let Err(e) = stamp::enable(&socket) {
                log::warn!("no kernel receive timestamps, arrival is the time of reading: {e}");
            }
            socket.listen(LISTEN_BACKLOG)?;
            Ok(std::net::TcpListener::from(socket))
        })();
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Runs a server on `listener` until its rounds are done or `shutdown` resolves.
pub async fn run(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<Summary> {
    Server::new(listener, config).run(shutdown).await
}

impl Server {
    pub fn new(listener: std::net::TcpListener, config: Config) -> Server {
        // Whoever bound it, its connections should carry kernel arrival times: accepted sockets
        // inherit the option (see `stamp`). Said once per server when they cannot.
        if !config.kernel_timestamps {
            let _ = stamp::set(&listener, false);
            log::info!("kernel receive timestamps off: arrival is the time of reading");
        } else if let Err(e) = stamp::enable(&listener) {
            log::warn!("no kernel receive timestamps, arrival is the time of reading: {e}");
        } else if !stamp::wait_until_active(Duration::from_secs(1)) {
            log::warn!(
                "the kernel has not started stamping packets yet; early arrivals are read times"
            );
        }
        Server {
            listener,
            config,
            stats: Arc::default(),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Counters that stay readable while, and after, the server runs.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<Summary> {
        let Server {
            listener,
            config,
            stats,
        } = self;
        if config.labels.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a round needs at least one party",
            ));
        }
        log::info!(
            "serving {:?} on {}: {} parties a round ({}), {} rounds, at most {} connections",
            config.mode,
            listener.local_addr()?,
            config.labels.len(),
            config.labels.join(","),
            if config.rounds == 0 {
                "unlimited".to_owned()
            } else {
                config.rounds.to_string()
            },
            config.max_connections
        );
        let listener = Listener::new(listener)?;
        let (trigger, stop) = Stop::new();
        let (reports_tx, mut reports) = mpsc::channel::<RoundReport>(64);
        let (lobby_tx, lobby_rx) = mpsc::channel::<ToLobby>(LOBBY_CAPACITY);
        let lobby = rt::spawn(lobby_loop(
            lobby_rx,
            config.clone(),
            reports_tx,
            stop.clone(),
            Arc::clone(&stats),
        ));
        // Every connection task holds a clone; when all are dropped, all connections are done.
        let (drain_tx, mut drained) = mpsc::channel::<std::convert::Infallible>(1);
        let ctx = Arc::new(Ctx {
            config,
            stop: stop.clone(),
            lobby: lobby_tx,
        });

        let mut summary = Summary::default();
        let mut cooldowns = cooldown::Cooldowns::new(ctx.config.cooldown);
        // Connections whose PROXY header is being read, and where their readers report.
        let mut pending = 0usize;
        let (proxied_tx, mut proxied) = mpsc::channel::<Proxied>(64);
        let mut next_id: ConnId = 0;
        let mut spare = Spare::open();
        let shutdown = shutdown.fuse();
        futures::pin_mut!(shutdown);
        loop {
            futures::select_biased! {
                () = shutdown => {
                    summary.interrupted = true;
                    break;
                }
                report = reports.next() => {
                    let Some(report) = report else { break };
                    stats.rounds_live.fetch_sub(1, Ordering::SeqCst);
                    summary.record(&report);
                    note_conduct(&mut cooldowns, &report);
                    let rounds = ctx.config.rounds;
                    if rounds != 0 && summary.rounds_played >= rounds {
                        break;
                    }
                }
                header = proxied.next() => {
                    let Some(Proxied { stream, balancer, origin }) = header else { continue };
                    pending -= 1;
                    match origin {
                        Ok(proxy::Origin::Client(peer)) => {
                            next_id += 1;
                            let drain = drain_tx.clone();
                            admit_unless_cooling(&cooldowns, stream, peer, next_id, &ctx, &stats, drain);
                        }
                        Ok(proxy::Origin::Balancer) => {
                            log::debug!("{balancer}: the balancer's own connection (a health check)");
                            answer_health_check(stream, &ctx, drain_tx.clone());
                        }
                        Err(why) => log::warn!("{balancer}: refused: {why}"),
                    }
                }
                accepted = accept(&listener).fuse() => match accepted {
                    Ok((stream, peer)) if ctx.config.proxy_protocol => {
                        summary.connections += 1;
                        stats.accepted.fetch_add(1, Ordering::SeqCst);
                        if stats.live_connections() + pending >= ctx.config.max_connections {
                            let message = format!(
                                "the server is at its limit of {} connections; try again later",
                                ctx.config.max_connections
                            );
                            refuse_busy(stream, peer, message, &ctx, &stats, drain_tx.clone());
                        } else {
                            pending += 1;
                            rt::spawn(read_proxy_header(
                                stream,
                                peer,
                                ctx.config.handshake_timeout,
                                ctx.stop.clone(),
                                proxied_tx.clone(),
                                drain_tx.clone(),
                            ));
                        }
                    }
                    Ok((stream, peer)) => {
                        next_id += 1;
                        summary.connections += 1;
                        stats.accepted.fetch_add(1, Ordering::SeqCst);
                        let drain = drain_tx.clone();
                        admit_unless_cooling(&cooldowns, stream, peer, next_id, &ctx, &stats, drain);
                    }
                    Err(e) => {
                        if out_of_descriptors(&e) {
                            let busy = busy_bytes(&ctx.config, "the server is out of file descriptors");
                            let shed = spare.shed(&listener, &busy);
                            summary.connections += shed;
                            stats.refused_busy.fetch_add(shed, Ordering::SeqCst);
                        } else {
                            spare.note(&e);
                        }
                        // Wait a little instead of spinning on a listener that will fail again
                        // at once.
                        rt::sleep(Duration::from_millis(20)).await;
                    }
                },
            }
        }
        drop(listener);
        // Header readers still running find no one to report to, and end.
        drop((proxied, proxied_tx));
        log::info!("stopping: {} connections open", stats.live_connections());
        trigger.trigger();
        drop(ctx);
        // Taken while the lobby and the rounds end, not after: the lobby reports every round it
        // holds as it stops, more than the channel has room for. It ends once they all have.
        while let Some(report) = reports.next().await {
            stats.rounds_live.fetch_sub(1, Ordering::SeqCst);
            summary.record(&report);
        }
        lobby.await;
        drop(drain_tx);
        while drained.next().await.is_some() {}
        Ok(summary)
    }
}

/// A connection whose PROXY header was read, for the accept loop to admit (or not).
struct Proxied {
    stream: Socket,
    /// The balancer's end of the connection.
    balancer: SocketAddr,
    origin: Result<proxy::Origin, String>,
}

/// Reads a connection's PROXY header (within the handshake timeout, or until the server stops)
/// and hands it, with what it said, to the accept loop.
async fn read_proxy_header(
    stream: Socket,
    balancer: SocketAddr,
    limit: Duration,
    stop: Stop,
    mut report: mpsc::Sender<Proxied>,
    _drain: mpsc::Sender<std::convert::Infallible>,
) {
    let origin = futures::select_biased! {
        () = stop.wait().fuse() => Err("the server is stopping".to_owned()),
        origin = proxy::read_header(&stream, limit).fuse() => origin,
    };
    let _ = report
        .send(Proxied {
            stream,
            balancer,
            origin,
        })
        .await;
}

/// Answers a balancer's health check with `Welcome` and closes: a check that reads it knows the
/// server accepts, reads headers and answers, not only that the kernel takes connections. It
/// joins nothing and prints nothing.
fn answer_health_check(
    stream: Socket,
    ctx: &Arc<Ctx>,
    drain: mpsc::Sender<std::convert::Infallible>,
) {
    let timeout = ctx.config.frame_timeout;
    let input = StampedStream::new(stream.clone());
    rt::spawn(async move {
        let _drain = drain;
        close::refuse(
            stream,
            Framed::new(input, timeout),
            Outbound::Admitted,
            timeout,
        )
        .await
    });
}

/// Admits a connection from `peer` (its client's own address, behind a balancer too), unless that
/// address is cooling down, in which case it is told so.
fn admit_unless_cooling(
    cooldowns: &cooldown::Cooldowns,
    stream: Socket,
    peer: SocketAddr,
    id: ConnId,
    ctx: &Arc<Ctx>,
    stats: &Arc<Stats>,
    drain: mpsc::Sender<std::convert::Infallible>,
) {
    match cooldowns.refused(peer.ip()) {
        Some(refusal) => refuse_busy(stream, peer, refusal.message(peer.ip()), ctx, stats, drain),
        None => admit(stream, peer, id, ctx, stats, drain),
    }
}

/// A round's report, as the cooldown table needs it: who aborted it, who completed it.
fn note_conduct(cooldowns: &mut cooldown::Cooldowns, report: &RoundReport) {
    for &ip in &report.leavers {
        let now = Instant::now();
        if let Some(length) = cooldowns.offence(ip, now) {
            log::warn!(
                "{ip}: its connections aborted {} rounds; refused for {} s",
                cooldowns.refused_at(ip, now).map_or(0, |r| r.offences),
                length.as_secs_f64()
            );
        }
    }
    for &ip in &report.finished {
        cooldowns.good(ip);
    }
}

async fn accept(listener: &Listener) -> io::Result<(Socket, SocketAddr)> {
    listener.accept().await
}

/// What every connection task shares.
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) stop: Stop,
    pub(crate) lobby: mpsc::Sender<ToLobby>,
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// The refusal `config`'s wire says to a connection the server cannot take, as bytes.
fn busy_bytes(config: &Config, why: &str) -> Vec<u8> {
    let message = format!("{why}; try again later");
    match config.wire {
        Wire::Framed => {
            crate::protocol::encode(&crate::protocol::Frame::error(ErrorKind::Busy, message))
                .unwrap_or_default()
        }
        Wire::Text => format!("error: {message}\n").into_bytes(),
    }
}

/// A descriptor held in reserve for running out of them (the libev/nginx way): when `accept`
/// fails with `EMFILE`, the spare is closed, one waiting connection is accepted, told `Busy` and
/// closed, and the spare is taken again. Without it, connections beyond the limit wait unanswered
/// in the backlog. It also keeps the log to one line per [`Spare::LOG_EVERY`].
struct Spare {
    file: Option<std::fs::File>,
    last_log: Option<Instant>,
    since_log: u64,
}

impl Spare {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn open() -> Spare {
        Spare {
            file: std::fs::File::open("/dev/null").ok(),
            last_log: None,
            since_log: 0,
        }
    }

    /// Logs an accept failure, at most once per `LOG_EVERY`.
    fn note(&mut self, e: &io::Error) {
        self.since_log += 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= Self::LOG_EVERY) {
            log::warn!(
                "accept failed: {e} ({} times since the last such line)",
                self.since_log
            );
            self.last_log = Some(Instant::now());
            self.since_log = 0;
        }
    }

    /// Answers one waiting connection `busy` with the spare descriptor; returns how many were
    /// answered (0 or 1).
    fn shed(&mut self, listener: &Listener, busy: &[u8]) -> u64 {
        use std::os::fd::AsRawFd;
        self.note(&io::Error::from_raw_os_error(libc::EMFILE));
        let Some(file) = self.file.take() else {
            return 0;
        };
        drop(file);
        // SAFETY: accept4 on our listening socket with null address pointers; the descriptor it
        // returns is ours to close.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        let mut shed = 0;
        if fd >= 0 {
            let mut scratch = [0u8; 512];
            // SAFETY: `fd` is a connected socket we own; the buffers are live and sized.
            unsafe {
                libc::write(fd, busy.as_ptr().cast(), busy.len());
                // Whatever the client already sent is read off, so our close is a FIN, not
                // a reset that could destroy the refusal.
                while libc::read(fd, scratch.as_mut_ptr().cast(), scratch.len()) > 0 {}
                libc::shutdown(fd, libc::SHUT_WR);
                libc::close(fd);
            }
            shed = 1;
        }
        self.file = std::fs::File::open("/dev/null").ok();
        shed
    }
}

/// The largest verdict `labels` can produce (every name 64 characters of 4 bytes each) must fit
/// in one frame; returns the largest number of such parties that fits, as an error, if not.
pub fn check_verdict_fits(labels: &[String]) -> Result<(), String> {
    let size = |labels: &[String]| {
        let order: Vec<crate::protocol::Arrival> = labels
            .iter()
            .map(|label| crate::protocol::Arrival {
                label: label.clone(),
                name: "\u{1F980}".repeat(crate::names::MAX_NAME_CHARS),
                after_micros: u64::MAX,
            })
            .collect();
        let text = crate::round::ack_text(&order);
        crate::protocol::encode(&crate::protocol::Frame::Ack { text, order })
            .map_or(usize::MAX, |b| b.len())
    };
    if size(labels) != usize::MAX {
        return Ok(());
    }
    let fits = (1..labels.len())
        .rev()
        .find(|&n| size(&labels[..n]) != usize::MAX)
        .unwrap_or(0);
    Err(format!(
        "a verdict for {} parties with {}-character names would not fit in one {}-byte frame; at \
         most {fits} parties fit",
        labels.len(),
        crate::names::MAX_NAME_CHARS,
        crate::protocol::MAX_FRAME_LEN
    ))
}

/// Starts a connection task, or refuses the connection when the server is at its limit.
fn admit(
    stream: Socket,
    peer: SocketAddr,
    id: ConnId,
    ctx: &Arc<Ctx>,
    stats: &Arc<Stats>,
    drain: mpsc::Sender<std::convert::Infallible>,
) {
    let _ = stream.get_ref().set_nodelay(true);
    let config = &ctx.config;
    let live = if stats.live_connections() >= config.max_connections {
        Err(format!(
            "the server is at its limit of {} connections; try again later",
            config.max_connections
        ))
    } else {
        stats
            .admit(peer.ip(), config.max_per_address)
            .ok_or_else(|| {
                format!(
                    "this address already holds {} connections, the most the server allows one \
                 address; try again later",
                    config.max_per_address
                )
            })
    };
    let live = match live {
        Ok(live) => live,
        Err(message) => {
            refuse_busy(stream, peer, message, ctx, stats, drain);
            return;
        }
    };
    let ctx = Arc::clone(ctx);
    let timeout = ctx.config.frame_timeout;
    // The task's future is the connection's own, built before the spawn, with the guards riding
    // along in `map` (dropped when it ends, the live count before the drain sender): an async
    // block around it would hold its arguments a second time, and one task for all three kinds
    // of connection would be as big as the largest (a text connection's).
    let held = (live, drain);
    match (ctx.config.mode, ctx.config.wire) {
        (Mode::Echo, _) => {
            let echo = echo::echo_loop(stream, ctx.stop.clone());
            rt::spawn(echo.map(move |echoed| {
                drop(held);
                match echoed {
                    Ok(bytes) => log::debug!("{peer}: echoed {bytes} bytes"),
                    Err(e) => log::info!("{peer}: echo ended: {e}"),
                }
            }))
        }
        (Mode::Arbiter, Wire::Framed) => {
            let wire = Framed::new(StampedStream::new(stream.clone()), timeout)
                .with_kernel_rtt(ctx.config.players_kernel_rtt())
                .with_web(ctx.config.web);
            let conn = Connection::new(stream, wire, peer, id, ctx);
            rt::spawn(connection::connection_loop(conn).map(move |()| drop(held)))
        }
        (Mode::Arbiter, Wire::Text) => {
            let wire = Text::new(StampedStream::new(stream.clone()), timeout);
            let conn = Connection::new(stream, wire, peer, id, ctx);
            rt::spawn(connection::connection_loop(conn).map(move |()| drop(held)))
        }
    };
}

/// Answers a connection the server will not hold `Busy`, in its wire's words, and closes it.
fn refuse_busy(
    stream: Socket,
    peer: SocketAddr,
    message: String,
    ctx: &Arc<Ctx>,
    stats: &Arc<Stats>,
    drain: mpsc::Sender<std::convert::Infallible>,
) {
    let config = &ctx.config;
    stats.refused_busy.fetch_add(1, Ordering::SeqCst);
    log::warn!("{peer}: refused: {message}");
    let busy = Outbound::ended(ErrorKind::Busy, message.clone());
    let (timeout, input) = (config.frame_timeout, StampedStream::new(stream.clone()));
    match config.wire {
        // A browser is refused in HTTP: its first bytes say which it is (a framed client's
        // `Hello` comes at once, so it waits a round trip for its refusal, not the bound).
        Wire::Framed if config.web => rt::spawn(async move {
            let _drain = drain;
            let mut wire = Framed::new(input, timeout).with_web(true);
            match rt::timeout(close::LINGER, wire.next()).await {
                Some(crate::wire::Inbound::Web) => {
                    if let Some((mut input, _)) = wire.into_web() {
                        let refusal = crate::web::http::busy(&message).to_bytes();
                        crate::web::http::close_with(&stream, &mut input, &refusal, timeout).await;
                    }
                }
                _ => close::refuse(stream, wire, busy, timeout).await,
            }
        }),
        Wire::Framed => rt::spawn(async move {
            let _drain = drain;
            close::refuse(stream, Framed::new(input, timeout), busy, timeout).await
        }),
        Wire::Text => rt::spawn(async move {
            let _drain = drain;
            close::refuse(stream, Text::new(input, timeout), busy, timeout).await
        }),
    };
}

#[cfg(test)]
mod summary_tests {
    use super::Summary;

    #[test]
    fn a_summary_counts_rounds_and_sessions_in_words_that_fit() {
        let mut s = Summary {
            rounds_completed: 1,
            connections: 1,
            ..Summary::default()
        };
        assert_eq!(
            s.describe(),
            "1 round completed, 0 aborted, 1 connection served"
        );
        // A session is one of the completed rounds the budget counts, said apart.
        s = Summary {
            rounds_completed: 3,
            rounds_aborted: 1,
            sessions: 1,
            session_rounds: 4,
            connections: 9,
            ..Summary::default()
        };
        assert_eq!(
            s.describe(),
            "2 rounds completed, 1 aborted, 1 quiz session of 4 rounds in all, 9 connections served"
        );
        s = Summary {
            rounds_completed: 2,
            sessions: 2,
            session_rounds: 1,
            connections: 6,
            ..Summary::default()
        };
        assert_eq!(
            s.describe(),
            "2 quiz sessions of 1 round in all, 6 connections served"
        );
        assert_eq!(
            Summary::default().describe(),
            "0 rounds completed, 0 aborted, 0 connections served"
        );
    }
}
