//! A quiz session: parties that stay in a room for many rounds, with scores, and an order that
//! can be fair across unequal networks (issue 12).
//!
//! Owns one session's state: who is present, each party's round-trip-time samples, the current
//! round's answers and the running scores. It is one task ([`session_loop`]) fed by
//! [`SessionEvent`]s; it answers each party through its outbox with the session's
//! [`Outbound`] events (`Admitted`, `Ping`, `Go`, `RoundResult`, `SessionOver`), which the framed
//! wire sends as protocol 2's frames. The lobby routes protocol-2 `Join`s to the session of
//! their room.
//!
//! How a session runs:
//! 1. It waits until at least `min_parties` are present.
//! 2. Before every round it measures each party's round-trip time: `pings` `Ping`s, `ping_every`
//!    apart; a party's estimate is the minimum of its last `rtt_window` samples, so queueing
//!    noise does not inflate it.
//! 3. `Go` goes to every party present at the same instant (one pass over the channels, all
//!    `try_send`), and that instant is recorded.
//! 4. Each party answers once; the round ends when all have, or after `answer_timeout`. A party
//!    that joined during the round plays from the next; one that left is dropped.
//! 5. The result orders the answers by arrival (kernel receive time of the answer) or by
//!    reaction time (arrival − go − round-trip estimate), as configured; the result carries both,
//!    with each party's estimate, so a party can see why. A party with no estimate yet is ranked
//!    by arrival and flagged. The first in the chosen order scores a point.
//! 6. After `rounds` rounds, or when fewer than `min_parties` remain after a round, every party
//!    gets the final scores and the session ends.
//!
//! Like a round it never awaits a party: every send is a `try_send`, and a party whose channel is
//! full or closed is dropped from the session. It must not touch sockets or clocks of arrival:
//! instants come in the events.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};

use super::{ConnId, Outbound, Outbox, Style};
use crate::protocol::{Reaction, Score};
use crate::rt;
use crate::stop::Stop;
use crate::transcript::Transcript;

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
    /// What the session prints: each round's result and the final scores (nothing when quiet).
    pub style: Style,
}

impl Default for SessionConfig {
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
            style: Style::Assignment,
        }
    }
}

/// What the connections of a session tell it.
#[derive(Debug)]
pub enum SessionEvent {
    /// A party asks to join as `name`; `admitted` is told whether it may (names are unique in a
    /// session).
    Join {
        id: ConnId,
        name: String,
        reply: Outbox,
        admitted: oneshot::Sender<bool>,
    },
    /// A party answered `Ping { seq }`; `at` is when its `Pong` arrived.
    Pong { id: ConnId, seq: u32, at: Instant },
    /// A party answered the current round; `at` is when the answer arrived.
    Answer { id: ConnId, at: Instant },
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
    points: u64,
    /// Playing the current round (present at its `Go`).
    playing: bool,
    answer: Option<Instant>,
}

impl Party {
    fn rtt(&self) -> Option<Duration> {
        self.rtts.iter().min().copied()
    }
}

struct Session {
    config: SessionConfig,
    parties: Vec<Party>,
    next_seq: u32,
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
                name,
                reply,
                admitted,
            } => {
                let free = !self.parties.iter().any(|p| p.name == name);
                if admitted.send(free).is_ok() && free {
                    let mut reply = reply;
                    // Like a round, the session answers the handshake once it takes the party.
                    let _ = reply.try_send(Outbound::Admitted);
                    self.parties.push(Party {
                        id,
                        name,
                        reply,
                        rtts: VecDeque::new(),
                        pings: Vec::new(),
                        points: 0,
                        playing: false,
                        answer: None,
                    });
                }
            }
            SessionEvent::Pong { id, seq, at } => {
                let window = self.config.rtt_window;
                if let Some(p) = self.parties.iter_mut().find(|p| p.id == id) {
                    if let Some(i) = p.pings.iter().position(|&(s, _)| s == seq) {
                        let (_, sent) = p.pings.swap_remove(i);
                        p.rtts.push_back(at.saturating_duration_since(sent));
                        while p.rtts.len() > window.max(1) {
                            p.rtts.pop_front();
                        }
                    }
                }
            }
            SessionEvent::Answer { id, at } => {
                if let Some(p) = self.parties.iter_mut().find(|p| p.id == id) {
                    if p.playing && p.answer.is_none() {
                        p.answer = Some(at);
                    }
                }
            }
            SessionEvent::Left { id } => self.parties.retain(|p| p.id != id),
        }
    }

    /// Sends `out(party)` to every party; drops those that cannot take it.
    fn send_all(&mut self, mut out: impl FnMut(&Party) -> Outbound) {
        self.parties.retain_mut(|p| {
            let event = out(p);
            p.reply.try_send(event).is_ok()
        });
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

    fn scores(&self) -> Vec<Score> {
        let mut scores: Vec<Score> = self
            .parties
            .iter()
            .map(|p| Score {
                name: p.name.clone(),
                points: p.points,
            })
            .collect();
        scores.sort_by(|a, b| b.points.cmp(&a.points).then_with(|| a.name.cmp(&b.name)));
        scores
    }

    /// The round's result in the configured order; scores the first answer.
    fn result(&mut self, go: Instant) -> Vec<Reaction> {
        let order = self.config.order;
        let mut answered: Vec<(i128, usize)> = Vec::new();
        let mut silent = Vec::new();
        for (i, p) in self.parties.iter().enumerate().filter(|(_, p)| p.playing) {
            match p.answer {
                Some(at) => {
                    let after = at.saturating_duration_since(go).as_micros() as i128;
                    let key = match (order, p.rtt()) {
                        (Order::Reaction, Some(rtt)) => after - rtt.as_micros() as i128,
                        _ => after,
                    };
                    answered.push((key, i));
                }
                None => silent.push(i),
            }
        }
        answered.sort();
        if let Some(&(_, first)) = answered.first() {
            self.parties[first].points += 1;
        }
        answered
            .iter()
            .map(|&(_, i)| i)
            .chain(silent)
            .map(|i| {
                let p = &self.parties[i];
                let after = p
                    .answer
                    .map(|at| at.saturating_duration_since(go).as_micros() as u64);
                let rtt = p.rtt().map(|d| d.as_micros() as u64);
                Reaction {
                    name: p.name.clone(),
                    answered: p.answer.is_some(),
                    after_go_micros: after,
                    rtt_micros: rtt,
                    reaction_micros: after.zip(rtt).map(|(a, r)| a as i64 - r as i64),
                }
            })
            .collect()
    }
}

/// `Round 3: Ann 12.3 ms before Ben 20.1 ms (reaction times); Cid did not answer`. A party
/// ranked by arrival for lack of a round-trip estimate is marked `*`.
pub fn result_text(round: u64, order: &[Reaction], by: Order) -> String {
    let ms = |us: i64| format!("{:.1} ms", us as f64 / 1000.0);
    let answered: Vec<String> = order
        .iter()
        .filter(|r| r.answered)
        .map(|r| match (by, r.reaction_micros) {
            (Order::Reaction, Some(reaction)) => format!("{} {}", r.name, ms(reaction)),
            (Order::Reaction, None) => {
                format!("{} {}*", r.name, ms(r.after_go_micros.unwrap_or(0) as i64))
            }
            (Order::Arrival, _) => {
                format!("{} {}", r.name, ms(r.after_go_micros.unwrap_or(0) as i64))
            }
        })
        .collect();
    let mut text = format!("Round {round}: ");
    if answered.is_empty() {
        text.push_str("nobody answered");
    } else {
        text.push_str(&answered.join(" before "));
        text.push_str(match by {
            Order::Arrival => " (arrival after go)",
            Order::Reaction => " (reaction times)",
        });
    }
    let silent: Vec<&str> = order
        .iter()
        .filter(|r| !r.answered)
        .map(|r| r.name.as_str())
        .collect();
    if !silent.is_empty() {
        text.push_str(&format!("; {} did not answer", silent.join(", ")));
    }
    text
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
        next_seq: 0,
    };
    let stopped = stop.wait().fuse();
    futures::pin_mut!(stopped);
    let mut round = 0u64;
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
    'session: loop {
        // Gather.
        while session.parties.len() < session.config.min_parties {
            match wake!(None) {
                Wake::Event(Some(e)) => session.handle(e),
                Wake::Event(None) | Wake::Stop | Wake::Timer => break 'session,
            }
        }
        // Measure round trips.
        for _ in 0..session.config.pings {
            session.ping_all();
            let until = Instant::now() + session.config.ping_every;
            loop {
                match wake!(Some(until)) {
                    Wake::Event(Some(e)) => session.handle(e),
                    Wake::Timer => break,
                    Wake::Event(None) | Wake::Stop => break 'session,
                }
            }
        }
        if session.parties.len() < session.config.min_parties {
            continue;
        }
        // Go, to everyone at once.
        round += 1;
        for p in &mut session.parties {
            p.playing = true;
            p.answer = None;
        }
        let go = Instant::now();
        session.send_all(|_| Outbound::Go { round, sent: go });
        let until = go + session.config.answer_timeout;
        while session
            .parties
            .iter()
            .any(|p| p.playing && p.answer.is_none())
        {
            match wake!(Some(until)) {
                Wake::Event(Some(e)) => session.handle(e),
                Wake::Timer => break,
                Wake::Event(None) | Wake::Stop => break 'session,
            }
        }
        let order = session.result(go);
        let scores = session.scores();
        let text = result_text(round, &order, session.config.order);
        say(text.clone());
        let result = super::RoundResult {
            round,
            text,
            order: order.clone(),
            scores: scores.clone(),
        };
        session.send_all(|_| Outbound::RoundResult(Box::new(result.clone())));
        for p in &mut session.parties {
            p.playing = false;
        }
        if round >= session.config.rounds || session.parties.len() < session.config.min_parties {
            break;
        }
    }
    let scores = session.scores();
    let rounds = if round == 1 { "round" } else { "rounds" };
    say(format!(
        "over after {round} {rounds}. {}",
        scores_text(&scores)
    ));
    session.send_all(|_| Outbound::SessionOver {
        scores: scores.clone(),
    });
    SessionReport {
        rounds: round,
        scores,
    }
}

#[cfg(test)]
mod tests;
