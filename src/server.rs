//! The server: accept loop, lobby, connection actors, limits and shutdown.
//!
//! Actors and the channels between them (all bounded, the graph acyclic):
//!
//! ```text
//! accept loop ──spawns──▶ connection (reader) ──Join──▶ lobby ──Join──▶ coordinator (per round)
//!                              │  └──────────── Arrived / Left ─────────────▶ │
//!                              └──spawns──▶ writer ◀──────── Outbound ────────┘
//! coordinator ──RoundReport──▶ accept loop
//! ```
//!
//! - The accept loop owns the listener, the connection limit and the tally of finished rounds;
//!   it decides when the server stops (rounds done, or the caller's shutdown future).
//! - The lobby owns the map of rounds still filling, keyed by room. It alone creates rounds.
//! - A connection's reader owns the read half and the handshake; its writer, the only task that
//!   writes to the socket, owns the write half.
//!
//! Shutdown: the accept loop fires a [`Stop`]; writers send `ShuttingDown` and close, readers
//! notice their writer ended, the lobby and coordinators return. `run` returns only after every
//! connection task and every round has ended: nothing is leaked, which [`Stats`] lets tests check.
//!
//! This module must not interpret frames beyond the handshake and "one message per party";
//! round rules live in the coordinator, bytes in `protocol`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::future::timeout;
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use futures::channel::{mpsc, oneshot};
use futures::future::Fuse;
use futures::future::FusedFuture;
use futures::{FutureExt, SinkExt, StreamExt};

use crate::coordinator::{
    coordinator_loop, ConnId, Event, Outbound, Outbox, Outcome, RoundConfig, RoundReport, Style,
    OUTBOX_CAPACITY,
};
use crate::names;
use crate::protocol::{self, ErrorKind, Frame, FrameReader, ReadError, PROTOCOL_VERSION};
use crate::stamp::{self, StampedStream};
use crate::stop::Stop;
use crate::transcript::Transcript;
use crate::{echo, text};

/// Server settings. `Default` is the assignment: one round of X and Y, then exit.
#[derive(Debug, Clone)]
pub struct Config {
    /// One label per party of a round.
    pub labels: Vec<String>,
    /// Rounds to run before exiting; 0 runs until the shutdown future resolves.
    pub rounds: u64,
    /// Time a new connection has to complete its `Hello`.
    pub handshake_timeout: Duration,
    /// Time from a frame's first byte to its last, and the bound on writing one frame.
    pub frame_timeout: Duration,
    /// Abort a round not complete this long after it was created.
    pub round_timeout: Option<Duration>,
    /// Connections held at once; more are answered `Busy` and closed.
    pub max_connections: usize,
    /// Where the user-facing lines go.
    pub transcript: Transcript,
    /// The assignment's play-by-play, or one line per round.
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

impl std::str::FromStr for Wire {
    type Err = String;
    fn from_str(s: &str) -> Result<Wire, String> {
        match s {
            "framed" => Ok(Wire::Framed),
            "text" => Ok(Wire::Text),
            _ => Err(format!("`{s}` is not a wire format (framed, text)")),
        }
    }
}

/// How arbiter connections speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Wire {
    /// Protocol v1, `PROTOCOL.md`.
    #[default]
    Framed,
    /// The assignment's raw text, one read per message (see `text`).
    Text,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            labels: vec!["X".into(), "Y".into()],
            rounds: 1,
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(10),
            round_timeout: None,
            max_connections: 1024,
            transcript: Transcript::Silent,
            style: Style::Assignment,
            mode: Mode::Arbiter,
            wire: Wire::Framed,
            chat: false,
            kernel_timestamps: true,
        }
    }
}

/// After our last frame, how long we keep reading (and discarding) while the peer is still
/// sending, or, when the server stops, while it has not closed: closing a socket with unread
/// input sends RST, which can destroy that last frame before the peer reads it.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// Awaits `fut` within `limit`; `None` if the limit passed. The timer is armed only if `fut` does
/// not complete on its first poll, as small writes and reads of buffered data do: a timer costs the
/// reactor a registration, and this runs several times per connection.
pub(crate) async fn bounded<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    futures::pin_mut!(fut);
    if let std::task::Poll::Ready(out) = futures::poll!(fut.as_mut()) {
        return Some(out);
    }
    timeout(limit, fut).await.ok()
}

/// Before closing a connection whose last frame is written: close at once if the peer has
/// nothing unread on the wire (FIN, no RST), else read and discard until it closes or `LINGER`
/// passes. With `patient`, wait for the peer to close even if it is silent (a stopping server
/// gives clients time to read why).
pub(crate) async fn linger<R: futures::io::AsyncRead + Unpin>(
    frames: &mut FrameReader<R>,
    patient: bool,
) {
    let before = frames.discarded();
    let ended = futures::poll!(Box::pin(frames.discard_until_eof())).is_ready();
    if !ended && (patient || frames.discarded() > before) {
        let _ = timeout(LINGER, frames.discard_until_eof()).await;
    }
}

/// Pending joins the lobby queues before connections wait to hand theirs over.
const LOBBY_CAPACITY: usize = 256;

/// Live counters, shared read-only with whoever embeds the server.
#[derive(Debug, Default)]
pub struct Stats {
    live: AtomicUsize,
    accepted: AtomicU64,
    refused_busy: AtomicU64,
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

/// Decrements the live count however the connection task ends.
struct LiveGuard(Arc<Stats>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a server run amounted to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rounds_completed: u64,
    /// Completed rounds in which some acknowledgment could not be delivered.
    pub rounds_undelivered: u64,
    pub rounds_aborted: u64,
    pub connections: u64,
    /// The shutdown future resolved before the rounds were done.
    pub interrupted: bool,
}

impl Summary {
    fn record(&mut self, report: &RoundReport) {
        match &report.outcome {
            Outcome::Completed { undelivered, .. } => {
                self.rounds_completed += 1;
                if !undelivered.is_empty() {
                    self.rounds_undelivered += 1;
                }
            }
            Outcome::Aborted { .. } => self.rounds_aborted += 1,
        }
    }

    fn rounds_finished(&self) -> u64 {
        self.rounds_completed + self.rounds_aborted
    }

    /// Every round completed and every acknowledgment was delivered.
    pub fn is_clean(&self) -> bool {
        !self.interrupted && self.rounds_aborted == 0 && self.rounds_undelivered == 0
    }
}

/// A bound listener with its configuration, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    config: Config,
    stats: Arc<Stats>,
}

/// Pending connections the kernel queues before `accept`; std's fixed 128 overflows under a burst
/// of connects, and an overflowed SYN costs its client a one-second retry.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds a listener on `addr` (`host:port`; port 0 picks one) with `SO_REUSEADDR`, so a restarted
/// server can bind at once, and a deep accept backlog.
pub fn bind(addr: &str) -> io::Result<TcpListener> {
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
            socket.listen(LISTEN_BACKLOG)?;
            socket.set_nonblocking(true)?;
            Ok(TcpListener::from(std::net::TcpListener::from(socket)))
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
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<Summary> {
    Server::new(listener, config).run(shutdown).await
}

impl Server {
    pub fn new(listener: TcpListener, config: Config) -> Server {
        // Whoever bound it, its connections should carry kernel arrival times: accepted sockets
        // inherit the option (see `stamp`). Said once per server when they cannot.
        if !config.kernel_timestamps {
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
        let (trigger, stop) = Stop::new();
        let (reports_tx, mut reports) = mpsc::channel::<RoundReport>(64);
        let (lobby_tx, lobby_rx) = mpsc::channel::<Join>(LOBBY_CAPACITY);
        let lobby = task::spawn(lobby_loop(
            lobby_rx,
            config.clone(),
            reports_tx,
            stop.clone(),
        ));
        // Every connection task holds a clone; when all are dropped, all connections are done.
        let (drain_tx, mut drained) = mpsc::channel::<std::convert::Infallible>(1);
        let ctx = Arc::new(Ctx {
            config,
            stop: stop.clone(),
            lobby: lobby_tx,
        });

        let mut summary = Summary::default();
        let mut next_id: ConnId = 0;
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
                    summary.record(&report);
                    let rounds = ctx.config.rounds;
                    if rounds != 0 && summary.rounds_finished() >= rounds {
                        break;
                    }
                }
                accepted = listener.accept().fuse() => match accepted {
                    Ok((stream, peer)) => {
                        next_id += 1;
                        summary.connections += 1;
                        stats.accepted.fetch_add(1, Ordering::SeqCst);
                        admit(stream, peer, next_id, &ctx, &stats, drain_tx.clone());
                    }
                    Err(e) => {
                        // Out of descriptors or the like: wait a little instead of spinning on a
                        // listener that will fail again immediately.
                        log::warn!("accept failed: {e}");
                        task::sleep(Duration::from_millis(20)).await;
                    }
                },
            }
        }
        drop(listener);
        log::info!("stopping: {} connections open", stats.live_connections());
        trigger.trigger();
        drop(ctx);
        lobby.await;
        drop(drain_tx);
        while drained.next().await.is_some() {}
        while let Some(report) = reports.next().await {
            summary.record(&report);
        }
        Ok(summary)
    }
}

/// What every connection task shares.
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) stop: Stop,
    pub(crate) lobby: mpsc::Sender<Join>,
}

/// Starts a connection task, or refuses the connection when the server is at its limit.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    ctx: &Arc<Ctx>,
    stats: &Arc<Stats>,
    drain: mpsc::Sender<std::convert::Infallible>,
) {
    let _ = stream.set_nodelay(true);
    if stats.live_connections() >= ctx.config.max_connections && ctx.config.wire == Wire::Text {
        // A text client expects text; it gets the one line and the close.
        stats.refused_busy.fetch_add(1, Ordering::SeqCst);
        let message = format!(
            "the server is at its limit of {} connections; try again later",
            ctx.config.max_connections
        );
        task::spawn(text::refuse(
            stream,
            message,
            ctx.config.frame_timeout,
            drain,
        ));
        return;
    }
    if stats.live_connections() >= ctx.config.max_connections {
        stats.refused_busy.fetch_add(1, Ordering::SeqCst);
        log::warn!(
            "{peer}: refused, at the limit of {} connections",
            ctx.config.max_connections
        );
        let message = format!(
            "the server is at its limit of {} connections; try again later",
            ctx.config.max_connections
        );
        let write_timeout = ctx.config.frame_timeout;
        task::spawn(async move {
            let _drain = drain;
            let mut s = &stream;
            let frame = Frame::error(ErrorKind::Busy, message);
            let _ = bounded(write_timeout, protocol::write_frame(&mut s, &frame)).await;
            // A real client has sent its Hello by now; leaving it unread would turn our close
            // into a reset that can destroy the frame we just wrote.
            let _ = stream.shutdown(Shutdown::Write);
            linger(&mut FrameReader::new(stream), true).await;
        });
        return;
    }
    stats.live.fetch_add(1, Ordering::SeqCst);
    let live = LiveGuard(Arc::clone(stats));
    let ctx = Arc::clone(ctx);
    task::spawn(async move {
        let _drain = drain;
        let _live = live;
        match (ctx.config.mode, ctx.config.wire) {
            (Mode::Echo, _) => match echo::echo_loop(stream, ctx.stop.clone()).await {
                Ok(bytes) => log::debug!("{peer}: echoed {bytes} bytes"),
                Err(e) => log::info!("{peer}: echo ended: {e}"),
            },
            (Mode::Arbiter, Wire::Framed) => connection_loop(stream, peer, id, ctx).await,
            (Mode::Arbiter, Wire::Text) => text::connection_loop(stream, peer, id, ctx).await,
        }
    });
}

/// A handshaken connection asking the lobby for a place in a round.
pub(crate) struct Join {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) room: Option<String>,
    pub(crate) reply: Outbox,
    pub(crate) placed: oneshot::Sender<Result<Placement, (ErrorKind, String)>>,
}

/// Where the lobby put a connection.
pub(crate) struct Placement {
    pub(crate) label: String,
    pub(crate) round: mpsc::Sender<Event>,
}

/// Routes each joining connection to the round filling for its room, creating rounds as needed
/// and refusing joins once the configured number of rounds has been started.
async fn lobby_loop(
    mut joins: mpsc::Receiver<Join>,
    config: Config,
    reports: mpsc::Sender<RoundReport>,
    stop: Stop,
) {
    let mut filling: HashMap<Option<String>, mpsc::Sender<Event>> = HashMap::new();
    let labels: Arc<[String]> = config.labels.clone().into();
    let mut started: u64 = 0;
    loop {
        let join = futures::select_biased! {
            () = stop.wait().fuse() => break,
            join = joins.next() => match join {
                Some(join) => join,
                None => break,
            },
        };
        loop {
            if let Some(round) = filling.get_mut(&join.room) {
                let (admitted, answer) = oneshot::channel();
                let event = Event::Join {
                    id: join.id,
                    peer: join.peer,
                    reply: join.reply.clone(),
                    admitted,
                };
                let admit = match round.send(event).await {
                    Ok(()) => answer.await.ok().flatten(),
                    Err(_) => None,
                };
                if let Some(admit) = admit {
                    let placement = Placement {
                        label: admit.label,
                        round: round.clone(),
                    };
                    if admit.full {
                        filling.remove(&join.room);
                    }
                    let _ = join.placed.send(Ok(placement));
                    break;
                }
                // That round ended (timed out) while filling.
                filling.remove(&join.room);
            }
            if config.rounds != 0 && started >= config.rounds {
                let message = if config.rounds == 1 {
                    "the round is full; this server runs a single round".to_owned()
                } else {
                    format!("all {} rounds of this server are taken", config.rounds)
                };
                let _ = join.placed.send(Err((ErrorKind::RoundFull, message)));
                break;
            }
            started += 1;
            let (tx, rx) = mpsc::channel(4 * config.labels.len() + 4);
            let round = RoundConfig {
                id: started,
                room: join.room.clone(),
                labels: Arc::clone(&labels),
                timeout: config.round_timeout,
                style: config.style,
                chat: config.chat,
            };
            let mut reports = reports.clone();
            let (stop, transcript) = (stop.clone(), config.transcript.clone());
            task::spawn(async move {
                let report = coordinator_loop(round, rx, stop, transcript).await;
                let _ = reports.send(report).await;
            });
            filling.insert(join.room.clone(), tx);
        }
    }
}

/// Writes what the outbox asks for; the only task that writes to this socket. Ends after a
/// final frame, a failed or timed-out write, when every outbox sender is gone, or on stop (after
/// writing what was queued, then telling the client). The socket closes when the reader, which
/// decides how to close, is done too.
pub(crate) async fn writer_loop(
    stream: TcpStream,
    mut outbox: mpsc::Receiver<Outbound>,
    stop: Stop,
    write_timeout: Duration,
    render: Render,
    _done: oneshot::Sender<()>,
) {
    let mut out = &stream;
    loop {
        // Frames already queued go first: a round that ended just before the stop has told its
        // parties why, and that is the truer message.
        let next = futures::select_biased! {
            next = outbox.next() => next,
            () = stop.wait().fuse() => Some(Outbound::error(ErrorKind::ShuttingDown, "the server is shutting down")),
        };
        let Some(next) = next else { break };
        // Whatever else is already queued goes out in the same write: the last party to join
        // gets `Welcome` and `Connected` together, one send instead of two.
        let mut frames = Vec::with_capacity(2);
        let mut next = Some(next);
        let mut delivered = None;
        let mut last = false;
        while let Some(out) = next.take() {
            match out {
                Outbound::Send(frame) => frames.push(frame),
                Outbound::Final {
                    frame,
                    delivered: d,
                } => {
                    frames.push(frame);
                    delivered = d;
                    last = true;
                    break;
                }
            }
            next = outbox.try_recv().ok();
        }
        let written = match render(&frames) {
            // Nothing to say on this wire (a text client is not sent `Welcome`).
            Ok(bytes) if bytes.is_empty() => true,
            Ok(bytes) => matches!(
                // Boxed, so an idle writer's future does not carry a write's state.
                Box::pin(bounded(write_timeout, write_all_flush(&mut out, &bytes))).await,
                Some(Ok(()))
            ),
            Err(e) => {
                log::error!("cannot encode a frame: {e}");
                false
            }
        };
        if let Some(delivered) = delivered {
            let _ = delivered.send(written);
        }
        if !written || last {
            break;
        }
    }
}

/// How a writer turns frames into bytes: [`protocol::encode_all`], or the text wire's renderer.
pub(crate) type Render = fn(&[Frame]) -> io::Result<Vec<u8>>;

async fn write_all_flush(out: &mut &TcpStream, bytes: &[u8]) -> io::Result<()> {
    use futures::AsyncWriteExt;
    out.write_all(bytes).await?;
    out.flush().await
}

/// Why a connection ends, from the reader's point of view.
struct Ending {
    /// Said to the client in an error frame, if the socket still works.
    tell: Option<(ErrorKind, String)>,
    /// Said to the round and the log: what the client did.
    why: String,
}

impl Ending {
    fn quiet(why: impl Into<String>) -> Ending {
        Ending {
            tell: None,
            why: why.into(),
        }
    }
    fn told(kind: ErrorKind, message: impl Into<String>, why: impl Into<String>) -> Ending {
        Ending {
            tell: Some((kind, message.into())),
            why: why.into(),
        }
    }
    fn from_read(e: ReadError) -> Ending {
        match e {
            ReadError::Io(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                Ending::quiet("reset the connection")
            }
            ReadError::Io(e) => Ending::quiet(format!("connection failed: {e}")),
            // The peer may only have closed its sending side, so it can still read why.
            e => Ending::told(e.kind(), e.to_string(), format!("sent a bad frame: {e}")),
        }
    }
}

enum Next {
    Frame(Frame),
    End(Ending),
    /// The writer finished: a final frame went out, a write failed, or the server is stopping.
    WriterDone,
}

/// The reader side of one connection: handshake, placement in a round, then the party's
/// message; finally it makes sure the writer has ended before the task does.
struct Connection {
    id: ConnId,
    peer: SocketAddr,
    frames: FrameReader<StampedStream>,
    outbox: Outbox,
    writer_done: Fuse<oneshot::Receiver<()>>,
    ctx: Arc<Ctx>,
}

async fn connection_loop(stream: TcpStream, peer: SocketAddr, id: ConnId, ctx: Arc<Ctx>) {
    let (outbox, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
    let (done_tx, done_rx) = oneshot::channel();
    let writer = task::spawn(writer_loop(
        stream.clone(),
        outbox_rx,
        ctx.stop.clone(),
        ctx.config.frame_timeout,
        protocol::encode_all,
        done_tx,
    ));
    let frames = FrameReader::new(StampedStream::new(stream))
        .with_frame_timeout(Some(ctx.config.frame_timeout));
    let mut conn = Connection {
        id,
        peer,
        frames,
        outbox,
        writer_done: done_rx.fuse(),
        ctx,
    };
    let (ending, round) = conn.serve().await;
    // The handshake, joining and closing states are boxed: an idle connection's future is
    // held as long as it waits, and should be only as big as waiting needs.
    Box::pin(conn.finish(ending, round)).await;
    writer.await;
}

impl Connection {
    async fn next(&mut self) -> Next {
        let read = self.frames.read_frame().fuse();
        futures::pin_mut!(read);
        futures::select_biased! {
            _ = &mut self.writer_done => Next::WriterDone,
            r = read => match r {
                Ok(Some(frame)) => Next::Frame(frame),
                Ok(None) => Next::End(Ending::quiet("closed the connection")),
                Err(e) => Next::End(Ending::from_read(e)),
            },
        }
    }

    /// Runs the connection until it must end; returns why, and the round it was in, if any.
    async fn serve(&mut self) -> (Option<Ending>, Option<mpsc::Sender<Event>>) {
        let room = match Box::pin(self.handshake()).await {
            Ok(room) => room,
            Err(ending) => return (ending, None),
        };
        let (label, mut round) = match Box::pin(self.join(room)).await {
            Ok(placed) => placed,
            Err(ending) => return (ending, None),
        };
        log::debug!("{}: playing as {label}", self.peer);
        let mut sent = false;
        loop {
            let ending = match self.next().await {
                Next::WriterDone => None,
                Next::End(ending) => Some(ending),
                Next::Frame(Frame::Message { name }) if !sent => {
                    // When the kernel received it; when we read it only if the kernel cannot say.
                    let at = self.frames.get_ref().arrival().unwrap_or_else(Instant::now);
                    if let Err(e) = names::validate(&name) {
                        let message = format!("name {e}");
                        Some(Ending::told(
                            ErrorKind::InvalidName,
                            message.clone(),
                            format!("sent an invalid name: {message}"),
                        ))
                    } else {
                        sent = true;
                        let arrived = Event::Arrived {
                            id: self.id,
                            name,
                            at,
                            reply: self.outbox.clone(),
                        };
                        if round.send(arrived).await.is_err() {
                            // The round ended meanwhile (aborted); the writer is telling the client.
                            None
                        } else {
                            continue;
                        }
                    }
                }
                Next::Frame(Frame::Chat { line }) if sent && self.ctx.config.chat => {
                    let chat = Event::Chat { id: self.id, line };
                    if round.send(chat).await.is_err() {
                        None
                    } else {
                        continue;
                    }
                }
                Next::Frame(Frame::Message { .. }) => Some(Ending::told(
                    ErrorKind::Protocol,
                    "a second message; each party sends exactly one",
                    "sent a second message",
                )),
                Next::Frame(other) => Some(Ending::told(
                    ErrorKind::Protocol,
                    format!("unexpected {} frame; expected Message", other.kind_name()),
                    format!("sent an unexpected {} frame", other.kind_name()),
                )),
            };
            return (ending, Some(round));
        }
    }

    /// Reads and checks the `Hello`. Returns the requested room.
    async fn handshake(&mut self) -> Result<Option<String>, Option<Ending>> {
        let limit = self.ctx.config.handshake_timeout;
        let hello = match bounded(limit, self.next()).await {
            None => {
                let message = format!("no handshake within {} s", limit.as_secs_f64());
                return Err(Some(Ending::told(
                    ErrorKind::Timeout,
                    message,
                    "sent no handshake in time",
                )));
            }
            Some(Next::WriterDone) => return Err(None),
            Some(Next::End(ending)) => return Err(Some(ending)),
            Some(Next::Frame(frame)) => frame,
        };
        let (version, room) = match hello {
            Frame::Hello { version, room } => (version, room),
            other => {
                let message = format!("expected Hello, got {}", other.kind_name());
                return Err(Some(Ending::told(
                    ErrorKind::Protocol,
                    message.clone(),
                    message,
                )));
            }
        };
        if version != PROTOCOL_VERSION {
            let message = format!(
                "unsupported protocol version {version}; this server speaks version {PROTOCOL_VERSION}"
            );
            return Err(Some(Ending::told(
                ErrorKind::Version,
                message.clone(),
                message,
            )));
        }
        if let Some(room) = &room {
            if let Err(e) = names::validate(room) {
                let message = format!("room name {e}");
                return Err(Some(Ending::told(
                    ErrorKind::InvalidName,
                    message.clone(),
                    message,
                )));
            }
        }
        // `Welcome` comes from the round that takes us (see `coordinator`), or an error instead.
        Ok(room)
    }

    async fn join(
        &mut self,
        room: Option<String>,
    ) -> Result<(String, mpsc::Sender<Event>), Option<Ending>> {
        let (placed, answer) = oneshot::channel();
        let join = Join {
            id: self.id,
            peer: self.peer,
            room,
            reply: self.outbox.clone(),
            placed,
        };
        let mut lobby = self.ctx.lobby.clone();
        if lobby.send(join).await.is_err() {
            return Err(None);
        }
        // The lobby answers promptly; if it is gone the server is stopping and the writer says so.
        match answer.await {
            Ok(Ok(Placement { label, round })) => Ok((label, round)),
            Ok(Err((kind, message))) => {
                Err(Some(Ending::told(kind, message, "was refused a place")))
            }
            Err(_) => Err(None),
        }
    }

    /// Tells the client (if there is something to tell), tells the round, waits for the writer to
    /// finish, then closes without destroying our last frame (see [`linger`]).
    async fn finish(&mut self, ending: Option<Ending>, round: Option<mpsc::Sender<Event>>) {
        if let Some(ending) = &ending {
            log::warn!("{}: {}", self.peer, ending.why);
            if let Some((kind, message)) = &ending.tell {
                let _ = self
                    .outbox
                    .try_send(Outbound::error(*kind, message.clone()));
            }
        }
        if let Some(mut round) = round {
            let why = ending.map_or_else(|| "was disconnected".to_owned(), |e| e.why);
            let _ = round.send(Event::Left { id: self.id, why }).await;
        }
        // Our outbox handle must go, or the writer would wait for us forever.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.outbox, closed));
        let bound = self.ctx.config.frame_timeout + LINGER;
        let writer_running = !self.writer_done.is_terminated();
        if writer_running && bounded(bound, &mut self.writer_done).await.is_none() {
            log::error!(
                "{}: writer did not finish within {} s",
                self.peer,
                bound.as_secs()
            );
        }
        linger(&mut self.frames, self.ctx.stop.is_stopped()).await;
    }
}
