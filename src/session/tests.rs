//! The session actor on plain channels, its parties simulated with synthetic instants: a party
//! with round trip `rtt` answers a ping at `sent + rtt`, and a `Go` at `sent + rtt + reaction`
//! (half the trip out, its reaction, half the trip back), exactly what a delay proxy produces.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};

use super::*;
use crate::protocol::{Change, ErrorKind, OverReason, Placing, Roster, RttSource, Score, Standing};
use crate::round::{ConnId, Outbound};
use crate::rt::{self, block_on};
use crate::stop::Stop;
use crate::transcript::Transcript;

struct SimParty {
    id: ConnId,
    name: &'static str,
    rtt: Duration,
    /// What the kernel says of its round trip, if anything.
    kernel: Option<Duration>,
    rx: mpsc::Receiver<Outbound>,
}

struct Sim {
    tx: mpsc::Sender<SessionEvent>,
    parties: Vec<SimParty>,
    next_id: ConnId,
    /// `Early` notices received: (party, round it is locked out of).
    earlies: Vec<(&'static str, u64)>,
    /// Rosters received: (party, roster).
    rosters: Vec<(&'static str, Arc<Roster>)>,
    /// Each seat's secret, as the session gave it.
    secrets: std::collections::HashMap<&'static str, String>,
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
                earlies: Vec::new(),
                rosters: Vec::new(),
                secrets: Default::default(),
            },
            session,
        )
    }

    async fn join(&mut self, name: &'static str, rtt: Duration) -> bool {
        self.join_team(name, None, rtt).await
    }

    async fn join_team(&mut self, name: &'static str, team: Option<&str>, rtt: Duration) -> bool {
        let (reply, rx) = mpsc::channel::<Outbound>(64);
        let (admitted, answer) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        self.tx
            .send(SessionEvent::Join {
                id,
                seat: Seat::Player(Box::new(PlayerSeat {
                    name: name.into(),
                    team: team.map(str::to_owned),
                    secret: None,
                })),
                reply,
                admitted,
            })
            .await
            .unwrap();
        let ok = answer.await.unwrap().is_ok();
        if ok {
            let mut rx = rx;
            assert!(matches!(rx.next().await, Some(Outbound::Admitted)));
            assert!(matches!(rx.next().await, Some(Outbound::Rules(_))));
            let Some(Outbound::Seated { secret }) = rx.next().await else {
                panic!("no secret for {name}'s seat");
            };
            assert_eq!(secret.len(), 32);
            self.secrets.insert(name, secret);
            self.parties.push(SimParty {
                id,
                name,
                rtt,
                kernel: None,
                rx,
            });
        }
        ok
    }

    /// `name`'s buzzer press, arriving at `at`.
    async fn press(&mut self, name: &str, at: Instant) {
        let p = self.parties.iter().find(|p| p.name == name).unwrap();
        let answer = SessionEvent::Answer {
            id: p.id,
            at,
            kernel_rtt: p.kernel,
        };
        self.tx.send(answer).await.unwrap();
    }

    /// What the kernel says of `name`'s round trip from now on.
    fn kernel(&mut self, name: &str, rtt: Duration) {
        let p = self.parties.iter_mut().find(|p| p.name == name).unwrap();
        p.kernel = Some(rtt);
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
    ) -> (u64, Vec<Placing>, Vec<Score>) {
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
                            kernel_rtt: p.kernel,
                            written: None,
                        };
                        self.tx.send(pong).await.unwrap();
                    }
                    Outbound::Go { round, sent } => {
                        gos.push((round, sent));
                        break;
                    }
                    Outbound::Early { round } => self.earlies.push((p.name, round)),
                    Outbound::Roster { roster: r, .. } => self.rosters.push((p.name, r)),
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
                let answer = SessionEvent::Answer {
                    id: p.id,
                    at,
                    kernel_rtt: p.kernel,
                };
                self.tx.send(answer).await.unwrap();
            }
        }
    }

    /// The result every party received (all the same).
    async fn results(&mut self) -> (u64, Vec<Placing>, Vec<Score>) {
        let mut results = Vec::new();
        for p in &mut self.parties {
            loop {
                match p.rx.next().await {
                    Some(Outbound::RoundResult(r)) => {
                        results.push((r.round, r.order.clone(), r.scores.clone()));
                        break;
                    }
                    Some(Outbound::Early { round }) => self.earlies.push((p.name, round)),
                    Some(Outbound::Roster { roster: r, .. }) => self.rosters.push((p.name, r)),
                    Some(Outbound::Buzzes(_)) => {}
                    // The pings of a round waiting for answers (the session may be over by the
                    // time they are answered).
                    Some(Outbound::Ping { seq, sent }) => {
                        let pong = SessionEvent::Pong {
                            id: p.id,
                            seq,
                            at: sent + p.rtt,
                            kernel_rtt: p.kernel,
                            written: None,
                        };
                        let _ = self.tx.send(pong).await;
                    }
                    other => panic!("{}: expected Result, got {other:?}", p.name),
                }
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
            loop {
                match p.rx.next().await {
                    Some(Outbound::SessionOver { scores, .. }) => {
                        finals.push(scores.to_vec());
                        break;
                    }
                    Some(Outbound::Roster { roster: r, .. }) => self.rosters.push((p.name, r)),
                    // A hosted session measures round trips while it waits for its host.
                    Some(Outbound::Ping { .. }) => {}
                    other => panic!("{}: expected Over, got {other:?}", p.name),
                }
            }
        }
        finals
    }
}

fn config(rounds: u64, order: Order) -> SessionConfig {
    SessionConfig {
        rounds,
        order,
        // A round with a silent party lasts this long; the others' answers must be in within it
        // however busy the machine is.
        answer_timeout: ms(500),
        pings: 3,
        ping_every: ms(2),
        // These tests are about the order; the rules against modified clients have their own,
        // with these on.
        go_jitter: Jitter::NONE,
        min_reaction: Duration::ZERO,
        ..SessionConfig::default()
    }
}

fn names(order: &[Placing]) -> Vec<&str> {
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
        // Cid's seat is held, with his score, for him to come back to.
        assert_eq!(
            points(&scores),
            [("Ann", 1), ("Ben", 1), ("Dot", 1), ("Cid", 0)]
        );

        let (_, _, scores) = sim
            .round(&[("Ann", Some(1)), ("Ben", Some(3)), ("Dot", Some(2))])
            .await;
        assert_eq!(
            points(&scores),
            [("Ann", 2), ("Ben", 1), ("Dot", 1), ("Cid", 0)]
        );
        let (r, _, scores) = sim
            .round(&[("Ann", Some(1)), ("Ben", Some(3)), ("Dot", Some(2))])
            .await;
        assert_eq!(r, 5);
        let last = [("Ann", 3), ("Ben", 1), ("Dot", 1), ("Cid", 0)];
        assert_eq!(points(&scores), last);

        let finals = sim.over().await;
        assert!(finals.iter().all(|f| points(f) == last));
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
        assert_eq!(order[0].standing, Standing::Answered);
        assert_eq!(order[1].standing, Standing::NoAnswer);
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

/// The delay scenario: one party 40 ms further away each way (80 ms round trip) reacts 20 ms
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

/// In a big room `Go` is written to one socket after another: each player's reaction counts
/// from its own `Go`, as its connection reports writing it. The player whose `Go` went 100 ms
/// after the other's answers later but reacted quicker, and wins by reaction.
#[test]
fn a_reaction_counts_from_the_players_own_go() {
    block_on(async {
        let (mut sim, _session) = Sim::start(config(1, Order::Reaction));
        sim.join("First", ms(10)).await;
        sim.join("Last", ms(10)).await;
        let (round, go) = sim.until_go().await;
        for (p, late) in sim.parties.iter().zip([ms(0), ms(100)]) {
            let written = SessionEvent::GoWritten {
                id: p.id,
                round,
                at: go + late,
            };
            sim.tx.send(written).await.unwrap();
        }
        // First reacts in 150 ms, Last in 120 ms from its own Go: 70 ms later in arrival.
        let first = &sim.parties[0];
        let at = go + first.rtt + ms(150);
        let answer = SessionEvent::Answer {
            id: first.id,
            at,
            kernel_rtt: first.kernel,
        };
        sim.tx.send(answer).await.unwrap();
        let last = &sim.parties[1];
        let at = go + ms(100) + last.rtt + ms(120);
        let answer = SessionEvent::Answer {
            id: last.id,
            at,
            kernel_rtt: last.kernel,
        };
        sim.tx.send(answer).await.unwrap();
        let (_, result, _) = sim.results().await;
        assert_eq!(names(&result), ["Last", "First"]);
        assert_eq!(standing(&result, "Last").reaction_micros, Some(120_000));
        assert_eq!(standing(&result, "Last").after_go_micros, Some(130_000));
        assert_eq!(standing(&result, "First").reaction_micros, Some(150_000));
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
        // Ben is named as having left during the round, not dropped from its result.
        assert_eq!(names(&order), ["Ann", "Ben"]);
        assert_eq!(order[1].standing, Standing::Left);
        // Ben's seat is held, with his points, for him to come back to.
        assert_eq!(points(&scores), [("Ann", 2), ("Ben", 0)]);
        // One party is too few to go on: the session ends and says so.
        assert_eq!(
            sim.over().await,
            [vec![
                Score {
                    name: "Ann".into(),
                    points: 2
                },
                Score {
                    name: "Ben".into(),
                    points: 0
                }
            ]]
        );
        assert_eq!(session.await.rounds, 2);
    })
}

/// The server's rules in reaction order, without the random wait (tests set their own instants).
fn rules(rounds: u64) -> SessionConfig {
    SessionConfig {
        rounds,
        order: Order::Reaction,
        answer_timeout: Duration::from_secs(1),
        pings: 3,
        ping_every: ms(2),
        go_jitter: Jitter::NONE,
        ..SessionConfig::default()
    }
}

fn standing<'a>(order: &'a [Placing], name: &str) -> &'a Placing {
    order.iter().find(|p| p.name == name).unwrap()
}

#[test]
fn an_early_buzz_locks_the_party_out_of_the_next_round_only() {
    block_on(async {
        let (mut sim, _session) = Sim::start(rules(2));
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        // Before round 1's Go: no round is open for Ann.
        sim.press("Ann", Instant::now()).await;
        let (round, order, scores) = sim.round(&[("Ben", Some(150))]).await;
        assert_eq!(round, 1);
        assert_eq!(sim.earlies, [("Ann", 1)]);
        assert_eq!(names(&order), ["Ben", "Ann"]);
        let ann = standing(&order, "Ann");
        assert_eq!(ann.standing, Standing::Early);
        assert_eq!((ann.after_go_micros, ann.reaction_micros), (None, None));
        assert_eq!(points(&scores), [("Ben", 1), ("Ann", 0)]);
        // One round out, then Ann plays again.
        let (_, order, scores) = sim.round(&[("Ann", Some(120)), ("Ben", Some(150))]).await;
        assert_eq!(names(&order), ["Ann", "Ben"]);
        assert_eq!(standing(&order, "Ann").standing, Standing::Answered);
        assert_eq!(points(&scores), [("Ann", 1), ("Ben", 1)]);
    })
}

#[test]
fn pressing_all_the_time_never_pays() {
    block_on(async {
        let (mut sim, _session) = Sim::start(rules(4));
        sim.join("Spam", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        sim.press("Spam", Instant::now()).await;
        for round in 1..=4 {
            let (r, go) = sim.until_go().await;
            assert_eq!(r, round);
            // While out of this round, and at what would be an unbeatable time.
            sim.press("Spam", go + ms(1)).await;
            sim.press("Spam", go + ms(101)).await;
            sim.answer(go, &[("Ben", Some(200))]).await;
            let (_, order, scores) = sim.results().await;
            let spam = standing(&order, "Spam").standing;
            let expected = if round == 1 {
                Standing::Early
            } else {
                Standing::LockedOut
            };
            assert_eq!(spam, expected, "round {round}");
            assert_eq!(points(&scores)[0], ("Ben", round));
        }
    })
}

#[test]
fn a_press_received_before_go_but_handled_after_it_is_early() {
    block_on(async {
        let (mut sim, _session) = Sim::start(rules(1));
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        let (_, go) = sim.until_go().await;
        sim.press("Ann", go - ms(1)).await;
        sim.answer(go, &[("Ben", Some(150))]).await;
        let (_, order, scores) = sim.results().await;
        assert_eq!(standing(&order, "Ann").standing, Standing::Early);
        assert_eq!(sim.earlies, [("Ann", 1)]);
        assert_eq!(points(&scores)[0], ("Ben", 1));
    })
}

#[test]
fn an_answer_quicker_than_anyone_reacts_is_a_false_start() {
    block_on(async {
        let (mut sim, _session) = Sim::start(rules(1));
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        sim.join("Cid", ms(1)).await;
        let (_, order, scores) = sim
            .round(&[("Ann", Some(50)), ("Ben", Some(150)), ("Cid", None)])
            .await;
        assert_eq!(names(&order), ["Ben", "Ann", "Cid"]);
        let ann = standing(&order, "Ann");
        assert_eq!(ann.standing, Standing::FalseStart);
        assert_eq!(ann.reaction_micros, Some(50_000));
        assert_eq!(standing(&order, "Cid").standing, Standing::NoAnswer);
        assert_eq!(points(&scores), [("Ben", 1), ("Ann", 0), ("Cid", 0)]);
    })
}

#[test]
fn an_answer_sooner_than_the_kernel_round_trip_is_a_false_start_in_either_order() {
    block_on(async {
        let (mut sim, _session) = Sim::start(SessionConfig {
            order: Order::Arrival,
            min_reaction: Duration::ZERO,
            ..rules(1)
        });
        sim.join("Guess", ms(80)).await;
        sim.join("Ben", ms(1)).await;
        sim.kernel("Guess", ms(80));
        let (_, go) = sim.until_go().await;
        // Go needs 80 ms to reach Guess and come back: an answer 10 ms after it was a guess.
        sim.press("Guess", go + ms(10)).await;
        sim.answer(go, &[("Ben", Some(150))]).await;
        let (_, order, scores) = sim.results().await;
        assert_eq!(names(&order), ["Ben", "Guess"]);
        assert_eq!(standing(&order, "Guess").standing, Standing::FalseStart);
        assert_eq!(points(&scores)[0], ("Ben", 1));
    })
}

#[test]
fn a_held_pong_gains_no_more_than_the_slack_where_the_kernel_knows_the_round_trip() {
    block_on(async {
        let config = SessionConfig {
            min_reaction: Duration::ZERO,
            ..rules(1)
        };
        for (kernel, first) in [(false, "Holder"), (true, "Ben")] {
            let (mut sim, _session) = Sim::start(config.clone());
            // Holder's network is 1 ms round trip, like Ben's, but it holds every Pong 79 ms.
            sim.join("Holder", ms(80)).await;
            sim.join("Ben", ms(1)).await;
            if kernel {
                sim.kernel("Holder", ms(1));
                sim.kernel("Ben", ms(1));
            }
            let (_, go) = sim.until_go().await;
            // Ben reacts in 120 ms, Holder 50 ms slower.
            sim.press("Ben", go + ms(1) + ms(120)).await;
            sim.press("Holder", go + ms(1) + ms(170)).await;
            let (_, order, _) = sim.results().await;
            assert_eq!(order[0].name, first, "kernel figure: {kernel}");
            let holder = standing(&order, "Holder");
            if kernel {
                assert_eq!(holder.rtt_micros, Some(6_000), "1 ms and the 5 ms slack");
                assert_eq!(holder.rtt_source, RttSource::Kernel);
            } else {
                assert_eq!(holder.rtt_micros, Some(80_000));
                assert_eq!(holder.rtt_source, RttSource::Ping);
            }
        }
    })
}

#[test]
fn without_a_kernel_figure_pings_compensate_at_most_the_maximum() {
    block_on(async {
        let (mut sim, _session) = Sim::start(rules(1));
        sim.join("Far", ms(400)).await;
        sim.join("Ben", ms(1)).await;
        let (_, order, _) = sim.round(&[("Far", Some(200)), ("Ben", Some(150))]).await;
        let far = standing(&order, "Far");
        assert_eq!(far.rtt_micros, Some(150_000));
        assert_eq!(far.rtt_source, RttSource::Ping);
        // 400 ms out and back plus 200 ms, less the 150 ms compensated.
        assert_eq!(far.reaction_micros, Some(450_000));
        assert_eq!(names(&order), ["Ben", "Far"]);
    })
}

#[test]
fn a_double_tap_after_the_players_own_answer_costs_nothing() {
    block_on(async {
        let (mut sim, _session) = Sim::start(rules(3));
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        let (_, go) = sim.until_go().await;
        sim.answer(go, &[("Ann", Some(150)), ("Ben", Some(180))])
            .await;
        sim.results().await;
        // Ann's finger bounces 200 ms after her answer arrived, after the result went out: the
        // same press, not an early buzz.
        let ann_answered = go + ms(1) + ms(150);
        sim.press("Ann", ann_answered + ms(200)).await;
        // Ben presses 600 ms after his: a press of its own, before round 2's Go.
        let ben_answered = go + ms(1) + ms(180);
        sim.press("Ben", ben_answered + ms(600)).await;
        let (round, order, _) = sim.round(&[("Ann", Some(150)), ("Ben", Some(180))]).await;
        assert_eq!(round, 2);
        assert_eq!(sim.earlies, [("Ben", 2)]);
        assert_eq!(standing(&order, "Ann").standing, Standing::Answered);
        assert_eq!(standing(&order, "Ben").standing, Standing::Early);
    })
}

#[test]
fn an_answer_in_flight_as_the_result_went_out_is_late_not_early() {
    block_on(async {
        let (mut sim, _session) = Sim::start(rules(2));
        sim.join("Slow", ms(200)).await;
        sim.join("Ben", ms(1)).await;
        sim.kernel("Slow", ms(200));
        let (_, _, _) = sim.round(&[("Ben", Some(150))]).await;
        // Sent before Slow could have seen the result (its round trip is 200 ms): late.
        sim.press("Slow", Instant::now()).await;
        // Long after it could have: early, for round 2.
        sim.press("Ben", Instant::now() + Duration::from_secs(1))
            .await;
        let (round, order, _) = sim.round(&[("Slow", Some(120)), ("Ben", Some(150))]).await;
        assert_eq!(round, 2);
        assert_eq!(sim.earlies, [("Ben", 2)]);
        assert_eq!(standing(&order, "Slow").standing, Standing::Answered);
        assert_eq!(standing(&order, "Ben").standing, Standing::Early);
    })
}

#[test]
fn the_go_jitter_draws_within_its_range_and_parses() {
    let jitter: Jitter = "1s..4s".parse().unwrap();
    assert_eq!(
        jitter,
        Jitter {
            low: Duration::from_secs(1),
            high: Duration::from_secs(4)
        }
    );
    let draws: Vec<Duration> = (0..1000).map(|_| jitter.draw()).collect();
    assert!(draws.iter().all(|d| (jitter.low..=jitter.high).contains(d)));
    // Spread over the range, not stuck at a point: both halves are drawn.
    let mid = Duration::from_millis(2500);
    assert!(draws.iter().any(|d| *d < mid) && draws.iter().any(|d| *d > mid));
    assert_eq!("0".parse::<Jitter>(), Ok(Jitter::NONE));
    assert_eq!(Jitter::NONE.draw(), Duration::ZERO);
    assert!("4s..1s".parse::<Jitter>().is_err());
}

#[test]
fn a_result_says_every_standing_in_words() {
    let placing = |name: &str, standing, reaction: Option<i64>| Placing {
        name: name.into(),
        standing,
        after_go_micros: reaction.map(|r| r as u64 + 1000),
        rtt_micros: Some(1000),
        rtt_source: RttSource::Kernel,
        reaction_micros: reaction,
    };
    let order = [
        placing("Ann", Standing::Answered, Some(152_300)),
        placing("Ben", Standing::FalseStart, Some(40_200)),
        placing("Cid", Standing::Early, None),
        placing("Dan", Standing::LockedOut, None),
        placing("Eve", Standing::NoAnswer, None),
    ];
    assert_eq!(
        result_text(4, &order, Order::Reaction),
        "Round 4: Ann 152.3 ms (reaction times); false start: Ben 40.2 ms; too early: Cid; \
         locked out: Dan; Eve did not answer"
    );
}

#[test]
fn a_session_refuses_the_party_beyond_what_its_results_can_carry() {
    block_on(async {
        let (mut sim, _session) = Sim::start(SessionConfig {
            max_parties: 2,
            ..rules(1)
        });
        assert!(sim.join("Ann", ms(1)).await);
        assert!(sim.join("Ben", ms(1)).await);
        let (admitted, answer) = oneshot::channel();
        let (reply, _rx) = mpsc::channel::<Outbound>(4);
        let join = SessionEvent::Join {
            id: 99,
            seat: Seat::player("Cid"),
            reply,
            admitted,
        };
        sim.tx.send(join).await.unwrap();
        let (kind, message) = answer.await.unwrap().unwrap_err();
        assert_eq!(kind, ErrorKind::RoundFull);
        assert!(message.contains("full: 2 players"), "{message}");
    })
}

/// The default bound is the most parties whose result frame, in either version, fits with the
/// longest names and the widest figures: one more would not.
#[test]
fn the_default_bound_is_what_fits_one_frame() {
    let fits = fitting_parties();
    assert!(fits >= 64, "{fits}");
    let fit = |n| {
        super::text::worst_frames(n)
            .iter()
            .all(|f| crate::protocol::encode(f).is_ok())
    };
    assert!(fit(fits));
    assert!(!fit(fits + 1));
}

#[test]
fn a_big_result_names_a_few_and_counts_the_rest() {
    let order: Vec<Placing> = (0..20)
        .map(|i| Placing {
            name: format!("P{i}"),
            standing: Standing::Answered,
            after_go_micros: Some(1000 * (i + 1)),
            rtt_micros: Some(0),
            rtt_source: RttSource::Kernel,
            reaction_micros: Some(1000 * (i as i64 + 1)),
        })
        .collect();
    let text = result_text(1, &order, Order::Reaction);
    assert!(
        text.starts_with("Round 1: P0 1.0 ms before P1 2.0 ms before "),
        "{text}"
    );
    assert!(
        text.ends_with("P7 8.0 ms and 12 more (reaction times)"),
        "{text}"
    );
}

/// A result lists every party: a copy for each would cost memory in the square of their number.
#[test]
fn every_party_is_sent_the_one_result_not_a_copy() {
    block_on(async {
        let (mut sim, _session) = Sim::start(config(1, Order::Arrival));
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        let (_, go) = sim.until_go().await;
        sim.answer(go, &[("Ann", Some(1)), ("Ben", Some(2))]).await;
        let mut results = Vec::new();
        let mut finals = Vec::new();
        for p in &mut sim.parties {
            // Past the pings of the round waiting for answers.
            let mut next = p.rx.next().await;
            while let Some(Outbound::Ping { .. }) = next {
                next = p.rx.next().await;
            }
            match next {
                Some(Outbound::RoundResult(r)) => results.push(r),
                other => panic!("expected Result, got {other:?}"),
            }
            match p.rx.next().await {
                Some(Outbound::SessionOver { scores, .. }) => finals.push(scores),
                other => panic!("expected SessionOver, got {other:?}"),
            }
        }
        assert!(Arc::ptr_eq(&results[0], &results[1]));
        assert!(Arc::ptr_eq(&finals[0], &finals[1]));
    })
}

/// A host's end of a session: its outbox, and the events it has seen.
struct SimHost {
    id: ConnId,
    rx: mpsc::Receiver<Outbound>,
}

impl Sim {
    async fn host(&mut self) -> SimHost {
        self.host_judging(false).await
    }

    /// A host; `judges`: of protocol 6, so questions are played in buzz mode.
    async fn host_judging(&mut self, judges: bool) -> SimHost {
        let (admitted, rx) = self.seat(Seat::Host { judges }).await;
        assert!(admitted);
        SimHost {
            id: self.next_id - 1,
            rx,
        }
    }

    /// The rosters `name` has received so far, oldest first.
    fn rosters_of(&self, name: &str) -> Vec<Arc<Roster>> {
        self.rosters
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, r)| Arc::clone(r))
            .collect()
    }
}

impl SimHost {
    /// The host's events up to and including the first that `stop` picks out.
    async fn until<T>(
        &mut self,
        mut stop: impl FnMut(&Outbound) -> Option<T>,
    ) -> (Vec<Outbound>, T) {
        let mut seen = Vec::new();
        loop {
            let event = self.rx.next().await.expect("the session ended early");
            if let Some(found) = stop(&event) {
                return (seen, found);
            }
            seen.push(event);
        }
    }
}

#[test]
fn a_hosted_session_opens_rounds_on_the_hosts_word_and_ends_on_it() {
    block_on(async {
        // One round by the server's setting: a hosted session plays as many as its host opens.
        let (mut sim, session) = Sim::start(config(1, Order::Arrival));
        let mut host = sim.host().await;
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(2)).await;
        // The host sees both join, by name, with the count of players needed.
        let (_, joined) = host
            .until(|e| match e {
                Outbound::Roster { roster: r, .. }
                    if r.change == Change::Joined { name: "Ben".into() } =>
                {
                    Some(Arc::clone(r))
                }
                _ => None,
            })
            .await;
        assert!(joined.hosted);
        assert_eq!((joined.players.len(), joined.needed), (2, 2));
        for round in 1..=2 {
            sim.tx
                .send(SessionEvent::Open { id: host.id })
                .await
                .unwrap();
            let (got, go) = sim.until_go().await;
            assert_eq!(got, round);
            sim.answer(go, &[("Ann", Some(10)), ("Ben", Some(20))])
                .await;
            let (_, order, _) = sim.results().await;
            assert_eq!(names(&order), ["Ann", "Ben"]);
            // The host sees the Go and the same result.
            let (seen, result) = host
                .until(|e| match e {
                    Outbound::RoundResult(r) => Some(Arc::clone(r)),
                    _ => None,
                })
                .await;
            assert!(seen
                .iter()
                .any(|e| matches!(e, Outbound::Go { round: r, .. } if *r == round)));
            assert_eq!(result.round, round);
        }
        sim.tx
            .send(SessionEvent::Finish { id: host.id })
            .await
            .unwrap();
        assert_eq!(sim.over().await.len(), 2);
        let (_, why) = host
            .until(|e| match e {
                Outbound::SessionOver { why, rounds, .. } => Some((*why, *rounds)),
                _ => None,
            })
            .await;
        assert_eq!(why, (OverReason::HostEnded, 2));
        assert_eq!(session.await.rounds, 2);
    })
}

#[test]
fn a_player_sending_a_hosts_open_opens_nothing() {
    block_on(async {
        let (mut sim, session) = Sim::start(config(1, Order::Arrival));
        let _host = sim.host().await;
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        let ann = sim.parties[0].id;
        sim.tx.send(SessionEvent::Open { id: ann }).await.unwrap();
        sim.tx.send(SessionEvent::Finish { id: ann }).await.unwrap();
        // Still waiting for the host: no Go, no end; measuring goes on (pings, rosters).
        let p = &mut sim.parties[0];
        let waited = rt::timeout(ms(300), async {
            loop {
                match p.rx.next().await {
                    Some(Outbound::Ping { .. }) | Some(Outbound::Roster { .. }) => {}
                    other => return other,
                }
            }
        })
        .await;
        assert!(
            waited.is_none(),
            "a player opened or ended the session: {waited:?}"
        );
        drop(sim);
        assert_eq!(session.await.rounds, 0);
    })
}

#[test]
fn a_late_joiner_is_told_it_plays_from_the_next_round_and_sees_no_result_it_did_not_play() {
    block_on(async {
        let (mut sim, session) = Sim::start(config(2, Order::Arrival));
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        let (round, go) = sim.until_go().await;
        assert_eq!(round, 1);
        // Cid joins while round 1 is open.
        let (admitted, mut cid) = sim.join_other("Cid").await;
        assert!(admitted);
        let Some(Outbound::Roster { roster, .. }) = cid.next().await else {
            panic!("a roster first")
        };
        assert_eq!(roster.change, Change::Joined { name: "Cid".into() });
        assert!(roster.open);
        let me = roster.players.iter().find(|p| p.name == "Cid").unwrap();
        assert_eq!((roster.round, me.from_round), (1, 2));
        sim.answer(go, &[("Ann", Some(5)), ("Ben", Some(6))]).await;
        let (_, order, _) = sim.results().await;
        assert_eq!(names(&order), ["Ann", "Ben"]);
        // Cid's next event after round 1's result is round 2's, never round 1's result.
        loop {
            match cid.next().await.unwrap() {
                Outbound::RoundResult(r) => panic!("Cid was sent round {}'s result", r.round),
                Outbound::Go { round, .. } => {
                    assert_eq!(round, 2);
                    break;
                }
                _ => {}
            }
        }
        drop(sim);
        drop(cid);
        session.await;
    })
}

#[test]
fn everyone_hears_joins_and_leaves_by_name() {
    block_on(async {
        let (mut sim, session) = Sim::start(config(1, Order::Arrival));
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        sim.join("Cid", ms(1)).await;
        let (_, go) = sim.until_go().await;
        sim.leave("Cid").await;
        sim.answer(go, &[("Ann", Some(5)), ("Ben", Some(6))]).await;
        let (_, order, _) = sim.results().await;
        assert_eq!(names(&order), ["Ann", "Ben", "Cid"]);
        let changes: Vec<Change> = sim
            .rosters_of("Ann")
            .iter()
            .map(|r| r.change.clone())
            .collect();
        assert!(changes.contains(&Change::Joined { name: "Ben".into() }));
        assert!(changes.contains(&Change::Joined { name: "Cid".into() }));
        assert!(changes.contains(&Change::Left {
            name: "Cid".into(),
            round: 1
        }));
        // After the leave, the roster no longer lists Cid.
        let last = sim.rosters_of("Ann").last().cloned().unwrap();
        assert!(last.players.iter().all(|p| p.name != "Cid"));
        sim.over().await;
        session.await;
    })
}

#[test]
fn a_session_without_rounds_says_why_and_lists_no_scores() {
    let text = over_text(OverReason::ServerStopping, 0, &[]);
    assert_eq!(
        text,
        "Session over before its first round: the server stopped"
    );
    assert!(!text.contains("Final scores"));
    let text = over_text(
        OverReason::LastRound,
        1,
        &[Score {
            name: "Ann".into(),
            points: 1,
        }],
    );
    assert_eq!(
        text,
        "Session over after 1 round (the last round was played). Final scores: Ann 1"
    );
}

#[test]
fn a_held_seat_goes_back_only_with_its_secret_and_keeps_its_points() {
    block_on(async {
        let (mut sim, session) = Sim::start(SessionConfig {
            answer_timeout: Duration::from_secs(30),
            ..config(3, Order::Arrival)
        });
        sim.join("Ann", ms(1)).await;
        sim.join("Ben", ms(1)).await;
        let (_, go) = sim.until_go().await;
        sim.answer(go, &[("Ann", Some(1)), ("Ben", Some(2))]).await;
        sim.results().await;
        let secret = sim.secrets["Ann"].clone();
        // Another connection, without the secret or with a wrong one: refused, while Ann's
        // connection is here.
        assert!(!sim.join_other("Ann").await.0);
        assert!(!sim.join_with("Ann", "not-it").await.0);
        // A lookalike name is refused too.
        assert!(!sim.join_other("ANN").await.0);
        assert!(!sim.join_other("\u{0410}nn").await.0, "a Cyrillic A");
        // With the secret: the seat, and its point, go to the new connection; the old one is
        // told why.
        let mut old_ann = sim.parties.remove(0);
        let (admitted, mut new_ann) = sim.join_with("Ann", &secret).await;
        assert!(admitted);
        loop {
            match old_ann.rx.next().await {
                Some(Outbound::Ended { message, .. }) => {
                    assert!(message.contains("taken back"), "{message}");
                    break;
                }
                Some(_) => {}
                None => panic!("the old connection was not told"),
            }
        }
        loop {
            if let Some(Outbound::Roster { lineup, .. }) = new_ann.next().await {
                if lineup.change == (Change::Back { name: "Ann".into() }) {
                    let ann = lineup.players.iter().find(|p| p.name == "Ann").unwrap();
                    assert_eq!((ann.points, ann.here), (1, true));
                    assert_eq!(lineup.players.len(), 2);
                    break;
                }
            }
        }
        drop((sim, new_ann, old_ann));
        session.await;
    })
}

impl Sim {
    /// A connection the simulation does not play joins as `name` (a late joiner, a second
    /// connection under a taken name); whether it was admitted, and its outbox.
    async fn join_other(&mut self, name: &str) -> (bool, mpsc::Receiver<Outbound>) {
        self.seat(Seat::player(name)).await
    }

    /// As [`join_other`](Self::join_other), offering `secret` for the seat.
    async fn join_with(&mut self, name: &str, secret: &str) -> (bool, mpsc::Receiver<Outbound>) {
        self.seat(Seat::Player(Box::new(crate::session::PlayerSeat {
            name: name.into(),
            team: None,
            secret: Some(secret.into()),
        })))
        .await
    }

    /// A connection takes `seat`; whether it was admitted, and its outbox after `Admitted`.
    async fn seat(&mut self, seat: Seat) -> (bool, mpsc::Receiver<Outbound>) {
        let host = seat.is_host();
        let (reply, mut rx) = mpsc::channel::<Outbound>(64);
        let (admitted, answer) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        let join = SessionEvent::Join {
            id,
            seat,
            reply,
            admitted,
        };
        self.tx.send(join).await.unwrap();
        let ok = answer.await.unwrap().is_ok();
        if ok {
            assert!(matches!(rx.next().await, Some(Outbound::Admitted)));
            assert!(matches!(rx.next().await, Some(Outbound::Rules(_))));
            if !host {
                assert!(matches!(rx.next().await, Some(Outbound::Seated { .. })));
            }
        }
        (ok, rx)
    }
}

#[test]
fn a_joiner_is_told_how_the_session_ranks() {
    block_on(async {
        for (order, ranking) in [
            (Order::Arrival, crate::protocol::Ranking::Arrival),
            (Order::Reaction, crate::protocol::Ranking::Reaction),
        ] {
            let (tx, rx) = mpsc::channel(8);
            let session = rt::spawn(session_loop(
                config(1, order),
                rx,
                Stop::never(),
                Transcript::Silent,
            ));
            let mut sim = Sim {
                tx,
                parties: Vec::new(),
                next_id: 1,
                earlies: Vec::new(),
                rosters: Vec::new(),
                secrets: Default::default(),
            };
            // Kept open: a closed outbox is a connection gone, and a hosted session whose host
            // is gone before any player came ends.
            let mut outboxes = Vec::new();
            for seat in [Seat::Host { judges: false }, Seat::player("Ann")] {
                let (reply, mut outbox) = mpsc::channel::<Outbound>(64);
                let (admitted, answer) = oneshot::channel();
                let join = SessionEvent::Join {
                    id: sim.next_id,
                    seat,
                    reply,
                    admitted,
                };
                sim.next_id += 1;
                sim.tx.send(join).await.unwrap();
                assert!(answer.await.unwrap().is_ok());
                assert!(matches!(outbox.next().await, Some(Outbound::Admitted)));
                match outbox.next().await {
                    Some(Outbound::Rules(told)) => assert_eq!(told, ranking),
                    other => panic!("expected the rules, got {other:?}"),
                }
                outboxes.push(outbox);
            }
            drop((sim, outboxes));
            session.await;
        }
    })
}

impl SimHost {
    async fn send(&self, sim: &mut Sim, event: SessionEvent) {
        sim.tx.send(event).await.unwrap();
    }

    async fn control(&self, sim: &mut Sim, control: crate::protocol::Control) {
        self.send(
            sim,
            SessionEvent::Control {
                id: self.id,
                control,
            },
        )
        .await;
    }

    /// The next buzz queue the host sees that `pick` accepts.
    async fn queue(
        &mut self,
        pick: impl Fn(&crate::protocol::BuzzQueue) -> bool,
    ) -> Arc<crate::protocol::BuzzQueue> {
        self.until(|e| match e {
            Outbound::Buzzes(q) if pick(q) => Some(Arc::clone(q)),
            _ => None,
        })
        .await
        .1
    }
}

#[test]
fn in_buzz_mode_the_host_judges_each_buzz_and_a_wrong_one_locks_out_the_team() {
    use crate::protocol::{Control, Judgement};
    block_on(async {
        let (mut sim, session) = Sim::start(config(1, Order::Reaction));
        let mut host = sim.host_judging(true).await;
        sim.join_team("Ann", Some("Red"), ms(1)).await;
        sim.join_team("Amy", Some("Red"), ms(1)).await;
        sim.join_team("Ben", Some("Blue"), ms(30)).await;
        host.control(
            &mut sim,
            Control::Scoring {
                correct: 10,
                penalty: 5,
                early: 1,
            },
        )
        .await;
        host.send(&mut sim, SessionEvent::Open { id: host.id })
            .await;
        let (round, go) = sim.until_go().await;
        // Ann reacts in 100 ms, Ben in 120 ms over a longer path: Ann's buzz ranks first, and
        // she is up once Ben, still waiting, could no longer rank before her.
        sim.answer(go, &[("Ann", Some(100)), ("Ben", Some(120))])
            .await;
        let q = host.queue(|q| q.up.is_some() && q.buzzes.len() == 2).await;
        assert_eq!(q.round, round);
        assert_eq!(q.up.as_deref(), Some("Ann"));
        let names: Vec<_> = q.buzzes.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["Ann", "Ben"]);
        assert_eq!(q.buzzes[0].gap_micros, 0);
        assert_eq!(
            q.buzzes[1].gap_micros, 20_000,
            "Ben's gap, corrected for his path"
        );
        // Wrong: team Red is out of the question (Amy, who has not buzzed, too); Ben is up.
        host.control(&mut sim, Control::Wrong).await;
        let q = host.queue(|q| q.up.as_deref() == Some("Ben")).await;
        assert_eq!(q.buzzes[0].judgement, Judgement::Wrong);
        assert_eq!(q.buzzes[0].points, 0 - 5);
        let mut locked = q.locked.clone();
        locked.sort();
        assert_eq!(locked, ["Amy", "Ann"]);
        host.control(&mut sim, Control::Correct).await;
        let (_, order, scores) = sim.results().await;
        let standings: Vec<_> = order
            .iter()
            .map(|p| (p.name.as_str(), p.standing))
            .collect();
        assert_eq!(
            standings,
            [
                ("Ann", Standing::Wrong),
                ("Ben", Standing::Correct),
                ("Amy", Standing::LockedOut)
            ]
        );
        assert_eq!(points(&scores), [("Ben", 10), ("Amy", 0), ("Ann", 0)]);
        // The host edits a score, removes a player, and starts a new game with the same players.
        host.control(
            &mut sim,
            Control::SetScore {
                name: "Ann".into(),
                points: 3,
            },
        )
        .await;
        host.control(&mut sim, Control::Kick { name: "Amy".into() })
            .await;
        let amy = sim.parties.iter().position(|p| p.name == "Amy").unwrap();
        let mut amy = sim.parties.remove(amy);
        loop {
            match amy.rx.next().await {
                Some(Outbound::Ended { kind, message }) => {
                    assert_eq!(kind, ErrorKind::Forbidden);
                    assert_eq!(message, "the host removed you from this game");
                    break;
                }
                Some(_) => {}
                None => panic!("Amy was not told"),
            }
        }
        assert!(!sim.join_other("Amy").await.0, "a removed name stays out");
        assert!(!sim.join_other("AMY").await.0, "and so does its lookalike");
        let (_, lineup) = host
            .until(|e| match e {
                Outbound::Roster { lineup, .. }
                    if lineup.change == (Change::Kicked { name: "Amy".into() }) =>
                {
                    Some(Arc::clone(lineup))
                }
                _ => None,
            })
            .await;
        let seats: Vec<_> = lineup
            .players
            .iter()
            .map(|p| (p.name.as_str(), p.team.as_str(), p.points))
            .collect();
        assert_eq!(seats, [("Ann", "Red", 3), ("Ben", "Blue", 10)]);
        host.control(&mut sim, Control::NewGame).await;
        let (_, lineup) = host
            .until(|e| match e {
                Outbound::Roster { lineup, .. }
                    if lineup.change == (Change::NewGame { game: 2 }) =>
                {
                    Some(Arc::clone(lineup))
                }
                _ => None,
            })
            .await;
        assert!(lineup.players.iter().all(|p| p.points == 0));
        assert_eq!((lineup.round, lineup.players.len()), (0, 2));
        assert!(sim.join_other("Amy").await.0, "a new game lets her back in");
        host.send(&mut sim, SessionEvent::Finish { id: host.id })
            .await;
        drop((sim, host, amy));
        let report = session.await;
        assert_eq!(report.rounds, 1);
    })
}

/// A host of a room bigger than one frame is sent the room's top scorers, whatever seats they
/// took, and a player its own seat.
#[test]
fn a_host_of_a_big_room_sees_its_top_scorers() {
    use crate::protocol::Control;
    block_on(async {
        let (mut sim, _session) = Sim::start(config(1, Order::Arrival));
        let mut host = sim.host().await;
        let players = fitting_parties() + 5;
        let names: Vec<&'static str> = (0..players)
            .map(|i| &*Box::leak(format!("P{i:03}").into_boxed_str()))
            .collect();
        for name in &names {
            assert!(sim.join(name, ms(1)).await);
        }
        let last = names[players - 1];
        host.control(
            &mut sim,
            Control::SetScore {
                name: last.into(),
                points: 7,
            },
        )
        .await;
        // Bounded: without the rule the host never sees it, and the test must fail, not hang.
        let seen = host.until(|e| match e {
            Outbound::Roster { lineup, .. }
                if lineup
                    .players
                    .iter()
                    .any(|p| p.name == last && p.points == 7) =>
            {
                Some(Arc::clone(lineup))
            }
            _ => None,
        });
        let (_, lineup) = rt::timeout(Duration::from_secs(30), seen)
            .await
            .expect("the host was never sent the room's top scorer");
        assert_eq!(lineup.players.len(), fitting_parties());
        assert_eq!(lineup.players[0].name, last);
        // The last seat's own phone is sent its own seat alone.
        let own = &mut sim.parties[players - 1].rx;
        loop {
            match own.next().await {
                Some(Outbound::Cut { shared, cut }) => {
                    if let Outbound::Roster { lineup, .. } = &*shared {
                        assert_eq!(lineup.cut(cut).players.len(), 1);
                        assert_eq!(lineup.cut(cut).players[0].name, last);
                        break;
                    }
                }
                Some(_) => {}
                None => panic!("the session ended early"),
            }
        }
    })
}
