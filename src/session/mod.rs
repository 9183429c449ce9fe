//! A quiz session: parties that stay in a room for many rounds, with scores, and an order that
//! is fair across unequal networks and against modified clients.
//!
//! Owns one session's state: its seats (who is present, and the seats held for players who are
//! away), each party's round-trip figures, the current round's answers or, in buzz mode, its
//! buzz queue and judgements, lockouts, the running scores, the game, and its hosts. It is one
//! task ([`session_loop`]) fed by [`SessionEvent`]s, which connections send it themselves once
//! the lobby has handed them its channel; it answers each party through its outbox with the
//! session's [`Outbound`](crate::round::Outbound) events (`Admitted`, `Rules`, `Seated`,
//! `Roster`, `Ping`, `Go`, `Early`, `Buzzes`, `RoundResult`, `SessionOver`), which the framed
//! and WebSocket wires send as the frames of the client's protocol version.
//!
//! Layout: [`config`] its settings; `party` one seat and where it stands in the open round;
//! `buzz` one question in buzz mode; `state` the state machine and its rules; `actor` the task's
//! loop, a method per phase; [`text`] the sentences it says and the most parties whose results
//! and rooms fit one frame; [`view`] what each screen of a bigger room is sent, and when.
//!
//! Seats: a player's seat comes with a secret (`Seated`). While its player is away the seat and
//! its points are held; a join under its name takes it back only with the secret, and is
//! otherwise refused, whatever the state of the seat's connection. A name that looks like
//! another seat's (its confusable skeleton) is refused. The host frees seats, removes players,
//! sets scores and starts new games with the same players.
//!
//! How a session runs:
//! 1. It waits until at least `min_parties` are present, and, once a host has joined (a hosted
//!    session), for the host's `Open`; meanwhile a hosted session measures round trips every
//!    [`HOSTED_MEASURE_EVERY`] so the host sees them. Everyone gets the roster whenever a player
//!    or a host joins or leaves, when a round gets ready, and after round trips are measured.
//! 2. Before every round it measures each party's round-trip time: `pings` `Ping`s, `ping_every`
//!    apart. The estimate is the minimum of the last `rtt_window` samples, bounded by the
//!    kernel's own figure for the connection (`TCP_INFO`'s minimum round trip, which comes with
//!    each `Pong` and `Answer`) plus `rtt_slack`, and whatever measured it by
//!    `max_compensation`. A client that holds its `Pong`s gains at most the slack (or the cap).
//! 3. Then a further random wait, uniform in `go_jitter` (in a hosted session, after the host
//!    opens the round, in `hosted_jitter`; the operating system's random source), so nobody can
//!    time an answer to a `Go` they have not seen.
//! 4. `Go` goes to every party present at the same instant (one pass over the channels, all
//!    `try_send`), and that instant is recorded; each connection then reports when it wrote its
//!    own `Go` (`GoWritten`), and a player's reaction counts from there, so in a big room the
//!    order in which the sockets were written decides nothing. A party locked out of this round
//!    is in it but cannot answer.
//! 5. While the round waits, every party still to answer is pinged every [`ANSWER_PING_EVERY`]
//!    (less often in a big room: `config::answer_ping_every`), while fewer than
//!    `ANSWER_PINGS_IN_FLIGHT` of its pings await a `Pong`, so the segment that carries
//!    its `Answer` acknowledges a recent `Ping`, and the kernel's figure read at the `Answer`
//!    measures the answer's own path: a player that delays its own packets (its ACKs, its
//!    `Pong`s, all but its `Answer`) to look farther away is compensated for the path it has, and
//!    named to the host (`flags`), as is one whose round trip went over the cap.
//!    Each party answers once; the round ends when all have, or after `answer_timeout`, or when
//!    a host ends the session. In buzz mode (a host of protocol 6, `buzz` set) each answer joins
//!    the buzz queue in fair order, everyone is told the queue as it changes, the first buzz is
//!    named up once no party still able to buzz could rank before it, and the question ends on
//!    the host's judgement (`Correct`, or `Next`), when nobody can still buzz, or when no host
//!    who judges is left. A party that joined during the round plays from the next (its
//!    roster says so) and is not sent the round's result; one that left is named in the result
//!    as having left, its seat held.
//! 6. The result ranks the valid answers by arrival (kernel receive time of the answer) or by
//!    reaction time (arrival − go − round-trip estimate), as configured; then the false starts;
//!    then those who did not answer. Each party's line says its [`Standing`](crate::protocol::Standing), the round trip used
//!    and its source. In a race the first valid answer scores a point; in buzz mode the queue
//!    comes first, as judged, and the judgements gave the points.
//! 7. Without a host: after `rounds` rounds, or when fewer than `min_parties` remain after a
//!    round, the session ends. With one: when the host ends it, or when everyone has left. Every
//!    party and host gets the final scores with the reason.
//!
//! The rules against modified clients:
//! - **Early buzz.** An `Answer` that arrives while no round is open for the party (after its
//!   result, before the next `Go`, or during a round it is out of) locks it out of the next round
//!   to open: it is shown as `Early` (pressed before that round's `Go`) or `LockedOut` (pressed
//!   during a round it was already out of), scores nothing and loses `early_penalty` points (the
//!   host may change it; scores stop at zero). Each early press moves the lockout
//!   to the round after the one running, so pressing all the time keeps a party out of every
//!   round. An answer that arrives before the party could have seen the last result (within its
//!   round trip of it, plus [`LATE_GRACE`]) was a late answer to that round, and is ignored; so
//!   are two within [`TAP_GRACE`] of the party's own answer (a double tap, a bounce).
//! - **False start** (reaction order). An answer whose reaction time is below `min_reaction`,
//!   or, in either order, that arrived sooner after `Go` than the party's kernel-measured round
//!   trip (physically impossible without guessing), is ranked after every valid answer, scores
//!   nothing and loses `early_penalty` points.
//!
//! Like a round it never awaits a party: every send is a `try_send`, and a party whose channel is
//! full or closed loses its connection to the session (its seat is held, as for a leaver). It must not touch sockets or clocks of arrival:
//! instants and kernel figures come in the events.

mod actor;
mod buzz;
pub mod config;
mod event;
mod party;
mod state;
pub mod text;
pub mod view;

use futures::channel::mpsc;

pub use buzz::{csv_rows, CSV_HEADER};
pub use config::{
    HostedMode, Jitter, Order, SessionConfig, ANSWER_PINGS_IN_FLIGHT, ANSWER_PING_EVERY,
    HOSTED_MEASURE_EVERY, LATE_GRACE, TAP_GRACE,
};
pub use event::{PlayerSeat, Seat, SessionEvent, SessionReport};
pub use text::{fitting_parties, over_text, result_text, scores_text, TEXT_NAMES};
pub use view::{QUEUE_EVERY, ROSTER_EVERY, TOP_PLACES};

use crate::round::Style;
use crate::stop::Stop;
use crate::transcript::Transcript;

/// Players a session seats at most unless the server says otherwise (`--max-players`).
pub const MAX_PLAYERS: usize = 100_000;

impl Default for SessionConfig {
    /// The server's defaults; docs/operations.md says why each is what it is.
    fn default() -> Self {
        use std::time::Duration;
        SessionConfig {
            room: None,
            min_parties: 2,
            rounds: 5,
            order: Order::Arrival,
            answer_timeout: Duration::from_secs(10),
            pings: 5,
            ping_every: Duration::from_millis(20),
            rtt_window: 16,
            go_jitter: Jitter {
                low: Duration::from_secs(1),
                high: Duration::from_secs(4),
            },
            hosted_jitter: Jitter {
                low: Duration::from_millis(500),
                high: Duration::from_millis(3000),
            },
            early_penalty: 1,
            min_reaction: Duration::from_millis(100),
            rtt_slack: Duration::from_millis(5),
            max_compensation: Duration::from_millis(150),
            max_parties: MAX_PLAYERS,
            style: Style::Assignment,
            buzz: true,
        }
    }
}

/// Runs one session to its end; see the module docs.
pub async fn session_loop(
    config: SessionConfig,
    events: mpsc::Receiver<SessionEvent>,
    stop: Stop,
    transcript: Transcript,
) -> SessionReport {
    actor::Actor::new(config, events, &stop, transcript)
        .run()
        .await
}

#[cfg(test)]
mod tests;
