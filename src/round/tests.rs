use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::protocol::Frame;
use crate::rt::{self as task, block_on, JoinHandle};
use crate::wire::framed::to_frame;
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};

use super::*;
use crate::protocol::{Arrival, ErrorKind};
use crate::stop::Stop;
use crate::transcript::Transcript;

/// Connection `n`'s address: each from an address of its own (127.0.0.n).
fn peer(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n as u8], 40000 + n))
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// A stand-in for a connection actor's writing side: records every event as the framed wire
/// would send it and confirms delivery (or reports failure, when `deliver` is false).
fn fake_writer(mut rx: mpsc::Receiver<Outbound>, deliver: bool) -> JoinHandle<Vec<Frame>> {
    task::spawn(async move {
        let mut frames = Vec::new();
        while let Some(out) = rx.next().await {
            frames.push(to_frame(&out));
            let last = out.is_final();
            if let Outbound::Verdict {
                delivered: Some(d), ..
            } = out
            {
                let _ = d.send(deliver);
            }
            if last {
                break;
            }
        }
        frames
    })
}

/// What a test feeds a round: a join (the lobby's part) or a connection's event.
enum Input {
    Join {
        id: ConnId,
        reply: Outbox,
        admitted: oneshot::Sender<Option<Admit>>,
    },
    Event(Event),
}

/// Plays `inputs` as the server does: joins and departures go to the filling round (the lobby's
/// part) until a join fills it; then its coordinator runs as a task and every later event goes to
/// it through its channel, which is closed after the last input unless `keep_open` (so that only
/// the round's own rules can end it).
async fn drive(
    cfg: RoundConfig,
    stop: Stop,
    transcript: Transcript,
    inputs: Vec<Input>,
    keep_open: bool,
) -> RoundReport {
    let mut filling = Filling::new(cfg, transcript);
    let mut inputs = inputs.into_iter();
    let (coordinator, mut events) = loop {
        match inputs.next() {
            Some(Input::Join {
                id,
                reply,
                admitted,
            }) => {
                let admit = filling.join(id, peer(id as u16), reply);
                let full = admit.as_ref().is_some_and(|a| a.full);
                let _ = admitted.send(admit);
                if full {
                    break filling.start(stop);
                }
            }
            Some(Input::Event(Event::Left { id, why })) => {
                if let Some(report) = filling.left(id, &why) {
                    return report;
                }
            }
            Some(Input::Event(other)) => {
                panic!("before its barrier a round hears joins and departures, not {other:?}")
            }
            None => panic!("the inputs never fill the round"),
        }
    };
    let round = task::spawn(coordinator);
    for input in inputs {
        match input {
            // A round that has ended takes nothing more; the test's assertions say why it ended.
            Input::Event(e) => {
                let _ = events.send(e).await;
            }
            Input::Join { .. } => panic!("a started round takes no joins"),
        }
    }
    if keep_open {
        let report = round.await;
        drop(events);
        report
    } else {
        drop(events);
        round.await
    }
}

struct Conn {
    id: ConnId,
    reply: Outbox,
    writer: JoinHandle<Vec<Frame>>,
    admitted: Option<oneshot::Receiver<Option<Admit>>>,
}

impl Conn {
    fn new(id: ConnId) -> Conn {
        Self::with_delivery(id, true)
    }
    fn with_delivery(id: ConnId, deliver: bool) -> Conn {
        let (reply, rx) = mpsc::channel(OUTBOX_CAPACITY);
        Conn {
            id,
            reply,
            writer: fake_writer(rx, deliver),
            admitted: None,
        }
    }
    fn join(&mut self) -> Input {
        let (tx, rx) = oneshot::channel();
        self.admitted = Some(rx);
        Input::Join {
            id: self.id,
            reply: self.reply.clone(),
            admitted: tx,
        }
    }
    fn arrived(&self, name: &str, at: Instant) -> Input {
        Input::Event(Event::Arrived {
            id: self.id,
            name: name.into(),
            at,
            reply: self.reply.clone(),
        })
    }
    fn left(&self) -> Input {
        Input::Event(Event::Left {
            id: self.id,
            why: "closed the connection".into(),
        })
    }
    async fn label(&mut self) -> Option<String> {
        self.admitted
            .take()
            .unwrap()
            .await
            .unwrap()
            .map(|a| a.label)
    }
    /// Drops this side's outbox handle and returns every frame its writer saw.
    async fn frames(self) -> Vec<Frame> {
        drop(self.reply);
        self.writer.await
    }
}

fn config(labels: &[&str]) -> RoundConfig {
    RoundConfig {
        id: 1,
        room: None,
        labels: labels.iter().map(|s| s.to_string()).collect(),
        timeout: None,
        style: Style::Assignment,
        chat: false,
        chat_idle: None,
        message_timeout: None,
    }
}

/// Plays `inputs` (see [`drive`]) to the round's end.
async fn run(labels: &[&str], inputs: Vec<Input>) -> (RoundReport, Vec<String>) {
    let transcript = Transcript::memory();
    let report = drive(
        config(labels),
        Stop::never(),
        transcript.clone(),
        inputs,
        false,
    )
    .await;
    (report, transcript.lines())
}

fn arrival(label: &str, name: &str) -> (String, String) {
    (label.to_owned(), name.to_owned())
}

fn order_of(report: &RoundReport) -> Vec<(String, String)> {
    match &report.outcome {
        Outcome::Completed { order, .. } => order
            .iter()
            .map(|a| (a.label.clone(), a.name.clone()))
            .collect(),
        other => panic!("round did not complete: {other:?}"),
    }
}

const WELCOME: Frame = Frame::Welcome {
    version: crate::protocol::PROTOCOL_VERSION,
};

fn connected(label: &str) -> Frame {
    Frame::Connected {
        round: 1,
        label: label.into(),
    }
}

fn ack_frame(frames: &[Frame]) -> &str {
    match frames.last() {
        Some(Frame::Ack { text, .. }) => text,
        other => panic!("last frame is not an Ack: {other:?}"),
    }
}

/// Two parties, messages arriving `gap` apart in the order given by `first_is_x`.
fn exchange(
    x_name: &str,
    y_name: &str,
    x_first: bool,
) -> (RoundReport, Vec<String>, Vec<Frame>, Vec<Frame>) {
    block_on(async {
        let mut x = Conn::new(1);
        let mut y = Conn::new(2);
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_micros(30);
        let (tx_at, ty_at) = if x_first { (t0, t1) } else { (t1, t0) };
        let jx = x.join();
        let jy = y.join();
        let mut events = vec![jx, jy];
        // Deliver in arrival order here; another test delivers out of order.
        if x_first {
            events.push(x.arrived(x_name, tx_at));
            events.push(y.arrived(y_name, ty_at));
        } else {
            events.push(y.arrived(y_name, ty_at));
            events.push(x.arrived(x_name, tx_at));
        }
        let (report, lines) = run(&["X", "Y"], events).await;
        assert_eq!(x.label().await.as_deref(), Some("X"));
        assert_eq!(y.label().await.as_deref(), Some("Y"));
        (report, lines, x.frames().await, y.frames().await)
    })
}

#[test]
fn x_first() {
    let (report, lines, xf, yf) = exchange("Alice", "Bob", true);
    assert_eq!(
        order_of(&report),
        [arrival("X", "Alice"), arrival("Y", "Bob")]
    );
    assert!(report.is_clean());
    assert_eq!(
        (report.leavers.len(), &report.finished[..]),
        (0, &[ip(1), ip(2)][..])
    );
    // The handshake is answered on admission; the label comes at the barrier.
    assert_eq!(xf[..2], [WELCOME, connected("X")]);
    assert_eq!(yf[..2], [WELCOME, connected("Y")]);
    assert_eq!(ack_frame(&xf), "X: Alice received before Y: Bob");
    assert_eq!(ack_frame(&yf), "X: Alice received before Y: Bob");
    assert_eq!(
        lines,
        [
            "Client X connected from 127.0.0.1:40001",
            "Client Y connected from 127.0.0.2:40002",
            "Client X: Alice",
            "Client Y: Bob",
            "Sent acknowledgment to both X and Y",
        ]
    );
}

#[test]
fn y_first() {
    let (report, lines, xf, yf) = exchange("Alice", "Bob", false);
    assert_eq!(
        order_of(&report),
        [arrival("Y", "Bob"), arrival("X", "Alice")]
    );
    assert_eq!(ack_frame(&xf), "Y: Bob received before X: Alice");
    assert_eq!(ack_frame(&yf), "Y: Bob received before X: Alice");
    assert_eq!(
        &lines[2..],
        [
            "Client Y: Bob",
            "Client X: Alice",
            "Sent acknowledgment to both X and Y"
        ]
    );
}

#[test]
fn identical_names_are_attributed_by_connection_not_text() {
    let (report, _, xf, _) = exchange("Alice", "Alice", false);
    assert_eq!(
        order_of(&report),
        [arrival("Y", "Alice"), arrival("X", "Alice")]
    );
    assert_eq!(ack_frame(&xf), "Y: Alice received before X: Alice");
}

#[test]
fn the_earlier_instant_wins_even_when_delivered_later() {
    block_on(async {
        let mut x = Conn::new(1);
        let mut y = Conn::new(2);
        let t0 = Instant::now();
        let events = vec![
            x.join(),
            y.join(),
            // Y's event reaches the coordinator first, but X's message was read earlier.
            y.arrived("Bob", t0 + Duration::from_micros(5)),
            x.arrived("Alice", t0),
        ];
        let (report, _) = run(&["X", "Y"], events).await;
        assert_eq!(
            order_of(&report),
            [arrival("X", "Alice"), arrival("Y", "Bob")]
        );
        match &report.outcome {
            Outcome::Completed { order, .. } => {
                assert_eq!(order[0].after_micros, 0);
                assert_eq!(order[1].after_micros, 5);
            }
            _ => unreachable!(),
        }
        assert_eq!(
            ack_frame(&x.frames().await),
            "X: Alice received before Y: Bob"
        );
    })
}

#[test]
fn a_party_leaving_before_the_barrier_frees_its_label() {
    block_on(async {
        let mut a = Conn::new(1);
        let mut b = Conn::new(2);
        let mut c = Conn::new(3);
        let mut d = Conn::new(4);
        let t0 = Instant::now();
        let events = vec![
            a.join(),
            b.join(),
            a.left(),
            c.join(),
            d.join(),
            c.arrived("Carol", t0),
            b.arrived("Bob", t0 + Duration::from_micros(1)),
            d.arrived("Dan", t0 + Duration::from_micros(2)),
        ];
        let (report, lines) = run(&["X", "Y", "Z"], events).await;
        assert_eq!(a.label().await.as_deref(), Some("X"));
        assert_eq!(b.label().await.as_deref(), Some("Y"));
        assert_eq!(
            c.label().await.as_deref(),
            Some("X"),
            "the freed label is reused"
        );
        assert_eq!(d.label().await.as_deref(), Some("Z"));
        assert_eq!(
            order_of(&report),
            [
                arrival("X", "Carol"),
                arrival("Y", "Bob"),
                arrival("Z", "Dan")
            ]
        );
        assert_eq!(
            lines[2],
            "Client X left before the round started (closed the connection)"
        );
        // The departed connection was admitted but never learnt a label through Connected.
        assert_eq!(a.frames().await, [WELCOME]);
    })
}

#[test]
fn a_round_whose_every_party_left_before_the_barrier_is_abandoned() {
    block_on(async {
        let mut a = Conn::new(1);
        let (report, lines) = run(&["X", "Y"], vec![a.join(), a.left()]).await;
        assert_eq!(report.outcome, Outcome::Abandoned);
        assert!(!report.started);
        assert!(!report.is_clean());
        assert_eq!(
            lines,
            [
                "Client X connected from 127.0.0.1:40001",
                "Client X left before the round started (closed the connection)"
            ]
        );
        assert_eq!(a.frames().await, [WELCOME]);
    })
}

#[test]
fn a_party_leaving_after_the_barrier_aborts_and_the_other_is_told() {
    block_on(async {
        let mut x = Conn::new(1);
        let mut y = Conn::new(2);
        let events = vec![
            x.join(),
            y.join(),
            x.arrived("Alice", Instant::now()),
            y.left(),
        ];
        let (report, lines) = run(&["X", "Y"], events).await;
        let reason = "Client Y left before sending its message (closed the connection)";
        assert_eq!(
            report.outcome,
            Outcome::Aborted {
                kind: ErrorKind::PartyLeft,
                reason: reason.into()
            }
        );
        let told = format!("round aborted: {reason}");
        assert_eq!(
            x.frames().await,
            [
                WELCOME,
                connected("X"),
                Frame::error(ErrorKind::PartyLeft, told)
            ]
        );
        assert_eq!(lines.last().unwrap(), &format!("Round aborted: {reason}"));
        // Y's address is held to account; X, who was still typing, is not.
        assert_eq!((report.leavers, report.finished), (vec![ip(2)], vec![]));
        let _ = y.frames().await;
    })
}

#[test]
fn a_party_leaving_after_sending_still_lets_the_other_be_acknowledged() {
    block_on(async {
        let mut x = Conn::new(1);
        let mut y = Conn::new(2);
        let t0 = Instant::now();
        let events = vec![
            x.join(),
            y.join(),
            x.arrived("Alice", t0),
            x.left(),
            y.arrived("Bob", t0 + Duration::from_micros(9)),
        ];
        let (report, lines) = run(&["X", "Y"], events).await;
        assert_eq!(
            report.outcome,
            Outcome::Completed {
                order: vec![
                    Arrival {
                        label: "X".into(),
                        name: "Alice".into(),
                        after_micros: 0
                    },
                    Arrival {
                        label: "Y".into(),
                        name: "Bob".into(),
                        after_micros: 9
                    },
                ],
                undelivered: vec!["X".into()],
            }
        );
        assert!(!report.is_clean());
        assert_eq!(
            ack_frame(&y.frames().await),
            "X: Alice received before Y: Bob"
        );
        assert_eq!(x.frames().await, [WELCOME, connected("X")]);
        assert_eq!(
            &lines[2..],
            [
                "Client X disconnected after sending its message (closed the connection)",
                "Client X: Alice",
                "Client Y: Bob",
                "Sent acknowledgment to Y only; delivery to X failed (disconnected)",
            ]
        );
    })
}

#[test]
fn a_failed_write_of_the_acknowledgment_is_reported() {
    block_on(async {
        let mut x = Conn::new(1);
        let mut y = Conn::with_delivery(2, false);
        let t0 = Instant::now();
        let events = vec![
            x.join(),
            y.join(),
            x.arrived("Alice", t0),
            y.arrived("Bob", t0),
        ];
        let (report, lines) = run(&["X", "Y"], events).await;
        assert!(
            matches!(&report.outcome, Outcome::Completed { undelivered, .. } if undelivered == &["Y"])
        );
        assert_eq!(
            lines.last().unwrap(),
            "Sent acknowledgment to X only; delivery to Y failed (disconnected)"
        );
        let _ = (x.frames().await, y.frames().await);
    })
}

#[test]
fn a_full_round_seats_nobody_else() {
    block_on(async {
        let (x, y, z) = (Conn::new(1), Conn::new(2), Conn::new(3));
        let mut round = Filling::new(config(&["X", "Y"]), Transcript::Silent);
        let admit = |label: &str, full| {
            Some(Admit {
                label: label.into(),
                full,
            })
        };
        assert_eq!(round.join(1, peer(1), x.reply.clone()), admit("X", false));
        assert_eq!(round.join(2, peer(2), y.reply.clone()), admit("Y", true));
        assert_eq!(round.join(3, peer(3), z.reply.clone()), None);
        drop(round);
        assert!(
            z.frames().await.is_empty(),
            "a refused join is not welcomed"
        );
        let _ = (x.frames().await, y.frames().await);
    })
}

#[test]
fn an_unknown_connection_is_ignored() {
    block_on(async {
        let mut x = Conn::new(1);
        let mut y = Conn::new(2);
        let stranger = Conn::new(9);
        let t0 = Instant::now();
        let events = vec![
            x.join(),
            stranger.left(),
            y.join(),
            stranger.arrived("Mallory", t0),
            x.arrived("Alice", t0),
            y.arrived("Bob", t0 + Duration::from_micros(1)),
        ];
        let (report, _) = run(&["X", "Y"], events).await;
        assert_eq!(
            order_of(&report),
            [arrival("X", "Alice"), arrival("Y", "Bob")]
        );
        let _ = (x.frames().await, y.frames().await, stranger.frames().await);
    })
}

#[test]
fn three_parties_in_all_six_orders() {
    let names = [("X", "Alice"), ("Y", "Bob"), ("Z", "Carol")];
    let perms = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for perm in perms {
        block_on(async {
            let mut conns: Vec<Conn> = (1..=3).map(Conn::new).collect();
            let mut events: Vec<Input> = conns.iter_mut().map(Conn::join).collect();
            let t0 = Instant::now();
            for (rank, &who) in perm.iter().enumerate() {
                events.push(
                    conns[who].arrived(names[who].1, t0 + Duration::from_micros(rank as u64)),
                );
            }
            let (report, lines) = run(&["X", "Y", "Z"], events).await;
            let expected: Vec<_> = perm
                .iter()
                .map(|&i| arrival(names[i].0, names[i].1))
                .collect();
            assert_eq!(order_of(&report), expected);
            let text = format!(
                "{}: {} received before {}: {} before {}: {}",
                expected[0].0,
                expected[0].1,
                expected[1].0,
                expected[1].1,
                expected[2].0,
                expected[2].1
            );
            for c in conns {
                assert_eq!(ack_frame(&c.frames().await), text);
            }
            assert_eq!(
                lines.last().unwrap(),
                "Sent acknowledgment to all of X, Y and Z"
            );
        });
    }
}

#[test]
fn a_round_that_does_not_fill_in_time_is_aborted() {
    block_on(async {
        let x = Conn::new(1);
        let mut cfg = config(&["X", "Y"]);
        cfg.timeout = Some(Duration::from_secs(60));
        let made = Instant::now();
        let mut round = Filling::new(cfg, Transcript::Silent);
        // Its clock starts when it is made, for its first party.
        let deadline = round.deadline().expect("a time limit");
        assert!(deadline >= made + Duration::from_secs(60));
        assert!(deadline <= Instant::now() + Duration::from_secs(60));
        round.join(1, peer(1), x.reply.clone());
        let report = round.expire();
        assert!(!report.started);
        let told = "round aborted: the round did not complete within 60 s";
        assert_eq!(
            report.outcome,
            Outcome::Aborted {
                kind: ErrorKind::RoundTimeout,
                reason: told["round aborted: ".len()..].into()
            }
        );
        assert_eq!(
            x.frames().await,
            [WELCOME, Frame::error(ErrorKind::RoundTimeout, told)]
        );
    })
}

#[test]
fn a_started_round_that_does_not_complete_in_time_is_aborted() {
    block_on(async {
        let mut x = Conn::new(1);
        let mut y = Conn::new(2);
        let mut cfg = config(&["X", "Y"]);
        cfg.timeout = Some(Duration::from_millis(20));
        let inputs = vec![x.join(), y.join(), x.arrived("Alice", Instant::now())];
        // The channel stays open: only the timer can end this round.
        let report = drive(cfg, Stop::never(), Transcript::Silent, inputs, true).await;
        assert!(report.started);
        assert!(matches!(
            report.outcome,
            Outcome::Aborted {
                kind: ErrorKind::RoundTimeout,
                ..
            }
        ));
        let frames = y.frames().await;
        assert!(matches!(
            &frames[..],
            [
                Frame::Welcome { .. },
                Frame::Connected { .. },
                Frame::Error {
                    kind: ErrorKind::RoundTimeout,
                    ..
                }
            ]
        ));
        let _ = x.frames().await;
    })
}

#[test]
fn a_party_that_does_not_send_in_time_is_told_and_the_round_aborted() {
    block_on(async {
        let mut x = Conn::new(1);
        let mut y = Conn::new(2);
        let mut cfg = config(&["X", "Y"]);
        cfg.message_timeout = Some(Duration::from_millis(20));
        cfg.timeout = Some(Duration::from_secs(60));
        let inputs = vec![x.join(), y.join(), x.arrived("Alice", Instant::now())];
        let transcript = Transcript::memory();
        let report = drive(cfg, Stop::never(), transcript.clone(), inputs, true).await;
        let reason = "Client Y left before sending its message (sent no message in time)";
        assert_eq!(
            report.outcome,
            Outcome::Aborted {
                kind: ErrorKind::PartyLeft,
                reason: reason.into()
            }
        );
        let told = "no message within 0.02 s of the round's start";
        assert_eq!(
            y.frames().await,
            [
                WELCOME,
                connected("Y"),
                Frame::error(ErrorKind::Timeout, told)
            ]
        );
        let aborted = format!("round aborted: {reason}");
        assert_eq!(
            x.frames().await,
            [
                WELCOME,
                connected("X"),
                Frame::error(ErrorKind::PartyLeft, aborted)
            ]
        );
        assert_eq!(
            transcript.lines().last().unwrap(),
            &format!("Round aborted: {reason}")
        );
        assert_eq!((report.leavers, report.finished), (vec![ip(2)], vec![]));
    })
}

#[test]
fn a_stop_ends_the_round_and_leaves_the_telling_to_the_writers() {
    block_on(async {
        // Still filling: whoever holds it stops it.
        let w = Conn::new(3);
        let mut filling = Filling::new(config(&["X", "Y"]), Transcript::Silent);
        filling.join(3, peer(3), w.reply.clone());
        let report = filling.stop();
        assert!(matches!(
            report.outcome,
            Outcome::Aborted {
                kind: ErrorKind::ShuttingDown,
                ..
            }
        ));
        assert_eq!(w.frames().await, [WELCOME]);

        // Started: its coordinator stops itself.
        let mut x = Conn::new(1);
        let mut y = Conn::new(2);
        let (trigger, stop) = Stop::new();
        let inputs = vec![x.join(), y.join()];
        let round = task::spawn(drive(
            config(&["X", "Y"]),
            stop,
            Transcript::Silent,
            inputs,
            true,
        ));
        assert_eq!(x.label().await.as_deref(), Some("X"));
        trigger.trigger();
        let report = round.await;
        assert!(matches!(
            report.outcome,
            Outcome::Aborted {
                kind: ErrorKind::ShuttingDown,
                ..
            }
        ));
        // One message per client: the real writer says "shutting down", so nothing is queued here.
        assert_eq!(x.frames().await, [WELCOME, connected("X")]);
        let _ = y.frames().await;
    })
}

#[test]
fn ack_text_reads_naturally() {
    let a = |label: &str, name: &str| Arrival {
        label: label.into(),
        name: name.into(),
        after_micros: 0,
    };
    assert_eq!(
        ack_text(&[a("X", "Alice"), a("Y", "Bob")]),
        "X: Alice received before Y: Bob"
    );
    assert_eq!(
        ack_text(&[a("Z", "Carol"), a("X", "Alice"), a("Y", "Bob")]),
        "Z: Carol received before X: Alice before Y: Bob"
    );
}

#[test]
fn service_mode_prints_one_line_per_round() {
    block_on(async {
        let mut x = Conn::new(1);
        let mut y = Conn::new(2);
        let t0 = Instant::now();
        let inputs = vec![
            x.join(),
            y.join(),
            y.arrived("Bob", t0),
            x.arrived("Alice", t0 + Duration::from_micros(38)),
        ];
        let mut cfg = config(&["X", "Y"]);
        cfg.id = 7;
        cfg.room = Some("quiz".into());
        cfg.style = Style::Summary;
        let transcript = Transcript::memory();
        let report = drive(cfg, Stop::never(), transcript.clone(), inputs, false).await;
        assert!(report.is_clean());
        let lines = transcript.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let (time, line) = lines[0].split_once(' ').unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
        assert_eq!(
            line,
            "Round 7 [quiz]: Y: Bob received before X: Alice (margin 38 us)"
        );
        let _ = (x.frames().await, y.frames().await);
    })
}

/// A chat round: both parties join and send, then `events` follow, with the event channel kept
/// open (so only the chat's own rules can end it).
async fn chat_round(
    chat_idle: Option<Duration>,
    later: impl FnOnce(&Conn, &Conn) -> Vec<Input>,
) -> (RoundReport, Vec<String>, Vec<Frame>, Vec<Frame>) {
    let mut x = Conn::new(1);
    let mut y = Conn::new(2);
    let t0 = Instant::now();
    let mut events = vec![
        x.join(),
        y.join(),
        x.arrived("Alice", t0),
        y.arrived("Bob", t0 + Duration::from_micros(5)),
    ];
    events.extend(later(&x, &y));
    let mut cfg = config(&["X", "Y"]);
    cfg.chat = true;
    cfg.chat_idle = chat_idle;
    let transcript = Transcript::memory();
    let report = drive(cfg, Stop::never(), transcript.clone(), events, true).await;
    let (_, _) = (x.label().await, y.label().await);
    let (xf, yf) = (x.frames().await, y.frames().await);
    (report, transcript.lines(), xf, yf)
}

fn chat(id: ConnId, line: &str) -> Input {
    Input::Event(Event::Chat {
        id,
        line: line.into(),
    })
}

fn relayed(from: &str, line: &str) -> Frame {
    Frame::Relayed {
        from: from.into(),
        line: line.into(),
    }
}

#[test]
fn the_chat_relays_lines_to_the_other_party_until_bye() {
    block_on(async {
        let (report, lines, xf, yf) = chat_round(None, |_, _| {
            vec![chat(1, "hi"), chat(2, "hello"), chat(1, "Bye")]
        })
        .await;
        assert!(report.is_clean(), "{report:?}");
        let over = Frame::ChatOver {
            message: "Client X said Bye; the chat is over".into(),
        };
        assert_eq!(
            xf[3..],
            [Frame::ChatOpen, relayed("Y", "hello"), over.clone()]
        );
        assert_eq!(
            yf[3..],
            [
                Frame::ChatOpen,
                relayed("X", "hi"),
                relayed("X", "Bye"),
                over
            ]
        );
        assert!(matches!(xf[2], Frame::Ack { .. }));
        assert_eq!(
            lines[lines.len() - 2..],
            [
                "Sent acknowledgment to both X and Y",
                "Chat over: Client X said Bye; lines relayed: 2 from X, 1 from Y"
            ]
        );
    })
}

#[test]
fn a_quiet_chat_ends_after_its_idle_time() {
    block_on(async {
        let (report, lines, xf, _) = chat_round(Some(Duration::from_millis(20)), |_, _| {
            vec![chat(2, "anyone?")]
        })
        .await;
        assert!(report.is_clean());
        assert_eq!(
            xf.last(),
            Some(&Frame::ChatOver {
                message: "nobody typed for 0.02 s; the chat is over".into()
            })
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some("Chat over: nobody typed for 0.02 s; lines relayed: 0 from X, 1 from Y")
        );
    })
}

#[test]
fn a_party_leaving_ends_the_chat_for_the_others() {
    block_on(async {
        let (_, lines, _, yf) = chat_round(None, |x, _| vec![x.left()]).await;
        assert_eq!(
            yf.last(),
            Some(&Frame::ChatOver {
                message: "Client X left (closed the connection); the chat is over".into()
            })
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some(
                "Chat over: Client X left (closed the connection); lines relayed: 0 from X, 0 \
                 from Y"
            )
        );
    })
}

#[test]
fn a_waiting_round_future_is_small() {
    let mut cfg = config(&["X", "Y"]);
    cfg.timeout = Some(Duration::from_secs(60));
    let (fut, _events) = Filling::new(cfg, Transcript::Silent).start(Stop::never());
    // A started round is held as long as its parties think: its completion and chat states are
    // boxed and its state is held once, so that waiting stays small (552 bytes).
    let size = std::mem::size_of_val(&fut);
    assert!(size <= 576, "the round future is {size} bytes");
}
