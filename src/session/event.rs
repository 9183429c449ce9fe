//! What a session hears from its connections and what it amounts to: the types that cross its
//! boundary.

use std::time::{Duration, Instant};

use futures::channel::oneshot;

use crate::protocol::{Control, ErrorKind, Score};
use crate::round::{ConnId, Outbox};

/// Who joins a session: a player under its name, or a host (whose key the connection checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seat {
    Player(Box<PlayerSeat>),
    /// `judges`: the host speaks protocol 6, and so can judge buzzes (buzz mode is played only
    /// with such a host).
    Host {
        judges: bool,
    },
}

/// A player's request for a seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerSeat {
    pub name: String,
    /// The team it plays for, if the game has teams.
    pub team: Option<String>,
    /// The seat's secret, from a device that held the seat before.
    pub secret: Option<String>,
}

impl Seat {
    /// A player's seat by name alone (protocols 2 to 5).
    pub fn player(name: impl Into<String>) -> Seat {
        Seat::Player(Box::new(PlayerSeat {
            name: name.into(),
            team: None,
            secret: None,
        }))
    }

    pub fn is_host(&self) -> bool {
        matches!(self, Seat::Host { .. })
    }
}

/// What the connections of a session tell it.
#[derive(Debug)]
pub enum SessionEvent {
    /// A player or a host asks to join; `admitted` is told whether it may, or why not (names
    /// are unique in a session, and a session holds at most `max_parties` players).
    Join {
        id: ConnId,
        seat: Seat,
        reply: Outbox,
        admitted: oneshot::Sender<Result<(), (ErrorKind, String)>>,
    },
    /// A host opens the next round.
    Open { id: ConnId },
    /// A host ends the session.
    Finish { id: ConnId },
    /// A host judges a buzz or controls the game.
    Control { id: ConnId, control: Control },
    /// A party answered `Ping { seq }`; `at` is when its `Pong` arrived, `kernel_rtt` the
    /// kernel's minimum round trip for the connection then (`None` where it gives none).
    /// `written`: when its connection wrote the `Ping`, where it says.
    Pong {
        id: ConnId,
        seq: u32,
        at: Instant,
        kernel_rtt: Option<Duration>,
        written: Option<Instant>,
    },
    /// Round `round`'s `Go` was handed to the kernel for a party's connection at `at`: its
    /// reaction is timed from there, so the order in which a big room's `Go`s were written
    /// decides nothing.
    GoWritten { id: ConnId, round: u64, at: Instant },
    /// A party pressed its buzzer; `at` is when the answer arrived.
    Answer {
        id: ConnId,
        at: Instant,
        kernel_rtt: Option<Duration>,
    },
    /// A party is gone.
    Left { id: ConnId },
}

/// What a finished session amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    pub room: Option<String>,
    pub rounds: u64,
    pub scores: Vec<Score>,
}
