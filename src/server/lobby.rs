//! The lobby: which round, or which quiz session, a connection plays in.
//!
//! Owns the rounds still filling, keyed by room (`None` for anonymous rounds), as state rather
//! than tasks ([`Filling`]): it seats each joining connection, frees the slot of one that leaves
//! before the barrier, aborts one whose time limit passed, and at the barrier hands the round to
//! a task of its own. A party waiting alone for others (tens of thousands of idle connections)
//! so costs a table entry. It also owns the table of running sessions (protocol 2's `Join`),
//! keyed by room, and creates them (one session task each): a joiner is handed its room's
//! session, and joins it itself. A session counts as one round of the server's budget; a party
//! may join a running session whatever the budget. While the server drains (see
//! [`Stats::draining`]) it starts no round or session: joins to the running ones go on.
//!
//! Invariants:
//! - A round leaves the table the moment it is full, is abandoned (its last party left) or
//!   times out: the table holds exactly the rounds that have a party waiting, and the queue of
//!   deadlines at most about twice that, plus a small constant. Abandoned rooms cost nothing.
//! - Only a round that fills counts against the server's budget of rounds (`--rounds N`): a
//!   party that joins and leaves never uses one up, whatever room it named.
//! - It never waits for a round, a session or a connection: seating, departures, the barrier and
//!   handing out a session are synchronous, and what it tells a connection goes through
//!   `try_send` into its outbox or a oneshot. It waits only to hand a report to the accept loop.
//!
//! It must not read or write sockets, or decide anything inside a round.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt, StreamExt};

use super::config::Config;
use super::stats::Stats;
use super::summary::Report;
use crate::protocol::ErrorKind;
use crate::round::{ConnId, Event, Filling, Outbox, RoundConfig, RoundReport};
use crate::rt;
use crate::session::{session_loop, SessionConfig, SessionEvent};
use crate::stop::Stop;
use crate::transcript::Transcript;

/// Pending requests the lobby queues before connections wait to hand theirs over.
pub(crate) const LOBBY_CAPACITY: usize = 256;

/// What connections ask of the lobby.
pub(crate) enum ToLobby {
    Join(Join),
    Left(Leave),
}

/// A handshaken connection asking the lobby for a place in a round.
pub(crate) struct Join {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) room: Option<String>,
    /// It joins a quiz session (protocol 2's `Join`, protocol 4's `Host`), not a round.
    pub(crate) session: bool,
    pub(crate) reply: Outbox,
    pub(crate) placed: oneshot::Sender<Result<Placement, (ErrorKind, String)>>,
}

/// A room's name as the lobby keys its rounds: one allocation shared by the table, the round,
/// its deadline and its parties' connections.
pub(crate) type RoomKey = Option<Arc<str>>;

/// A connection placed in a round that had not started leaves.
pub(crate) struct Leave {
    pub(crate) room: RoomKey,
    pub(crate) round: u64,
    pub(crate) id: ConnId,
    /// A short human phrase: "closed the connection".
    pub(crate) why: String,
    /// Told `true` if the round was still filling and has been told. Otherwise it has started
    /// since (the connection's `Started`, with the round's channel, is in its outbox) or ended.
    pub(crate) heard: oneshot::Sender<bool>,
}

/// Where the lobby put a connection.
#[derive(Debug)]
pub(crate) enum Placement {
    /// A seat labelled `label` in a round the lobby holds until it fills: a departure goes to
    /// the lobby. `Started` brings the round's own channel.
    Round {
        label: String,
        room: RoomKey,
        round: u64,
    },
    /// The room's session: the connection asks it for a seat itself.
    Session(mpsc::Sender<SessionEvent>),
}

/// The rounds still filling, and when each must have started.
struct Rounds {
    /// Boxed: the table has room for more entries than it holds, and an empty slot should cost
    /// a pointer, not a round.
    filling: HashMap<RoomKey, Box<Filling>>,
    /// The rounds with a time limit, in the order their deadlines fall (every round has the same
    /// limit, counted from when it was made). Entries of rounds that have since left the table
    /// are skipped when they reach the front, and swept when they outnumber the live ones.
    deadlines: VecDeque<(u64, RoomKey)>,
    /// Armed for the front deadline whenever there is one.
    alarm: rt::Alarm,
}

impl Rounds {
    /// The deadline of round `id` if it is still filling in `room`.
    fn deadline(&self, room: &RoomKey, id: u64) -> Option<Instant> {
        let round = self.filling.get(room).filter(|f| f.id() == id)?;
        round.deadline()
    }

    fn insert(&mut self, room: RoomKey, round: Filling) {
        if let Some(at) = round.deadline() {
            if self.deadlines.len() > 2 * self.filling.len() + 64 {
                let filling = &self.filling;
                self.deadlines
                    .retain(|(id, room)| filling.get(room).is_some_and(|f| f.id() == *id));
            }
            if self.deadlines.is_empty() {
                self.alarm.set_at(at);
            }
            self.deadlines.push_back((round.id(), room.clone()));
        }
        self.filling.insert(room, Box::new(round));
    }

    /// Takes out the rounds whose time limit has passed, and re-arms for the next one.
    fn expired(&mut self, now: Instant) -> Vec<Filling> {
        let mut expired = Vec::new();
        while let Some((id, room)) = self.deadlines.front() {
            let at = self.deadline(room, *id);
            if let Some(at) = at.filter(|&at| at > now) {
                self.alarm.set_at(at);
                return expired;
            }
            let (_, room) = self.deadlines.pop_front().expect("a front entry");
            if at.is_some() {
                expired.extend(self.filling.remove(&room).map(|round| *round));
            }
        }
        self.alarm.clear();
        expired
    }
}

/// What a lobby needs to make rounds.
struct Maker {
    /// Every round's settings but its id and room.
    template: RoundConfig,
    transcript: Transcript,
    stop: Stop,
    reports: mpsc::Sender<Report>,
    stats: Arc<Stats>,
    /// Rounds made so far: the next one's id.
    created: u64,
}

impl Rounds {
    /// A party left its round before the barrier: its slot is freed, and the round's report
    /// comes back if that left it empty.
    fn left(&mut self, leave: Leave) -> Option<RoundReport> {
        let round = self
            .filling
            .get_mut(&leave.room)
            .filter(|round| round.id() == leave.round);
        let _ = leave.heard.send(round.is_some());
        let report = round?.left(leave.id, &leave.why)?;
        self.filling.remove(&leave.room);
        Some(report)
    }

    /// Seats a joining connection in the round filling for its room, making one if there is
    /// none, and starts the round (a task of its own from now on) if that filled it. Returns
    /// whether a round started, and the report of one that this join ended.
    fn join(&mut self, join: Join, maker: &mut Maker) -> (bool, Option<RoundReport>) {
        let Join {
            id,
            peer,
            room,
            reply,
            placed,
            ..
        } = join;
        let room: RoomKey = room.map(Arc::from);
        if !self.filling.contains_key(&room) {
            maker.created += 1;
            let config = RoundConfig {
                id: maker.created,
                room: room.clone(),
                ..maker.template.clone()
            };
            // Counted while it exists: the accept loop counts it down on its report.
            maker.stats.rounds_live.fetch_add(1, Ordering::SeqCst);
            let round = Filling::new(config, maker.transcript.clone());
            self.insert(room.clone(), round);
        }
        let round = self.filling.get_mut(&room).expect("made above");
        let round_id = round.id();
        // A filling round always has a free slot: it leaves the table when its last one fills.
        let Some(admit) = round.join(id, peer, reply) else {
            return (false, None);
        };
        let placement = Placement::Round {
            label: admit.label,
            room: room.clone(),
            round: round_id,
        };
        // It may have given up waiting (its handshake deadline) in the instant since it was
        // seated; its round learns at once.
        let gone = placed.send(Ok(placement)).is_err();
        let why = "was not placed in time";
        if !admit.full {
            let report = if gone { round.left(id, why) } else { None };
            if report.is_some() {
                self.filling.remove(&room);
            }
            return (false, report);
        }
        let round = *self.filling.remove(&room).expect("the round just joined");
        let (coordinator, mut events) = round.start(maker.stop.clone());
        if gone {
            let _ = events.try_send(Event::Left {
                id,
                why: why.to_owned(),
            });
        }
        drop(events);
        let mut reports = maker.reports.clone();
        // The round's own future with the report's delivery chained on, not an async block
        // around it that would hold its state a second time while the round waits.
        rt::spawn(coordinator.then(move |report| async move {
            let _ = reports.send(Report::Round(report)).await;
        }));
        (true, None)
    }
}

/// The sessions running, by room.
struct Sessions {
    table: HashMap<Option<String>, mpsc::Sender<SessionEvent>>,
    /// Table size after the last sweep; sweeping when it doubles keeps the cost per join constant.
    swept_at: usize,
}

impl Sessions {
    /// Whether `room` has a session running.
    fn running(&self, room: &Option<String>) -> bool {
        self.table.get(room).is_some_and(|s| !s.is_closed())
    }
}

/// What a join that would start a round or a session is told while the server drains.
pub(crate) const DRAINING: &str = "this server is draining: new rooms start on another; try again";

/// The lobby's state; see the module docs.
struct Lobby {
    config: Config,
    rounds: Rounds,
    maker: Maker,
    sessions: Sessions,
    /// Rounds and sessions started: what the server's budget of rounds counts.
    started: u64,
    reports: mpsc::Sender<Report>,
    stats: Arc<Stats>,
}

/// Routes each joining connection to the round filling for its room, or hands it its room's
/// session, creating rounds and sessions as needed and refusing joins once the configured number
/// of rounds has started. Each round's and session's report goes to `reports`. Returns when
/// `requests` ends or `stop` fires.
pub(crate) async fn lobby_loop(
    mut requests: mpsc::Receiver<ToLobby>,
    config: Config,
    reports: mpsc::Sender<Report>,
    stop: Stop,
    stats: Arc<Stats>,
) {
    let mut lobby = Lobby::new(config, reports, stop.clone(), stats);
    loop {
        let ended = futures::select_biased! {
            () = stop.wait().fuse() => break,
            () = (&mut lobby.rounds.alarm).fuse() => lobby.expired(),
            request = requests.next() => match request {
                Some(ToLobby::Left(leave)) => lobby.rounds.left(leave).into_iter().collect(),
                Some(ToLobby::Join(join)) => lobby.join(join),
                None => break,
            },
        };
        lobby.report(ended).await;
    }
    lobby.stop().await;
}

impl Lobby {
    fn new(config: Config, reports: mpsc::Sender<Report>, stop: Stop, stats: Arc<Stats>) -> Lobby {
        let maker = Maker {
            template: RoundConfig {
                id: 0,
                room: None,
                labels: config.labels.clone().into(),
                timeout: config.round_timeout,
                style: config.style,
                chat: config.chat,
                chat_idle: config.chat_idle,
                message_timeout: config.message_timeout,
            },
            transcript: config.transcript.clone(),
            stop,
            reports: reports.clone(),
            stats: Arc::clone(&stats),
            created: 0,
        };
        Lobby {
            config,
            rounds: Rounds {
                filling: HashMap::new(),
                deadlines: VecDeque::new(),
                alarm: rt::Alarm::new(),
            },
            maker,
            sessions: Sessions {
                table: HashMap::new(),
                swept_at: 0,
            },
            started: 0,
            reports,
            stats,
        }
    }

    fn budget_left(&self) -> bool {
        self.config.rounds == 0 || self.started < self.config.rounds
    }

    /// The rounds whose time limit passed, ended.
    fn expired(&mut self) -> Vec<RoundReport> {
        let expired = self.rounds.expired(Instant::now());
        expired.into_iter().map(Filling::expire).collect()
    }

    /// Places a joining connection; returns the report of a round that this ended.
    fn join(&mut self, join: Join) -> Vec<RoundReport> {
        // Only a draining server asks whether the join starts something: the room's key is not
        // made twice on every join.
        if self.stats.draining() && self.starts_new(&join) {
            let _ = join
                .placed
                .send(Err((ErrorKind::Busy, DRAINING.to_owned())));
            return Vec::new();
        }
        if join.session {
            let placed = self.session_for(join.room);
            let _ = join.placed.send(placed.map(Placement::Session));
            return Vec::new();
        }
        if !self.budget_left() {
            let message = if self.config.rounds == 1 {
                "the round is full; this server runs a single round".to_owned()
            } else {
                format!("all {} rounds of this server are taken", self.config.rounds)
            };
            let _ = join.placed.send(Err((ErrorKind::RoundFull, message)));
            return Vec::new();
        }
        if join.placed.is_canceled() {
            // It gave up waiting (its handshake deadline passed): seated nowhere.
            return Vec::new();
        }
        let (filled, report) = self.rounds.join(join, &mut self.maker);
        self.started += u64::from(filled);
        report.into_iter().collect()
    }

    /// Whether `join` would start a round or a session rather than join a running one.
    fn starts_new(&self, join: &Join) -> bool {
        if join.session {
            return !self.sessions.running(&join.room);
        }
        let room: RoomKey = join.room.as_deref().map(Arc::from);
        !self.rounds.filling.contains_key(&room)
    }

    /// The session of `room`, started if there is none (or the last one has ended) and the
    /// budget allows.
    fn session_for(
        &mut self,
        room: Option<String>,
    ) -> Result<mpsc::Sender<SessionEvent>, (ErrorKind, String)> {
        let sessions = &mut self.sessions;
        if sessions.table.len() > 2 * sessions.swept_at + 64 {
            sessions.table.retain(|_, session| !session.is_closed());
            sessions.swept_at = sessions.table.len();
        }
        if let Some(session) = sessions.table.get(&room).filter(|s| !s.is_closed()) {
            return Ok(session.clone());
        }
        if !self.budget_left() {
            let message = "all rounds of this server are taken; no new session can start";
            return Err((ErrorKind::RoundFull, message.to_owned()));
        }
        self.started += 1;
        let session = self.start_session(room.clone());
        self.sessions.table.insert(room, session.clone());
        Ok(session)
    }

    /// Starts a session task for `room`; its report goes to the accept loop when it ends.
    fn start_session(&self, room: Option<String>) -> mpsc::Sender<SessionEvent> {
        let (tx, rx) = mpsc::channel(SESSION_CAPACITY);
        let config = SessionConfig {
            room,
            style: self.config.style,
            ..self.config.session.clone()
        };
        let mut reports = self.reports.clone();
        let (stop, transcript) = (self.maker.stop.clone(), self.config.transcript.clone());
        self.stats.rounds_live.fetch_add(1, Ordering::SeqCst);
        let session = session_loop(config, rx, stop, transcript);
        rt::spawn(session.then(move |report| async move {
            let _ = reports.send(Report::Session(report)).await;
        }));
        tx
    }

    /// Hands the accept loop the reports of rounds that ended.
    async fn report(&mut self, ended: Vec<RoundReport>) {
        for report in ended {
            let _ = self.reports.send(Report::Round(report)).await;
        }
        let rooms = self.rounds.filling.len() + self.sessions.table.len();
        self.stats.rooms_filling.store(rooms, Ordering::SeqCst);
    }

    /// Rounds still filling end with the lobby; their parties hear of the stop from their own
    /// connections.
    async fn stop(mut self) {
        for (_, round) in self.rounds.filling.drain() {
            let _ = self.reports.send(Report::Round(round.stop())).await;
        }
    }
}

/// Events a session queues before its connections wait to hand theirs over.
const SESSION_CAPACITY: usize = 64;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::round::{Outbound, Outcome, OUTBOX_CAPACITY};
    use crate::rt::block_on;
    use crate::session::{Seat, SessionEvent};

    type Answer = oneshot::Receiver<Result<Placement, (ErrorKind, String)>>;

    /// A connection as the lobby sees it: its join, and the two ends it listens on.
    fn joiner(id: ConnId, room: Option<&str>) -> (Join, Answer, mpsc::Receiver<Outbound>) {
        let (reply, outbox) = mpsc::channel(OUTBOX_CAPACITY);
        let (placed, answer) = oneshot::channel();
        let join = Join {
            id,
            peer: SocketAddr::from(([127, 0, 0, 1], 40000 + id as u16)),
            room: room.map(str::to_owned),
            session: false,
            reply,
            placed,
        };
        (join, answer, outbox)
    }

    /// Starts a lobby; returns where to send joins and where its rounds report.
    fn lobby(config: Config) -> (mpsc::Sender<ToLobby>, mpsc::Receiver<RoundReport>) {
        let (joins, reports) = lobby_reporting(config);
        // Only rounds' reports: these tests start no session.
        let rounds = reports.map(|report| match report {
            Report::Round(report) => report,
            Report::Session(_) => panic!("no session was started"),
        });
        let (mut tx, rx) = mpsc::channel(16);
        rt::spawn(async move {
            futures::pin_mut!(rounds);
            while let Some(report) = rounds.next().await {
                if tx.send(report).await.is_err() {
                    break;
                }
            }
        });
        (joins, rx)
    }

    fn lobby_reporting(config: Config) -> (mpsc::Sender<ToLobby>, mpsc::Receiver<Report>) {
        let (joins, rx) = mpsc::channel(LOBBY_CAPACITY);
        let (reports_tx, reports) = mpsc::channel(16);
        rt::spawn(lobby_loop(
            rx,
            config,
            reports_tx,
            Stop::never(),
            Arc::default(),
        ));
        (joins, reports)
    }

    async fn place(joins: &mut mpsc::Sender<ToLobby>, id: ConnId, room: Option<&str>) -> Placed {
        let (join, answer, outbox) = joiner(id, room);
        joins.send(ToLobby::Join(join)).await.unwrap();
        Placed {
            answer: answer.await.unwrap(),
            outbox,
        }
    }

    struct Placed {
        answer: Result<Placement, (ErrorKind, String)>,
        outbox: mpsc::Receiver<Outbound>,
    }

    impl Placed {
        fn label(&self) -> &str {
            match self.answer.as_ref().expect("placed") {
                Placement::Round { label, .. } => label,
                Placement::Session(_) => panic!("a round, not a session"),
            }
        }
        /// The label the round announced when it started.
        async fn started(&mut self) -> String {
            loop {
                match self.outbox.next().await {
                    Some(Outbound::Started { label, .. }) => return label,
                    Some(Outbound::Admitted) => continue,
                    other => panic!("expected Started, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn rooms_group_their_parties_whatever_the_order_of_joins() {
        block_on(async {
            let (mut joins, _reports) = lobby(Config {
                rounds: 0,
                ..Config::default()
            });
            let mut a = place(&mut joins, 1, Some("red")).await;
            let mut b = place(&mut joins, 2, Some("blue")).await;
            let mut c = place(&mut joins, 3, Some("red")).await;
            let mut d = place(&mut joins, 4, None).await;
            let mut e = place(&mut joins, 5, Some("blue")).await;
            let mut f = place(&mut joins, 6, None).await;
            for (p, label) in [
                (&a, "X"),
                (&b, "X"),
                (&c, "Y"),
                (&d, "X"),
                (&e, "Y"),
                (&f, "Y"),
            ] {
                assert_eq!(p.label(), label);
            }
            for p in [&mut a, &mut b, &mut c, &mut d, &mut e, &mut f] {
                let expected = p.label().to_owned();
                assert_eq!(p.started().await, expected);
            }
        })
    }

    #[test]
    fn a_one_shot_server_refuses_joins_once_its_round_has_filled() {
        block_on(async {
            let (mut joins, _reports) = lobby(Config::default());
            let a = place(&mut joins, 1, Some("quiz")).await;
            let b = place(&mut joins, 2, Some("quiz")).await;
            assert_eq!((a.label(), b.label()), ("X", "Y"));
            for (id, room) in [(3, None), (4, Some("quiz")), (5, Some("other"))] {
                let refused = place(&mut joins, id, room).await;
                assert_eq!(
                    refused.answer.err(),
                    Some((
                        ErrorKind::RoundFull,
                        "the round is full; this server runs a single round".to_owned()
                    ))
                );
            }
        })
    }

    #[test]
    fn a_party_that_joins_and_leaves_uses_up_no_round() {
        block_on(async {
            let (mut joins, mut reports) = lobby(Config::default());
            let early = place(&mut joins, 1, Some("x")).await;
            let Ok(Placement::Round { room, round, .. }) = early.answer else {
                panic!("a round still filling")
            };
            let (heard, answer) = oneshot::channel();
            let leave = Leave {
                room,
                round,
                id: 1,
                why: "closed the connection".into(),
                heard,
            };
            joins.send(ToLobby::Left(leave)).await.unwrap();
            assert_eq!(answer.await, Ok(true));
            let report = reports.next().await.unwrap();
            assert_eq!(report.outcome, Outcome::Abandoned);
            // The only round of a one-shot server is still to be played, in any room.
            let mut a = place(&mut joins, 2, None).await;
            let mut b = place(&mut joins, 3, None).await;
            assert_eq!(
                (a.started().await, b.started().await),
                ("X".into(), "Y".into())
            );
        })
    }

    async fn leave(joins: &mut mpsc::Sender<ToLobby>, id: ConnId, placed: Placed) -> bool {
        let Ok(Placement::Round { room, round, .. }) = placed.answer else {
            panic!("a round still filling")
        };
        let (heard, answer) = oneshot::channel();
        let why = "closed the connection".to_owned();
        let leave = Leave {
            room,
            round,
            id,
            why,
            heard,
        };
        joins.send(ToLobby::Left(leave)).await.unwrap();
        answer.await.unwrap()
    }

    #[test]
    fn a_departure_after_the_barrier_is_left_to_the_round() {
        block_on(async {
            let (mut joins, _reports) = lobby(Config::default());
            let a = place(&mut joins, 1, None).await;
            let mut b = place(&mut joins, 2, None).await;
            // The lobby no longer holds the round; the connection finds the round's channel in
            // the `Started` in its outbox.
            assert!(!leave(&mut joins, 1, a).await);
            assert_eq!(b.started().await, "Y");
        })
    }

    #[test]
    fn rounds_that_do_not_fill_in_time_expire_and_only_they() {
        block_on(async {
            let (mut joins, mut reports) = lobby(Config {
                rounds: 0,
                round_timeout: Some(Duration::from_millis(30)),
                ..Config::default()
            });
            let _a = place(&mut joins, 1, Some("a")).await;
            let _b = place(&mut joins, 2, Some("b")).await;
            let c = place(&mut joins, 3, Some("c")).await;
            let _d = place(&mut joins, 4, Some("d")).await;
            // b fills and starts (its coordinator keeps its clock); c is abandoned.
            let _b2 = place(&mut joins, 5, Some("b")).await;
            assert!(leave(&mut joins, 3, c).await);
            let mut ended = Vec::new();
            for _ in 0..4 {
                let r = reports.next().await.unwrap();
                let timed_out = matches!(
                    r.outcome,
                    Outcome::Aborted {
                        kind: ErrorKind::RoundTimeout,
                        ..
                    }
                );
                ended.push((r.room.unwrap(), r.started, timed_out));
            }
            ended.sort();
            let room = |name: &str, started, timed_out| (name.to_owned(), started, timed_out);
            assert_eq!(
                ended,
                [
                    room("a", false, true),
                    room("b", true, true),
                    room("c", false, false),
                    room("d", false, true)
                ]
            );
        })
    }

    #[test]
    fn a_round_that_timed_out_while_filling_is_replaced() {
        block_on(async {
            let (mut joins, mut reports) = lobby(Config {
                rounds: 0,
                round_timeout: Some(Duration::from_millis(20)),
                ..Config::default()
            });
            let mut lonely = place(&mut joins, 1, Some("r")).await;
            assert_eq!(
                lonely.outbox.next().await.map(|o| o.is_final()),
                Some(false)
            );
            let report = reports.next().await.unwrap();
            assert!(!report.started);
            assert!(matches!(
                report.outcome,
                Outcome::Aborted {
                    kind: ErrorKind::RoundTimeout,
                    ..
                }
            ));
            assert!(matches!(
                lonely.outbox.next().await,
                Some(Outbound::Ended {
                    kind: ErrorKind::RoundTimeout,
                    ..
                })
            ));
            // A newcomer to the room gets a fresh round, with its own clock.
            let a = place(&mut joins, 2, Some("r")).await;
            assert_eq!(a.label(), "X");
        })
    }

    /// Asks the lobby for the session of `room`, then asks that session for `seat`, as a
    /// connection does: the session's channel, and its answer.
    async fn seat(joins: &mut mpsc::Sender<ToLobby>, id: ConnId, room: &str, seat: Seat) -> Seated {
        let (mut join, answer, outbox) = joiner(id, Some(room));
        join.session = true;
        let reply = join.reply.clone();
        joins.send(ToLobby::Join(join)).await.unwrap();
        let Ok(Placement::Session(mut session)) = answer.await.unwrap() else {
            panic!("a session")
        };
        let (admitted, verdict) = oneshot::channel();
        let event = SessionEvent::Join {
            id,
            seat,
            reply,
            admitted,
        };
        session.send(event).await.unwrap();
        (session, verdict.await.unwrap(), outbox)
    }

    /// The session's channel, its answer, and the seat's outbox (a dropped outbox is a
    /// connection gone: the session lets its seat go).
    type Seated = (
        mpsc::Sender<SessionEvent>,
        Result<(), (ErrorKind, String)>,
        mpsc::Receiver<Outbound>,
    );

    fn player(name: &str) -> Seat {
        Seat::player(name)
    }

    #[test]
    fn a_room_has_one_session_while_it_runs_and_a_new_one_after() {
        block_on(async {
            let (mut joins, mut reports) = lobby_reporting(Config {
                rounds: 0,
                ..Config::default()
            });
            let (first, ann, _ann) = seat(&mut joins, 1, "quiz", player("Ann")).await;
            let (same, ben, _ben) = seat(&mut joins, 2, "quiz", player("Ben")).await;
            assert!(ann.is_ok() && ben.is_ok());
            assert!(first.same_receiver(&same), "one session per room");
            // The name is the session's to refuse, not the lobby's.
            let (_, twice, _) = seat(&mut joins, 3, "quiz", player("Ann")).await;
            assert_eq!(twice.map_err(|(kind, _)| kind), Err(ErrorKind::InvalidName));
            // A hosted session its host leaves before any player joins ends at once.
            let (mut hosted, host, _host) =
                seat(&mut joins, 4, "hosted", Seat::Host { judges: false }).await;
            assert!(host.is_ok());
            hosted.send(SessionEvent::Left { id: 4 }).await.unwrap();
            let Some(Report::Session(report)) = reports.next().await else {
                panic!("the session's report")
            };
            assert_eq!((report.room.as_deref(), report.rounds), (Some("hosted"), 0));
            // Its room gets a new session.
            let (again, cid, _cid) = seat(&mut joins, 5, "hosted", player("Cid")).await;
            assert!(cid.is_ok());
            assert!(!again.same_receiver(&hosted), "a new session");
        })
    }

    #[test]
    fn no_session_starts_beyond_the_budget_but_a_running_one_takes_joiners() {
        block_on(async {
            let (mut joins, _reports) = lobby_reporting(Config::default());
            let (_, ann, _ann) = seat(&mut joins, 1, "quiz", player("Ann")).await;
            assert!(ann.is_ok());
            let (_, ben, _ben) = seat(&mut joins, 2, "quiz", player("Ben")).await;
            assert!(ben.is_ok(), "the running session takes a joiner");
            let (mut join, answer, _outbox) = joiner(3, Some("other"));
            join.session = true;
            joins.send(ToLobby::Join(join)).await.unwrap();
            let refused = answer.await.unwrap().map(|_| ());
            assert_eq!(
                refused,
                Err((
                    ErrorKind::RoundFull,
                    "all rounds of this server are taken; no new session can start".into()
                ))
            );
        })
    }
}
