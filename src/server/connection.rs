//! The connection actor: one task per socket, for every wire (framed, text, WebSocket).
//!
//! Owns one client connection from its handshake to its close: it asks its [`Wire`] for the
//! next inbound event, gives the round (or the session) what the client said, and writes what
//! it answers, and what the wire itself owes the peer (a WebSocket pong, a close frame). It is
//! the socket's only reader and only writer, so no other task ever waits for it, and it never
//! waits for another task without a bound. It knows nothing of bytes (the wire does) and nothing
//! of round rules beyond "one message per party" and "only a host opens rounds" (the round and
//! the session do).
//!
//! Its life is its [`Phase`]: entering (handshake and placement, together bounded by the
//! handshake timeout), then filling a round, playing in a started round, or seated in a
//! session, until a final event is written, the client leaves or breaks a rule, or the server
//! stops; then [`finish`](Connection::finish) says what is left to say and closes (see
//! `crate::close`). A client that half-closes after its message still gets its verdict; one
//! that half-closes before it has left. A framed connection whose first bytes are an HTTP
//! request is a browser: the same task lends its socket to `web::http`, which answers the
//! request, and for a WebSocket upgrade plays on as a new connection actor over the WebSocket
//! wire, in a task of its own (the framed one ends).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt, StreamExt};

use super::config::Config;
use super::lobby::{Join, Leave, Placement, RoomKey, ToLobby};
use crate::close::{close_with, write_all};
use crate::names;
use crate::protocol::{ErrorKind, Version};
use crate::round::{ConnId, Event, Outbound, Outbox, OUTBOX_CAPACITY};
use crate::rt::{self, Socket};
use crate::session::{Seat, SessionEvent};
use crate::stop::Stop;
use crate::web::http;
use crate::wire::websocket::WebSocket;
use crate::wire::{Inbound, JoinRequest, Wire};

/// How long a connection on a wire without a handshake has to show it is not a text client
/// before it is seated: a framed client's `Hello` arrives within a round trip of its connect, on
/// a busy machine too.
pub(crate) const SNIFF: Duration = Duration::from_millis(500);

/// Once the server stops, the most a connection still spends writing what it has to say.
pub(crate) const STOP_WRITE_BOUND: Duration = Duration::from_millis(500);

/// Times a connection asks the lobby for its room's session again when the session it was given
/// ended before it could take a seat.
const SESSION_TRIES: usize = 3;

/// What every connection task shares.
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) stop: Stop,
    pub(crate) lobby: mpsc::Sender<ToLobby>,
    /// Where a connection reports its address offering a wrong host key (the accept loop's
    /// cooldowns).
    pub(crate) wrong_keys: mpsc::Sender<std::net::IpAddr>,
}

/// Why a connection's play ended.
enum End {
    /// The round is over for this connection: a final event was written (or could not be).
    Done,
    /// The server is stopping.
    Stopping,
    /// A browser: its HTTP request goes to `web::http`, which takes the connection.
    Web,
    /// Nothing came on a connection of a server that serves pages: a browser's connection
    /// opened ahead of need. It is closed without a word (a browser would read any bytes on it
    /// as the answer to its next request).
    Idle,
    /// The client did something that ends the connection: it is told `tell` (if anything can be
    /// told) and the round learns `why`.
    Peer {
        tell: Option<(ErrorKind, String)>,
        why: String,
    },
}

impl End {
    fn quiet(why: impl Into<String>) -> End {
        End::Peer {
            tell: None,
            why: why.into(),
        }
    }

    fn told(kind: ErrorKind, message: impl Into<String>, why: impl Into<String>) -> End {
        End::Peer {
            tell: Some((kind, message.into())),
            why: why.into(),
        }
    }

    /// The client is told `message`, and the log says the same.
    fn plain(kind: ErrorKind, message: String) -> End {
        End::told(kind, message.clone(), message)
    }
}

/// Where a connection is in its life.
enum Phase {
    /// Handshaking, or waiting for its place, until `deadline`: one deadline from the
    /// connection's accept to its first frame, whatever it goes through (a PROXY header, an HTTP
    /// request, a WebSocket upgrade). Here, not in the connection: every idle one would carry it.
    Entering { deadline: Instant },
    /// It told whoever held its place that it is gone.
    Gone,
    /// Seated in a round the lobby holds until it fills.
    Filling { room: RoomKey, round: u64 },
    /// Playing in a started round: whether its one message has gone to the round, and whether
    /// the client may still send (it has not half-closed).
    Round {
        round: mpsc::Sender<Event>,
        sent: bool,
        reading: bool,
    },
    /// Seated in a quiz session, as a player or as its host.
    Session {
        session: mpsc::Sender<SessionEvent>,
        host: bool,
        /// The latest pings written, and when: a round trip counts from its ping's write, not
        /// from when the session queued it behind a big room's other sends. Boxed: only a
        /// seated connection pays for it, not every connection's future.
        pinged: Box<Pinged>,
    },
}

/// The pings a session connection wrote last, `(seq, when)`, as many as may await a `Pong`.
type Pinged = [Option<(u32, std::time::Instant)>; crate::session::ANSWER_PINGS_IN_FLIGHT];

/// What a handshake asked for: a room, and for a session, a seat.
struct Entry {
    room: Option<String>,
    seat: Option<Seat>,
}

/// Why a connection whose pongs could not be written is dropped.
const STALLED_PONG: &str = "reads nothing: a pong could not be written in time";

/// One connection's state, made by [`Connection::new`] and driven only by [`connection_loop`].
pub(crate) struct Connection<W> {
    id: ConnId,
    peer: SocketAddr,
    /// The write side; the wire holds the read side.
    out: Socket,
    wire: W,
    ctx: Arc<Ctx>,
    /// Handed to the lobby and the round; this task alone receives from it.
    outbox_tx: Outbox,
    outbox: mpsc::Receiver<Outbound>,
    phase: Phase,
}

impl<W: Wire> Connection<W> {
    pub(crate) fn new(
        out: Socket,
        wire: W,
        peer: SocketAddr,
        id: ConnId,
        ctx: Arc<Ctx>,
        deadline: Instant,
    ) -> Self {
        let (outbox_tx, outbox) = mpsc::channel(OUTBOX_CAPACITY);
        Connection {
            id,
            peer,
            out,
            wire,
            ctx,
            outbox_tx,
            outbox,
            phase: Phase::Entering { deadline },
        }
    }
}

/// A browser's connection once its WebSocket upgrade is answered: it plays on as a connection
/// of its own, in a task of its own (the spawner's), so nothing of the framed connection it
/// started as is kept while it plays.
pub(crate) type Upgraded = Connection<WebSocket>;

/// Serves one connection to its end, or to its WebSocket upgrade (then the upgraded connection
/// is returned, for its own task).
///
/// An `async` block rather than an `async fn`, and over a connection made beforehand: an
/// `async fn` keeps its arguments beside the locals made from them, and an idle connection's
/// future is held as long as it waits, so it should hold its state once.
#[allow(clippy::manual_async_fn)] // deliberately not an `async fn`: see above
pub(crate) fn connection_loop<W: Wire>(
    mut conn: Connection<W>,
) -> impl Future<Output = Option<Upgraded>> {
    async move {
        let end = conn.serve().await;
        if let End::Web = end {
            // Boxed: a browser's state is not an idle framed connection's.
            return Box::pin(browser(conn)).await;
        }
        // Boxed, like the handshake and the join: the closing state is not needed while waiting.
        Box::pin(conn.finish(end)).await;
        None
    }
}

/// Serves a connection and, after an upgrade, the WebSocket connection it became, in a task of
/// its own; `done` runs when the last of them ends.
pub(crate) fn serve_connection<W: Wire>(
    conn: Connection<W>,
    done: impl FnOnce() + Send + 'static,
) -> impl Future<Output = ()> {
    connection_loop(conn).map(move |upgraded| match upgraded {
        Some(ws) => {
            rt::spawn(connection_loop(ws).map(move |_| done()));
        }
        None => done(),
    })
}

/// A connection whose first bytes were an HTTP request: `web::http` answers it; an upgrade is
/// returned as the WebSocket connection it becomes.
async fn browser<W: Wire>(conn: Connection<W>) -> Option<Upgraded> {
    let Connection {
        id,
        peer,
        out,
        wire,
        ctx,
        phase,
        ..
    } = conn;
    // Only an entering connection meets a browser's request; any other has no time left.
    let deadline = match phase {
        Phase::Entering { deadline } => deadline,
        _ => Instant::now(),
    };
    let (input, head) = wire.into_web()?;
    let deadlines = http::Deadlines {
        handshake: deadline,
        handshake_timeout: ctx.config.handshake_timeout,
        frame_timeout: ctx.config.frame_timeout,
        https: out.tls().is_some(),
    };
    let names = &ctx.config.web_names;
    let (input, rest) = Box::pin(http::answer(&out, input, head, peer, deadlines, names)).await?;
    let wire = WebSocket::new(input, rest, ctx.config.frame_timeout)
        .with_kernel_rtt(ctx.config.players_kernel_rtt());
    Some(Connection::new(out, wire, peer, id, ctx, deadline))
}

/// What woke the playing connection.
enum Turn {
    Stop,
    Out(Outbound),
    In(Inbound),
}

impl<W: Wire> Connection<W> {
    async fn serve(&mut self) -> End {
        // Boxed: the handshake's and the placement's state are gone once the connection plays,
        // and an idle connection's future should hold only what waiting needs.
        if let Err(end) = Box::pin(self.enter()).await {
            return end;
        }
        self.play().await
    }

    /// Handshake (framed only), then placement in a round or a session, together bounded by the
    /// connection's handshake deadline: one timer per connection rather than one per phase, and
    /// no fresh time for a connection that spent its own on a request or an upgrade.
    async fn enter(&mut self) -> Result<(), End> {
        let limit = match self.phase {
            Phase::Entering { deadline } => deadline.saturating_duration_since(Instant::now()),
            _ => Duration::ZERO,
        };
        let mut handshaken = !W::HANDSHAKE;
        let entered = rt::bounded(limit, async {
            let entry = if W::HANDSHAKE {
                self.handshake().await?
            } else {
                self.sniff().await?;
                Entry {
                    room: None,
                    seat: None,
                }
            };
            handshaken = true;
            match entry.seat {
                Some(seat) => self.join_session(entry.room, seat).await,
                None => self.join_round(entry.room).await,
            }
        })
        .await;
        match entered {
            Some(entered) => entered,
            None if !handshaken && self.ctx.config.web && self.wire.heard_nothing() => {
                Err(End::Idle)
            }
            None if !handshaken => {
                let message = format!(
                    "no handshake within {} s",
                    self.ctx.config.handshake_timeout.as_secs_f64()
                );
                Err(End::told(
                    ErrorKind::Timeout,
                    message,
                    "sent no handshake in time",
                ))
            }
            // The lobby and the session answer promptly; the bound only keeps a wedged server
            // from holding us.
            None => Err(End::told(
                ErrorKind::Busy,
                "the server could not place the connection in time; try again later",
                "was not placed in time",
            )),
        }
    }

    /// A wire without a handshake (the text wire) seats a connection as soon as it is accepted,
    /// so one that is not a text client (a framed client's `Hello`, sent on connecting) would
    /// fill a round and abort it for its partner. It is given [`SNIFF`] first: a client that
    /// speaks at once is refused before it takes a seat; a text client, which waits to be
    /// greeted, sends nothing and is seated after it.
    async fn sniff(&mut self) -> Result<(), End> {
        match rt::timeout(SNIFF, self.wire.next()).await {
            None => Ok(()),
            Some(Inbound::Message { .. }) => Err(End::told(
                ErrorKind::Protocol,
                "message sent before all parties were connected",
                "sent a message before all parties were connected",
            )),
            Some(other) => Err(self.peer_end(other)),
        }
    }

    /// Whether a `Host` of protocol `version` offering `key` may host: the server must have a
    /// host key and the key must be it.
    fn host_allowed(&self, version: Version, key: Option<&str>) -> Result<(), End> {
        if !version.has_hosts() {
            let message = format!("Host needs protocol version 4 or later, not {version}");
            return Err(End::plain(ErrorKind::Version, message));
        }
        match (&self.ctx.config.host_key, key) {
            (Some(expected), Some(offered)) if same_key(expected, offered) => Ok(()),
            (None, _) => Err(End::told(
                ErrorKind::Forbidden,
                "this server takes no host",
                "asked to host a server that takes no host",
            )),
            _ => {
                // A full channel (a flood of guesses) drops the report: the cooldown already
                // running for that flood refuses its next connections.
                let _ = self.ctx.wrong_keys.clone().try_send(self.peer.ip());
                Err(End::told(
                    ErrorKind::Forbidden,
                    "wrong host key",
                    "offered a wrong host key",
                ))
            }
        }
    }

    /// The first event a handshaking connection reads, past what the wire answers itself.
    async fn first_event(&mut self) -> Result<Inbound, End> {
        let stop = self.ctx.stop.clone();
        loop {
            let next = futures::select_biased! {
                () = stop.wait().fuse() => return Err(End::Stopping),
                next = self.wire.next().fuse() => next,
            };
            match next {
                Inbound::Owed => {
                    if !self.write_owed().await {
                        return Err(End::quiet(STALLED_PONG));
                    }
                }
                next => return Ok(next),
            }
        }
    }

    /// Reads and checks the `Hello` (or protocol 2's `Join`, or protocol 4's `Host`); returns
    /// the requested room and, for a session, the seat to take.
    async fn handshake(&mut self) -> Result<Entry, End> {
        let (version, room, seat, key) = match self.first_event().await? {
            Inbound::Web => return Err(End::Web),
            Inbound::Hello { version, room } => (version, room, None, None),
            Inbound::Join(join) => {
                let JoinRequest {
                    version,
                    room,
                    seat,
                    key,
                } = *join;
                (version, room, Some(seat), key)
            }
            other => return Err(self.not_a_handshake(other)),
        };
        let version = Version::spoken(version).map_err(|m| End::plain(ErrorKind::Version, m))?;
        if seat.is_some() && !version.has_sessions() {
            let message = format!("Join needs protocol version 2 or later, not {version}");
            return Err(End::plain(ErrorKind::Version, message));
        }
        if seat.as_ref().is_some_and(Seat::is_host) {
            self.host_allowed(version, key.as_deref())?;
        }
        // `Welcome` answers in the client's own version: a version-1 client sees version 1.
        self.wire.negotiated(version);
        if let Some(Seat::Player(seat)) = &seat {
            names::validate_seat(&seat.name)
                .map_err(|e| End::plain(ErrorKind::InvalidName, format!("name {e}")))?;
            if let Some(team) = &seat.team {
                names::validate_team(team)
                    .map_err(|e| End::plain(ErrorKind::InvalidName, format!("team name {e}")))?;
            }
        }
        if let Some(room) = &room {
            names::validate(room)
                .map_err(|e| End::plain(ErrorKind::InvalidName, format!("room name {e}")))?;
        }
        // The answer (`Admitted`) comes from the round that takes us, or a refusal instead.
        Ok(Entry { room, seat })
    }

    /// Why a first event that is no handshake ends the connection.
    fn not_a_handshake(&self, first: Inbound) -> End {
        let got = match first {
            Inbound::Message { .. } => "Message",
            Inbound::Chat { .. } => "Chat",
            Inbound::Pong { .. } => "Pong",
            Inbound::Answer { .. } => "Answer",
            Inbound::Open => "Open",
            Inbound::Finish => "Finish",
            other => return self.peer_end(other),
        };
        End::plain(ErrorKind::Protocol, format!("expected Hello, got {got}"))
    }

    /// Asks the lobby where to go: a round's seat, or the room's session.
    async fn ask_lobby(&mut self, room: Option<String>, session: bool) -> Result<Placement, End> {
        let (placed, answer) = oneshot::channel();
        let join = Join {
            id: self.id,
            peer: self.peer,
            room,
            session,
            reply: self.outbox_tx.clone(),
            placed,
        };
        let mut lobby = self.ctx.lobby.clone();
        // Bounded by the caller (`enter`).
        let asked = async move {
            lobby.send(ToLobby::Join(join)).await.ok()?;
            answer.await.ok()
        };
        match asked.await {
            // The lobby is gone: the server is stopping.
            None => Err(End::Stopping),
            Some(Ok(placement)) => Ok(placement),
            Some(Err((kind, message))) => Err(End::told(kind, message, "was refused a place")),
        }
    }

    /// Takes a seat in a round of `room`.
    async fn join_round(&mut self, room: Option<String>) -> Result<(), End> {
        match self.ask_lobby(room, false).await? {
            Placement::Round { label, room, round } => {
                log::debug!("{}: placed as {label}", self.peer);
                self.phase = Phase::Filling { room, round };
                Ok(())
            }
            Placement::Session(_) => Err(End::quiet("was given a session, not a round")),
        }
    }

    /// Takes `seat` in the session of `room`: the lobby names the session, which then admits
    /// the connection, or says why not. A session that ended in between is asked for again.
    async fn join_session(&mut self, room: Option<String>, seat: Seat) -> Result<(), End> {
        for _ in 0..SESSION_TRIES {
            let Placement::Session(mut session) = self.ask_lobby(room.clone(), true).await? else {
                return Err(End::quiet("was given a round, not a session"));
            };
            let (admitted, answer) = oneshot::channel();
            let join = SessionEvent::Join {
                id: self.id,
                seat: seat.clone(),
                reply: self.outbox_tx.clone(),
                admitted,
            };
            if session.send(join).await.is_err() {
                continue;
            }
            match answer.await {
                Ok(Ok(())) => {
                    log::debug!("{}: seated as {seat:?}", self.peer);
                    let host = seat.is_host();
                    self.phase = Phase::Session {
                        session,
                        host,
                        pinged: Box::default(),
                    };
                    return Ok(());
                }
                Ok(Err((kind, message))) => {
                    return Err(End::told(kind, message, "was refused a seat"));
                }
                // That session ended before it answered.
                Err(oneshot::Canceled) => continue,
            }
        }
        Err(End::told(
            ErrorKind::Busy,
            "the room's session kept ending; try again",
            "found no running session",
        ))
    }

    /// Plays until the round is over for this connection, the client ends it, or the server
    /// stops.
    async fn play(&mut self) -> End {
        // Made once, not once per turn: a stop future registers with the shared signal.
        let stop = self.ctx.stop.clone();
        let stopped = stop.wait().fuse();
        futures::pin_mut!(stopped);
        loop {
            let turn = {
                let reading = !matches!(self.phase, Phase::Round { reading: false, .. });
                let (outbox, wire) = (&mut self.outbox, &mut self.wire);
                let inbound = async move {
                    if reading {
                        wire.next().await
                    } else {
                        futures::future::pending().await
                    }
                };
                futures::select_biased! {
                    () = stopped => Turn::Stop,
                    // This task holds a sender, so the outbox never ends while it runs.
                    out = outbox.next() => match out {
                        Some(out) => Turn::Out(out),
                        None => Turn::Stop,
                    },
                    inbound = inbound.fuse() => Turn::In(inbound),
                }
            };
            let end = match turn {
                Turn::Stop => Some(End::Stopping),
                Turn::Out(first) => Box::pin(self.outbound(first)).await,
                Turn::In(inbound) => Box::pin(self.inbound(inbound)).await,
            };
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// Writes `first` and whatever else is queued; `Some` ends the connection.
    async fn outbound(&mut self, first: Outbound) -> Option<End> {
        let events = batch(first, &mut self.outbox);
        let last = events.last().is_some_and(Outbound::is_final);
        let written = self.write(events, self.ctx.config.frame_timeout).await;
        if last {
            return Some(End::Done);
        }
        (!written).then(|| End::quiet("could not be written to"))
    }

    /// Writes what the wire owes the peer (a WebSocket pong), bounded like any write; false if
    /// it could not be written in time: a peer that sends pings and reads no pongs stalls its
    /// own writes, and is dropped like any peer that stops reading.
    async fn write_owed(&mut self) -> bool {
        let mut bytes = Vec::new();
        self.wire.owed(&mut bytes);
        if bytes.is_empty() {
            return true;
        }
        let limit = self.ctx.config.frame_timeout;
        matches!(
            rt::bounded(limit, write_all(&self.out, &bytes)).await,
            Some(Ok(()))
        )
    }

    /// Handles what the client said; `Some` ends the connection.
    async fn inbound(&mut self, inbound: Inbound) -> Option<End> {
        if let Inbound::Owed = inbound {
            return (!self.write_owed().await).then(|| End::quiet(STALLED_PONG));
        }
        if let Phase::Session { .. } = self.phase {
            return self.session_inbound(inbound).await;
        }
        self.round_inbound(inbound).await
    }

    /// A round party's inbound event; `Some` ends the connection.
    async fn round_inbound(&mut self, inbound: Inbound) -> Option<End> {
        let chat = self.ctx.config.chat;
        let sent = matches!(self.phase, Phase::Round { sent: true, .. });
        match inbound {
            Inbound::Message { name, at } if !sent => self.message(name, at).await,
            Inbound::Message { .. } => Some(End::told(
                ErrorKind::Protocol,
                "a second message; each party sends exactly one",
                "sent a second message",
            )),
            Inbound::Chat { line } if sent && chat => self.chat(line).await,
            Inbound::Chat { .. } if chat => Some(End::told(
                ErrorKind::Protocol,
                "a chat line before the chat was open",
                "sent a chat line before the chat was open",
            )),
            Inbound::Chat { .. } => Some(End::told(
                ErrorKind::Protocol,
                "unexpected Chat frame; this server has no chat",
                "sent a chat line to a server without chat",
            )),
            Inbound::Hello { .. } => Some(End::told(
                ErrorKind::Protocol,
                "unexpected Hello frame; expected Message",
                "sent an unexpected Hello frame",
            )),
            Inbound::Join(_)
            | Inbound::Pong { .. }
            | Inbound::Answer { .. }
            | Inbound::Open
            | Inbound::Finish => Some(End::told(
                ErrorKind::Protocol,
                "a session frame in a round; expected Message",
                "sent a session frame in a round",
            )),
            // Half-close after its message: the client is done sending but still reads, and is
            // owed its verdict (on a chat server, its closed side is its goodbye).
            Inbound::Closed if sent && !chat => {
                if let Phase::Round { reading, .. } = &mut self.phase {
                    *reading = false;
                }
                None
            }
            other => Some(self.peer_end(other)),
        }
    }

    /// The party's one message, which arrived at `at`.
    async fn message(&mut self, name: String, at: std::time::Instant) -> Option<End> {
        if let Err(e) = names::validate(&name) {
            let message = format!("name {e}");
            let why = format!("sent an invalid name: {message}");
            return Some(End::told(ErrorKind::InvalidName, message, why));
        }
        let Phase::Round { sent, .. } = &mut self.phase else {
            // Its client was not yet told its label, so it sent before the barrier.
            return Some(End::told(
                ErrorKind::Protocol,
                "message sent before all parties were connected",
                "sent a message before all parties were connected",
            ));
        };
        *sent = true;
        let arrived = Event::Arrived {
            id: self.id,
            name,
            at,
            reply: self.outbox_tx.clone(),
        };
        // If the round has ended meanwhile (aborted), its last word is in our outbox.
        self.tell_round(arrived).await;
        None
    }

    /// A chat line, after the verdict.
    async fn chat(&mut self, line: String) -> Option<End> {
        if let Err(e) = names::validate_line(&line) {
            let message = format!("chat line {e}");
            let why = format!("sent a chat line that was refused: {message}");
            return Some(End::told(ErrorKind::InvalidName, message, why));
        }
        let chat = Event::Chat { id: self.id, line };
        self.tell_round(chat).await;
        None
    }

    /// A session party's inbound event; `Some` ends the connection.
    async fn session_inbound(&mut self, inbound: Inbound) -> Option<End> {
        let Phase::Session {
            session,
            host,
            pinged,
        } = &mut self.phase
        else {
            return None;
        };
        let (id, host) = (self.id, *host);
        let event = match inbound {
            Inbound::Pong {
                seq,
                at,
                kernel_rtt,
            } => SessionEvent::Pong {
                id,
                seq,
                at,
                kernel_rtt,
                written: pinged.iter().flatten().find(|p| p.0 == seq).map(|p| p.1),
            },
            Inbound::Answer { at, kernel_rtt } if !host => {
                SessionEvent::Answer { id, at, kernel_rtt }
            }
            Inbound::Open if host => SessionEvent::Open { id },
            Inbound::Finish if host => SessionEvent::Finish { id },
            Inbound::Control(control) if host => SessionEvent::Control { id, control },
            Inbound::Open | Inbound::Finish | Inbound::Control(_) => {
                return Some(End::told(
                    ErrorKind::Forbidden,
                    "only the host opens rounds and ends the session",
                    "sent a host's frame as a player",
                ))
            }
            Inbound::Closed => return Some(End::quiet("left the session")),
            Inbound::Failed(why) => return Some(End::quiet(why)),
            Inbound::Bad { kind, message } => {
                let why = format!("sent a bad frame: {message}");
                return Some(End::told(kind, message, why));
            }
            _ => return Some(End::told(
                ErrorKind::Protocol,
                "in a session a player sends only Pong and Answer, a host Pong, Open, Finish and \
                 Control",
                "sent a frame a session does not take",
            )),
        };
        let limit = self.ctx.config.frame_timeout;
        let _ = rt::bounded(limit, session.send(event)).await;
        None
    }

    /// The end for an inbound event that finishes the connection.
    fn peer_end(&self, inbound: Inbound) -> End {
        match inbound {
            Inbound::Closed => End::quiet("closed the connection"),
            Inbound::Failed(why) => End::quiet(why),
            Inbound::Bad { kind, message } => {
                let why = format!("sent a bad frame: {message}");
                End::told(kind, message, why)
            }
            // Only a connection's first bytes may be a browser's request.
            Inbound::Web => End::told(
                ErrorKind::Protocol,
                "an HTTP request after the handshake; a browser opens a connection of its own",
                "sent an HTTP request after its handshake",
            ),
            other => End::told(
                ErrorKind::Protocol,
                "unexpected message",
                format!("sent {other:?} out of turn"),
            ),
        }
    }

    /// Sends `event` to the round, if there is one and it is still running.
    async fn tell_round(&mut self, event: Event) -> bool {
        let limit = self.ctx.config.frame_timeout;
        match &mut self.phase {
            Phase::Round { round, .. } => {
                matches!(rt::bounded(limit, round.send(event)).await, Some(Ok(())))
            }
            _ => false,
        }
    }

    /// Renders `events` and writes them in one go, bounded by `limit` and, once the server
    /// stops, by [`STOP_WRITE_BOUND`]. Tells the round whether a verdict was delivered.
    async fn write(&mut self, events: Vec<Outbound>, limit: Duration) -> bool {
        let mut bytes = Vec::new();
        for event in &events {
            self.wire.render(event, &mut bytes);
            if let Outbound::Started { label, .. } = event {
                self.wire.started(label, &self.ctx.config.labels);
            }
        }
        // Taken before the write: on loopback the write itself may deliver the bytes.
        let now = std::time::Instant::now();
        let go = events.iter().find_map(|e| match e {
            Outbound::Go { round, .. } => Some((*round, now)),
            _ => None,
        });
        if let Phase::Session { pinged, .. } = &mut self.phase {
            for event in &events {
                if let Outbound::Ping { seq, .. } = event {
                    pinged.rotate_right(1);
                    pinged[0] = Some((*seq, now));
                }
            }
        }
        let written = bytes.is_empty() || {
            let stop = self.ctx.stop.clone();
            let abandon = async move {
                stop.wait().await;
                rt::sleep(STOP_WRITE_BOUND).await;
            };
            let write = rt::bounded(limit, write_all(&self.out, &bytes));
            futures::select_biased! {
                written = write.fuse() => matches!(written, Some(Ok(()))),
                () = abandon.fuse() => false,
            }
        };
        for event in events {
            match event {
                Outbound::Verdict {
                    delivered: Some(tx),
                    ..
                } => {
                    let _ = tx.send(written);
                }
                // From now on the round itself hears what this client does.
                Outbound::Started { events, .. } => {
                    self.phase = Phase::Round {
                        round: events,
                        sent: false,
                        reading: true,
                    };
                }
                _ => {}
            }
        }
        if !written {
            log::info!("{}: a write failed or timed out", self.peer);
        }
        if let (Some((round, at)), true, Phase::Session { session, .. }) =
            (go, written, &mut self.phase)
        {
            let event = SessionEvent::GoWritten {
                id: self.id,
                round,
                at,
            };
            let _ = rt::bounded(limit, session.send(event)).await;
        }
        written
    }

    /// Says what is left to say, tells the round the connection is gone, and closes without
    /// destroying the last thing written (see `crate::close`).
    async fn finish(&mut self, end: End) {
        let stopping = matches!(end, End::Stopping);
        match end {
            End::Done | End::Web => {}
            End::Idle => log::debug!("{}: sent nothing in the handshake time", self.peer),
            End::Stopping => {
                let events = stop_batch(&mut self.outbox);
                self.write(events, STOP_WRITE_BOUND).await;
            }
            End::Peer { tell, why } => {
                log::warn!("{}: {why}", self.peer);
                self.leave(why).await;
                if let Some((kind, message)) = tell {
                    let limit = self.ctx.config.frame_timeout;
                    self.write(vec![Outbound::ended(kind, message)], limit)
                        .await;
                }
            }
        }
        let mut last = Vec::new();
        self.wire.farewell(&mut last);
        close_with(&self.out, &mut self.wire, &last, STOP_WRITE_BOUND, stopping).await;
    }

    /// Tells whoever holds this connection's place (the lobby, the round, the session) that it
    /// is gone, and `why`.
    async fn leave(&mut self, why: String) {
        let limit = self.ctx.config.frame_timeout;
        match std::mem::replace(&mut self.phase, Phase::Gone) {
            Phase::Filling { room, round } => {
                Box::pin(self.leave_lobby(room, round, why)).await;
            }
            Phase::Round { mut round, .. } => {
                let left = Event::Left { id: self.id, why };
                let _ = rt::bounded(limit, round.send(left)).await;
            }
            Phase::Session { mut session, .. } => {
                let left = SessionEvent::Left { id: self.id };
                let _ = rt::bounded(limit, session.send(left)).await;
            }
            Phase::Entering { .. } | Phase::Gone => {}
        }
    }

    /// Tells the lobby that this connection left the round it holds. If the round has started
    /// meanwhile, the `Started` waiting in the outbox has the round's channel, and the round is
    /// told instead: nobody is left waiting for a party that is gone.
    async fn leave_lobby(&mut self, room: RoomKey, round: u64, why: String) {
        let limit = self.ctx.config.frame_timeout;
        let (heard, answer) = oneshot::channel();
        let leave = Leave {
            room,
            round,
            id: self.id,
            why: why.clone(),
            heard,
        };
        let mut lobby = self.ctx.lobby.clone();
        let asked = async move {
            lobby.send(ToLobby::Left(leave)).await.ok()?;
            answer.await.ok()
        };
        if rt::bounded(limit, asked).await == Some(Some(true)) {
            return;
        }
        while let Ok(event) = self.outbox.try_recv() {
            if let Outbound::Started { mut events, .. } = event {
                let left = Event::Left { id: self.id, why };
                let _ = rt::bounded(limit, events.send(left)).await;
                return;
            }
        }
    }
}

/// Compares host keys in time that does not depend on where they differ.
fn same_key(expected: &str, offered: &str) -> bool {
    let (a, b) = (expected.as_bytes(), offered.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `first` and whatever else is already queued, up to and including a final event: written in
/// one go, so the last party to join gets `Admitted` and `Started` in one write.
pub(crate) fn batch(first: Outbound, outbox: &mut mpsc::Receiver<Outbound>) -> Vec<Outbound> {
    let mut events = vec![first];
    while !events.last().is_some_and(Outbound::is_final) {
        match outbox.try_recv() {
            Ok(next) => events.push(next),
            Err(_) => break,
        }
    }
    events
}

/// What a stopping connection still says: what was already queued first (a round that ended
/// just before the stop has told its parties why, and that is the truer message), then
/// `ShuttingDown` unless one of those was final.
pub(crate) fn stop_batch(outbox: &mut mpsc::Receiver<Outbound>) -> Vec<Outbound> {
    let mut events = Vec::new();
    while let Ok(next) = outbox.try_recv() {
        let last = next.is_final();
        events.push(next);
        if last {
            return events;
        }
    }
    events.push(Outbound::ended(
        ErrorKind::ShuttingDown,
        "the server is shutting down",
    ));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(label: &str) -> Outbound {
        Outbound::Started {
            round: 1,
            label: label.into(),
            events: mpsc::channel(1).0,
        }
    }

    fn kinds(events: &[Outbound]) -> Vec<String> {
        events
            .iter()
            .map(|e| crate::wire::framed::to_frame(e).kind_name().to_owned())
            .collect()
    }

    #[test]
    fn a_batch_takes_what_is_queued_up_to_a_final_event() {
        let (mut tx, mut rx) = mpsc::channel(OUTBOX_CAPACITY);
        tx.try_send(started("X")).unwrap();
        tx.try_send(Outbound::ended(ErrorKind::PartyLeft, "gone"))
            .unwrap();
        tx.try_send(Outbound::ChatOpen).unwrap();
        let events = batch(Outbound::Admitted, &mut rx);
        assert_eq!(kinds(&events), ["Welcome", "Connected", "Error"]);
        // Nothing after a final event is taken.
        assert_eq!(
            kinds(&batch(Outbound::Admitted, &mut rx)),
            ["Welcome", "ChatOpen"]
        );
    }

    #[test]
    fn on_a_stop_queued_events_go_first_then_the_notice() {
        let (mut tx, mut rx) = mpsc::channel(OUTBOX_CAPACITY);
        tx.try_send(Outbound::Admitted).unwrap();
        tx.try_send(started("Y")).unwrap();
        let events = stop_batch(&mut rx);
        assert_eq!(kinds(&events), ["Welcome", "Connected", "Error"]);
        assert!(matches!(
            events.last(),
            Some(Outbound::Ended {
                kind: ErrorKind::ShuttingDown,
                ..
            })
        ));
        // A round's own last word, queued before the stop, stands instead of the notice.
        tx.try_send(Outbound::ended(ErrorKind::PartyLeft, "round aborted"))
            .unwrap();
        let events = stop_batch(&mut rx);
        assert!(matches!(
            events.as_slice(),
            [Outbound::Ended {
                kind: ErrorKind::PartyLeft,
                ..
            }]
        ));
    }
}

/// A framed connection actor over a real loopback socket, as the accept loop makes one, with a
/// lobby the test plays: the connection (not yet running), the client's end, and the lobby's
/// end of the requests channel.
#[cfg(test)]
async fn on_loopback(
    id: ConnId,
) -> (
    Connection<crate::wire::framed::Framed>,
    rt::TcpStream,
    mpsc::Receiver<ToLobby>,
) {
    use crate::stamp::StampedStream;
    use crate::wire::framed::Framed;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = rt::Listener::new(listener).unwrap();
    let client = rt::connect(&addr.to_string()).await.unwrap();
    let (socket, peer) = listener.accept().await.unwrap();
    let (lobby, requests) = mpsc::channel(4);
    let ctx = Arc::new(Ctx {
        config: Config::default(),
        stop: crate::stop::Stop::never(),
        lobby,
        wrong_keys: mpsc::channel(1).0,
    });
    let wire = Framed::new(StampedStream::new(socket.clone()), Duration::from_secs(1));
    (
        Connection::new(
            socket,
            wire,
            peer,
            id,
            ctx,
            Instant::now() + Duration::from_secs(10),
        ),
        client,
        requests,
    )
}

#[cfg(test)]
mod race {
    use super::super::lobby::{Placement, ToLobby};
    use super::*;
    use crate::protocol::{self, Frame};

    /// The lobby hears a departure only after it has started the round (another party filled it
    /// in between): it says so, and the connection tells the round itself, through the channel
    /// in the `Started` waiting in its outbox.
    #[test]
    fn a_departure_that_races_the_barrier_reaches_the_round() {
        crate::rt::block_on(async {
            let (conn, mut client, mut requests) = on_loopback(7).await;
            let conn = crate::rt::spawn(connection_loop(conn).map(drop));

            let hello = Frame::Hello {
                version: crate::protocol::PROTOCOL_VERSION,
                room: None,
            };
            futures::AsyncWriteExt::write_all(&mut client, &protocol::encode(&hello).unwrap())
                .await
                .unwrap();
            let Some(ToLobby::Join(join)) = requests.next().await else {
                panic!("a join first")
            };
            let mut outbox = join.reply.clone();
            let placement = Placement::Round {
                label: "X".into(),
                room: None,
                round: 1,
            };
            assert!(join.placed.send(Ok(placement)).is_ok());
            drop(client);

            let Some(ToLobby::Left(leave)) = requests.next().await else {
                panic!("then its departure")
            };
            assert_eq!((leave.id, leave.round), (7, 1));
            let (events, mut round) = mpsc::channel(4);
            let started = Outbound::Started {
                round: 1,
                label: "X".into(),
                events,
            };
            outbox.try_send(started).unwrap();
            leave.heard.send(false).unwrap();

            match round.next().await {
                Some(Event::Left { id: 7, why }) => assert_eq!(why, "closed the connection"),
                other => panic!("the round was not told: {other:?}"),
            }
            conn.await;
        });
    }
}

#[cfg(test)]
mod size {
    /// Tens of thousands of connections wait at once, each holding this future: state that only
    /// a write, a handshake, a close or a frame's deadline needs is boxed, a read's state is the
    /// reader's own (`FrameReader::poll_frame`), and the connection is held once (see
    /// `connection_loop`), so that waiting stays small (608 bytes; the guard catches such state
    /// creeping back inline).
    #[test]
    fn an_idle_connection_future_stays_small() {
        use super::*;
        crate::rt::block_on(async {
            let (conn, _client, _lobby) = on_loopback(1).await;
            let fut = connection_loop(conn);
            let size = std::mem::size_of_val(&fut);
            assert!(size <= 600, "the connection future is {size} bytes");
        });
    }
}
