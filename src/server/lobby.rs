//! The lobby: which round, or which quiz session, a connection plays in.
//!
//! Owns the table of rounds still filling, keyed by room (`None` for anonymous rounds), the table
//! of running sessions (protocol 2's `Join`), keyed by room, and the count of rounds started. It
//! alone creates rounds (one coordinator task each) and sessions (one session task each), and
//! routes each joining connection to the round filling, or the session running, for its room,
//! creating one when there is none. A session counts as one round of the server's budget; a
//! party may join a running session whatever the budget.
//!
//! Invariants:
//! - A round leaves the table the moment it is full; one that ended while filling (abandoned by
//!   every party, or timed out) is swept out, so the table holds at most about twice the rounds
//!   that have a party waiting, plus a small constant: abandoned rooms cost nothing.
//! - Only a round that fills counts against the server's budget of rounds (`--rounds N`): a
//!   party that joins and leaves never uses one up, whatever room it named.
//!
//! It must not read or write sockets, or decide anything inside a round.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt, StreamExt};

use super::{Config, Stats};
use crate::protocol::ErrorKind;
use crate::round::session::{session_loop, SessionEvent};
use crate::round::{coordinator_loop, ConnId, Event, Outbox, Outcome, RoundConfig, RoundReport};
use crate::rt;
use crate::stop::Stop;

/// Pending joins the lobby queues before connections wait to hand theirs over.
pub(crate) const LOBBY_CAPACITY: usize = 256;

/// A handshaken connection asking the lobby for a place in a round.
pub(crate) struct Join {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) room: Option<String>,
    /// A protocol-2 `Join`: the name to play a session under.
    pub(crate) session: Option<String>,
    pub(crate) reply: Outbox,
    pub(crate) placed: oneshot::Sender<Result<Placement, (ErrorKind, String)>>,
}

/// Where the lobby put a connection.
pub(crate) struct Placement {
    /// The label in a round, or the name in a session.
    pub(crate) label: String,
    pub(crate) room: Room,
}

/// What a placed connection talks to.
pub(crate) enum Room {
    Round(mpsc::Sender<Event>),
    Session(mpsc::Sender<SessionEvent>),
}

/// Routes each joining connection to the round filling for its room, creating rounds as needed
/// and refusing joins once the configured number of rounds has started. Each round's report goes
/// to `reports`. Returns when `joins` ends or `stop` fires.
pub(crate) async fn lobby_loop(
    mut joins: mpsc::Receiver<Join>,
    config: Config,
    reports: mpsc::Sender<RoundReport>,
    stop: Stop,
    stats: Arc<Stats>,
) {
    let mut filling: HashMap<Option<String>, mpsc::Sender<Event>> = HashMap::new();
    let mut sessions: HashMap<Option<String>, mpsc::Sender<SessionEvent>> = HashMap::new();
    let labels: Arc<[String]> = config.labels.clone().into();
    let mut created: u64 = 0;
    let mut started: u64 = 0;
    // Table size after the last sweep; sweeping when it doubles keeps the cost per join constant.
    let mut swept_at = 0;
    loop {
        let join = futures::select_biased! {
            () = stop.wait().fuse() => break,
            join = joins.next() => match join {
                Some(join) => join,
                None => break,
            },
        };
        if filling.len() + sessions.len() > 2 * swept_at + 64 {
            filling.retain(|_, round| !round.is_closed());
            sessions.retain(|_, session| !session.is_closed());
            swept_at = filling.len() + sessions.len();
        }
        if let Some(name) = join.session.clone() {
            let budget_left = config.rounds == 0 || started < config.rounds;
            let placed = place_in_session(
                &mut sessions,
                join,
                name,
                budget_left,
                &config,
                &reports,
                &stop,
                &stats,
            )
            .await;
            if placed {
                started += 1;
            }
            stats.rooms_filling.store(
                filling.len() + sessions.len(),
                std::sync::atomic::Ordering::SeqCst,
            );
            continue;
        }
        if config.rounds != 0 && started >= config.rounds {
            let message = if config.rounds == 1 {
                "the round is full; this server runs a single round".to_owned()
            } else {
                format!("all {} rounds of this server are taken", config.rounds)
            };
            let _ = join.placed.send(Err((ErrorKind::RoundFull, message)));
            continue;
        }
        loop {
            if let Some(round) = filling.get(&join.room) {
                let mut round = round.clone();
                let (admitted, answer) = oneshot::channel();
                let event = Event::Join {
                    id: join.id,
                    peer: join.peer,
                    reply: join.reply.clone(),
                    admitted,
                };
                // A filling round answers a join at once; the bound covers a wedged one.
                let asked = async {
                    round.send(event).await.ok()?;
                    answer.await.ok().flatten()
                };
                let admit = rt::bounded(config.frame_timeout, asked).await.flatten();
                if let Some(admit) = admit {
                    if admit.full {
                        started += 1;
                        filling.remove(&join.room);
                    }
                    let placement = Placement {
                        label: admit.label,
                        room: Room::Round(round),
                    };
                    let _ = join.placed.send(Ok(placement));
                    break;
                }
                // That round ended (abandoned or timed out) while filling.
                filling.remove(&join.room);
            }
            created += 1;
            let (tx, rx) = mpsc::channel(4 * config.labels.len() + 4);
            let round = RoundConfig {
                id: created,
                room: join.room.clone(),
                labels: Arc::clone(&labels),
                timeout: config.round_timeout,
                style: config.style,
                chat: config.chat,
                chat_idle: config.chat_idle,
            };
            let mut reports = reports.clone();
            let (stop, transcript) = (stop.clone(), config.transcript.clone());
            // Counted before it can end: the accept loop counts it down on its report.
            stats
                .rounds_live
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // The round's own future with the report's delivery chained on, not an async block
            // around it that would hold its arguments a second time while the round waits.
            let round = coordinator_loop(round, rx, stop, transcript);
            rt::spawn(round.then(move |report| async move {
                let _ = reports.send(report).await;
            }));
            filling.insert(join.room.clone(), tx);
        }
        stats.rooms_filling.store(
            filling.len() + sessions.len(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

/// Routes a protocol-2 `Join` to its room's session, creating the session if there is none and
/// the budget allows. Returns whether a session was created.
#[allow(clippy::too_many_arguments)]
async fn place_in_session(
    sessions: &mut HashMap<Option<String>, mpsc::Sender<SessionEvent>>,
    join: Join,
    name: String,
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
                name: name.clone(),
                reply: join.reply.clone(),
                admitted,
            };
            let asked = async {
                session.send(event).await.ok()?;
                answer.await.ok()
            };
            match rt::bounded(config.frame_timeout, asked).await.flatten() {
                Some(true) => {
                    let placement = Placement {
                        label: name,
                        room: Room::Session(session),
                    };
                    let _ = join.placed.send(Ok(placement));
                }
                Some(false) => {
                    let message = format!("the name {name} is taken in this session");
                    let _ = join.placed.send(Err((ErrorKind::InvalidName, message)));
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
        let session_config = crate::round::session::SessionConfig {
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
    fn lobby(config: Config) -> (mpsc::Sender<Join>, mpsc::Receiver<RoundReport>) {
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

    async fn place(joins: &mut mpsc::Sender<Join>, id: ConnId, room: Option<&str>) -> Placed {
        let (join, answer, outbox) = joiner(id, room);
        joins.send(join).await.unwrap();
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
            let Room::Round(mut round) = early.answer.expect("placed").room else {
                panic!("a round")
            };
            round
                .send(Event::Left {
                    id: 1,
                    why: "closed the connection".into(),
                })
                .await
                .unwrap();
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
