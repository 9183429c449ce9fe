//! What crosses a round's boundary: what connections tell it ([`Event`]), what it tells them
//! ([`Outbound`], which sessions speak too), how it is set up, and how it ended.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};

use crate::protocol::{Arrival, ErrorKind};

/// Identifies a connection for the lifetime of a server.
pub type ConnId = u64;

/// Events for a connection are given to it through its outbox.
pub type Outbox = mpsc::Sender<Outbound>;

/// Capacity of a connection's outbox. Before its chat, a round sends a connection at most
/// `Admitted`, `Started` and one final event; a session at most a round's pings (the server
/// sends 5; while a round waits for answers, at most half this many await their `Pong`), `Go`
/// and the result between two of the connection's writes. So `try_send` into a
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
    /// Sessions: who is in the session, and what changed, as protocol 6 says it (`lineup`) and
    /// as protocols 4 and 5 do (`roster`). Shared like a result.
    Roster {
        roster: Arc<crate::protocol::Roster>,
        lineup: Arc<crate::protocol::Lineup>,
    },
    /// Sessions: the seat's secret, told once on taking it.
    Seated { secret: String },
    /// Sessions in buzz mode: the open question's buzzes. Shared like a result.
    Buzzes(Arc<crate::protocol::BuzzQueue>),
    /// Sessions: how the session ranks answers, told once on joining.
    Rules(crate::protocol::Ranking),
    /// Sessions: the session is over, why, after how many rounds; the connection closes.
    SessionOver {
        why: crate::protocol::OverReason,
        rounds: u64,
        scores: Arc<[crate::protocol::Score]>,
    },
    /// Sessions in a big room: `shared` (a result, a roster, a buzz queue or the final scores,
    /// one copy for the room) as this reader is sent it, cut to its window.
    Cut {
        shared: Arc<Outbound>,
        cut: crate::protocol::Cut,
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

    /// The event itself, whatever window of it a reader is sent.
    pub fn shared(&self) -> &Outbound {
        match self {
            Outbound::Cut { shared, .. } => shared,
            other => other,
        }
    }

    /// After this event nothing more is sent and the connection closes.
    pub fn is_final(&self) -> bool {
        matches!(
            self.shared(),
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
    /// This join filled the round's last slot: it is time to [start](super::coordinator::Filling::start) it.
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
}

impl RoundReport {
    /// Completed, and every party got its acknowledgment.
    pub fn is_clean(&self) -> bool {
        matches!(&self.outcome, Outcome::Completed { undelivered, .. } if undelivered.is_empty())
    }
}
