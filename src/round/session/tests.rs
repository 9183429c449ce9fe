//! The session actor on plain channels, its parties simulated with synthetic instants: a party
//! with round trip `rtt` answers a ping at `sent + rtt`, and a `Go` at `sent + rtt + reaction`
//! (half the trip out, its reaction, half the trip back), exactly what a delay proxy produces.

use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};

use super::*;
use crate::round::Outbound;
use crate::rt::{self, block_on};
use crate::stop::Stop;
use crate::transcript::Transcript;

struct SimParty {
    id: ConnId,
    name: &'static str,
    rtt: Duration,
    rx: mpsc::Receiver<Outbound>,
}

struct Sim {
    tx: mpsc::Sender<SessionEvent>,
    parties: Vec<SimParty>,
    next_id: ConnId,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Sim {
    fn start(config: SessionConfig) -> (Sim, rt::JoinHandle<SessionReport>) {
        let (tx, rx) = mpsc::channel(64);
        let session = rt::spawn(session_loop(config, rx, Stop::never(), Transcript::Silent));
        (
            Sim {
                tx,
                parties: Vec::new(),
                next_id: 1,
            },
            session,
        )
    }

    async fn join(&mut self, name: &'static str, rtt: Duration) -> bool {
        let (reply, rx) = mpsc::channel::<Outbound>(64);
        let (admitted, answer) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        self.tx
            .send(SessionEvent::Join {
                id,
                name: name.into(),
                reply,
                admitted,
            })
            .await
            .unwrap();
        let ok = answer.await.unwrap();
        if ok {
            let mut rx = rx;
            assert!(matches!(rx.next().await, Some(Outbound::Admitted)));
            self.parties.push(SimParty { id, name, rtt, rx });
        }
        ok
    }

    async fn leave(&mut self, name: &str) {
        let i = self.parties.iter().position(|p| p.name == name).unwrap();
        let p = self.parties.remove(i);
        self.tx.send(SessionEvent::Left { id: p.id }).await.unwrap();
    }

    /// Plays one round: every party answers pings until its `Go`, then answers after its
    /// reaction (`None`: never). Returns the result every party received (all the same).
    async fn round(
        &mut self,
        reactions: &[(&str, Option<u64>)],
    ) -> (u64, Vec<Reaction>, Vec<Score>) {
        let (round, go) = self.until_go().await;
        self.answer(go, reactions).await;
        let result = self.results().await;
        assert_eq!(result.0, round);
        result
    }

    /// Every party answers pings until its `Go`; returns the round and when `Go` was sent.
    async fn until_go(&mut self) -> (u64, Instant) {
        let mut gos = Vec::new();
        for p in &mut self.parties {
            loop {
                match p.rx.next().await.expect("the session ended early") {
                    Outbound::Ping { seq, sent } => {
                        let pong = SessionEvent::Pong {
                            id: p.id,
                            seq,
                            at: sent + p.rtt,
                        };
                        self.tx.send(pong).await.unwrap();
                    }
                    Outbound::Go { round, sent } => {
                        gos.push((round, sent));
                        break;
                    }
                    other => panic!("{}: expected Ping or Go, got {other:?}", p.name),
                }
            }
        }
        let (round, go) = gos[0];
        assert!(gos.iter().all(|&g| g == (round, go)), "one Go for all");
        (round, go)
    }

    /// Each party answers its reaction after `go` (`None`: never).
    async fn answer(&mut self, go: Instant, reactions: &[(&str, Option<u64>)]) {
        for p in &self.parties {
            let reaction = reactions
                .iter()
                .find(|(n, _)| *n == p.name)
                .and_then(|&(_, r)| r);
            if let Some(r) = reaction {
                let at = go + p.rtt + ms(r);
                let answer = SessionEvent::Answer { id: p.id, at };
                self.tx.send(answer).await.unwrap();
            }
        }
    }

    /// The result every party received (all the same).
    async fn results(&mut self) -> (u64, Vec<Reaction>, Vec<Score>) {
        let mut results = Vec::new();
        for p in &mut self.parties {
            match p.rx.next().await {
                Some(Outbound::RoundResult(r)) => results.push((r.round, r.order, r.scores)),
                other => panic!("{}: expected Result, got {other:?}", p.name),
            }
        }
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "one result for all"
        );
        results.remove(0)
    }

    async fn over(&mut self) -> Vec<Vec<Score>> {
        let mut finals = Vec::new();
        for p in &mut self.parties {
            match p.rx.next().await {
                Some(Outbound::SessionOver { scores }) => finals.push(scores),
                other => panic!("{}: expected Over, got {other:?}", p.name),
            }
        }
        finals
    }
}

fn config(rounds: u64, order: Order) -> SessionConfig {
    SessionConfig {
        rounds,
        order,
        answer_timeout: ms(50),
        pings: 3,
        ping_every: ms(2),
        ..SessionConfig::default()
    }
}

fn names(order: &[Reaction]) -> Vec<&str> {
    order.iter().map(|r| r.name.as_str()).collect()
}

fn points(scores: &[Score]) -> Vec<(&str, u64)> {
    scores.iter().map(|s| (s.name.as_str(), s.points)).collect()
}

#[test]
fn three_parties_over_five_rounds_with_a_join_and_a_leave() {
    block_on(async {
        // A long warm-up between rounds: the join and the leave below happen in it, well before
        // the next Go.
        let (mut sim, session) = Sim::start(SessionConfig {
            ping_every: ms(200),
            ..config(5, Order::Arrival)
        });
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        sim.join("Cid", ms(1)).await;
        assert!(
            !sim.join("Ann", ms(1)).await,
            "names are unique in a session"
        );

        let (r, order, scores) = sim
            .round(&[("Ann", Some(5)), ("Ben", Some(1)), ("Cid", Some(9))])
            .await;
        assert_eq!((r, names(&order)), (1, vec!["Ben", "Ann", "Cid"]));
        assert_eq!(points(&scores), [("Ben", 1), ("Ann", 0), ("Cid", 0)]);

        let (_, order, scores) = sim
            .round(&[("Ann", Some(1)), ("Ben", Some(2)), ("Cid", Some(3))])
            .await;
        assert_eq!(names(&order), ["Ann", "Ben", "Cid"]);
        assert_eq!(points(&scores), [("Ann", 1), ("Ben", 1), ("Cid", 0)]);

        // Between rounds: Dot joins, Cid leaves.
        sim.join("Dot", ms(1)).await;
        sim.leave("Cid").await;
        let (_, order, scores) = sim
            .round(&[("Ann", Some(4)), ("Ben", Some(3)), ("Dot", Some(2))])
            .await;
        assert_eq!(names(&order), ["Dot", "Ben", "Ann"]);
        assert_eq!(points(&scores), [("Ann", 1), ("Ben", 1), ("Dot", 1)]);

        let (_, _, scores) = sim
            .round(&[("Ann", Some(1)), ("Ben", Some(3)), ("Dot", Some(2))])
            .await;
        assert_eq!(points(&scores), [("Ann", 2), ("Ben", 1), ("Dot", 1)]);
        let (r, _, scores) = sim
            .round(&[("Ann", Some(1)), ("Ben", Some(3)), ("Dot", Some(2))])
            .await;
        assert_eq!(r, 5);
        assert_eq!(points(&scores), [("Ann", 3), ("Ben", 1), ("Dot", 1)]);

        let finals = sim.over().await;
        assert!(finals
            .iter()
            .all(|f| points(f) == [("Ann", 3), ("Ben", 1), ("Dot", 1)]));
        let report = session.await;
        assert_eq!(report.rounds, 5);
    })
}

#[test]
fn a_party_that_does_not_answer_is_marked_and_the_round_still_ends() {
    block_on(async {
        let (mut sim, _session) = Sim::start(config(1, Order::Arrival));
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        let (_, order, scores) = sim.round(&[("Ann", Some(3)), ("Ben", None)]).await;
        assert_eq!(names(&order), ["Ann", "Ben"]);
        assert!(order[0].answered && !order[1].answered);
        assert_eq!(order[1].after_go_micros, None);
        assert_eq!(order[1].reaction_micros, None);
        assert_eq!(points(&scores), [("Ann", 1), ("Ben", 0)]);
    })
}

#[test]
fn round_trip_estimates_come_from_ping_and_pong() {
    block_on(async {
        let (mut sim, _session) = Sim::start(config(1, Order::Arrival));
        sim.join("Near", ms(1)).await;
        sim.join("Far", ms(80)).await;
        let (_, order, _) = sim.round(&[("Near", Some(10)), ("Far", Some(10))]).await;
        let far = order.iter().find(|r| r.name == "Far").unwrap();
        let near = order.iter().find(|r| r.name == "Near").unwrap();
        assert_eq!(far.rtt_micros, Some(80_000));
        assert_eq!(near.rtt_micros, Some(1_000));
        assert_eq!(far.after_go_micros, Some(90_000));
        assert_eq!(far.reaction_micros, Some(10_000));
    })
}

/// The scenario: one party 40 ms further away each way (80 ms round trip) reacts 20 ms
/// sooner. By arrival the near party wins; by reaction the far one, and the result says why.
#[test]
fn reaction_order_names_the_quicker_party_across_unequal_networks() {
    block_on(async {
        for (order, first) in [(Order::Arrival, "Near"), (Order::Reaction, "Far")] {
            let (mut sim, _session) = Sim::start(config(1, order));
            sim.join("Near", ms(0)).await;
            sim.join("Far", ms(80)).await;
            let (_, result, scores) = sim.round(&[("Near", Some(20)), ("Far", Some(0))]).await;
            assert_eq!(result[0].name, first, "{order:?}");
            assert_eq!(points(&scores)[0], (first, 1), "{order:?}");
            let far = result.iter().find(|r| r.name == "Far").unwrap();
            assert_eq!(far.reaction_micros, Some(0));
            assert_eq!(far.rtt_micros, Some(80_000));
        }
    })
}

#[test]
fn the_session_ends_when_too_few_parties_remain_after_a_round() {
    block_on(async {
        let (mut sim, session) = Sim::start(config(5, Order::Arrival));
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        sim.round(&[("Ann", Some(1)), ("Ben", Some(2))]).await;
        // Round 2: Ben leaves instead of answering.
        let (round, go) = sim.until_go().await;
        assert_eq!(round, 2);
        sim.leave("Ben").await;
        sim.answer(go, &[("Ann", Some(1))]).await;
        let (_, order, scores) = sim.results().await;
        assert_eq!(names(&order), ["Ann"]);
        assert_eq!(points(&scores), [("Ann", 2)]);
        // One party is too few to go on: the session ends and says so.
        assert_eq!(
            sim.over().await,
            [vec![Score {
                name: "Ann".into(),
                points: 2
            }]]
        );
        assert_eq!(session.await.rounds, 2);
    })
}
