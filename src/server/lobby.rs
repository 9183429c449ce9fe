//! The lobby: which round, or which quiz session, a connection plays in.
//!
//! Owns the rounds still filling, keyed by room (`None` for anonymous rounds), as state rather
//! than tasks ([`Filling`]): it seats each joining connection, frees the slot of one that leaves
//! before the barrier, aborts one whose time limit passed, and at the barrier hands the round to
//! a task of its own. A party waiting alone for others (tens of thousands of idle connections)
//! so costs a table entry. It also owns the table of running sessions (protocol 2's `Join`),
//! keyed by room, creates them (one session task each) and routes joins to them. A session
//! counts as one round of the server's budget; a party may join a running session whatever the
//! budget.
//!
//! Invariants:
//! - A round leaves the table the moment it is full, is abandoned (its last party left) or
//!   times out: the table holds exactly the rounds that have a party waiting, and the queue of
//!   deadlines at most about twice that, plus a small constant. Abandoned rooms cost nothing.
//! - Only a round that fills counts against the server's budget of rounds (`--rounds N`): a
//!   party that joins and leaves never uses one up, whatever room it named.
//! - It never waits for a round or a connection: seating, departures and the barrier are
//!   synchronous, and what it tells a connection goes through `try_send` into its outbox.
//!
//! It must not read or write sockets, or decide anything inside a round.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt, StreamExt};

use super::{Config, Stats};
use crate::protocol::ErrorKind;
use crate::round::{ConnId, Event, Filling, Outbox, Outcome, RoundConfig, RoundReport};
use crate::rt;
use crate::session::{session_loop, Seat, SessionEvent};
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
    /// A quiz session's seat (protocol 2's `Join`, protocol 4's `Host`).
    pub(crate) session: Option<Seat>,
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
pub(crate) struct Placement {
    /// The label in a round, or the name in a session.
    pub(crate) label: String,
    pub(crate) room: Room,
}

/// What a placed connection talks to.
pub(crate) enum Room {
    /// A round the lobby holds until it fills: a departure goes to the lobby. `Started` brings
    /// the round's own channel.
    Filling {
        room: RoomKey,
        round: u64,
    },
    Round(mpsc::Sender<Event>),
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
    reports: mpsc::Sender<RoundReport>,
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
        let placement = Placement {
            label: admit.label,
            room: Room::Filling {
                room: room.clone(),
                round: round_id,
            },
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
            let _ = reports.send(report).await;
        }));
        (true, None)
    }
}

/// Routes each joining connection to the round filling for its room, creating rounds as needed
/// and refusing joins once the configured number of rounds has started. Each round's report goes
/// to `reports`. Returns when `requests` ends or `stop` fires.
pub(crate) async fn lobby_loop(
    mut requests: mpsc::Receiver<ToLobby>,
    config: Config,
    mut reports: mpsc::Sender<RoundReport>,
    stop: Stop,
    stats: Arc<Stats>,
) {
    let mut rounds = Rounds {
        filling: HashMap::new(),
        deadlines: VecDeque::new(),
        alarm: rt::Alarm::new(),
    };
    let mut maker = Maker {
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
        stop: stop.clone(),
        reports: reports.clone(),
        stats: Arc::clone(&stats),
        created: 0,
    };
    let mut sessions: HashMap<Option<String>, mpsc::Sender<SessionEvent>> = HashMap::new();
    let mut started: u64 = 0;
    // Table size after the last sweep; sweeping when it doubles keeps the cost per join constant.
    let mut swept_at = 0;
    loop {
        let mut ended = Vec::new();
        let request = futures::select_biased! {
            () = stop.wait().fuse() => break,
            () = (&mut rounds.alarm).fuse() => {
                ended.extend(rounds.expired(Instant::now()).into_iter().map(Filling::expire));
                None
            }
            request = requests.next() => match request {
                Some(request) => Some(request),
                None => break,
            },
        };
        match request {
            None => {}
            Some(ToLobby::Left(leave)) => ended.extend(rounds.left(leave)),
            Some(ToLobby::Join(join)) => {
                let budget_left = config.rounds == 0 || started < config.rounds;
                if let Some(seat) = join.session.clone() {
                    if sessions.len() > 2 * swept_at + 64 {
                        sessions.retain(|_, session| !session.is_closed());
                        swept_at = sessions.len();
                    }
                    let placed = place_in_session(
                        &mut sessions,
                        join,
                        seat,
                        budget_left,
                        &config,
                        &reports,
                        &stop,
                        &stats,
                    )
                    .await;
                    started += u64::from(placed);
                } else if !budget_left {
                    let message = if config.rounds == 1 {
                        "the round is full; this server runs a single round".to_owned()
                    } else {
                        format!("all {} rounds of this server are taken", config.rounds)
                    };
                    let _ = join.placed.send(Err((ErrorKind::RoundFull, message)));
                } else if !join.placed.is_canceled() {
                    // (One that gave up waiting, its handshake deadline passed, is seated nowhere.)
                    let (filled, report) = rounds.join(join, &mut maker);
                    started += u64::from(filled);
                    ended.extend(report);
                }
            }
        }
        for report in ended {
            let _ = reports.send(report).await;
        }
        stats
            .rooms_filling
            .store(rounds.filling.len() + sessions.len(), Ordering::SeqCst);
    }
    // Rounds still filling end with the lobby; their parties hear of the stop from their own
    // connections.
    for (_, round) in rounds.filling.drain() {
        let _ = reports.send(round.stop()).await;
    }
}

/// Routes a protocol-2 `Join` to its room's session, creating the session if there is none and
/// the budget allows. Returns whether a session was created.
#[allow(clippy::too_many_arguments)]
async fn place_in_session(
    sessions: &mut HashMap<Option<String>, mpsc::Sender<SessionEvent>>,
    join: Join,
    seat: Seat,
    budget_left: bool,
    config: &Config,
    reports: &mpsc::Sender<RoundReport>,
    stop: &Stop,
    stats: &Arc<Stats>,
) -> bool {
    let mut created = false;
    loop {
        if let Some(session) = sessions.get(&join.room) {
            let mut session = session.clone();
            let (admitted, answer) = oneshot::channel();
            let event = SessionEvent::Join {
                id: join.id,
                seat: seat.clone(),
                reply: join.reply.clone(),
                admitted,
            };
            let asked = async {
                session.send(event).await.ok()?;
                answer.await.ok()
            };
            match rt::bounded(config.frame_timeout, asked).await.flatten() {
                Some(Ok(())) => {
                    let placement = Placement {
                        label: match seat {
                            Seat::Player(name) => name,
                            Seat::Host => "the host".to_owned(),
                        },
                        room: Room::Session(session),
                    };
                    let _ = join.placed.send(Ok(placement));
                }
                Some(Err(refused)) => {
                    let _ = join.placed.send(Err(refused));
                }
                // That session has ended: the room gets a new one.
                None => {
                    sessions.remove(&join.room);
                    continue;
                }
            }
            return created;
        }
        if !budget_left || created {
            let message =
                "all rounds of this server are taken; no new session can start".to_owned();
            let _ = join.placed.send(Err((ErrorKind::RoundFull, message)));
            return false;
        }
        let (tx, rx) = mpsc::channel(64);
        let session_config = crate::session::SessionConfig {
            room: join.room.clone(),
            style: config.style,
            ..config.session.clone()
        };
        let mut reports = reports.clone();
        let (stop, transcript, room) = (stop.clone(), config.transcript.clone(), join.room.clone());
        stats
            .rounds_live
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        rt::spawn(async move {
            let report = session_loop(session_config, rx, stop, transcript).await;
            let report = RoundReport {
                id: 0,
                room,
                started: report.rounds > 0,
                outcome: if report.rounds > 0 {
                    Outcome::Completed {
                        order: Vec::new(),
                        undelivered: Vec::new(),
                    }
                } else {
                    Outcome::Abandoned
                },
                // A session is not aborted by a party that leaves: nobody to hold to account.
                leavers: Vec::new(),
                finished: Vec::new(),
                session_rounds: Some(report.rounds),
            };
            let _ = reports.send(report).await;
        });
        sessions.insert(join.room.clone(), tx);
        created = true;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::round::{Outbound, Outcome, OUTBOX_CAPACITY};
    use crate::rt::block_on;

    type Answer = oneshot::Receiver<Result<Placement, (ErrorKind, String)>>;

    /// A connection as the lobby sees it: its join, and the two ends it listens on.
    fn joiner(id: ConnId, room: Option<&str>) -> (Join, Answer, mpsc::Receiver<Outbound>) {
        let (reply, outbox) = mpsc::channel(OUTBOX_CAPACITY);
        let (placed, answer) = oneshot::channel();
        let join = Join {
            id,
            peer: SocketAddr::from(([127, 0, 0, 1], 40000 + id as u16)),
            room: room.map(str::to_owned),
            session: None,
            reply,
            placed,
        };
        (join, answer, outbox)
    }

    /// Starts a lobby; returns where to send joins and where its rounds report.
    fn lobby(config: Config) -> (mpsc::Sender<ToLobby>, mpsc::Receiver<RoundReport>) {
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
            &self.answer.as_ref().expect("placed").label
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
            let Room::Filling { room, round } = early.answer.expect("placed").room else {
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

    async fn leave(joins: &mut mpsc::Sender<ToLobby>, id: ConnId, room: Room) -> bool {
        let Room::Filling { room, round } = room else {
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
            assert!(!leave(&mut joins, 1, a.answer.expect("placed").room).await);
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
            assert!(leave(&mut joins, 3, c.answer.expect("placed").room).await);
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
}
