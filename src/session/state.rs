//! A session's state machine: who is present, the hosts, the open round, the answers and the
//! scores. Driven by the actor (`actor`), one event at a time, and by its calls between phases
//! (open a round, close it, rank it). Every send is a `try_send` into a connection's outbox; it
//! never waits, and it reads no clock of arrival (instants come in the events).

use std::sync::Arc;
use std::time::Instant;

use futures::channel::oneshot;

use super::config::{Order, SessionConfig, LATE_GRACE};
use super::event::{Seat, SessionEvent};
use super::party::{offer, Party, Play};
use crate::protocol::{Change, ErrorKind, Member, Placing, Roster, Score, Standing};
use crate::round::{ConnId, Outbound, Outbox};

/// What a session's host has asked for, and not yet had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostAsk {
    Nothing,
    /// Open the next round.
    Open,
    /// End the session: it stands, whatever else is asked after.
    Finish,
}

pub(crate) struct Session {
    pub(crate) config: SessionConfig,
    pub(crate) parties: Vec<Party>,
    /// Hosts: they see the roster, every `Go` and every result, and open and end rounds.
    hosts: Vec<(ConnId, Outbox)>,
    /// A host has joined: rounds open on its word, not by themselves.
    pub(crate) hosted: bool,
    pub(crate) ask: HostAsk,
    next_seq: u32,
    /// The last round to have started (0 before the first).
    pub(crate) round: u64,
    /// When the running round's `Go` was sent; `None` between rounds.
    go: Option<Instant>,
}

type Admitted = oneshot::Sender<Result<(), (ErrorKind, String)>>;

impl Session {
    pub(crate) fn new(config: SessionConfig) -> Session {
        Session {
            config,
            parties: Vec::new(),
            hosts: Vec::new(),
            hosted: false,
            ask: HostAsk::Nothing,
            next_seq: 0,
            round: 0,
            go: None,
        }
    }

    /// Handles one event; joins are admitted at any time, playing from the next round.
    pub(crate) fn handle(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Join {
                id,
                seat,
                reply,
                admitted,
            } => match seat {
                Seat::Host => self.join_host(id, reply, admitted),
                Seat::Player(name) => self.join_player(id, name, reply, admitted),
            },
            SessionEvent::Open { id } => {
                if self.is_host(id) && self.go.is_none() && self.ask == HostAsk::Nothing {
                    self.ask = HostAsk::Open;
                }
            }
            SessionEvent::Finish { id } => {
                if self.is_host(id) {
                    self.ask = HostAsk::Finish;
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
                    p.ponged(seq, at, window);
                }
            }
            SessionEvent::Answer { id, at, kernel_rtt } => self.answer(id, at, kernel_rtt),
            SessionEvent::Left { id } => self.left(id),
        }
    }

    /// What a joiner is told of the session's rules.
    fn rules(&self) -> Outbound {
        Outbound::Rules(self.config.order.into())
    }

    fn is_host(&self, id: ConnId) -> bool {
        self.hosts.iter().any(|(h, _)| *h == id)
    }

    fn join_host(&mut self, id: ConnId, mut reply: Outbox, admitted: Admitted) {
        if admitted.send(Ok(())).is_ok() {
            let _ = reply.try_send(Outbound::Admitted);
            let _ = reply.try_send(self.rules());
            self.hosts.push((id, reply));
            self.hosted = true;
            self.tell_roster(Change::HostJoined);
        }
    }

    /// Whether `name` may take a seat now; `Ok` with the index of a stale seat it takes over.
    fn seat_for(&self, name: &str, now: Instant) -> Result<Option<usize>, (ErrorKind, String)> {
        // A seat whose connection has stopped answering is free to its name again (a phone that
        // slept and lost its connection), with its points.
        let holder = self
            .parties
            .iter()
            .position(|p| !p.gone() && p.name == name);
        let stale = holder.filter(|&i| self.parties[i].unresponsive(now));
        let present = self.parties.iter().filter(|p| !p.gone()).count();
        if holder.is_some() && stale.is_none() {
            return Err((
                ErrorKind::InvalidName,
                format!(
                    "the name {name} is taken in this session (if it was yours, on a connection \
                     that was lost, join again in a few seconds)"
                ),
            ));
        }
        if stale.is_none() && present >= self.config.max_parties {
            return Err((
                ErrorKind::RoundFull,
                format!(
                    "the session in this room is full: {} players, the most whose results fit \
                     one frame",
                    self.config.max_parties
                ),
            ));
        }
        Ok(stale)
    }

    fn join_player(&mut self, id: ConnId, name: String, mut reply: Outbox, admitted: Admitted) {
        let verdict = self.seat_for(&name, Instant::now());
        let stale = verdict.as_ref().ok().copied();
        if admitted.send(verdict.map(|_| ())).is_err() {
            return;
        }
        let Some(stale) = stale else { return };
        let points = stale.map_or(0, |i| self.vacate(i));
        // Like a round, the session answers the handshake once it takes the party.
        let _ = reply.try_send(Outbound::Admitted);
        let _ = reply.try_send(self.rules());
        let party = Party::new(id, name.clone(), reply, points, self.round + 1);
        self.parties.push(party);
        self.tell_roster(Change::Joined { name });
    }

    /// A party pressed its buzzer; its answer arrived at `at`.
    fn answer(&mut self, id: ConnId, at: Instant, kernel_rtt: Option<std::time::Duration>) {
        let (go, next) = (self.go, self.round + 1);
        let Some(p) = self.parties.iter_mut().find(|p| p.id == id) else {
            return;
        };
        p.note_kernel(kernel_rtt);
        match (go, p.play) {
            // A second press in a round answered: nothing to decide.
            (Some(_), Play::Answered(_)) => return,
            (Some(go), Play::Waiting) if at < go => {
                // Received before the go it answers, handled after: pressed early.
                p.play = Play::Out(Standing::Early);
                p.tell(Outbound::Early { round: next - 1 });
                return;
            }
            (Some(_), Play::Waiting) => {
                p.play = Play::Answered(at);
                p.answered_at = Some(at);
                return;
            }
            _ => {}
        }
        if p.repeat_or_late(at) {
            return;
        }
        // An early buzz: out of the next round to open.
        let standing = if go.is_some() {
            Standing::LockedOut
        } else {
            Standing::Early
        };
        if p.locked.is_none_or(|(round, _)| round != next) {
            p.locked = Some((next, standing));
            p.tell(Outbound::Early { round: next });
        }
    }

    fn left(&mut self, id: ConnId) {
        if let Some(i) = self.hosts.iter().position(|(h, _)| *h == id) {
            self.hosts.swap_remove(i);
            if self.hosts.is_empty() {
                self.tell_roster(Change::HostLeft);
            }
            return;
        }
        let open = self.go.is_some();
        let round = if open { self.round } else { 0 };
        let Some(i) = self.parties.iter().position(|p| p.id == id && !p.gone()) else {
            return;
        };
        let name = self.parties[i].name.clone();
        if self.parties[i].leave(open) {
            self.parties.remove(i);
        }
        self.tell_roster(Change::Left { name, round });
    }

    /// Frees the seat of party `i`, whose connection stopped answering, for a new connection
    /// under its name; returns its points, which the new one keeps. The old connection is told
    /// why; a party in the open round stays in it, as having left.
    fn vacate(&mut self, i: usize) -> u64 {
        let open = self.go.is_some();
        let p = &mut self.parties[i];
        p.tell(Outbound::ended(
            ErrorKind::Protocol,
            "a new connection took this seat: it had stopped answering",
        ));
        let points = std::mem::take(&mut p.points);
        if p.leave(open) {
            self.parties.remove(i);
        }
        points
    }

    /// Sends `out(party)` to every party present; drops those that cannot take it.
    fn send_all(&mut self, mut out: impl FnMut(&Party) -> Outbound) {
        self.parties.retain_mut(|p| {
            p.gone() || {
                let event = out(p);
                p.tell(event)
            }
        });
    }

    /// Sends `event()` to every host; drops those that cannot take it.
    pub(crate) fn send_hosts(&mut self, mut event: impl FnMut() -> Outbound) {
        self.hosts
            .retain_mut(|(_, reply)| reply.try_send(event()).is_ok());
    }

    /// Everyone but a party that is gone: players and hosts.
    pub(crate) fn everyone(&mut self, event: impl Fn() -> Outbound) {
        self.send_all(|_| event());
        self.send_hosts(&event);
    }

    /// Sends `event()` to the parties that played the open round (a late joiner was told it
    /// plays from the next) and to the hosts.
    pub(crate) fn players_and_hosts(&mut self, event: impl Fn() -> Outbound) {
        self.parties
            .retain_mut(|p| p.gone() || !p.in_round() || p.tell(event()));
        self.send_hosts(event);
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
                .filter(|p| !p.gone())
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

    /// Tells everyone the roster, with `change` as the reason (one shared copy for all). A
    /// roster is a snapshot: one that finds an outbox full is skipped, since the next says all of
    /// it, and only a closed outbox costs its party the seat. Joins that come in a burst would
    /// otherwise fill the outbox of a connection not yet scheduled, and drop it.
    pub(crate) fn tell_roster(&mut self, change: Change) {
        let roster = Arc::new(self.roster(change));
        let event = || Outbound::Roster(Arc::clone(&roster));
        self.parties.retain_mut(|p| p.offer(event()));
        self.hosts.retain_mut(|(_, reply)| offer(reply, event()));
    }

    /// A hosted session nobody is left in: nobody to wait for.
    pub(crate) fn deserted(&self) -> bool {
        self.hosted && self.hosts.is_empty() && self.parties.is_empty()
    }

    /// Enough players to play a round.
    pub(crate) fn enough(&self) -> bool {
        self.parties.len() >= self.config.min_parties
    }

    pub(crate) fn ping_all(&mut self) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let sent = Instant::now();
        // A ping that finds the outbox full (rosters queued in a burst of joins) is skipped, like
        // a lost one: the party has one sample fewer. Only a ping that went out awaits its pong.
        self.parties.retain_mut(|p| p.offer_ping(seq, sent));
    }

    /// Opens round `self.round + 1` with its `Go` sent at `go`: who is in it, who is out of it.
    pub(crate) fn open_round(&mut self, go: Instant) -> u64 {
        self.round += 1;
        self.go = Some(go);
        for p in &mut self.parties {
            p.open(self.round);
        }
        self.round
    }

    /// Some party in the round can still answer.
    pub(crate) fn waiting_for_answers(&self) -> bool {
        self.parties.iter().any(|p| p.play == Play::Waiting)
    }

    /// Closes the round whose result was sent at `sent`: answers that arrive before a party
    /// could have seen it are late, not early.
    pub(crate) fn close_round(&mut self, sent: Instant) {
        self.go = None;
        self.parties.retain(|p| !p.gone());
        for p in &mut self.parties {
            if p.in_round() {
                let (rtt, _) = p.rtt(&self.config);
                let rtt = rtt.unwrap_or(self.config.max_compensation);
                p.late_until = Some(sent + rtt + LATE_GRACE);
            }
            p.play = Play::Idle;
        }
    }

    pub(crate) fn scores(&self) -> Vec<Score> {
        let mut scores: Vec<Score> = self
            .parties
            .iter()
            .filter(|p| !p.gone())
            .map(|p| Score {
                name: p.name.clone(),
                points: p.points,
            })
            .collect();
        scores.sort_by(|a, b| b.points.cmp(&a.points).then_with(|| a.name.cmp(&b.name)));
        scores
    }

    /// The round's result in the configured order; scores the first valid answer.
    pub(crate) fn result(&mut self, go: Instant) -> Vec<Placing> {
        // (false start, key, party, placing) for the answers; the rest in party order.
        let mut answered: Vec<(bool, i128, usize, Placing)> = Vec::new();
        let mut silent = Vec::new();
        for (i, p) in self.parties.iter().enumerate() {
            let (rtt, rtt_source) = p.rtt(&self.config);
            let mut placing = Placing {
                name: p.name.clone(),
                standing: Standing::NoAnswer,
                after_go_micros: None,
                rtt_micros: rtt.map(|d| d.as_micros() as u64),
                rtt_source,
                reaction_micros: None,
            };
            match p.play {
                Play::Idle => continue,
                Play::Answered(at) => {
                    let (false_start, key) = self.rank(p, at, go, &mut placing);
                    answered.push((false_start, key, i, placing));
                    continue;
                }
                Play::Out(standing) => placing.standing = standing,
                Play::Left => placing.standing = Standing::Left,
                Play::Waiting => {}
            }
            silent.push(placing);
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

    /// Fills in `placing` for party `p`'s answer at `at` to the `Go` at `go`; returns whether it
    /// was a false start, and its ranking key.
    fn rank(&self, p: &Party, at: Instant, go: Instant, placing: &mut Placing) -> (bool, i128) {
        let config = &self.config;
        let after = at.saturating_duration_since(go);
        let after_micros = after.as_micros() as i128;
        let reaction = placing.rtt_micros.map(|r| after_micros - i128::from(r));
        let impossible = p.kernel_rtt.is_some_and(|k| after < k);
        let too_quick = config.order == Order::Reaction
            && !config.min_reaction.is_zero()
            && reaction.unwrap_or(after_micros) < config.min_reaction.as_micros() as i128;
        let false_start = impossible || too_quick;
        placing.standing = if false_start {
            Standing::FalseStart
        } else {
            Standing::Answered
        };
        placing.after_go_micros = Some(after_micros as u64);
        placing.reaction_micros = reaction.map(|r| r as i64);
        let key = match config.order {
            Order::Reaction => reaction.unwrap_or(after_micros),
            Order::Arrival => after_micros,
        };
        (false_start, key)
    }
}
