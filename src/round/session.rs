//! A quiz session: parties that stay in a room for many rounds, with scores, and an order that
//! is fair across unequal networks and against modified clients.
//!
//! Owns one session's state: who is present, each party's round-trip figures, the current
//! round's answers, lockouts, the running scores, and its hosts. It is one task
//! ([`session_loop`]) fed by [`SessionEvent`]s; it answers each party through its outbox with
//! the session's [`Outbound`] events (`Admitted`, `Roster`, `Ping`, `Go`, `Early`,
//! `RoundResult`, `SessionOver`), which the framed and WebSocket wires send as the frames of
//! the client's protocol version. The lobby routes `Join`s (players and hosts) to the session of
//! their room.
//!
//! How a session runs:
//! 1. It waits until at least `min_parties` are present, and, once a host has joined (a hosted
//!    session), for the host's `Open`; meanwhile a hosted session measures round trips every
//!    [`HOSTED_MEASURE_EVERY`] so the host sees them. Everyone gets the roster whenever a player
//!    or a host joins or leaves, when a round gets ready, and after round trips are measured.
//! 2. Before every round it measures each party's round-trip time: `pings` `Ping`s, `ping_every`
//!    apart. The estimate is the minimum of the last `rtt_window` samples, bounded by the
//!    kernel's own figure for the connection (`TCP_INFO`'s minimum round trip, which comes with
//!    each `Pong` and `Answer`) plus `rtt_slack`; where the kernel gives none, by
//!    `max_compensation`. A client that holds its `Pong`s gains at most the slack (or the cap).
//! 3. Then, unless a host decides when, a further random wait, uniform in `go_jitter` (the
//!    operating system's random source), so nobody can time an answer to a `Go` they have not
//!    seen.
//! 4. `Go` goes to every party present at the same instant (one pass over the channels, all
//!    `try_send`), and that instant is recorded. A party locked out of this round is in it but
//!    cannot answer.
//! 5. Each party answers once; the round ends when all have, or after `answer_timeout`, or when
//!    a host ends the session. A party that joined during the round plays from the next (its
//!    roster says so) and is not sent the round's result; one that left is named in the result
//!    as having left, then dropped.
//! 6. The result ranks the valid answers by arrival (kernel receive time of the answer) or by
//!    reaction time (arrival − go − round-trip estimate), as configured; then the false starts;
//!    then those who did not answer. Each party's line says its [`Standing`], the round trip used
//!    and its source. The first valid answer scores a point.
//! 7. Without a host: after `rounds` rounds, or when fewer than `min_parties` remain after a
//!    round, the session ends. With one: when the host ends it, or when everyone has left. Every
//!    party and host gets the final scores with the reason.
//!
//! The rules against modified clients:
//! - **Early buzz.** An `Answer` that arrives while no round is open for the party (after its
//!   result, before the next `Go`, or during a round it is out of) locks it out of the next round
//!   to open: it is shown as `Early` (pressed before that round's `Go`) or `LockedOut` (pressed
//!   during a round it was already out of) and scores nothing. Each early press moves the lockout
//!   to the round after the one running, so pressing all the time keeps a party out of every
//!   round. An answer that arrives before the party could have seen the last result (within its
//!   round trip of it, plus [`LATE_GRACE`]) was a late answer to that round, and is ignored.
//! - **False start** (reaction order). An answer whose reaction time is below `min_reaction`,
//!   or, in either order, that arrived sooner after `Go` than the party's kernel-measured round
//!   trip (physically impossible without guessing), is ranked after every valid answer and scores
//!   nothing.
//!
//! Like a round it never awaits a party: every send is a `try_send`, and a party whose channel is
//! full or closed is dropped from the session. It must not touch sockets or clocks of arrival:
//! instants and kernel figures come in the events.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};

use super::{ConnId, Outbound, Outbox, Style};
use crate::protocol::{
    Change, ErrorKind, Member, OverReason, Placing, Roster, RttSource, Score, Standing,
};
use crate::rt;
use crate::stop::Stop;
use crate::transcript::Transcript;

/// How long after a party could have seen a round's result an answer still counts as a late
/// answer to that round rather than an early buzz: scheduling noise on either side.
pub const LATE_GRACE: Duration = Duration::from_millis(20);

impl std::str::FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Order, String> {
        match s {
            "arrival" => Ok(Order::Arrival),
            "reaction" => Ok(Order::Reaction),
            _ => Err(format!("`{s}` is not an order (arrival, reaction)")),
        }
    }
}

/// How a session ranks the answers of a round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// By when each answer reached the server: the assignment's meaning.
    #[default]
    Arrival,
    /// By reaction time: arrival − go − the party's round-trip estimate.
    Reaction,
}

/// A range of durations `Go` is delayed by, drawn uniformly (`1s..4s`; `0` for none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Jitter {
    pub low: Duration,
    pub high: Duration,
}

impl Jitter {
    /// No random wait.
    pub const NONE: Jitter = Jitter {
        low: Duration::ZERO,
        high: Duration::ZERO,
    };

    /// A draw from the operating system's random source. Should it fail, the middle of the
    /// range: still unknown to clients that do not know the range.
    pub fn draw(&self) -> Duration {
        let span = self.high.saturating_sub(self.low);
        if span.is_zero() {
            return self.low;
        }
        let nanos = span.as_nanos().min(u128::from(u64::MAX)) as u64;
        let offset = match getrandom::u64() {
            Ok(r) => r % (nanos + 1),
            Err(e) => {
                log::error!("no random number for the go jitter: {e}");
                nanos / 2
            }
        };
        self.low + Duration::from_nanos(offset)
    }
}

impl std::str::FromStr for Jitter {
    type Err = String;
    /// `1s..4s`, `500ms..2s`, or one duration for a fixed wait (`0` for none).
    fn from_str(s: &str) -> Result<Jitter, String> {
        let parse = |d: &str| crate::cli::parse_seconds(d.trim());
        let (low, high) = match s.split_once("..") {
            Some((low, high)) => (parse(low)?, parse(high)?),
            None => {
                let d = parse(s)?;
                (d, d)
            }
        };
        if low > high {
            return Err(format!("`{s}`: the range's low end is above its high end"));
        }
        Ok(Jitter { low, high })
    }
}

impl std::fmt::Display for Jitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}..{:?}", self.low, self.high)
    }
}

/// How a session is set up.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub room: Option<String>,
    pub min_parties: usize,
    /// Rounds before the session ends.
    pub rounds: u64,
    pub order: Order,
    pub answer_timeout: Duration,
    /// Pings before each round, and the gap between them.
    pub pings: u32,
    pub ping_every: Duration,
    /// Round-trip samples a party's estimate is the minimum of.
    pub rtt_window: usize,
    /// After the pings, `Go` waits a further random time in this range.
    pub go_jitter: Jitter,
    /// Reaction order: an answer with a reaction time below this is a false start (zero: off).
    pub min_reaction: Duration,
    /// How far a party's round-trip estimate may exceed the kernel's figure for its connection.
    pub rtt_slack: Duration,
    /// The most a round-trip estimate may be where the kernel gives no figure.
    pub max_compensation: Duration,
    /// Parties a session holds at most: by default [`fitting_parties`], the most whose results
    /// fit one frame with the longest names allowed.
    pub max_parties: usize,
    /// What the session prints: each round's result and the final scores (nothing when quiet).
    pub style: Style,
}

impl Default for SessionConfig {
    /// The server's defaults; docs/operations.md says why each is what it is.
    fn default() -> Self {
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
            min_reaction: Duration::from_millis(100),
            rtt_slack: Duration::from_millis(5),
            max_compensation: Duration::from_millis(150),
            max_parties: fitting_parties(),
            style: Style::Assignment,
        }
    }
}

/// How often a hosted session that waits for its host's `Open` measures round trips and sends
/// the roster, so the host sees every player's figure before it opens a round.
pub const HOSTED_MEASURE_EVERY: Duration = Duration::from_secs(2);

/// A party whose connection has left this many pings unanswered for longer than
/// [`STALE_AFTER`] has lost it (a phone that slept, say): a new connection under its name takes
/// its seat and points instead of being refused the name.
pub const STALE_PINGS: usize = 2;
pub const STALE_AFTER: Duration = Duration::from_secs(1);

/// Who joins a session: a player under its name, or a host (whose key the connection checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seat {
    Player(String),
    Host,
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
    /// A party answered `Ping { seq }`; `at` is when its `Pong` arrived, `kernel_rtt` the
    /// kernel's minimum round trip for the connection then (`None` where it gives none).
    Pong {
        id: ConnId,
        seq: u32,
        at: Instant,
        kernel_rtt: Option<Duration>,
    },
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
    pub rounds: u64,
    pub scores: Vec<Score>,
}

struct Party {
    id: ConnId,
    name: String,
    reply: Outbox,
    /// Recent round-trip samples, newest last.
    rtts: VecDeque<Duration>,
    /// Pings sent and not yet answered: (seq, when sent).
    pings: Vec<(u32, Instant)>,
    /// The kernel's latest minimum round trip for the connection.
    kernel_rtt: Option<Duration>,
    points: u64,
    /// Present at the current round's `Go` (and so in its result).
    in_round: bool,
    /// Out of the current round, and why.
    out: Option<Standing>,
    answer: Option<Instant>,
    /// The round this party is locked out of, and how it will be shown.
    locked: Option<(u64, Standing)>,
    /// Answers arriving before this are late answers to the last round, not early buzzes.
    late_until: Option<Instant>,
    /// The first round it plays in.
    from_round: u64,
    /// Left during the open round: kept, and named in its result, until the round closes.
    gone: bool,
}

impl Party {
    /// The round trip used to compensate this party, and its source.
    fn rtt(&self, config: &SessionConfig) -> (Option<Duration>, RttSource) {
        let pinged = self.rtts.iter().min().copied();
        match (self.kernel_rtt, pinged) {
            (Some(kernel), pinged) => {
                let bound = kernel + config.rtt_slack;
                (
                    Some(pinged.map_or(kernel, |p| p.min(bound))),
                    RttSource::Kernel,
                )
            }
            (None, Some(p)) => (Some(p.min(config.max_compensation)), RttSource::Ping),
            (None, None) => (None, RttSource::None),
        }
    }

    /// Its connection has stopped answering: at least [`STALE_PINGS`] pings unanswered for more
    /// than [`STALE_AFTER`]. A live client answers in a round trip.
    fn unresponsive(&self, now: Instant) -> bool {
        let old = |&&(_, sent): &&(u32, Instant)| now.saturating_duration_since(sent) > STALE_AFTER;
        self.pings.iter().filter(old).count() >= STALE_PINGS
    }

    fn note_kernel(&mut self, kernel_rtt: Option<Duration>) {
        if kernel_rtt.is_some() {
            self.kernel_rtt = kernel_rtt;
        }
    }
}

struct Session {
    config: SessionConfig,
    parties: Vec<Party>,
    /// Hosts: they see the roster, every `Go` and every result, and open and end rounds.
    hosts: Vec<(ConnId, Outbox)>,
    /// A host has joined: rounds open on its word, not by themselves.
    hosted: bool,
    /// A host asked to open a round, or to end the session.
    open_asked: bool,
    finish_asked: bool,
    next_seq: u32,
    /// The last round to have started (0 before the first).
    round: u64,
    /// When the running round's `Go` was sent; `None` between rounds.
    go: Option<Instant>,
}

/// What woke the session.
enum Wake {
    Event(Option<SessionEvent>),
    Timer,
    Stop,
}

impl Session {
    /// Handles one event; joins are admitted at any time, playing from the next round.
    fn handle(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Join {
                id,
                seat: Seat::Host,
                mut reply,
                admitted,
            } => {
                if admitted.send(Ok(())).is_ok() {
                    let _ = reply.try_send(Outbound::Admitted);
                    self.hosts.push((id, reply));
                    self.hosted = true;
                    self.tell_roster(Change::HostJoined);
                }
            }
            SessionEvent::Join {
                id,
                seat: Seat::Player(name),
                reply,
                admitted,
            } => {
                let now = Instant::now();
                // A seat whose connection has stopped answering is free to its name again (a
                // phone that slept and lost its connection), with its points.
                let holder = self.parties.iter().position(|p| !p.gone && p.name == name);
                let stale = holder.filter(|&i| self.parties[i].unresponsive(now));
                let present = self.parties.iter().filter(|p| !p.gone).count();
                let verdict = if holder.is_some() && stale.is_none() {
                    Err((
                        ErrorKind::InvalidName,
                        format!(
                            "the name {name} is taken in this session (if it was yours, on a \
                             connection that was lost, join again in a few seconds)"
                        ),
                    ))
                } else if stale.is_none() && present >= self.config.max_parties {
                    Err((
                        ErrorKind::RoundFull,
                        format!(
                            "the session in this room is full: {} players, the most whose \
                             results fit one frame",
                            self.config.max_parties
                        ),
                    ))
                } else {
                    Ok(())
                };
                let free = verdict.is_ok();
                if admitted.send(verdict).is_ok() && free {
                    let points = stale.map_or(0, |i| self.vacate(i));
                    let mut reply = reply;
                    // Like a round, the session answers the handshake once it takes the party.
                    let _ = reply.try_send(Outbound::Admitted);
                    self.parties.push(Party {
                        id,
                        name: name.clone(),
                        reply,
                        rtts: VecDeque::new(),
                        pings: Vec::new(),
                        kernel_rtt: None,
                        points,
                        in_round: false,
                        out: None,
                        answer: None,
                        locked: None,
                        late_until: None,
                        from_round: self.round + 1,
                        gone: false,
                    });
                    self.tell_roster(Change::Joined { name });
                }
            }
            SessionEvent::Open { id } => {
                if self.hosts.iter().any(|(h, _)| *h == id) && self.go.is_none() {
                    self.open_asked = true;
                }
            }
            SessionEvent::Finish { id } => {
                if self.hosts.iter().any(|(h, _)| *h == id) {
                    self.finish_asked = true;
                }
            }
            SessionEvent::Pong {
                id,
                seq,
                at,
                kernel_rtt,
            } => {
                let window = self.config.rtt_window;
                if let Some(p) = self.parties.iter_mut().find(|p| p.id == id) {
                    p.note_kernel(kernel_rtt);
                    if let Some(i) = p.pings.iter().position(|&(s, _)| s == seq) {
                        let (_, sent) = p.pings.swap_remove(i);
                        p.rtts.push_back(at.saturating_duration_since(sent));
                        while p.rtts.len() > window.max(1) {
                            p.rtts.pop_front();
                        }
                    }
                }
            }
            SessionEvent::Answer { id, at, kernel_rtt } => {
                let (go, next) = (self.go, self.round + 1);
                let Some(p) = self.parties.iter_mut().find(|p| p.id == id) else {
                    return;
                };
                p.note_kernel(kernel_rtt);
                if let Some(go) = go.filter(|_| p.in_round && p.out.is_none()) {
                    if p.answer.is_some() {
                        // A second press in a round answered: nothing to decide.
                    } else if at < go {
                        // Received before the go it answers, handled after: pressed early.
                        p.out = Some(Standing::Early);
                        let _ = p.reply.try_send(Outbound::Early { round: next - 1 });
                    } else {
                        p.answer = Some(at);
                    }
                    return;
                }
                let open = go.is_some();
                if p.late_until.is_some_and(|late| at < late) {
                    return;
                }
                // An early buzz: out of the next round to open.
                let standing = if open {
                    Standing::LockedOut
                } else {
                    Standing::Early
                };
                if p.locked.is_none_or(|(round, _)| round != next) {
                    p.locked = Some((next, standing));
                    let _ = p.reply.try_send(Outbound::Early { round: next });
                }
            }
            SessionEvent::Left { id } => {
                if let Some(i) = self.hosts.iter().position(|(h, _)| *h == id) {
                    self.hosts.swap_remove(i);
                    if self.hosts.is_empty() {
                        self.tell_roster(Change::HostLeft);
                    }
                    return;
                }
                let round = self.go.map_or(0, |_| self.round);
                let Some(p) = self.parties.iter_mut().find(|p| p.id == id && !p.gone) else {
                    return;
                };
                let name = p.name.clone();
                if round != 0 && p.in_round {
                    // Named in the round's result as having left, then dropped.
                    p.gone = true;
                } else {
                    self.parties.retain(|p| p.id != id);
                }
                self.tell_roster(Change::Left { name, round });
            }
        }
    }

    /// Frees the seat of party `i`, whose connection stopped answering, for a new connection
    /// under its name; returns its points, which the new one keeps. The old connection is told
    /// why; a party in the open round stays in it, as having left.
    fn vacate(&mut self, i: usize) -> u64 {
        let p = &mut self.parties[i];
        let _ = p.reply.try_send(Outbound::ended(
            ErrorKind::Protocol,
            "a new connection took this seat: it had stopped answering",
        ));
        let points = std::mem::take(&mut p.points);
        if self.go.is_some() && p.in_round {
            p.gone = true;
        } else {
            self.parties.remove(i);
        }
        points
    }

    /// Sends `out(party)` to every party present; drops those that cannot take it.
    fn send_all(&mut self, mut out: impl FnMut(&Party) -> Outbound) {
        self.parties.retain_mut(|p| {
            if p.gone {
                return true;
            }
            let event = out(p);
            p.reply.try_send(event).is_ok()
        });
    }

    /// Sends `event()` to every host; drops those that cannot take it.
    fn send_hosts(&mut self, mut event: impl FnMut() -> Outbound) {
        self.hosts
            .retain_mut(|(_, reply)| reply.try_send(event()).is_ok());
    }

    /// Everyone but a party that is gone: players and hosts.
    fn everyone(&mut self, event: impl Fn() -> Outbound) {
        self.send_all(|_| event());
        self.send_hosts(&event);
    }

    /// The session as a roster, with `change` as the reason it is sent.
    fn roster(&self, change: Change) -> Roster {
        Roster {
            round: self.round,
            open: self.go.is_some(),
            needed: u32::try_from(self.config.min_parties).unwrap_or(u32::MAX),
            hosted: self.hosted,
            answer_micros: self.config.answer_timeout.as_micros() as u64,
            players: self
                .parties
                .iter()
                .filter(|p| !p.gone)
                .map(|p| {
                    let (rtt, rtt_source) = p.rtt(&self.config);
                    Member {
                        name: p.name.clone(),
                        rtt_micros: rtt.map(|d| d.as_micros() as u64),
                        rtt_source,
                        points: p.points,
                        from_round: p.from_round,
                    }
                })
                .collect(),
            change,
        }
    }

    /// Tells everyone the roster, with `change` as the reason (one shared copy for all).
    fn tell_roster(&mut self, change: Change) {
        let roster = Arc::new(self.roster(change));
        self.everyone(|| Outbound::Roster(Arc::clone(&roster)));
    }

    /// A hosted session nobody is left in: nobody to wait for.
    fn deserted(&self) -> bool {
        self.hosted && self.hosts.is_empty() && self.parties.is_empty()
    }

    fn ping_all(&mut self) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let sent = Instant::now();
        for p in &mut self.parties {
            p.pings.push((seq, sent));
            // Unanswered pings are forgotten after a while; they bound nothing else.
            if p.pings.len() > 64 {
                p.pings.remove(0);
            }
        }
        self.send_all(|_| Outbound::Ping { seq, sent });
    }

    /// Opens round `self.round + 1` with its `Go` sent at `go`: who is in it, who is out of it.
    fn open_round(&mut self, go: Instant) -> u64 {
        self.round += 1;
        self.go = Some(go);
        let round = self.round;
        for p in &mut self.parties {
            p.in_round = true;
            p.answer = None;
            p.late_until = None;
            p.out = match p.locked {
                Some((r, standing)) if r == round => Some(standing),
                _ => None,
            };
            if p.locked.is_some_and(|(r, _)| r <= round) {
                p.locked = None;
            }
        }
        round
    }

    /// Some party in the round can still answer.
    fn waiting_for_answers(&self) -> bool {
        self.parties
            .iter()
            .any(|p| p.in_round && !p.gone && p.out.is_none() && p.answer.is_none())
    }

    /// Closes the round whose result was sent at `sent`: answers that arrive before a party
    /// could have seen it are late, not early.
    fn close_round(&mut self, sent: Instant) {
        self.go = None;
        self.parties.retain(|p| !p.gone);
        for p in &mut self.parties {
            if p.in_round {
                let (rtt, _) = p.rtt(&self.config);
                let rtt = rtt.unwrap_or(self.config.max_compensation);
                p.late_until = Some(sent + rtt + LATE_GRACE);
            }
            p.in_round = false;
            p.out = None;
        }
    }

    fn scores(&self) -> Vec<Score> {
        let mut scores: Vec<Score> = self
            .parties
            .iter()
            .filter(|p| !p.gone)
            .map(|p| Score {
                name: p.name.clone(),
                points: p.points,
            })
            .collect();
        scores.sort_by(|a, b| b.points.cmp(&a.points).then_with(|| a.name.cmp(&b.name)));
        scores
    }

    /// The round's result in the configured order; scores the first valid answer.
    fn result(&mut self, go: Instant) -> Vec<Placing> {
        let config = &self.config;
        // (false start, key, party, placing) for the answers; the rest in party order.
        let mut answered: Vec<(bool, i128, usize, Placing)> = Vec::new();
        let mut silent = Vec::new();
        for (i, p) in self.parties.iter().enumerate().filter(|(_, p)| p.in_round) {
            let (rtt, rtt_source) = p.rtt(config);
            let rtt_micros = rtt.map(|d| d.as_micros() as u64);
            let mut placing = Placing {
                name: p.name.clone(),
                standing: Standing::NoAnswer,
                after_go_micros: None,
                rtt_micros,
                rtt_source,
                reaction_micros: None,
            };
            let at = match (p.out, p.answer) {
                (Some(standing), _) => {
                    placing.standing = standing;
                    silent.push(placing);
                    continue;
                }
                (None, None) => {
                    if p.gone {
                        placing.standing = Standing::Left;
                    }
                    silent.push(placing);
                    continue;
                }
                (None, Some(at)) => at,
            };
            let after = at.saturating_duration_since(go);
            let after_micros = after.as_micros() as i128;
            let reaction = rtt_micros.map(|r| after_micros - i128::from(r));
            let impossible = p.kernel_rtt.is_some_and(|k| after < k);
            let too_quick = config.order == Order::Reaction
                && !config.min_reaction.is_zero()
                && reaction.unwrap_or(after_micros) < config.min_reaction.as_micros() as i128;
            let false_start = impossible || too_quick;
            let key = match config.order {
                Order::Reaction => reaction.unwrap_or(after_micros),
                Order::Arrival => after_micros,
            };
            placing.standing = if false_start {
                Standing::FalseStart
            } else {
                Standing::Answered
            };
            placing.after_go_micros = Some(after_micros as u64);
            placing.reaction_micros = reaction.map(|r| r as i64);
            answered.push((false_start, key, i, placing));
        }
        answered.sort_by_key(|&(false_start, key, i, _)| (false_start, key, i));
        if let Some(&(false, _, first, _)) = answered.first() {
            self.parties[first].points += 1;
        }
        answered
            .into_iter()
            .map(|(_, _, _, placing)| placing)
            .chain(silent)
            .collect()
    }
}

/// Names a result's sentence lists in each part; the rest are counted (`and 12 more`). The
/// structured order lists everyone; the sentence is for people, and keeps a big session's
/// result within one frame.
pub const TEXT_NAMES: usize = 8;

/// Joins `items` with `sep`, listing at most [`TEXT_NAMES`] and counting the rest.
fn listed(items: Vec<String>, sep: &str) -> String {
    let more = items.len().saturating_sub(TEXT_NAMES);
    let mut text = items
        .into_iter()
        .take(TEXT_NAMES)
        .collect::<Vec<_>>()
        .join(sep);
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// The most parties whose every result (and final scores) fits one frame, each with the longest
/// name allowed (64 characters of 4 bytes) and the widest figures: computed once, from the
/// encoding itself.
pub fn fitting_parties() -> usize {
    static FITTING: OnceLock<usize> = OnceLock::new();
    *FITTING.get_or_init(|| {
        let size = |n: usize| {
            let outcome = worst_result(n);
            let v2 = crate::protocol::Frame::Result(Box::new(outcome.to_v2()));
            let v3 = crate::protocol::Frame::Outcome(Box::new(outcome));
            [v2, v3]
                .iter()
                .map(|f| crate::protocol::encode(f).map_or(usize::MAX, |b| b.len()))
                .max()
                .unwrap_or(usize::MAX)
        };
        // Sizes grow with n; the largest n that fits.
        let (mut fits, mut too_many) = (1, 2);
        while size(too_many) != usize::MAX {
            fits = too_many;
            too_many *= 2;
        }
        while too_many - fits > 1 {
            let mid = (fits + too_many) / 2;
            if size(mid) == usize::MAX {
                too_many = mid;
            } else {
                fits = mid;
            }
        }
        fits
    })
}

/// The largest result `n` parties can have: the longest names, the widest figures, and every
/// kind of standing, so the sentence has all its parts, each as long as it gets.
pub(crate) fn worst_result(n: usize) -> crate::protocol::RoundOutcome {
    let name = "\u{1F980}".repeat(crate::names::MAX_NAME_CHARS);
    let standings = [
        Standing::Answered,
        Standing::FalseStart,
        Standing::Early,
        Standing::LockedOut,
        Standing::NoAnswer,
        Standing::Left,
    ];
    let order: Vec<Placing> = (0..n)
        .map(|i| Placing {
            name: name.clone(),
            standing: standings[(i / TEXT_NAMES.max(1)) % standings.len()],
            after_go_micros: Some(u64::from(u32::MAX) * 1000),
            rtt_micros: Some(u64::MAX),
            rtt_source: RttSource::Kernel,
            reaction_micros: Some(i64::MIN),
        })
        .collect();
    let scores = (0..n)
        .map(|_| Score {
            name: name.clone(),
            points: u64::MAX,
        })
        .collect();
    crate::protocol::RoundOutcome {
        round: u64::MAX,
        text: result_text(u64::MAX, &order, Order::Reaction),
        order,
        scores,
    }
}

/// `Round 3: Ann 152.3 ms before Ben 170.1 ms (reaction times); false start: Cid 40.2 ms;
/// too early: Dan; locked out: Eve; Fay did not answer`. A party ranked by arrival for lack of a
/// round-trip figure is marked `*`.
pub fn result_text(round: u64, order: &[Placing], by: Order) -> String {
    let ms = |us: i64| format!("{:.1} ms", us as f64 / 1000.0);
    let figure = |p: &Placing| match (by, p.reaction_micros) {
        (Order::Reaction, Some(reaction)) => format!("{} {}", p.name, ms(reaction)),
        (Order::Reaction, None) => {
            format!("{} {}*", p.name, ms(p.after_go_micros.unwrap_or(0) as i64))
        }
        (Order::Arrival, _) => format!("{} {}", p.name, ms(p.after_go_micros.unwrap_or(0) as i64)),
    };
    let of = |standing: Standing| order.iter().filter(move |p| p.standing == standing);
    let answered: Vec<String> = of(Standing::Answered).map(figure).collect();
    let false_starts: Vec<String> = of(Standing::FalseStart).map(figure).collect();
    let mut text = format!("Round {round}: ");
    if answered.is_empty() && false_starts.is_empty() {
        text.push_str("nobody answered");
    } else if answered.is_empty() {
        text.push_str("no valid answer");
    } else {
        text.push_str(&listed(answered, " before "));
        text.push_str(match by {
            Order::Arrival => " (arrival after go)",
            Order::Reaction => " (reaction times)",
        });
    }
    if !false_starts.is_empty() {
        text.push_str(&format!("; false start: {}", listed(false_starts, ", ")));
    }
    for (standing, words) in [
        (Standing::Early, "too early"),
        (Standing::LockedOut, "locked out"),
    ] {
        let names: Vec<String> = of(standing).map(|p| p.name.clone()).collect();
        if !names.is_empty() {
            text.push_str(&format!("; {words}: {}", listed(names, ", ")));
        }
    }
    let silent: Vec<String> = of(Standing::NoAnswer).map(|p| p.name.clone()).collect();
    if !silent.is_empty() {
        text.push_str(&format!("; {} did not answer", listed(silent, ", ")));
    }
    let left: Vec<String> = of(Standing::Left).map(|p| p.name.clone()).collect();
    if !left.is_empty() {
        text.push_str(&format!("; {} left during the round", listed(left, ", ")));
    }
    text
}

/// `Session over after 3 rounds (the host ended it). Final scores: Ann 2, Ben 1`, or, for a
/// session that played no round, why it ended and no scores.
pub fn over_text(why: OverReason, rounds: u64, scores: &[Score]) -> String {
    match rounds {
        0 => format!("Session over before its first round: {}", why.describe()),
        1 => format!(
            "Session over after 1 round ({}). {}",
            why.describe(),
            scores_text(scores)
        ),
        n => format!(
            "Session over after {n} rounds ({}). {}",
            why.describe(),
            scores_text(scores)
        ),
    }
}

/// `Final scores: Ann 3, Ben 1, Dot 1`.
pub fn scores_text(scores: &[Score]) -> String {
    let list: Vec<String> = scores
        .iter()
        .map(|s| format!("{} {}", s.name, s.points))
        .collect();
    format!("Final scores: {}", list.join(", "))
}

/// Runs one session to its end; see the module docs.
pub async fn session_loop(
    config: SessionConfig,
    mut events: mpsc::Receiver<SessionEvent>,
    stop: Stop,
    transcript: Transcript,
) -> SessionReport {
    let (room, style) = (config.room.clone(), config.style);
    let say = move |line: String| {
        let room = room.as_deref().unwrap_or("-");
        match style {
            Style::Assignment => transcript.line(format!("Session [{room}] {line}")),
            Style::Summary => transcript.stamped(format!("Session [{room}] {line}")),
            Style::Quiet => {}
        }
    };
    let mut session = Session {
        config,
        parties: Vec::new(),
        hosts: Vec::new(),
        hosted: false,
        open_asked: false,
        finish_asked: false,
        next_seq: 0,
        round: 0,
        go: None,
    };
    let stopped = stop.wait().fuse();
    futures::pin_mut!(stopped);
    // Waits for the next event, the timer at `until` (if any), or the stop.
    macro_rules! wake {
        ($until:expr) => {{
            let until: Option<Instant> = $until;
            let timer = async move {
                match until {
                    Some(t) => rt::sleep(t.saturating_duration_since(Instant::now())).await,
                    None => futures::future::pending().await,
                }
            };
            futures::select_biased! {
                () = stopped => Wake::Stop,
                e = events.next() => Wake::Event(e),
                () = timer.fuse() => Wake::Timer,
            }
        }};
    }
    // Handles events until `until`; false if the session must end (its senders gone, or the
    // stop) first.
    macro_rules! wait_until {
        ($until:expr) => {{
            let until: Instant = $until;
            loop {
                match wake!(Some(until)) {
                    Wake::Event(Some(e)) => session.handle(e),
                    Wake::Timer => break true,
                    Wake::Event(None) | Wake::Stop => break false,
                }
            }
        }};
    }
    let why = 'session: loop {
        // Gather: enough players and, in a hosted session, the host's word. Meanwhile a hosted
        // session keeps its players' round trips fresh for the host to see.
        let mut measure: Option<Instant> = None;
        loop {
            if session.finish_asked {
                break 'session OverReason::HostEnded;
            }
            if session.deserted() {
                break 'session OverReason::TooFewPlayers;
            }
            let enough = session.parties.len() >= session.config.min_parties;
            if enough && (!session.hosted || session.open_asked) {
                break;
            }
            if !(enough && session.hosted) {
                measure = None;
            } else if measure.is_none() {
                measure = Some(Instant::now());
            }
            match wake!(measure) {
                Wake::Event(Some(e)) => session.handle(e),
                Wake::Timer => {
                    // The last batch's figures, then the next batch.
                    session.tell_roster(Change::Update);
                    session.ping_all();
                    measure = Some(Instant::now() + HOSTED_MEASURE_EVERY);
                }
                Wake::Event(None) | Wake::Stop => break 'session OverReason::ServerStopping,
            }
        }
        session.open_asked = false;
        // Measure round trips.
        session.tell_roster(Change::Ready {
            round: session.round + 1,
        });
        for _ in 0..session.config.pings {
            session.ping_all();
            if !wait_until!(Instant::now() + session.config.ping_every) {
                break 'session OverReason::ServerStopping;
            }
        }
        session.tell_roster(Change::Update);
        // Then, unless a host decides when, a wait nobody can predict.
        let jitter = if session.hosted {
            Duration::ZERO
        } else {
            session.config.go_jitter.draw()
        };
        if !wait_until!(Instant::now() + jitter) {
            break 'session OverReason::ServerStopping;
        }
        if session.finish_asked {
            break 'session OverReason::HostEnded;
        }
        if session.parties.len() < session.config.min_parties {
            continue;
        }
        // Go, to everyone at once.
        let go = Instant::now();
        let round = session.open_round(go);
        session.everyone(|| Outbound::Go { round, sent: go });
        let until = go + session.config.answer_timeout;
        while session.waiting_for_answers() && !session.finish_asked {
            match wake!(Some(until)) {
                Wake::Event(Some(e)) => session.handle(e),
                Wake::Timer => break,
                Wake::Event(None) | Wake::Stop => break 'session OverReason::ServerStopping,
            }
        }
        let order = session.result(go);
        let scores = session.scores();
        let text = result_text(round, &order, session.config.order);
        say(text.clone());
        let result = Arc::new(super::RoundResult {
            round,
            text,
            order,
            scores,
        });
        // To those who played it and the hosts: a late joiner was told it plays from the next.
        session.parties.retain_mut(|p| {
            p.gone
                || !p.in_round
                || p.reply
                    .try_send(Outbound::RoundResult(Arc::clone(&result)))
                    .is_ok()
        });
        session.send_hosts(|| Outbound::RoundResult(Arc::clone(&result)));
        session.close_round(Instant::now());
        if session.finish_asked {
            break OverReason::HostEnded;
        }
        if !session.hosted {
            if round >= session.config.rounds {
                break OverReason::LastRound;
            }
            if session.parties.len() < session.config.min_parties {
                break OverReason::TooFewPlayers;
            }
        }
    };
    let round = session.round;
    let scores = session.scores();
    // `Session [quiz] over after ...`: the transcript names the session already.
    let over = over_text(why, round, &scores);
    say(over.trim_start_matches("Session ").to_owned());
    let shared: Arc<[Score]> = scores.clone().into();
    session.everyone(|| Outbound::SessionOver {
        why,
        rounds: round,
        scores: Arc::clone(&shared),
    });
    SessionReport {
        rounds: round,
        scores,
    }
}

#[cfg(test)]
mod tests;
