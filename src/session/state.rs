//! A session's state machine: who is present (and whose seats are held while they are away),
//! the hosts, the open round, the answers, the buzz queue of a question in buzz mode, and the
//! scores. Driven by the actor (`actor`), one event at a time, and by its calls between phases
//! (open a round, close it, rank it). Every send is a `try_send` into a connection's outbox; it
//! never waits, and it reads no clock of arrival (instants come in the events).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use super::buzz::{BuzzRound, Entry};
use super::config::{
    answer_ping_every, Order, SessionConfig, ANSWER_PINGS_IN_FLIGHT, ANSWER_PING_EVERY, LATE_GRACE,
    MAX_BARRED, MAX_POINTS,
};
use super::event::{PlayerSeat, Seat, SessionEvent};
use super::party::{fresh_secret, offer, Party, Play};
use super::text::fitting_parties;
use super::view::{self, Throttle, QUEUE_EVERY, ROSTER_EVERY, TOP_PLACES};
use crate::names::skeleton;
use crate::protocol::Cut;
use crate::protocol::{
    BuzzQueue, Change, Contestant, Control, ErrorKind, Judgement, Lineup, OverReason, Placing,
    RoundOutcome, Score, Standing,
};
use crate::round::{ConnId, Outbound, Outbox};

/// What a session's host has asked for, and not yet had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostAsk {
    Nothing,
    /// Open the next round.
    Open,
    /// End the open question (buzz mode).
    Next,
    /// End the session: it stands, whatever else is asked after.
    Finish,
}

struct Host {
    id: ConnId,
    reply: Outbox,
    /// Speaks protocol 6: can judge buzzes.
    judges: bool,
}

pub(crate) struct Session {
    pub(crate) config: SessionConfig,
    pub(crate) parties: Vec<Party>,
    /// Hosts: they see the roster, every `Go` and every result, open rounds, judge buzzes and
    /// end the session.
    hosts: Vec<Host>,
    /// A host has joined: rounds open on its word, not by themselves.
    pub(crate) hosted: bool,
    pub(crate) ask: HostAsk,
    next_seq: u32,
    /// The last round (question) of this game to have started (0 before the first).
    pub(crate) round: u64,
    /// Rounds played in the session, every game's.
    pub(crate) played: u64,
    /// The game (1 for the first; a new game keeps the players).
    game: u64,
    /// When the running round's `Go` was sent; `None` between rounds.
    go: Option<Instant>,
    /// The latest instant a connection reported writing the running round's `Go`: no player
    /// still to answer saw its `Go` much later (its connection says so as soon as it wrote).
    last_go: Option<Instant>,
    /// The first `Go` written this round, and how many were.
    first_go: Option<Instant>,
    gos_written: usize,
    /// How often the open round's players still to answer are pinged: set at `Go` from the
    /// players present, so the pacing costs no pass over a big room per event.
    answer_ping_every: Duration,
    /// The open question, in buzz mode.
    buzz: Option<BuzzRound>,
    /// Points for a correct answer and taken for a wrong one.
    correct: u64,
    penalty: u64,
    /// Points an early press or a false start costs.
    early: u64,
    /// Skeletons of the names the host removed from this game.
    barred: Vec<String>,
    /// The seat of each connection: an event finds its party without a pass over ten thousand.
    /// Checked on use (a seat's connection may have changed), rebuilt when a seat is removed.
    by_id: HashMap<ConnId, usize>,
    /// A big room's coalesced updates: the roster (with the latest change) and the queue.
    roster_change: Option<Change>,
    roster_throttle: Throttle,
    queue_throttle: Throttle,
}

type Admitted = oneshot::Sender<Result<(), (ErrorKind, String)>>;

impl Session {
    pub(crate) fn new(config: SessionConfig) -> Session {
        Session {
            early: config.early_penalty,
            config,
            parties: Vec::new(),
            hosts: Vec::new(),
            hosted: false,
            ask: HostAsk::Nothing,
            next_seq: 0,
            round: 0,
            played: 0,
            game: 1,
            go: None,
            last_go: None,
            first_go: None,
            gos_written: 0,
            answer_ping_every: ANSWER_PING_EVERY,
            buzz: None,
            correct: 1,
            penalty: 0,
            barred: Vec::new(),
            by_id: HashMap::new(),
            roster_change: None,
            roster_throttle: Throttle::default(),
            queue_throttle: Throttle::default(),
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
                Seat::Host { judges } => self.join_host(id, judges, reply, admitted),
                Seat::Player(seat) => self.join_player(id, *seat, reply, admitted),
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
            SessionEvent::Control { id, control } => {
                if self.is_host(id) {
                    self.control(control);
                }
            }
            SessionEvent::Pong {
                id,
                seq,
                at,
                kernel_rtt,
                written,
            } => {
                let window = self.config.rtt_window;
                if let Some(p) = self.seat_of(id).map(|i| &mut self.parties[i]) {
                    p.note_kernel(kernel_rtt);
                    p.ponged(seq, at, written, window);
                }
            }
            SessionEvent::GoWritten { id, round, at } => self.go_written(id, round, at),
            SessionEvent::Answer { id, at, kernel_rtt } => self.answer(id, at, kernel_rtt),
            SessionEvent::Left { id } => self.left(id),
        }
    }

    /// What a joiner is told of the session's rules.
    fn rules(&self) -> Outbound {
        Outbound::Rules(self.config.order.into())
    }

    /// The seat connection `id` is present in.
    fn seat_of(&self, id: ConnId) -> Option<usize> {
        let i = *self.by_id.get(&id)?;
        let p = self.parties.get(i)?;
        (p.id == id && !p.gone()).then_some(i)
    }

    /// Rebuilds the seats' index after a seat was removed.
    fn reindex(&mut self) {
        self.by_id = self
            .parties
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.gone())
            .map(|(i, p)| (p.id, i))
            .collect();
    }

    fn is_host(&self, id: ConnId) -> bool {
        self.hosts.iter().any(|h| h.id == id)
    }

    /// Questions are played in buzz mode: the session plays it, and a host who can judge is
    /// here.
    pub(crate) fn buzz_mode(&self) -> bool {
        self.config.buzz && self.hosts.iter().any(|h| h.judges)
    }

    fn join_host(&mut self, id: ConnId, judges: bool, mut reply: Outbox, admitted: Admitted) {
        if admitted.send(Ok(())).is_ok() {
            let _ = reply.try_send(Outbound::Admitted);
            let _ = reply.try_send(self.rules());
            self.hosts.push(Host { id, reply, judges });
            self.hosted = true;
            self.tell_roster(Change::HostJoined);
            self.tell_buzzes();
        }
    }

    /// Where `seat` sits: `Ok(Some(i))` takes back seat `i` (its secret matches), `Ok(None)` a
    /// new seat; otherwise why not.
    fn seat_for(&self, seat: &PlayerSeat) -> Result<Option<usize>, (ErrorKind, String)> {
        let name = &seat.name;
        if let Some(i) = self.parties.iter().position(|p| &p.name == name) {
            let held = &self.parties[i];
            if seat.secret.as_deref() == Some(held.secret.as_str()) {
                return Ok(Some(i));
            }
            return Err((
                ErrorKind::InvalidName,
                format!(
                    "the seat of {name} is held for the device that took it: only that device \
                     takes it back (or the host frees it)"
                ),
            ));
        }
        let looks = skeleton(name);
        if self.barred.contains(&looks) {
            return Err((
                ErrorKind::Forbidden,
                format!("the host removed {name} from this game"),
            ));
        }
        if let Some(p) = self.parties.iter().find(|p| p.skeleton == looks) {
            return Err((
                ErrorKind::InvalidName,
                format!(
                    "the name {name} looks like {}, who is in this room already: choose another",
                    p.name
                ),
            ));
        }
        if self.parties.len() >= self.config.max_parties {
            return Err((
                ErrorKind::RoundFull,
                format!(
                    "the session in this room is full: {} players, the most the server seats in \
                     one room",
                    self.config.max_parties
                ),
            ));
        }
        Ok(None)
    }

    fn join_player(&mut self, id: ConnId, seat: PlayerSeat, reply: Outbox, admitted: Admitted) {
        let verdict = self.seat_for(&seat).and_then(|held| match held {
            Some(i) => Ok((Some(i), self.parties[i].secret.clone())),
            None => fresh_secret().map(|s| (None, s)).ok_or_else(|| {
                let why = "the server has no random source for the seat's secret";
                (ErrorKind::Busy, why.to_owned())
            }),
        });
        let taken = verdict.as_ref().ok().cloned();
        if admitted.send(verdict.map(|_| ())).is_err() {
            return;
        }
        match taken {
            Some((Some(i), secret)) => self.take_back(i, id, secret, reply),
            Some((None, secret)) => self.seat_new(id, seat, secret, reply),
            None => {}
        }
    }

    /// Like a round, the session answers the handshake once it takes the party.
    fn welcome(&self, reply: &mut Outbox, secret: String) {
        let _ = reply.try_send(Outbound::Admitted);
        let _ = reply.try_send(self.rules());
        let _ = reply.try_send(Outbound::Seated { secret });
    }

    fn seat_new(&mut self, id: ConnId, seat: PlayerSeat, secret: String, mut reply: Outbox) {
        self.welcome(&mut reply, secret.clone());
        let team = seat.team.unwrap_or_default();
        let mut party = Party::new(id, seat.name.clone(), team, reply, self.round + 1);
        party.secret = secret;
        self.by_id.insert(id, self.parties.len());
        self.parties.push(party);
        self.tell_roster(Change::Joined { name: seat.name });
    }

    /// Seat `i`'s player is back, with the secret: a connection still in the seat is told
    /// why it lost it.
    fn take_back(&mut self, i: usize, id: ConnId, secret: String, mut reply: Outbox) {
        self.welcome(&mut reply, secret);
        let (round, go) = (self.round, self.go);
        let p = &mut self.parties[i];
        p.tell(Outbound::ended(
            ErrorKind::Protocol,
            "this seat was taken back by a new connection with its secret",
        ));
        self.by_id.remove(&p.id);
        self.by_id.insert(id, i);
        p.back(id, reply);
        if let (Some(sent), Play::Waiting) = (go, p.play) {
            p.tell(Outbound::Go { round, sent });
        }
        let name = p.name.clone();
        self.tell_roster(Change::Back { name });
        self.tell_buzzes();
    }

    /// A host's judgement or control.
    fn control(&mut self, control: Control) {
        match control {
            Control::Correct => self.judge(true),
            Control::Wrong => self.judge(false),
            Control::Next => {
                if self.go.is_some() && self.ask == HostAsk::Nothing {
                    self.ask = HostAsk::Next;
                }
            }
            Control::SetScore { name, points } => {
                if let Some(p) = self.parties.iter_mut().find(|p| p.name == name) {
                    p.points = points.min(MAX_POINTS.saturating_mul(MAX_POINTS));
                    self.tell_roster(Change::Update);
                }
            }
            Control::Kick { name } => self.kick(&name),
            Control::Free { name } => {
                if let Some(i) = self.parties.iter().position(|p| p.name == name && p.gone()) {
                    if !self.parties[i].in_round() {
                        self.parties.remove(i);
                        self.reindex();
                        self.tell_roster(Change::Left { name, round: 0 });
                    }
                }
            }
            Control::NewGame => self.new_game(),
            Control::Scoring {
                correct,
                penalty,
                early,
            } => {
                self.correct = correct.min(MAX_POINTS);
                self.penalty = penalty.min(MAX_POINTS);
                self.early = early.min(MAX_POINTS);
                self.tell_roster(Change::Update);
            }
        }
    }

    /// Judges the buzz that is up: its points, and for a wrong answer its team locked out of
    /// the question; then the next buzz is up once it settles.
    fn judge(&mut self, correct: bool) {
        let Some(b) = self.buzz.as_mut() else { return };
        let points = if correct {
            self.correct as i64
        } else {
            -(self.penalty as i64)
        };
        let Some((name, _)) = b.judge(correct, points) else {
            return;
        };
        if let Some(p) = self.parties.iter_mut().find(|p| p.name == name) {
            p.points = p.points.saturating_add_signed(points);
        }
        if !correct {
            for p in &mut self.parties {
                if p.play == Play::Waiting && b.locks(&p.name, &p.team) {
                    p.play = Play::Out(Standing::LockedOut);
                }
            }
        }
        self.settle(Instant::now());
        self.tell_roster(Change::Update);
    }

    /// Removes `name` from the game and keeps its name (and lookalikes) out of it.
    fn kick(&mut self, name: &str) {
        let Some(i) = self.parties.iter().position(|p| p.name == name) else {
            return;
        };
        let mut p = self.parties.remove(i);
        self.reindex();
        p.tell(Outbound::ended(
            ErrorKind::Forbidden,
            "the host removed you from this game",
        ));
        if self.barred.len() < MAX_BARRED {
            self.barred.push(p.skeleton.clone());
        }
        if let Some(b) = self.buzz.as_mut() {
            b.void(name);
        }
        self.settle(Instant::now());
        self.tell_roster(Change::Kicked { name: p.name });
    }

    /// A new game with the same players: scores to zero, questions from one, nobody kept out.
    fn new_game(&mut self) {
        if self.go.is_some() || self.ask != HostAsk::Nothing {
            return;
        }
        for p in &mut self.parties {
            p.points = 0;
            p.locked = None;
            p.from_round = 1;
        }
        self.round = 0;
        self.game += 1;
        self.barred.clear();
        self.tell_roster(Change::NewGame { game: self.game });
    }

    /// Round `round`'s `Go` went to connection `id` at `at`. The first write counts: a player
    /// that comes back during the round and is sent its `Go` again is timed from the first.
    fn go_written(&mut self, id: ConnId, round: u64, at: Instant) {
        if self.go.is_none() || round != self.round {
            return;
        }
        let Some(p) = self.seat_of(id).map(|i| &mut self.parties[i]) else {
            return;
        };
        if p.go.is_none() {
            p.go = Some(at);
            self.last_go = self.last_go.max(Some(at));
            self.first_go = Some(self.first_go.map_or(at, |first| first.min(at)));
            self.gos_written += 1;
        }
    }

    /// A party pressed its buzzer; its answer arrived at `at`.
    fn answer(&mut self, id: ConnId, at: Instant, kernel_rtt: Option<Duration>) {
        let (go, next) = (self.go, self.round + 1);
        let Some(i) = self.seat_of(id) else {
            return;
        };
        let p = &mut self.parties[i];
        p.note_kernel(kernel_rtt);
        match (go, p.play) {
            // A second press in a round answered: nothing to decide.
            (Some(_), Play::Answered(_)) => return,
            (Some(go), Play::Waiting) if at < p.go.unwrap_or(go) => {
                // Received before the go it answers, handled after: pressed early.
                p.play = Play::Out(Standing::Early);
                p.points = p.points.saturating_sub(self.early);
                p.tell(Outbound::Early { round: next - 1 });
                return;
            }
            (Some(go), Play::Waiting) => {
                p.answered(at);
                self.buzzed(i, at, go);
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
            p.points = p.points.saturating_sub(self.early);
            p.tell(Outbound::Early { round: next });
        }
    }

    /// Party `i`'s valid press at `at` in buzz mode joins the queue (a false start does not:
    /// the result names it).
    fn buzzed(&mut self, i: usize, at: Instant, go: Instant) {
        if self.buzz.is_none() {
            return;
        }
        let p = &self.parties[i];
        let mut placing = self.placing(p);
        let (false_start, key) = self.rank(p, at, go, &mut placing);
        if false_start {
            let early = self.early;
            let p = &mut self.parties[i];
            p.points = p.points.saturating_sub(early);
            return;
        }
        let entry = Entry {
            name: p.name.clone(),
            team: p.team.clone(),
            key,
            after_go_micros: placing.after_go_micros.unwrap_or(0),
            rtt_micros: placing.rtt_micros,
            rtt_source: placing.rtt_source,
            reaction_micros: placing.reaction_micros,
            judgement: Judgement::Waiting,
            points: 0,
            flag: p.flag(&self.config).unwrap_or_default(),
        };
        if let Some(b) = self.buzz.as_mut() {
            b.take(entry);
        }
        self.settle(Instant::now());
    }

    /// The largest round trip among the players who may still buzz: how long after a buzz's
    /// key a later one can still rank before it (nothing, in arrival order).
    fn slowest(&self) -> Duration {
        if self.config.order == Order::Arrival {
            return Duration::ZERO;
        }
        self.parties
            .iter()
            .filter(|p| p.play == Play::Waiting)
            .map(|p| {
                p.rtt(&self.config)
                    .0
                    .unwrap_or(self.config.max_compensation)
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// What a buzz's key counts from when it settles: in reaction order each key counts from
    /// its own player's `Go`, and a player still to buzz had its `Go` by the last one written.
    fn settle_base(&self) -> Option<Instant> {
        match self.config.order {
            Order::Reaction => self.go.map(|go| self.last_go.unwrap_or(go).max(go)),
            Order::Arrival => self.go,
        }
    }

    /// When the next buzz can be named up, if one waits for that.
    pub(crate) fn settles_at(&self) -> Option<Instant> {
        let (b, go) = (self.buzz.as_ref()?, self.settle_base()?);
        if !b.settling() {
            return None;
        }
        b.settles_at(go, self.slowest())
    }

    /// Names the next buzz up if it has settled by `now`, and tells everyone the queue.
    pub(crate) fn settle(&mut self, now: Instant) {
        // The largest round trip is a pass over every player: only when a buzz waits for it.
        let settling = self.buzz.as_ref().is_some_and(BuzzRound::settling);
        let (slowest, base) = if settling {
            (self.slowest(), self.settle_base())
        } else {
            (Duration::ZERO, None)
        };
        if let (Some(b), Some(go)) = (self.buzz.as_mut(), base) {
            b.settle(go, slowest, now);
        }
        self.tell_buzzes();
    }

    /// The open question's queue, as everyone sees it.
    fn buzz_queue(&self) -> Option<BuzzQueue> {
        let b = self.buzz.as_ref()?;
        let locked = self
            .parties
            .iter()
            .filter(|p| p.in_round() && b.locks(&p.name, &p.team))
            .map(|p| p.name.clone())
            .collect();
        Some(b.snapshot(self.round, locked))
    }

    /// Offers the queue to the players in the round and to the hosts: a snapshot, so one that
    /// finds an outbox full is skipped (the next says all of it). A big room's queue waits for
    /// the next update due (see `view`).
    fn tell_buzzes(&mut self) {
        if self.buzz.is_none() {
            return;
        }
        let now = Instant::now();
        if view::small(self.parties.len()) || self.queue_throttle.want(now, QUEUE_EVERY) {
            self.send_buzzes();
        }
    }

    /// Sends the queue now: one shared copy in a small room; in a big one, each player the top
    /// buzzes and its own, each host the top that fit.
    fn send_buzzes(&mut self) {
        let Some(all) = self.buzz_queue() else {
            return;
        };
        let small = view::small(self.parties.len());
        let cuts: Vec<Cut> = if small {
            Vec::new()
        } else {
            let buzzed = view::places(&all.buzzes, |b| &b.name);
            let locked = view::places(&all.locked, |name| name);
            let own = |at: &HashMap<&str, usize>, p: &Party| at.get(p.name.as_str()).copied();
            self.parties
                .iter()
                .map(|p| Cut::top_and(TOP_PLACES, [own(&buzzed, p), own(&locked, p)]))
                .collect()
        };
        let event = Arc::new(Outbound::Buzzes(Arc::new(all)));
        self.reach_each(|i, p| {
            !p.in_round() || p.offer(view::cut(&event, cuts.get(i).copied().unwrap_or(Cut::ALL)))
        });
        let host = if small { Cut::ALL } else { view::host_cut() };
        self.hosts
            .retain_mut(|h| offer(&mut h.reply, view::cut(&event, host)));
    }

    fn left(&mut self, id: ConnId) {
        if let Some(i) = self.hosts.iter().position(|h| h.id == id) {
            self.hosts.swap_remove(i);
            if self.hosts.is_empty() {
                self.tell_roster(Change::HostLeft);
            }
            return;
        }
        let round = if self.go.is_some() { self.round } else { 0 };
        let Some(p) = self.seat_of(id).map(|i| &mut self.parties[i]) else {
            return;
        };
        self.by_id.remove(&id);
        p.leave();
        let name = p.name.clone();
        self.tell_roster(Change::Away { name, round });
    }

    /// Runs `send` for every seat; a seat whose connection could not take what it was sent
    /// loses its connection, not the seat: its player is away, as if it had left.
    fn reach(&mut self, mut send: impl FnMut(&mut Party) -> bool) {
        self.reach_each(|_, p| send(p));
    }

    /// [`reach`](Self::reach), told each seat's place.
    fn reach_each(&mut self, mut send: impl FnMut(usize, &mut Party) -> bool) {
        for (i, p) in self.parties.iter_mut().enumerate() {
            if !send(i, p) {
                log::info!(
                    "{}: its connection cannot take the session's events",
                    p.name
                );
                p.leave();
            }
        }
    }

    /// Sends `out(party)` to every party present; a party that cannot take it is away.
    fn send_all(&mut self, mut out: impl FnMut(&Party) -> Outbound) {
        self.reach(|p| {
            p.gone() || {
                let event = out(p);
                p.tell(event)
            }
        });
    }

    /// Sends `event()` to every host; drops those that cannot take it.
    ///
    /// A host whose outbox is full (its connection not scheduled while a big room's thousands
    /// of connections run) misses this event, not its seat: the next roster, queue or result
    /// says all it needs, and a session without a host that judges would stop playing buzz mode.
    /// Only a closed outbox, or one too full for the last word, drops it.
    pub(crate) fn send_hosts(&mut self, mut event: impl FnMut() -> Outbound) {
        self.hosts.retain_mut(|h| {
            let event = event();
            if event.is_final() {
                h.reply.try_send(event).is_ok()
            } else {
                offer(&mut h.reply, event)
            }
        });
    }

    /// Everyone but a party that is away: players and hosts.
    pub(crate) fn everyone(&mut self, event: impl Fn() -> Outbound) {
        self.send_all(|_| event());
        self.send_hosts(&event);
    }

    /// Sends `event()` to the parties that played the open round (a late joiner was told it
    /// plays from the next) and to the hosts.
    pub(crate) fn players_and_hosts(&mut self, event: impl Fn() -> Outbound) {
        self.reach(|p| p.gone() || !p.in_round() || p.tell(event()));
        self.send_hosts(event);
    }

    /// The session as a lineup, with `change` as the reason it is sent.
    fn lineup(&self, change: Change) -> Lineup {
        Lineup {
            round: self.round,
            open: self.go.is_some(),
            needed: u32::try_from(self.config.min_parties).unwrap_or(u32::MAX),
            hosted: self.hosted,
            answer_micros: self.config.answer_timeout.as_micros() as u64,
            players: self
                .parties
                .iter()
                .map(|p| {
                    let (rtt, rtt_source) = p.rtt(&self.config);
                    Contestant {
                        name: p.name.clone(),
                        team: p.team.clone(),
                        rtt_micros: rtt.map(|d| d.as_micros() as u64),
                        rtt_source,
                        points: p.points,
                        from_round: p.from_round,
                        here: !p.gone(),
                    }
                })
                .collect(),
            change,
            game: self.game,
            buzz: self.buzz_mode(),
            correct: self.correct,
            penalty: self.penalty,
            early: self.early,
        }
    }

    /// Tells everyone the roster, with `change` as the reason. A roster is a snapshot: one that
    /// finds an outbox full is skipped, since the next says all of it, and only a closed outbox
    /// costs its party the seat. Joins that come in a burst would otherwise fill the outbox of a
    /// connection not yet scheduled, and drop it. A big room's joins, leaves and figures wait
    /// for the next update due (see `view`); a change of phase or game goes at once.
    pub(crate) fn tell_roster(&mut self, change: Change) {
        let now = Instant::now();
        let coalesces = matches!(
            change,
            Change::Update
                | Change::Joined { .. }
                | Change::Left { .. }
                | Change::Away { .. }
                | Change::Back { .. }
                | Change::Kicked { .. }
        );
        if view::small(self.parties.len()) || !coalesces {
            self.roster_throttle.sent(now);
            self.roster_change = None;
            return self.send_roster(change);
        }
        if self.roster_throttle.want(now, ROSTER_EVERY) {
            self.send_roster(change);
        } else {
            self.roster_change = Some(change);
        }
    }

    /// Sends the roster: one shared copy for all in a small room; in a big one, each player its
    /// own seat and each host the first seats that fit.
    fn send_roster(&mut self, change: Change) {
        let lineup = self.lineup(change);
        let small = view::small(lineup.players.len());
        let roster = |lineup: Lineup| {
            Arc::new(Outbound::Roster {
                roster: Arc::new(lineup.to_roster()),
                lineup: Arc::new(lineup),
            })
        };
        let hosts = (!small).then(|| roster(top_scorers(&lineup, fitting_parties())));
        let event = roster(lineup);
        let hosts = hosts.unwrap_or_else(|| Arc::clone(&event));
        // A roster lists the players who are here; a lineup every seat.
        let mut here = 0;
        self.reach_each(|i, p| {
            let cut = Cut::top_and(0, [Some(i), Some(here)]);
            here += usize::from(!p.gone());
            p.offer(view::cut(&event, if small { Cut::ALL } else { cut }))
        });
        self.hosts
            .retain_mut(|h| offer(&mut h.reply, view::cut(&hosts, Cut::ALL)));
    }

    /// When a big room's coalesced update is next due, if one is.
    pub(crate) fn due(&self) -> Option<Instant> {
        let roster = self.roster_change.as_ref().and(self.roster_throttle.due());
        [roster, self.queue_throttle.due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sends the coalesced updates due by `now`.
    pub(crate) fn flush(&mut self, now: Instant) {
        if self.roster_throttle.due().is_some_and(|d| d <= now) {
            self.roster_throttle.sent(now);
            if let Some(change) = self.roster_change.take() {
                self.send_roster(change);
            }
        }
        if self.queue_throttle.due().is_some_and(|d| d <= now) {
            self.queue_throttle.sent(now);
            self.send_buzzes();
        }
    }

    /// Sends round `outcome` to the parties that played it and to the hosts: one shared copy in
    /// a small room; in a big one each player its window and each host the top places that fit.
    pub(crate) fn send_result(&mut self, outcome: RoundOutcome) {
        if view::small(self.parties.len()) {
            let shared = Arc::new(outcome);
            return self.players_and_hosts(|| Outbound::RoundResult(Arc::clone(&shared)));
        }
        let order = view::places(&outcome.order, |p| &p.name);
        let scores = view::places(&outcome.scores, |s| &s.name);
        let cuts: Vec<Cut> = self
            .parties
            .iter()
            .map(|p| {
                let own = |at: &HashMap<&str, usize>| at.get(p.name.as_str()).copied();
                Cut::top_and(TOP_PLACES, [own(&order), own(&scores)])
            })
            .collect();
        drop((order, scores));
        let event = Arc::new(Outbound::RoundResult(Arc::new(outcome)));
        self.reach_each(|i, p| p.gone() || !p.in_round() || p.tell(view::cut(&event, cuts[i])));
        self.send_hosts(|| view::cut(&event, view::host_cut()));
    }

    /// Tells everyone the session is over, why, and the final `scores` (windowed in a big room).
    pub(crate) fn send_over(&mut self, why: OverReason, rounds: u64, scores: &[Score]) {
        let event = Arc::new(Outbound::SessionOver {
            why,
            rounds,
            scores: scores.to_vec().into(),
        });
        if view::small(self.parties.len()) {
            return self.everyone(|| view::cut(&event, Cut::ALL));
        }
        let at = view::places(scores, |s| &s.name);
        let cuts: Vec<Cut> = self
            .parties
            .iter()
            .map(|p| Cut::top_and(TOP_PLACES, [at.get(p.name.as_str()).copied(), None]))
            .collect();
        drop(at);
        self.reach_each(|i, p| p.gone() || p.tell(view::cut(&event, cuts[i])));
        self.send_hosts(|| view::cut(&event, view::host_cut()));
    }

    fn present(&self) -> usize {
        self.parties.iter().filter(|p| !p.gone()).count()
    }

    /// A hosted session nobody is left in: nobody to wait for.
    pub(crate) fn deserted(&self) -> bool {
        self.hosted && self.hosts.is_empty() && self.present() == 0
    }

    /// Enough players here to play a round.
    pub(crate) fn enough(&self) -> bool {
        self.present() >= self.config.min_parties
    }

    pub(crate) fn ping_all(&mut self) {
        self.ping(|_| true);
    }

    /// Pings the players still to answer the open round (see [`ANSWER_PING_EVERY`]), each
    /// while fewer than [`ANSWER_PINGS_IN_FLIGHT`] of its pings await their `Pong`: a client
    /// that reads slowly, or not at all, is not sent more, and its outbox keeps room for its
    /// result.
    pub(crate) fn ping_waiting(&mut self) {
        self.ping(|p| p.play == Play::Waiting && p.pings_in_flight() < ANSWER_PINGS_IN_FLIGHT);
    }

    fn ping(&mut self, to: impl Fn(&Party) -> bool) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let sent = Instant::now();
        // A ping that finds the outbox full (rosters queued in a burst of joins) is skipped, like
        // a lost one: the party has one sample fewer. Only a ping that went out awaits its pong.
        self.reach(|p| !to(p) || p.offer_ping(seq, sent));
    }

    /// Opens round `self.round + 1` with its `Go` sent at `go`: who is in it, who is out of it,
    /// and in buzz mode an empty queue.
    pub(crate) fn open_round(&mut self, go: Instant) -> u64 {
        self.round += 1;
        self.played += 1;
        self.go = Some(go);
        self.last_go = None;
        self.first_go = None;
        self.gos_written = 0;
        self.answer_ping_every = answer_ping_every(self.present());
        self.ask = HostAsk::Nothing;
        self.buzz = self.buzz_mode().then(BuzzRound::default);
        for p in &mut self.parties {
            p.open(self.round, &self.config);
        }
        self.round
    }

    /// The open round is over: in a race, when nobody can still answer; in buzz mode, when a
    /// correct answer ended it, the host moved on, nobody can still buzz and no buzz waits for
    /// judgement, or no host who judges is left.
    pub(crate) fn round_over(&self) -> bool {
        let waiting = self.parties.iter().any(|p| p.play == Play::Waiting);
        match &self.buzz {
            None => !waiting,
            Some(b) => {
                b.over
                    || self.ask == HostAsk::Next
                    || (!waiting && !b.pending())
                    || !self.hosts.iter().any(|h| h.judges)
            }
        }
    }

    /// Whether the open round is played in buzz mode.
    pub(crate) fn buzzing(&self) -> bool {
        self.buzz.is_some()
    }

    /// Ends the open question in buzz mode: unjudged buzzes are void; everyone sees the final
    /// queue, which is returned for the record.
    pub(crate) fn close_buzz(&mut self) -> Option<BuzzQueue> {
        self.buzz.as_mut()?.close();
        self.queue_throttle.sent(Instant::now());
        self.send_buzzes();
        self.buzz_queue()
    }

    /// What the host should look at in the open round's answers: `Name (why)` for each player
    /// that answered and is flagged (see `Party::flag`).
    pub(crate) fn flags(&self) -> Vec<String> {
        self.parties
            .iter()
            .filter(|p| matches!(p.play, Play::Answered(_)))
            .filter_map(|p| Some(format!("{} ({})", p.name, p.flag(&self.config)?)))
            .collect()
    }

    /// When the next ping to the players still to answer is due, if any is still to answer.
    pub(crate) fn next_answer_ping(&self, last: Instant) -> Option<Instant> {
        self.parties
            .iter()
            .any(|p| p.play == Play::Waiting)
            .then(|| last + self.answer_ping_every)
    }

    /// The open round's `Go`s as written: how many, and from the first to the last.
    pub(crate) fn gos_written(&self) -> (usize, Duration) {
        let spread = match (self.first_go, self.last_go) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        };
        (self.gos_written, spread)
    }

    /// Whether every list of this session fits one frame (see `view`).
    pub(crate) fn small(&self) -> bool {
        view::small(self.parties.len())
    }

    /// The game this round belongs to.
    pub(crate) fn game(&self) -> u64 {
        self.game
    }

    /// A seat's points, by name (0 for a seat no longer here).
    pub(crate) fn points_of(&self, name: &str) -> u64 {
        self.parties
            .iter()
            .find(|p| p.name == name)
            .map_or(0, |p| p.points)
    }

    /// Closes the round whose result was sent at `sent`: answers that arrive before a party
    /// could have seen it are late, not early.
    pub(crate) fn close_round(&mut self, sent: Instant) {
        self.go = None;
        self.buzz = None;
        if self.ask == HostAsk::Next {
            self.ask = HostAsk::Nothing;
        }
        for p in &mut self.parties {
            if p.in_round() {
                let (rtt, _) = p.rtt(&self.config);
                let rtt = rtt.unwrap_or(self.config.max_compensation);
                p.late_until = Some(sent + rtt + LATE_GRACE);
            }
            p.play = Play::Idle;
        }
    }

    /// Every seat's points, the highest first.
    pub(crate) fn scores(&self) -> Vec<Score> {
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

    /// Party `p`'s line of a result, before its answer is ranked.
    fn placing(&self, p: &Party) -> Placing {
        let (rtt, rtt_source) = p.rtt(&self.config);
        Placing {
            name: p.name.clone(),
            standing: Standing::NoAnswer,
            after_go_micros: None,
            rtt_micros: rtt.map(|d| d.as_micros() as u64),
            rtt_source,
            reaction_micros: None,
        }
    }

    /// The round's result in the configured order. In a race the first valid answer scores a
    /// point; in buzz mode the queue comes first as judged (its points already given).
    pub(crate) fn result(&mut self, go: Instant, queue: Option<&BuzzQueue>) -> Vec<Placing> {
        let queued: Vec<Placing> = queue
            .map(|q| q.buzzes.iter().map(judged).collect())
            .unwrap_or_default();
        let queued_names: std::collections::HashSet<&str> =
            queued.iter().map(|p| p.name.as_str()).collect();
        let is_queued = |name: &str| queued_names.contains(name);
        // (false start, key, party, placing) for the answers; the rest in party order.
        let mut answered: Vec<(bool, i128, usize, Placing)> = Vec::new();
        let mut silent = Vec::new();
        for (i, p) in self.parties.iter().enumerate() {
            if is_queued(&p.name) {
                continue;
            }
            let mut placing = self.placing(p);
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
        if queue.is_none() {
            if let Some(&(false, _, first, _)) = answered.first() {
                self.parties[first].points += 1;
            }
            // A false start costs its points (a buzz-mode one paid as it was pressed).
            for &(false_start, _, i, _) in &answered {
                if false_start {
                    let p = &mut self.parties[i];
                    p.points = p.points.saturating_sub(self.early);
                }
            }
        }
        queued
            .into_iter()
            .chain(answered.into_iter().map(|(_, _, _, placing)| placing))
            .chain(silent)
            .collect()
    }

    /// Fills in `placing` for party `p`'s answer at `at` to the `Go` at `go`; returns whether it
    /// was a false start, and its ranking key.
    ///
    /// The time after `Go` is from the party's own `Go` where its connection reported writing
    /// it, else from `go`, when the session sent them all. Arrival order ranks by the instant
    /// of arrival, so its key stays after `go`.
    fn rank(&self, p: &Party, at: Instant, go: Instant, placing: &mut Placing) -> (bool, i128) {
        let config = &self.config;
        let after = at.saturating_duration_since(p.go.unwrap_or(go));
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
            Order::Arrival => at.saturating_duration_since(go).as_micros() as i128,
        };
        (false_start, key)
    }
}

/// A big room's lineup as its hosts are sent it: the `most` seats with the most points (ties by
/// name, as the scores are ordered), so the projector's scoreboard is the room's, whatever seats
/// its leaders took.
fn top_scorers(all: &Lineup, most: usize) -> Lineup {
    let mut order: Vec<usize> = (0..all.players.len()).collect();
    let players = &all.players;
    order.sort_by(|&a, &b| {
        (players[b].points.cmp(&players[a].points))
            .then_with(|| players[a].name.cmp(&players[b].name))
    });
    order.truncate(most);
    Lineup {
        players: order.into_iter().map(|i| players[i].clone()).collect(),
        ..all.cut(Cut::top_and(0, [None, None]))
    }
}

/// A judged buzz's line of a result.
fn judged(b: &crate::protocol::Buzz) -> Placing {
    Placing {
        name: b.name.clone(),
        standing: match b.judgement {
            Judgement::Correct => Standing::Correct,
            Judgement::Wrong => Standing::Wrong,
            Judgement::Waiting | Judgement::Void => Standing::Answered,
        },
        after_go_micros: Some(b.after_go_micros),
        rtt_micros: b.rtt_micros,
        rtt_source: b.rtt_source,
        reaction_micros: b.reaction_micros,
    }
}
