//! The wire protocol, versions 1 to 5: the frame vocabulary and the byte-level framing.
//!
//! This module owns everything that touches bytes on a socket: the [`Frame`] enum, the 4-byte
//! big-endian length prefix, the bincode options, the frame-size limit and the per-frame read
//! deadline. No other module reads or writes a length prefix or calls bincode.
//!
//! Invariants:
//! - A length prefix is checked against [`MAX_FRAME_LEN`] (and against zero) before a single byte
//!   of payload is buffered, so a hostile prefix can never make us allocate more than one maximal
//!   frame plus a small read-ahead.
//! - [`FrameReader::read_frame`] is cancel-safe: dropping it mid-await loses no bytes, so callers
//!   may race it against other futures.
//! - A clean end-of-stream between frames is `Ok(None)`; an end-of-stream inside a frame is
//!   [`ReadError::Truncated`]. They are different outcomes on purpose.
//!
//! It must not know about rounds, labels or names: whether a well-formed frame is *allowed* is
//! the business of the actors that receive it.
//!
//! `PROTOCOL.md` at the repository root documents the same layout for implementers in other
//! languages; the tests in this module pin the examples given there.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bincode::Options;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

mod version;
mod window;
pub use version::{Version, OLDEST_VERSION, PROTOCOL_VERSION};
pub use window::{window, Cut};

/// Largest payload a frame may carry, in bytes (the length prefix excluded).
pub const MAX_FRAME_LEN: u32 = 64 * 1024;

/// Size of the big-endian length prefix.
pub const HEADER_LEN: usize = 4;

/// How much a reader asks the socket for beyond what the current frame needs, so that a burst of
/// small frames costs one read instead of two per frame.
const READ_AHEAD: usize = 512;

/// How much a reader takes in its first read of a frame, before it holds a heap buffer: enough
/// for a whole `Hello` or `Message` of ordinary size.
const HEAD_LEN: usize = 64;

/// Every message of the protocol, all versions. Variant order is part of the wire format (bincode writes the
/// variant index as a little-endian `u32`): new variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Client → server, always the first frame: the version the client speaks and, optionally,
    /// the room it wants to play in.
    Hello { version: u16, room: Option<String> },
    /// Server → client, the answer to an acceptable `Hello`.
    Welcome { version: u16 },
    /// Server → client, sent once every party of the round is connected: the label this client
    /// plays under.
    Connected { round: u64, label: String },
    /// Client → server: the client's one message (its name).
    Message { name: String },
    /// Server → client: the verdict. `text` is the human sentence, `order` the same as data.
    Ack { text: String, order: Vec<Arrival> },
    /// Either way: why the connection is about to be closed. Always the last frame sent.
    Error { kind: ErrorKind, message: String },
    /// Server → client, right after `Ack` on a chat server: the chat relay is open.
    ChatOpen,
    /// Client → server, once the chat is open: one line typed. `Bye` ends the chat.
    Chat { line: String },
    /// Server → client: a line another party typed.
    Relayed { from: String, line: String },
    /// Server → client: the chat is over (someone said `Bye`, or left); the server closes next.
    ChatOver { message: String },
    /// Protocol 2. Client → server, instead of `Hello`: join the quiz session of `room` as
    /// `name`, and stay for its rounds. `version` and `room` sit where `Hello` has them, so a
    /// balancer hashing the room's bytes pins a room to one server whichever frame opens it.
    Join {
        version: u16,
        room: Option<String>,
        name: String,
    },
    /// Protocol 2. Server → client: answer with `Pong` carrying `seq` at once (round-trip time).
    Ping { seq: u32 },
    /// Protocol 2. Client → server: the answer to `Ping { seq }`.
    Pong { seq: u32 },
    /// Protocol 2. Server → client: round `round` of the session starts now; answer once.
    Go { round: u64 },
    /// Protocol 2. Client → server: this party's answer to the current round.
    Answer,
    /// Protocol 2. Server → client: the round's result, parties in the session's order
    /// (non-answering last), with the running scores; `text` says it in a sentence. (Boxed in
    /// memory only: on the wire it is its fields, like any other frame.)
    Result(Box<SessionResult>),
    /// Protocol 2. Server → client: the session is over; the final scores. The server closes next.
    SessionOver { scores: Vec<Score> },
    /// Protocol 3. Server → client, instead of `Result`: the round's result with each party's
    /// standing (answered, early, false start, locked out, no answer) and the source of the round
    /// trip used. Boxed in memory only, like `Result`.
    Outcome(Box<RoundOutcome>),
    /// Protocol 3. Server → client: an `Answer` arrived while no round was open for this party
    /// (an early buzz); it is locked out of round `round`.
    Early { round: u64 },
    /// Protocol 4. Client → server, instead of `Hello`: join the quiz session of `room` as its
    /// host, proving it with the server's host key. A host does not play: it sees the roster
    /// and every result, opens each round (`Open`) and ends the session (`Finish`).
    Host {
        version: u16,
        room: Option<String>,
        key: String,
    },
    /// Protocol 4. Server → client: who is in the session, sent whenever that changes and after
    /// each round's round trips are measured.
    Roster(Box<Roster>),
    /// Protocol 4. Host → server: open the next round now (every player's `Go`).
    Open,
    /// Protocol 4. Host → server: end the session now.
    Finish,
    /// Protocol 4. Server → client, instead of `SessionOver`: the session is over, why, after how
    /// many rounds, and the final scores. The server closes next.
    Over {
        why: OverReason,
        rounds: u64,
        scores: Vec<Score>,
    },
    /// Protocol 5. Server → client, right after `Welcome` to a session's player or host: how the
    /// session ranks a round's answers, so a client shows the figure that decided, without
    /// reading the result's sentence.
    Rules { ranking: Ranking },
    /// Protocol 6. Client → server, instead of `Join`: take a seat in the quiz session of `room`
    /// as `name`, in `team` (none for a game without teams), with the seat's `secret` if this
    /// device held the seat before (a reload, a lost connection). `version` and `room` sit where
    /// `Hello` has them.
    Seat {
        version: u16,
        room: Option<String>,
        name: String,
        team: Option<String>,
        secret: Option<String>,
    },
    /// Protocol 6. Server → client, right after `Rules` to a player: the seat's secret, which
    /// takes the seat (and its points) back from another connection, and without which nobody
    /// else may take it.
    Seated { secret: String },
    /// Protocol 6. Server → client, instead of `Roster`: the room with teams, seats held for
    /// players who are away, the game and the host's scoring.
    Lineup(Box<Lineup>),
    /// Protocol 6. Server → client: an open question's buzzes as they land, in fair order, who
    /// is up to answer, and the judgements so far.
    Buzzes(Box<BuzzQueue>),
    /// Protocol 6. Host → server: a host's judgement or control.
    Control(Control),
}

/// Protocol 6: the room as [`Frame::Lineup`] carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineup {
    /// Rounds (questions) opened so far in this game.
    pub round: u64,
    /// Whether a question is open now.
    pub open: bool,
    pub needed: u32,
    pub hosted: bool,
    pub answer_micros: u64,
    /// Every seat, present or held for a player who is away, in the order they were taken.
    pub players: Vec<Contestant>,
    pub change: Change,
    /// Games started in this session (1 for the first); a new game keeps the players.
    pub game: u64,
    /// Whether questions are played in buzz mode (the host judges each buzz) or as races.
    pub buzz: bool,
    /// Points for a correct answer, and taken for a wrong one and for an early press or a
    /// false start (scores stop at zero).
    pub correct: u64,
    pub penalty: u64,
    pub early: u64,
}

impl Lineup {
    /// The room as a peer of protocol 4 or 5 sees it: the players who are here, and a change
    /// it has a word for.
    pub fn to_roster(&self) -> Roster {
        let change = match &self.change {
            Change::NewGame { .. } => Change::Update,
            Change::Kicked { name } => Change::Left {
                name: name.clone(),
                round: 0,
            },
            Change::Away { name, round } => Change::Left {
                name: name.clone(),
                round: *round,
            },
            Change::Back { name } => Change::Joined { name: name.clone() },
            other => other.clone(),
        };
        Roster {
            round: self.round,
            open: self.open,
            needed: self.needed,
            hosted: self.hosted,
            answer_micros: self.answer_micros,
            players: self
                .players
                .iter()
                .filter(|p| p.here)
                .map(|p| Member {
                    name: p.name.clone(),
                    rtt_micros: p.rtt_micros,
                    rtt_source: p.rtt_source,
                    points: p.points,
                    from_round: p.from_round,
                })
                .collect(),
            change,
        }
    }
}

/// Protocol 6: one seat in a [`Lineup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contestant {
    pub name: String,
    /// The team it plays for; empty without teams.
    pub team: String,
    pub rtt_micros: Option<u64>,
    pub rtt_source: RttSource,
    pub points: u64,
    pub from_round: u64,
    /// Its connection is here (a seat held for a player who is away is not).
    pub here: bool,
}

/// Protocol 6: an open question's buzzes, as [`Frame::Buzzes`] carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuzzQueue {
    pub round: u64,
    /// Whether the buzzers are still open (false once the question is over).
    pub open: bool,
    /// The buzzes in fair order (the session's ranking, corrected for each player's round trip).
    pub buzzes: Vec<Buzz>,
    /// Who answers now: the first buzz not yet judged, once no later buzz can still rank before
    /// it.
    pub up: Option<String>,
    /// Players locked out of this question (a wrong answer, theirs or their team's).
    pub locked: Vec<String>,
}

/// Protocol 6: one buzz in a [`BuzzQueue`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buzz {
    pub name: String,
    pub team: String,
    /// From the buzzers opening to the buzz arriving.
    pub after_go_micros: u64,
    pub rtt_micros: Option<u64>,
    pub rtt_source: RttSource,
    /// `after_go` − `rtt`.
    pub reaction_micros: Option<i64>,
    /// Behind the first buzz, by the session's ranking.
    pub gap_micros: u64,
    pub judgement: Judgement,
    /// Points this judgement gave (or, negative, took).
    pub points: i64,
    /// Why the host should look at this buzz (its round trip hit the cap, or was much shorter
    /// at the buzz than before the buzzers opened); empty if nothing.
    pub flag: String,
}

/// Protocol 6: what the host made of a buzz. Appended to, never reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Judgement {
    /// Not judged yet.
    Waiting,
    Correct,
    Wrong,
    /// Void: its team was locked out by a teammate's wrong answer, or the question ended first.
    Void,
}

impl Judgement {
    pub fn describe(self) -> &'static str {
        match self {
            Judgement::Waiting => "waiting",
            Judgement::Correct => "correct",
            Judgement::Wrong => "wrong",
            Judgement::Void => "void",
        }
    }
}

/// Protocol 6: what a host asks of the session. Appended to, never reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// The player who is up answered correctly: points, and the question is over.
    Correct,
    /// The player who is up answered wrongly: the penalty, and that player (with teams, that
    /// team) is locked out of this question; the next buzz is up.
    Wrong,
    /// The question is over without a correct answer.
    Next,
    /// Sets a player's score.
    SetScore { name: String, points: u64 },
    /// Removes a player from the game and keeps the name out of it.
    Kick { name: String },
    /// Frees a seat held for a player who is away: its points go, its name is free.
    Free { name: String },
    /// A new game with the same players: scores to zero, questions from one.
    NewGame,
    /// Points for a correct answer, and taken for a wrong one and for an early press or a
    /// false start.
    Scoring {
        correct: u64,
        penalty: u64,
        early: u64,
    },
}

/// Protocol 5: how a session ranks the valid answers of a round. Appended to, never reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ranking {
    /// By when each answer reached the server, after `Go`.
    Arrival,
    /// By reaction time: arrival after `Go`, less the player's round trip.
    Reaction,
}

/// Protocol 4: the session's roster, as [`Frame::Roster`] carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// Rounds opened so far (the running one included).
    pub round: u64,
    /// Whether a round is open now: a player who joined during it plays from the next.
    pub open: bool,
    /// Players the session needs before a round can open.
    pub needed: u32,
    /// Whether a host opens the rounds (otherwise they open by themselves).
    pub hosted: bool,
    /// Time each round gives to answer.
    pub answer_micros: u64,
    /// The players, in the order they joined.
    pub players: Vec<Member>,
    /// What changed, if this roster was sent because of a change.
    pub change: Change,
}

/// Protocol 4: one player in a [`Roster`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// The round trip the session compensates this player by (as in results), once measured.
    pub rtt_micros: Option<u64>,
    pub rtt_source: RttSource,
    pub points: u64,
    /// The first round this player plays in (one past the open round, for a late joiner).
    pub from_round: u64,
}

/// Protocol 4: why a roster was sent. Appended to, never reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Round trips were measured, or the receiver just joined.
    Update,
    /// A player joined.
    Joined {
        name: String,
    },
    /// A player left; `round` is the round it left during (0 between rounds).
    Left {
        name: String,
        round: u64,
    },
    /// A host joined, or the last host left.
    HostJoined,
    HostLeft,
    /// Round `round` opens soon: round trips are being measured (get ready).
    Ready {
        round: u64,
    },
    /// Protocol 6: the host started game `game` with the same players (older peers see
    /// `Update`).
    NewGame {
        game: u64,
    },
    /// Protocol 6: the host removed a player from the game (older peers see `Left`).
    Kicked {
        name: String,
    },
    /// Protocol 6: a player is back in its seat (older peers see `Joined`).
    Back {
        name: String,
    },
    /// Protocol 6: a player's connection is gone; its seat is held for it (older peers see
    /// `Left`). `round` as in `Left`.
    Away {
        name: String,
        round: u64,
    },
}

/// Protocol 4: why a session ended. Appended to, never reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverReason {
    /// Its last round was played.
    LastRound,
    /// Fewer players than it needs remained after a round.
    TooFewPlayers,
    /// The host ended it.
    HostEnded,
    /// The server is stopping.
    ServerStopping,
}

impl OverReason {
    /// The words a client shows for it.
    pub fn describe(self) -> &'static str {
        match self {
            OverReason::LastRound => "the last round was played",
            OverReason::TooFewPlayers => "too few players were left",
            OverReason::HostEnded => "the host ended it",
            OverReason::ServerStopping => "the server stopped",
        }
    }
}

/// Protocol 3: a session round's result, as [`Frame::Outcome`] carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundOutcome {
    pub round: u64,
    pub text: String,
    /// Valid answers in the session's order, then false starts, then the parties that did not
    /// answer (early, locked out, no answer).
    pub order: Vec<Placing>,
    pub scores: Vec<Score>,
}

/// Protocol 3: one party's line of a session round's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placing {
    pub name: String,
    pub standing: Standing,
    /// From `Go` leaving the server to the answer arriving; `None` without an answer.
    pub after_go_micros: Option<u64>,
    /// The round trip used to compensate this party, and where it came from.
    pub rtt_micros: Option<u64>,
    pub rtt_source: RttSource,
    /// `after_go` − `rtt`: how long the party took to react.
    pub reaction_micros: Option<i64>,
}

/// Protocol 3: what a party did in a round. Appended to, never reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Standing {
    /// A valid answer: ranked, and the first scores.
    Answered,
    /// Answered sooner than a person can react (under the server's minimum reaction), or
    /// sooner than the party's own kernel-measured round trip allows: ranked after every valid
    /// answer, no point.
    FalseStart,
    /// Pressed before this round's `Go`: out of this round.
    Early,
    /// Out of this round for a press made while it was out of the previous one.
    LockedOut,
    /// Played the round and did not answer in time.
    NoAnswer,
    /// Protocol 4: left the session during the round (a version-3 peer sees `NoAnswer`).
    Left,
    /// Protocol 6: buzzed and the host judged it correct (older peers see `Answered`).
    Correct,
    /// Protocol 6: buzzed and the host judged it wrong (older peers see `Answered`).
    Wrong,
}

/// Protocol 3: where a party's round-trip figure came from. Appended to, never reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RttSource {
    /// No figure yet: the party is ranked by arrival.
    None,
    /// `Ping`/`Pong`, bounded by the kernel's own measurement of the connection
    /// (`TCP_INFO`'s minimum round trip plus a small slack): the client cannot inflate it.
    Kernel,
    /// `Ping`/`Pong` alone, capped by the server's maximum compensation: where the kernel's
    /// figure does not describe the player's path (no `TCP_INFO`, or a proxy in between).
    Ping,
}

impl Standing {
    /// The nearest standing a peer of `version` has a word for.
    pub fn spoken_in(self, version: Version) -> Standing {
        match self {
            Standing::Correct | Standing::Wrong if !version.has_buzz() => Standing::Answered,
            Standing::Left if !version.has_hosts() => Standing::NoAnswer,
            other => other,
        }
    }

    /// The words a result uses for it.
    pub fn describe(self) -> &'static str {
        match self {
            Standing::Answered => "answered",
            Standing::FalseStart => "false start",
            Standing::Early => "too early",
            Standing::LockedOut => "locked out",
            Standing::NoAnswer => "no answer",
            Standing::Left => "left",
            Standing::Correct => "correct",
            Standing::Wrong => "wrong",
        }
    }
}

impl RoundOutcome {
    /// Whether a peer of `version` reads this result as it is: standings added after its
    /// version need [`in_version`](Self::in_version).
    pub fn fits(&self, version: Version) -> bool {
        self.order
            .iter()
            .all(|p| p.standing.spoken_in(version) == p.standing)
    }

    /// The same result for a peer of `version`: a judged buzz is shown as answered (protocol
    /// 5 and older), a leaver as not answering (protocol 3); the sentence still says it.
    pub fn in_version(&self, version: Version) -> RoundOutcome {
        let mut outcome = self.clone();
        for p in &mut outcome.order {
            p.standing = p.standing.spoken_in(version);
        }
        outcome
    }

    /// The same result for a version-2 peer: `answered` for valid answers and false starts,
    /// in the same order, with the same figures.
    pub fn to_v2(&self) -> SessionResult {
        SessionResult {
            round: self.round,
            text: self.text.clone(),
            order: self
                .order
                .iter()
                .map(|p| Reaction {
                    name: p.name.clone(),
                    answered: p.after_go_micros.is_some(),
                    after_go_micros: p.after_go_micros,
                    rtt_micros: p.rtt_micros,
                    reaction_micros: p.reaction_micros,
                })
                .collect(),
            scores: self.scores.clone(),
        }
    }
}

/// Protocol 2: a session round's result, as [`Frame::Result`] carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionResult {
    pub round: u64,
    pub text: String,
    pub order: Vec<Reaction>,
    pub scores: Vec<Score>,
}

/// Protocol 2: one party's line of a session round's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub name: String,
    /// Whether it answered within the round's time limit; if not, the figures are absent.
    pub answered: bool,
    /// From `Go` leaving the server to the answer arriving.
    pub after_go_micros: Option<u64>,
    /// The party's round-trip estimate (the least of its recent `Ping`/`Pong` samples); `None`
    /// if it has none yet, and then it is ranked by arrival whatever the order.
    pub rtt_micros: Option<u64>,
    /// `after_go` − `rtt`: how long the party took to react; may be slightly negative.
    pub reaction_micros: Option<i64>,
}

/// Protocol 2: a party's running score in a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub name: String,
    pub points: u64,
}

/// One entry of an acknowledgment's arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    pub label: String,
    pub name: String,
    /// Microseconds after the first arrival of the round (0 for the first).
    pub after_micros: u64,
}

/// Machine-readable reason carried by [`Frame::Error`]. Appended to, never reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The peer speaks a protocol version we do not.
    Version,
    /// A well-formed frame that is not allowed in the current state.
    Protocol,
    /// Bytes that are not a frame: bad length, undecodable payload, unknown frame kind.
    Malformed,
    /// The peer was too slow: no handshake in time, or a frame stalled half-way.
    Timeout,
    /// The name (or room) breaks the naming rules.
    InvalidName,
    /// The round already has all its parties and this server runs no further round.
    RoundFull,
    /// The server is at its connection limit.
    Busy,
    /// Another party left before the round could complete; the round is aborted.
    PartyLeft,
    /// The round did not complete within the round timeout.
    RoundTimeout,
    /// The server is shutting down.
    ShuttingDown,
    /// Protocol 4: a host's key is wrong, or the host may not do that.
    Forbidden,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::Version => "version mismatch",
            ErrorKind::Protocol => "protocol violation",
            ErrorKind::Malformed => "malformed frame",
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::RoundFull => "round full",
            ErrorKind::Busy => "server busy",
            ErrorKind::PartyLeft => "party left",
            ErrorKind::RoundTimeout => "round timeout",
            ErrorKind::ShuttingDown => "server shutting down",
            ErrorKind::Forbidden => "forbidden",
        };
        f.write_str(s)
    }
}

impl Frame {
    /// Short name of the frame kind, for error messages ("expected Message, got Hello").
    pub fn kind_name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Welcome { .. } => "Welcome",
            Frame::Connected { .. } => "Connected",
            Frame::Message { .. } => "Message",
            Frame::Ack { .. } => "Ack",
            Frame::Error { .. } => "Error",
            Frame::ChatOpen => "ChatOpen",
            Frame::Chat { .. } => "Chat",
            Frame::Relayed { .. } => "Relayed",
            Frame::ChatOver { .. } => "ChatOver",
            Frame::Join { .. } => "Join",
            Frame::Ping { .. } => "Ping",
            Frame::Pong { .. } => "Pong",
            Frame::Go { .. } => "Go",
            Frame::Answer => "Answer",
            Frame::Result(_) => "Result",
            Frame::SessionOver { .. } => "SessionOver",
            Frame::Outcome(_) => "Outcome",
            Frame::Early { .. } => "Early",
            Frame::Host { .. } => "Host",
            Frame::Roster(_) => "Roster",
            Frame::Open => "Open",
            Frame::Finish => "Finish",
            Frame::Over { .. } => "Over",
            Frame::Rules { .. } => "Rules",
            Frame::Seat { .. } => "Seat",
            Frame::Seated { .. } => "Seated",
            Frame::Lineup(_) => "Lineup",
            Frame::Buzzes(_) => "Buzzes",
            Frame::Control(_) => "Control",
        }
    }

    /// Convenience constructor for an error frame.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Frame {
        Frame::Error {
            kind,
            message: message.into(),
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed (reset, broken pipe, ...).
    Io(io::Error),
    /// End of stream inside a frame: `have` of `need` bytes (prefix included) had arrived.
    Truncated { have: usize, need: usize },
    /// A length prefix of zero: no frame is empty.
    Empty,
    /// A length prefix above [`MAX_FRAME_LEN`]; nothing was allocated for it.
    TooLarge { len: u32 },
    /// The payload is not a bincode `Frame` (unknown kind, bad UTF-8, trailing bytes, ...).
    Malformed(String),
    /// A frame started but did not complete within the frame timeout.
    Stalled { have: usize, timeout: Duration },
    /// The first bytes are printable text, not a length prefix: a peer speaking a text protocol
    /// (the assignment's, HTTP, ...) to a framed one.
    Text { head: String },
}

impl ReadError {
    /// The error kind to report to the peer that caused this.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ReadError::Stalled { .. } => ErrorKind::Timeout,
            ReadError::Text { .. } => ErrorKind::Protocol,
            _ => ErrorKind::Malformed,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "connection error: {e}"),
            ReadError::Truncated { have, need } => {
                write!(
                    f,
                    "connection closed inside a frame ({have} of {need} bytes)"
                )
            }
            ReadError::Empty => f.write_str("frame length is zero"),
            ReadError::TooLarge { len } => write!(
                f,
                "frame length {len} exceeds the maximum of {MAX_FRAME_LEN} bytes"
            ),
            ReadError::Malformed(why) => write!(f, "undecodable frame: {why}"),
            ReadError::Stalled { have, timeout } => write!(
                f,
                "frame stalled after {have} bytes for {} ms",
                timeout.as_millis()
            ),
            ReadError::Text { head } => write!(
                f,
                "got text ({head:?}...) where a frame was expected: this side speaks arrival's \
                 framed protocol (PROTOCOL.md); the assignment's text needs --wire text"
            ),
        }
    }
}

impl std::error::Error for ReadError {}

// bincode 1.3.3 with fixed-width little-endian integers: byte-for-byte what `bincode::serialize`
// writes. Unlike the free functions it refuses trailing bytes and caps any allocation the payload
// asks for at one frame.
fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(u64::from(MAX_FRAME_LEN))
        .reject_trailing_bytes()
}

/// Encodes one frame, length prefix included.
///
/// ```
/// use arrival::protocol::{encode, Frame};
/// // 4-byte big-endian length, then bincode: variant 0 (u32 LE), version 1 (u16 LE), None.
/// let hello = encode(&Frame::Hello { version: 1, room: None }).unwrap();
/// assert_eq!(hello, [0, 0, 0, 7, 0, 0, 0, 0, 1, 0, 0]);
/// ```
pub fn encode(frame: &Frame) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(frame, &mut out)?;
    Ok(out)
}

/// Appends one frame, length prefix included, to `out`: serialized in place, so a frame costs no
/// allocation of its own (the server renders every event this way). `frame` is a [`Frame`] or a
/// [`FrameRef`]. On error `out` is left as it was.
pub fn encode_into(frame: &impl Serialize, out: &mut Vec<u8>) -> io::Result<()> {
    let start = out.len();
    // Sized first, so the buffer grows once rather than once per field it outgrows.
    if let Ok(size) = codec().serialized_size(frame) {
        out.reserve(HEADER_LEN + usize::try_from(size).unwrap_or(0));
    }
    out.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(e) = codec().serialize_into(&mut *out, frame) {
        out.truncate(start);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
    }
    let len = out.len() - start - HEADER_LEN;
    match u32::try_from(len).ok().filter(|&n| n <= MAX_FRAME_LEN) {
        Some(n) => {
            out[start..start + HEADER_LEN].copy_from_slice(&n.to_be_bytes());
            Ok(())
        }
        None => {
            out.truncate(start);
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes exceeds the maximum"),
            ))
        }
    }
}

/// The frames a server sends in every round, borrowing what a [`Frame`] would own, so that a
/// verdict is encoded for each party without copying it. Each encodes exactly as its `Frame`
/// (same variant index and fields; a test checks), so a reader decodes a `Frame`.
#[derive(Debug, Clone, Copy)]
pub enum FrameRef<'a> {
    Connected {
        round: u64,
        label: &'a str,
    },
    Ack {
        text: &'a str,
        order: &'a [Arrival],
    },
    /// A session's frames carry lists shared by the room; each reader is sent its [`Cut`].
    Outcome(&'a RoundOutcome, Cut),
    SessionOver {
        scores: &'a [Score],
        cut: Cut,
    },
    Over {
        why: OverReason,
        rounds: u64,
        scores: &'a [Score],
        cut: Cut,
    },
    Roster(&'a Roster),
    Lineup(&'a Lineup, Cut),
    Buzzes(&'a BuzzQueue, Cut),
}

impl Serialize for FrameRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStructVariant;
        // The variant indices of `Frame`'s variants: they are appended to, never reordered.
        match *self {
            FrameRef::Connected { round, label } => {
                let mut v = serializer.serialize_struct_variant("Frame", 2, "Connected", 2)?;
                v.serialize_field("round", &round)?;
                v.serialize_field("label", label)?;
                v.end()
            }
            FrameRef::Ack { text, order } => {
                let mut v = serializer.serialize_struct_variant("Frame", 4, "Ack", 2)?;
                v.serialize_field("text", text)?;
                v.serialize_field("order", order)?;
                v.end()
            }
            FrameRef::SessionOver { scores, cut } => {
                let mut v = serializer.serialize_struct_variant("Frame", 16, "SessionOver", 1)?;
                v.serialize_field("scores", &ScoresCut(scores, cut))?;
                v.end()
            }
            FrameRef::Outcome(outcome, cut) => serializer.serialize_newtype_variant(
                "Frame",
                17,
                "Outcome",
                &OutcomeCut(outcome, cut),
            ),
            FrameRef::Roster(roster) => {
                serializer.serialize_newtype_variant("Frame", 20, "Roster", roster)
            }
            FrameRef::Lineup(lineup, cut) => {
                serializer.serialize_newtype_variant("Frame", 27, "Lineup", &LineupCut(lineup, cut))
            }
            FrameRef::Buzzes(queue, cut) => {
                serializer.serialize_newtype_variant("Frame", 28, "Buzzes", &QueueCut(queue, cut))
            }
            FrameRef::Over {
                why,
                rounds,
                scores,
                cut,
            } => {
                let mut v = serializer.serialize_struct_variant("Frame", 23, "Over", 3)?;
                v.serialize_field("why", &why)?;
                v.serialize_field("rounds", &rounds)?;
                v.serialize_field("scores", &ScoresCut(scores, cut))?;
                v.end()
            }
        }
    }
}

// A big room's frames through one reader's window (see `window`).

/// A result as one reader is sent it (the order's window, then the scores').
struct OutcomeCut<'a>(&'a RoundOutcome, Cut);

impl Serialize for OutcomeCut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (o, cut) = (self.0, self.1);
        let mut s = serializer.serialize_struct("RoundOutcome", 4)?;
        s.serialize_field("round", &o.round)?;
        s.serialize_field("text", &o.text)?;
        s.serialize_field("order", &cut.list(&o.order, 0))?;
        s.serialize_field("scores", &cut.list(&o.scores, 1))?;
        s.end()
    }
}

/// A lineup as one reader is sent it (the seats' window).
struct LineupCut<'a>(&'a Lineup, Cut);

impl Serialize for LineupCut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (l, cut) = (self.0, self.1);
        let mut s = serializer.serialize_struct("Lineup", 12)?;
        s.serialize_field("round", &l.round)?;
        s.serialize_field("open", &l.open)?;
        s.serialize_field("needed", &l.needed)?;
        s.serialize_field("hosted", &l.hosted)?;
        s.serialize_field("answer_micros", &l.answer_micros)?;
        s.serialize_field("players", &cut.list(&l.players, 0))?;
        s.serialize_field("change", &l.change)?;
        s.serialize_field("game", &l.game)?;
        s.serialize_field("buzz", &l.buzz)?;
        s.serialize_field("correct", &l.correct)?;
        s.serialize_field("penalty", &l.penalty)?;
        s.serialize_field("early", &l.early)?;
        s.end()
    }
}

/// A buzz queue as one reader is sent it (the buzzes' window, then the locked players').
struct QueueCut<'a>(&'a BuzzQueue, Cut);

impl Serialize for QueueCut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (q, cut) = (self.0, self.1);
        let mut s = serializer.serialize_struct("BuzzQueue", 5)?;
        s.serialize_field("round", &q.round)?;
        s.serialize_field("open", &q.open)?;
        s.serialize_field("buzzes", &cut.list(&q.buzzes, 0))?;
        s.serialize_field("up", &q.up)?;
        s.serialize_field("locked", &cut.list(&q.locked, 1))?;
        s.end()
    }
}

/// Final scores as one reader is sent them.
struct ScoresCut<'a>(&'a [Score], Cut);

impl Serialize for ScoresCut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.1.list(self.0, 0).serialize(serializer)
    }
}

impl RoundOutcome {
    /// A copy with `cut`'s lines only, for a peer whose version needs its own copy.
    pub fn cut(&self, cut: Cut) -> RoundOutcome {
        RoundOutcome {
            round: self.round,
            text: self.text.clone(),
            order: cut.list(&self.order, 0).iter().cloned().collect(),
            scores: cut.list(&self.scores, 1).iter().cloned().collect(),
        }
    }
}

impl Lineup {
    /// A copy with `cut`'s seats only.
    pub fn cut(&self, cut: Cut) -> Lineup {
        Lineup {
            players: cut.list(&self.players, 0).iter().cloned().collect(),
            change: self.change.clone(),
            ..self.head()
        }
    }

    /// Its fields but its seats.
    fn head(&self) -> Lineup {
        Lineup {
            round: self.round,
            open: self.open,
            needed: self.needed,
            hosted: self.hosted,
            answer_micros: self.answer_micros,
            players: Vec::new(),
            change: Change::Update,
            game: self.game,
            buzz: self.buzz,
            correct: self.correct,
            penalty: self.penalty,
            early: self.early,
        }
    }
}

impl Roster {
    /// A copy with `cut`'s players only. A roster lists only the players who are here, so the
    /// reader's own line in it is `own[1]` (`own[0]` is its seat in the lineup).
    pub fn cut(&self, cut: Cut) -> Roster {
        Roster {
            round: self.round,
            open: self.open,
            needed: self.needed,
            hosted: self.hosted,
            answer_micros: self.answer_micros,
            players: cut.list(&self.players, 1).iter().cloned().collect(),
            change: self.change.clone(),
        }
    }
}

impl BuzzQueue {
    /// A copy with `cut`'s buzzes and locked players only.
    pub fn cut(&self, cut: Cut) -> BuzzQueue {
        BuzzQueue {
            round: self.round,
            open: self.open,
            buzzes: cut.list(&self.buzzes, 0).iter().cloned().collect(),
            up: self.up.clone(),
            locked: cut.list(&self.locked, 1).iter().cloned().collect(),
        }
    }
}

/// Decodes one payload (the bytes after the length prefix).
pub fn decode(payload: &[u8]) -> Result<Frame, ReadError> {
    codec().deserialize(payload).map_err(|e| {
        ReadError::Malformed(match *e {
            // bincode reports running out of payload as an I/O error with no text of its own.
            bincode::ErrorKind::Io(ref io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                "the payload ends inside a field (a length or a value runs past the frame)"
                    .to_owned()
            }
            ref other => other.to_string(),
        })
    })
}

/// Decodes one whole frame, length prefix included, that arrived as a unit (a WebSocket
/// message carries exactly one): the prefix must give the length of the rest.
pub fn decode_whole(bytes: &[u8]) -> Result<Frame, ReadError> {
    let Some((prefix, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(ReadError::Truncated {
            have: bytes.len(),
            need: HEADER_LEN,
        });
    };
    match u32::from_be_bytes(*prefix) {
        0 => Err(ReadError::Empty),
        len if len > MAX_FRAME_LEN => Err(ReadError::TooLarge { len }),
        len if len as usize != payload.len() => Err(ReadError::Malformed(format!(
            "the length prefix says {len} bytes and the message carries {}",
            payload.len()
        ))),
        _ => decode(payload),
    }
}

/// Writes one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, frame: &Frame) -> io::Result<()> {
    let bytes = encode(frame)?;
    writer.write_all(&bytes).await?;
    writer.flush().await
}

/// Encodes several frames back to back, for one write.
pub fn encode_all(frames: &[Frame]) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for frame in frames {
        bytes.extend_from_slice(&encode(frame)?);
    }
    Ok(bytes)
}

/// Printable ASCII or common white space: what a text protocol's first bytes are.
fn looks_like_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Reads frames from a byte stream.
///
/// `buf[..filled]` holds bytes received but not yet returned, always starting at a frame
/// boundary. The bytes beyond `filled` are scratch space: keeping that split (rather than
/// `Vec::len`) is what makes [`read_frame`](Self::read_frame) cancel-safe. All of a read's state
/// is the reader's own ([`poll_frame`](Self::poll_frame)), so a task waiting for a frame holds
/// nothing beyond the reader.
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    filled: usize,
    frame_timeout: Option<Duration>,
    /// When the frame currently being received must be complete; set by its first byte.
    deadline: Option<Instant>,
    /// The timer for `deadline`, made only once a partial frame has had to wait. Boxed: a timer
    /// is large, and a reader waiting between frames (every idle connection) carries none.
    stall: Option<Box<crate::rt::Alarm>>,
    /// Bytes thrown away by [`discard_until_eof`](Self::discard_until_eof).
    discarded: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader with no per-frame deadline.
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: Vec::new(),
            filled: 0,
            frame_timeout: None,
            deadline: None,
            stall: None,
            discarded: 0,
        }
    }

    /// Bounds the time from a frame's first byte to its last (slow-loris defence). Waiting for
    /// the first byte of a frame is not bounded here: that is the caller's policy.
    pub fn with_frame_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.frame_timeout = timeout;
        self
    }

    /// Bytes of memory the reader holds for buffering; never above one maximal frame plus the
    /// read-ahead.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes thrown away so far by [`discard_until_eof`](Self::discard_until_eof).
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Bytes received of a frame not yet complete (none before a peer's first byte).
    pub fn buffered(&self) -> usize {
        self.filled
    }

    /// Reads and throws away everything until end of stream or an error: for a connection we are
    /// about to close, whose input no longer matters but must not be left unread (closing a socket
    /// with unread input sends RST, which can destroy our last frame before the peer reads it).
    /// Cancel-safe; counts what it discards.
    pub async fn discard_until_eof(&mut self) {
        self.filled = 0;
        self.clear_deadline();
        if self.buf.len() < READ_AHEAD {
            self.buf.resize(READ_AHEAD, 0);
        }
        while let Ok(n) = self.inner.read(&mut self.buf[..READ_AHEAD]).await {
            if n == 0 {
                break;
            }
            self.discarded += n as u64;
            // A peer streaming as fast as we read must not hold the thread.
            crate::rt::yield_now().await;
        }
    }

    /// The underlying stream and the bytes received but not yet returned as frames.
    pub fn into_parts(self) -> (R, Vec<u8>) {
        let mut buf = self.buf;
        buf.truncate(self.filled);
        (self.inner, buf)
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Reads the next frame. `Ok(None)` is a clean end of stream between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        futures::future::poll_fn(|cx| self.poll_frame(cx)).await
    }

    /// [`read_frame`](Self::read_frame) as a poll: what a partial frame has received so far, and
    /// its deadline's timer, are kept in the reader between polls.
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Frame>, ReadError>> {
        loop {
            if let Some(frame) = self.parse_buffered()? {
                return Poll::Ready(Ok(Some(frame)));
            }
            let want = self.bytes_missing()?;
            let n = futures::ready!(self.poll_fill(cx, want))?;
            if n == 0 {
                return Poll::Ready(match self.filled {
                    0 => Ok(None),
                    have => Err(ReadError::Truncated {
                        have,
                        need: self.frame_len_so_far(),
                    }),
                });
            }
        }
    }

    /// The declared length of the frame at the front of the buffer, once its prefix is complete,
    /// validated before anything is allocated for it.
    fn declared_len(&self) -> Result<Option<usize>, ReadError> {
        if self.filled < HEADER_LEN {
            return Ok(None);
        }
        let mut prefix = [0u8; HEADER_LEN];
        prefix.copy_from_slice(&self.buf[..HEADER_LEN]);
        match u32::from_be_bytes(prefix) {
            0 => Err(ReadError::Empty),
            // No frame is that long; four printable characters are someone speaking text.
            len if len > MAX_FRAME_LEN && looks_like_text(&prefix) => Err(ReadError::Text {
                head: String::from_utf8_lossy(&prefix).into_owned(),
            }),
            len if len > MAX_FRAME_LEN => Err(ReadError::TooLarge { len }),
            len => Ok(Some(len as usize)),
        }
    }

    fn frame_len_so_far(&self) -> usize {
        match self.declared_len() {
            Ok(Some(len)) => HEADER_LEN + len,
            _ => HEADER_LEN,
        }
    }

    fn bytes_missing(&self) -> Result<usize, ReadError> {
        Ok(match self.declared_len()? {
            None => HEADER_LEN - self.filled,
            Some(len) => HEADER_LEN + len - self.filled,
        })
    }

    fn parse_buffered(&mut self) -> Result<Option<Frame>, ReadError> {
        let Some(len) = self.declared_len()? else {
            return Ok(None);
        };
        let end = HEADER_LEN + len;
        if self.filled < end {
            return Ok(None);
        }
        let frame = decode(&self.buf[HEADER_LEN..end])?;
        self.buf.copy_within(end..self.filled, 0);
        self.filled -= end;
        self.clear_deadline();
        if self.filled == 0 {
            // An idle connection holds no buffer: tens of thousands of them wait at a time.
            self.buf = Vec::new();
        }
        if self.filled > 0 {
            self.start_deadline();
        }
        Ok(Some(frame))
    }

    fn start_deadline(&mut self) {
        if self.deadline.is_none() {
            self.deadline = self.frame_timeout.map(|t| Instant::now() + t);
        }
    }

    fn clear_deadline(&mut self) {
        self.deadline = None;
        self.stall = None;
    }

    /// Reads at least one byte more (or hits end of stream), asking for `want` bytes plus the
    /// read-ahead. Ready with how many bytes arrived.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<Result<usize, ReadError>> {
        if self.filled == 0 {
            // Between frames a peer may stay silent as long as it likes, and tens of thousands
            // may do so at once: wait with no heap buffer, landing the first bytes in a small
            // array that is copied out in the same poll that fills it.
            let mut head = [0u8; HEAD_LEN];
            let n = futures::ready!(Pin::new(&mut self.inner).poll_read(cx, &mut head))
                .map_err(ReadError::Io)?;
            if n > 0 {
                self.buf.clear();
                self.buf.extend_from_slice(&head[..n]);
                self.filled = n;
                self.start_deadline();
            }
            return Poll::Ready(Ok(n));
        }
        let target = self.filled + want + READ_AHEAD;
        if self.buf.len() < target {
            self.buf.resize(target, 0);
        }
        let read = Pin::new(&mut self.inner).poll_read(cx, &mut self.buf[self.filled..target]);
        let n = match read {
            Poll::Ready(n) => n.map_err(ReadError::Io)?,
            Poll::Pending => {
                if let (Some(deadline), Some(timeout)) = (self.deadline, self.frame_timeout) {
                    let stall = self.stall.get_or_insert_with(|| {
                        let mut alarm = Box::new(crate::rt::Alarm::new());
                        alarm.set_at(deadline);
                        alarm
                    });
                    if Pin::new(&mut **stall).poll(cx).is_ready() {
                        return Poll::Ready(Err(ReadError::Stalled {
                            have: self.filled,
                            timeout,
                        }));
                    }
                }
                return Poll::Pending;
            }
        };
        if n > 0 {
            self.filled += n;
            self.start_deadline();
        }
        Poll::Ready(Ok(n))
    }
}

#[cfg(test)]
mod tests;
