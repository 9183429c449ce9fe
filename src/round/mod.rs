//! One round: the arbiter, its state machine, its verdict and its chat.
//!
//! A round's state is in one place at a time. While it fills it is a [`Filling`], held by
//! whoever routes joins (the server's lobby), which tells it of each join and each departure:
//! a party waiting for others costs a table entry, not a task and a channel. At the barrier
//! ([`Filling::start`]) the state moves into the `Coordinator`, a single task fed by [`Event`]s
//! over a `futures` mpsc channel from the connection actors (each learns that channel with its
//! label), which owns the arrival list and the verdict. Either way it answers each connection
//! through that connection's [`Outbox`] with domain events ([`Outbound`]): admitted, started
//! with a label, the verdict, aborted, and the chat's events. How an event looks on the wire is
//! the wire's business (`wire`), never the round's. Nothing else reads or writes round state.
//!
//! Layout: this file holds the state machine and the loop; `verdict` the order and the English
//! sentences; `chat` the relay that follows a verdict on chat servers. The quiz session (many
//! rounds in a room) is a module of its own, [`session`](crate::session), which speaks to its
//! connections with this module's [`Outbound`] events.
//!
//! Invariants:
//! - A slot (label) is taken only by a connection whose handshake completed, and freed if it
//!   leaves before the barrier; labels are handed out lowest-free-first. A round whose every
//!   party left before the barrier ends at once, [`Outcome::Abandoned`]: it holds no memory and
//!   uses up no round of the server's budget.
//! - The round's time limit runs from its first party's arrival in it; each party's time to
//!   send its message runs from the barrier. A started round keeps both with one timer.
//! - No `Message` is accepted before the barrier (all slots filled): the coordinator, which
//!   alone takes messages, exists only from the barrier on, and a connection refuses a message
//!   sent before it was told its label.
//! - The order is decided only by each `Arrived::at` — the instant the kernel received the
//!   message's data (see `stamp`), or, where the kernel cannot say, the instant the connection
//!   actor finished reading it — never by label, connection order, message text or the order in
//!   which events reach this actor.
//! - It never awaits a connection before the verdict: outboxes are written with `try_send`
//!   (their capacity covers every event a round sends before its chat), so one stuck client
//!   cannot stall the round.
//!
//! It must not touch sockets, bytes or the clock's notion of arrival: timestamps come in
//! `Arrived`.

mod chat;
mod verdict;

pub use verdict::ack_text;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};

use crate::protocol::{Arrival, ErrorKind};
use crate::stop::Stop;
use crate::transcript::Transcript;
use verdict::{list_labels, sent_line, Received};

/// Identifies a connection for the lifetime of a server.
pub type ConnId = u64;

/// Events for a connection are given to it through its outbox.
pub type Outbox = mpsc::Sender<Outbound>;

/// Capacity of a connection's outbox. Before its chat, a round sends a connection at most
/// `Admitted`, `Started` and one final event; a session at most a round's pings (the server
/// sends 5), `Go` and the result between two of the connection's writes. So `try_send` into a
/// live outbox cannot fail for lack of room; the chat's relayed lines are sent with
/// back-pressure. A queued event costs memory only while it is queued.
pub const OUTBOX_CAPACITY: usize = 16;

/// What a round tells one of its connections: domain events, rendered by each wire in its own
/// way (`wire::framed` as frames, `wire::text` as the assignment's sentences).
#[derive(Debug)]
pub enum Outbound {
    /// A round has a place for the connection (framed: `Welcome`).
    Admitted,
    /// Every party is here; this connection plays as `label` in round `round`, and tells the
    /// round what its client does through `events`.
    Started {
        round: u64,
        label: String,
        events: mpsc::Sender<Event>,
    },
    /// The verdict: the order as data and as a sentence. `last` closes the connection after it
    /// (no chat follows); `delivered` is told whether it was written.
    Verdict {
        /// Shared by every party's event: one verdict, however many parties.
        text: Arc<str>,
        order: Arc<[Arrival]>,
        last: bool,
        delivered: Option<oneshot::Sender<bool>>,
    },
    /// The chat that follows the verdict is open.
    ChatOpen,
    /// A line another party typed.
    Relayed { from: String, line: String },
    /// The chat is over; the connection closes.
    ChatOver { message: String },
    /// The connection is refused, or its round ends without a verdict; the connection closes.
    Ended { kind: ErrorKind, message: String },
    /// Sessions: answer with `Pong { seq }` at once. `sent` is when the session sent it.
    Ping { seq: u32, sent: Instant },
    /// Sessions: round `round` starts now. `sent` is when the session sent it.
    Go { round: u64, sent: Instant },
    /// Sessions: an answer arrived while no round was open for this party; it is locked out of
    /// round `round`.
    Early { round: u64 },
    /// Sessions: a round's result and the running scores. Shared by every party's event: a
    /// result lists every party, so a copy each would cost memory in the square of their number.
    RoundResult(Arc<RoundResult>),
    /// Sessions: who is in the session, and what changed. Shared like a result.
    Roster(Arc<crate::protocol::Roster>),
    /// Sessions: the session is over, why, after how many rounds; the connection closes.
    SessionOver {
        why: crate::protocol::OverReason,
        rounds: u64,
        scores: Arc<[crate::protocol::Score]>,
    },
}

impl Outbound {
    /// An event that ends the connection with an error.
    pub fn ended(kind: ErrorKind, message: impl Into<String>) -> Outbound {
        Outbound::Ended {
            kind,
            message: message.into(),
        }
    }

    /// After this event nothing more is sent and the connection closes.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Outbound::Verdict { last: true, .. }
                | Outbound::ChatOver { .. }
                | Outbound::Ended { .. }
                | Outbound::SessionOver { .. }
        )
    }
}

/// A session round's result, as [`Outbound::RoundResult`] carries it.
pub use crate::protocol::RoundOutcome as RoundResult;

/// What connection actors tell a coordinator, once their round has started.
#[derive(Debug)]
pub enum Event {
    /// A connection finished reading its party's message at instant `at`.
    Arrived {
        id: ConnId,
        name: String,
        at: Instant,
        reply: Outbox,
    },
    /// A connection ended; `why` is a short human phrase ("closed the connection").
    Left { id: ConnId, why: String },
    /// A line typed in the chat that follows the acknowledgment (chat servers only).
    Chat { id: ConnId, line: String },
}

/// A party's place in a filling round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admit {
    pub label: String,
    /// This join filled the round's last slot: it is time to [start](Filling::start) it.
    pub full: bool,
}

/// What a round prints on the transcript.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Style {
    /// The assignment's lines: each party connecting, each message, `Sent acknowledgment to both
    /// X and Y`.
    #[default]
    Assignment,
    /// One line per round (service mode), stamped with the time: `2026-11-25T21:40:01.123Z
    /// Round 7 [quiz]: X: Alice received before Y: Bob (margin 38 us)`.
    Summary,
    /// Nothing per round (service mode with `--quiet`): only the server's summary at the end.
    Quiet,
}

/// How a round is set up.
#[derive(Debug, Clone)]
pub struct RoundConfig {
    pub id: u64,
    /// Shared with whoever keys rounds by room (the lobby, its parties' connections).
    pub room: Option<Arc<str>>,
    /// One label per party, in the order slots are handed out.
    pub labels: Arc<[String]>,
    /// Abort the round if it has not completed this long after its first party arrived.
    pub timeout: Option<Duration>,
    /// Time out a party that has not sent its message this long after the barrier, and abort
    /// the round.
    pub message_timeout: Option<Duration>,
    pub style: Style,
    /// After the acknowledgment, keep the parties connected and relay their lines.
    pub chat: bool,
    /// End a chat in which nobody has typed for this long.
    pub chat_idle: Option<Duration>,
}

/// How a round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every party's message arrived; `undelivered` lists the labels whose acknowledgment could
    /// not be written (they had left or their socket failed).
    Completed {
        order: Vec<Arrival>,
        undelivered: Vec<String>,
    },
    /// The round could not complete; every remaining party was told `round aborted: <reason>`
    /// (on a stop, the connections tell their clients themselves).
    Aborted { kind: ErrorKind, reason: String },
    /// Every party left before the barrier: nobody is owed anything, and the round counts for
    /// nothing (it uses up no round of `--rounds N`).
    Abandoned,
}

/// What a coordinator returns when its round is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundReport {
    pub id: u64,
    pub room: Option<String>,
    /// Every party had arrived (the barrier was reached).
    pub started: bool,
    pub outcome: Outcome,
    /// The addresses of the parties that aborted the started round: left before sending their
    /// message, or sent none in time.
    pub leavers: Vec<IpAddr>,
    /// The addresses of the parties of a completed round, if they were not all one address.
    pub finished: Vec<IpAddr>,
    /// For a quiz session (which counts as one round of the server's budget): the rounds it
    /// played.
    pub session_rounds: Option<u64>,
}

impl RoundReport {
    /// Completed, and every party got its acknowledgment.
    pub fn is_clean(&self) -> bool {
        matches!(&self.outcome, Outcome::Completed { undelivered, .. } if undelivered.is_empty())
    }
}

struct Party {
    id: ConnId,
    /// Where it connected from: the server keeps track of addresses that abort rounds.
    peer: IpAddr,
    /// `None` once the connection has left: nothing more can be delivered to it.
    reply: Option<Outbox>,
    message: Option<Box<Received>>,
}

/// The round's state. Private: only [`coordinator_loop`] drives it.
struct Round {
    config: RoundConfig,
    slots: Vec<Option<Party>>,
    started: bool,
    delivered_events: u64,
    transcript: Transcript,
    /// When the round is aborted if not complete: its time limit from its first party's join.
    deadline: Option<Instant>,
    /// When every party's message must be in: set at the barrier.
    messages_due: Option<Instant>,
}

enum Step {
    Continue,
    /// Messages are all in: send the acknowledgment.
    Complete,
    Abort(ErrorKind, String),
    /// The last party left before the barrier.
    Empty,
}

impl Round {
    /// A line of the assignment's play-by-play; silent in service mode.
    /// Formatted only when printed: service mode has rounds to run, not lines to throw away.
    fn say(&self, line: std::fmt::Arguments<'_>) {
        if self.config.style == Style::Assignment {
            self.transcript.line(line.to_string());
        }
    }

    /// A line every style but `Quiet` prints; service mode stamps it with the time.
    fn print(&self, line: String) {
        match self.config.style {
            Style::Assignment => self.transcript.line(line),
            Style::Summary => self.transcript.stamped(line),
            Style::Quiet => {}
        }
    }

    /// `Round 7` or `Round 7 [quiz]`, for service-mode lines.
    fn title(&self) -> String {
        match &self.config.room {
            Some(room) => format!("Round {} [{room}]", self.config.id),
            None => format!("Round {}", self.config.id),
        }
    }

    fn label(&self, slot: usize) -> &str {
        &self.config.labels[slot]
    }

    fn slot_of(&self, id: ConnId) -> Option<usize> {
        self.slots
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.id == id))
    }

    fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    fn handle(&mut self, event: Event) -> Step {
        match event {
            Event::Arrived {
                id,
                name,
                at,
                reply,
            } => self.arrived(id, name, at, reply),
            Event::Left { id, why } => self.left(id, &why),
            Event::Chat { id, .. } => self.chat_too_early(id),
        }
    }

    fn join(&mut self, id: ConnId, peer: SocketAddr, mut reply: Outbox) -> Option<Admit> {
        let free = self.slots.iter().position(Option::is_none);
        let slot = free.filter(|_| !self.started)?;
        let label = self.label(slot).to_owned();
        let full = self.slots.iter().filter(|p| p.is_none()).count() == 1;
        log::info!("round {}: {peer} is {label}", self.config.id);
        self.say(format_args!("Client {label} connected from {peer}"));
        // The handshake is answered only once a round has a place for the connection, so a
        // refusal can come instead of it, and the last party's `Admitted` and `Started` leave
        // together.
        let _ = reply.try_send(Outbound::Admitted);
        self.slots[slot] = Some(Party {
            id,
            peer: peer.ip(),
            reply: Some(reply),
            message: None,
        });
        Some(Admit { label, full })
    }

    /// The barrier: every slot is filled, so every party learns its label, and where to send its
    /// message, at once.
    fn start(&mut self, events: &mpsc::Sender<Event>) {
        self.started = true;
        self.messages_due = self.config.message_timeout.map(|t| Instant::now() + t);
        log::info!("round {}: all parties connected", self.config.id);
        for (slot, party) in self.slots.iter_mut().enumerate() {
            if let Some(Party {
                reply: Some(reply), ..
            }) = party
            {
                let label = self.config.labels[slot].clone();
                let _ = reply.try_send(Outbound::Started {
                    round: self.config.id,
                    label,
                    events: events.clone(),
                });
            }
        }
    }

    fn arrived(&mut self, id: ConnId, name: String, at: Instant, reply: Outbox) -> Step {
        let Some(slot) = self.slot_of(id) else {
            return Step::Continue;
        };
        let label = self.label(slot).to_owned();
        let seq = self.delivered_events;
        self.delivered_events += 1;
        let Some(party) = self.slots[slot].as_mut() else {
            return Step::Continue;
        };
        if party.message.is_some() {
            // Connection actors refuse a second message themselves; this is a second line of
            // defence, and the first message stands.
            log::warn!("round {}: {label} sent a second message", self.config.id);
            return Step::Continue;
        }
        party.message = Some(Box::new(Received { at, seq, name }));
        party.reply = Some(reply);
        if self
            .slots
            .iter()
            .all(|p| p.as_ref().is_some_and(|p| p.message.is_some()))
        {
            Step::Complete
        } else {
            Step::Continue
        }
    }

    /// A chat line before the chat is open breaks the protocol, like any event out of turn.
    fn chat_too_early(&mut self, id: ConnId) -> Step {
        if let Some(Some(party)) = self.slot_of(id).map(|s| &mut self.slots[s]) {
            if let Some(mut reply) = party.reply.clone() {
                let _ = reply.try_send(Outbound::ended(
                    ErrorKind::Protocol,
                    "a chat line before the chat was open",
                ));
            }
        }
        self.left(id, "sent a chat line before the chat was open")
    }

    fn left(&mut self, id: ConnId, why: &str) -> Step {
        let Some(slot) = self.slot_of(id) else {
            return Step::Continue;
        };
        let label = self.label(slot).to_owned();
        if !self.started {
            log::info!(
                "round {}: {label} {why} before the round started; slot freed",
                self.config.id
            );
            self.say(format_args!(
                "Client {label} left before the round started ({why})"
            ));
            self.slots[slot] = None;
            return if self.is_empty() {
                Step::Empty
            } else {
                Step::Continue
            };
        }
        let Some(party) = self.slots[slot].as_mut() else {
            return Step::Continue;
        };
        party.reply = None;
        if party.message.is_some() {
            log::info!("round {}: {label} {why} after sending", self.config.id);
            self.say(format_args!(
                "Client {label} disconnected after sending its message ({why})"
            ));
            Step::Continue
        } else {
            Step::Abort(
                ErrorKind::PartyLeft,
                format!("Client {label} left before sending its message ({why})"),
            )
        }
    }

    /// The first of its deadlines: the round's, or its parties' for their messages.
    fn next_deadline(&self) -> Option<Instant> {
        match (self.deadline, self.messages_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The parties' time to send their messages passed: each that has not sent is told so, and
    /// the round is aborted for the others in the first one's name.
    fn messages_overdue(mut self) -> RoundReport {
        let t = self.config.message_timeout.unwrap_or_default();
        let told = format!(
            "no message within {} s of the round's start",
            t.as_secs_f64()
        );
        let mut first = None;
        for (slot, party) in self.slots.iter_mut().enumerate() {
            let Some(party) = party.as_mut().filter(|p| p.message.is_none()) else {
                continue;
            };
            log::warn!(
                "round {}: {} sent no message in time",
                self.config.id,
                self.config.labels[slot]
            );
            // Told here, so the abort below does not tell it a second time.
            if let Some(mut reply) = party.reply.take() {
                let _ = reply.try_send(Outbound::ended(ErrorKind::Timeout, told.clone()));
            }
            first.get_or_insert(slot);
        }
        let label = first.map_or("", |slot| self.label(slot)).to_owned();
        let reason =
            format!("Client {label} left before sending its message (sent no message in time)");
        self.abort(ErrorKind::PartyLeft, reason)
    }

    /// The time limit passed.
    fn timed_out(self) -> RoundReport {
        let t = self.config.timeout.unwrap_or_default();
        let reason = format!("the round did not complete within {} s", t.as_secs_f64());
        self.abort(ErrorKind::RoundTimeout, reason)
    }

    fn report(&self, outcome: Outcome) -> RoundReport {
        let parties = || self.slots.iter().flatten();
        let (leavers, finished) = match &outcome {
            // Only a round played with another address counts as good conduct: one address
            // playing itself cannot wash away what it did to others.
            Outcome::Completed { .. } => {
                let peers: Vec<IpAddr> = parties().map(|p| p.peer).collect();
                let mixed = peers.iter().any(|&p| p != peers[0]);
                (Vec::new(), if mixed { peers } else { Vec::new() })
            }
            // Those who left without a message (their connection is gone) or, when time ran out,
            // who sent none; not those still typing when another left.
            Outcome::Aborted { kind, .. } if self.started => {
                let timed_out = *kind == ErrorKind::RoundTimeout;
                let leavers = parties()
                    .filter(|p| p.message.is_none() && (timed_out || p.reply.is_none()))
                    .map(|p| p.peer)
                    .collect();
                (leavers, Vec::new())
            }
            _ => (Vec::new(), Vec::new()),
        };
        RoundReport {
            id: self.config.id,
            room: self.config.room.as_deref().map(str::to_owned),
            started: self.started,
            outcome,
            leavers,
            finished,
            session_rounds: None,
        }
    }

    /// Tells every party still connected why the round ends (except on a stop, which the
    /// connections announce themselves), and reports it.
    fn abort(self, kind: ErrorKind, reason: String) -> RoundReport {
        log::warn!("round {}: aborted: {reason}", self.config.id);
        match self.config.style {
            Style::Assignment => self.transcript.line(format!("Round aborted: {reason}")),
            Style::Summary => self
                .transcript
                .stamped(format!("{} aborted: {reason}", self.title())),
            Style::Quiet => {}
        }
        // On a stop every connection tells its own client, in a round or not; a second,
        // different message from here would race with it.
        if kind != ErrorKind::ShuttingDown {
            let told = format!("round aborted: {reason}");
            for party in self.slots.iter().flatten() {
                if let Some(mut reply) = party.reply.clone() {
                    let _ = reply.try_send(Outbound::ended(kind, told.clone()));
                }
            }
        }
        self.report(Outcome::Aborted { kind, reason })
    }

    /// The verdict: every message in arrival order, and its sentence. Prints the messages.
    fn verdict(&self) -> (Vec<Arrival>, String) {
        let order = verdict::order(self.slots.iter().enumerate().filter_map(|(slot, p)| {
            let m = p.as_ref()?.message.as_deref()?;
            Some((self.label(slot), m))
        }));
        let text = ack_text(&order);
        for a in &order {
            self.say(format_args!("Client {}: {}", a.label, a.name));
        }
        (order, text)
    }

    /// Every message is in: decide, tell everyone, and wait until each acknowledgment was written
    /// (or could not be), so the final line states what actually happened.
    async fn complete(self) -> RoundReport {
        let (order, text) = self.verdict();
        let (shared_order, shared_text): (Arc<[Arrival]>, Arc<str>) =
            (order.as_slice().into(), text.as_str().into());
        let mut pending = Vec::new();
        let mut undelivered = Vec::new();
        for (slot, party) in self.slots.iter().enumerate() {
            let label = self.label(slot).to_owned();
            let sent = party
                .as_ref()
                .and_then(|p| p.reply.clone())
                .and_then(|mut reply| {
                    let (tx, rx) = oneshot::channel();
                    let verdict = Outbound::Verdict {
                        text: Arc::clone(&shared_text),
                        order: Arc::clone(&shared_order),
                        last: true,
                        delivered: Some(tx),
                    };
                    reply.try_send(verdict).ok().map(|()| rx)
                });
            match sent {
                Some(rx) => pending.push((label, rx)),
                None => undelivered.push(label),
            }
        }
        let mut delivered = Vec::new();
        for (label, rx) in pending {
            // Every connection answers within its write bound, or drops the sender when it ends.
            if rx.await.unwrap_or(false) {
                delivered.push(label);
            } else {
                undelivered.push(label);
            }
        }
        match self.config.style {
            Style::Assignment => {
                self.transcript
                    .line(sent_line(&self.config.labels, &delivered, &undelivered))
            }
            Style::Summary => {
                let margin = order.get(1).map_or(0, |a| a.after_micros);
                let mut line = format!("{}: {text} (margin {margin} us)", self.title());
                if !undelivered.is_empty() {
                    let failed: Vec<&str> = undelivered.iter().map(String::as_str).collect();
                    line.push_str(&format!("; delivery to {} failed", list_labels(&failed)));
                }
                self.transcript.stamped(line);
            }
            Style::Quiet => {}
        }
        self.report(Outcome::Completed { order, undelivered })
    }
}

/// A round still filling: its state, with no task of its own. Whoever routes joins holds it,
/// tells it of each join ([`join`](Filling::join)) and each departure ([`left`](Filling::left)),
/// and, when a join fills its last slot, [starts](Filling::start) it; until then it also keeps
/// its clock ([`deadline`](Filling::deadline), then [`expire`](Filling::expire)) and ends it on a
/// stop ([`stop`](Filling::stop)). Its parties' connections send it nothing: what they have to
/// say before the barrier is a departure, and that goes to the holder.
pub struct Filling(Round);

impl Filling {
    /// A round for its first party, which is about to join: its clock starts now.
    pub fn new(config: RoundConfig, transcript: Transcript) -> Filling {
        let slots = (0..config.labels.len()).map(|_| None).collect();
        let deadline = config.timeout.map(|t| Instant::now() + t);
        Filling(Round {
            config,
            slots,
            started: false,
            delivered_events: 0,
            transcript,
            deadline,
            messages_due: None,
        })
    }

    pub fn id(&self) -> u64 {
        self.0.config.id
    }

    /// When the round is aborted if it has not started (and, if it has, completed).
    pub fn deadline(&self) -> Option<Instant> {
        self.0.deadline
    }

    /// Seats a connection that completed its handshake in the lowest free slot and welcomes it;
    /// `None` if every slot is taken.
    pub fn join(&mut self, id: ConnId, peer: SocketAddr, reply: Outbox) -> Option<Admit> {
        self.0.join(id, peer, reply)
    }

    /// Frees the slot of a party that left before the barrier (`why` is a short human phrase);
    /// the round's report if that left it empty, abandoned.
    pub fn left(&mut self, id: ConnId, why: &str) -> Option<RoundReport> {
        match self.0.left(id, why) {
            Step::Empty => {
                log::info!("round {}: every party left; abandoned", self.id());
                Some(self.0.report(Outcome::Abandoned))
            }
            _ => None,
        }
    }

    /// Its time limit passed before it filled: every party is told, and it is over.
    pub fn expire(self) -> RoundReport {
        self.0.timed_out()
    }

    /// The server is stopping: it is over (the connections tell their clients themselves).
    pub fn stop(self) -> RoundReport {
        self.0.abort(ErrorKind::ShuttingDown, shutting_down())
    }

    /// The barrier: tells every party its label, and returns the round's coordinator, to run as
    /// a task of its own, with a sender to it (its parties have theirs; a holder that has
    /// nothing to send drops it).
    pub fn start(
        self,
        stop: Stop,
    ) -> (
        impl std::future::Future<Output = RoundReport>,
        mpsc::Sender<Event>,
    ) {
        let mut round = self.0;
        let (tx, rx) = mpsc::channel(4 * round.config.labels.len() + 4);
        round.start(&tx);
        (coordinator_loop(round, rx, stop), tx)
    }
}

fn shutting_down() -> String {
    "the server is shutting down".to_owned()
}

/// Runs a started round to its end and reports how it ended.
///
/// The loop ends when the round completes, is aborted (a party left, the round timed out, the
/// `stop` fired), or when every sender of `events` is gone before completion.
///
/// An `async` block rather than an `async fn`: an `async fn` keeps its arguments beside the
/// locals made from them (about 200 bytes more here), and a round is held as long as its
/// parties think.
#[allow(clippy::manual_async_fn)] // deliberately not an `async fn`: see above
fn coordinator_loop(
    mut round: Round,
    mut events: mpsc::Receiver<Event>,
    stop: Stop,
) -> impl std::future::Future<Output = RoundReport> {
    async move {
        // Made once for the round's life, not once per event: a waiting round holds them. One
        // timer for both deadlines: a timer costs the reactor a registration and a wake-up.
        let timer = match round.next_deadline() {
            Some(at) => futures::future::Either::Left(crate::rt::sleep(
                at.saturating_duration_since(Instant::now()),
            )),
            None => futures::future::Either::Right(futures::future::pending::<()>()),
        }
        .fuse();
        let stopped = stop.wait().fuse();
        futures::pin_mut!(timer, stopped);
        loop {
            futures::select_biased! {
                () = stopped => return round.abort(ErrorKind::ShuttingDown, shutting_down()),
                () = timer => {
                return match round.messages_due {
                    Some(due) if round.deadline.is_none_or(|d| due < d) => {
                        round.messages_overdue()
                    }
                    _ => round.timed_out(),
                }
            }
                event = events.next() => match event {
                    Some(event) => match round.handle(event) {
                        Step::Continue => {}
                        // Boxed: the completion state is large and lives only briefly, while a
                        // waiting round's future is held for as long as it waits.
                        Step::Complete if round.config.chat => {
                            return Box::pin(chat::chat(round, &mut events, &stop)).await
                        }
                        Step::Complete => return Box::pin(round.complete()).await,
                        Step::Abort(kind, reason) => return round.abort(kind, reason),
                        // Only a round that has not started can empty; this one has.
                        Step::Empty => return round.report(Outcome::Abandoned),
                    },
                    None => {
                        let reason = "every connection of the round is gone".to_owned();
                        return round.abort(ErrorKind::PartyLeft, reason);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
