//! Quiz sessions end to end over loopback, protocols 2 and 3 on the wire: scripted parties
//! answer pings at once and each `Go` after a set delay; one party can sit behind a
//! TCP-terminating proxy. The session's own rules (scores over joins and leaves, a party that
//! does not answer, early buzzes, false starts, the kernel's bound on round trips) are tested on
//! channels in `session`; the same rules over a packet-level delayed link in `quiz.rs`.

mod common;

use std::time::Duration;

use arrival::client::Link;
use arrival::protocol::{ErrorKind, Frame, SessionResult};
use arrival::rt;
use arrival::server::{Config, Server};
use arrival::session::{Jitter, Order, SessionConfig};

/// An in-process server whose sessions run `rounds` rounds in `order`, with the server's rules
/// but no random wait before `Go` (these tests are not about it, and it would slow them).
fn server(rounds: u64, order: Order) -> (String, futures::channel::oneshot::Sender<()>) {
    server_with(Config {
        rounds: 0,
        session: SessionConfig {
            rounds,
            order,
            answer_timeout: Duration::from_secs(5),
            pings: 4,
            ping_every: Duration::from_millis(20),
            go_jitter: Jitter::NONE,
            ..SessionConfig::default()
        },
        ..Config::default()
    })
}

fn server_with(config: Config) -> (String, futures::channel::oneshot::Sender<()>) {
    let listener = arrival::server::bind("127.0.0.1:0").unwrap();
    let server = Server::new(listener, config);
    let addr = server.local_addr().unwrap().to_string();
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    rt::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Joins `room` as `name`; returns the link once welcomed in protocol 2.
async fn join(addr: &str, room: &str, name: &str) -> Link {
    let mut link = Link::connect(addr).await.unwrap();
    link.send(&Frame::Join {
        version: 2,
        room: Some(room.into()),
        name: name.into(),
    })
    .await
    .unwrap();
    assert_eq!(
        link.recv().await.unwrap(),
        Some(Frame::Welcome { version: 2 })
    );
    link
}

/// Plays until the session is over: pongs at once, answers each `Go` after `answer_after`.
/// Returns every result and the final scores.
async fn play(mut link: Link, answer_after: Duration) -> (Vec<SessionResult>, Vec<(String, u64)>) {
    let mut results = Vec::new();
    loop {
        match link.recv().await.unwrap() {
            // The server may have sent its last word and closed meanwhile: what it said is read
            // next.
            Some(Frame::Ping { seq }) => {
                let _ = link.send(&Frame::Pong { seq }).await;
            }
            Some(Frame::Go { .. }) => {
                rt::sleep(answer_after).await;
                link.send(&Frame::Answer).await.unwrap();
            }
            Some(Frame::Result(r)) => results.push(*r),
            Some(Frame::SessionOver { scores }) => {
                let scores = scores.into_iter().map(|s| (s.name, s.points)).collect();
                return (results, scores);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn names(r: &SessionResult) -> Vec<&str> {
    r.order.iter().map(|x| x.name.as_str()).collect()
}

#[test]
fn a_session_of_three_plays_its_rounds_and_ends_with_the_scores() {
    let (addr, _stop) = server(2, Order::Arrival);
    let outcomes = rt::block_on(async {
        let ann = join(&addr, "quiz", "Ann").await;
        let ben = join(&addr, "quiz", "Ben").await;
        let cid = join(&addr, "quiz", "Cid").await;
        // Answers 60 ms apart: far more than any scheduling noise on loopback.
        let parties = [(ann, 0), (ben, 60), (cid, 120)]
            .map(|(link, ms)| rt::spawn(play(link, Duration::from_millis(ms))));
        let mut outcomes = Vec::new();
        for p in parties {
            outcomes.push(p.await);
        }
        outcomes
    });
    for (results, scores) in &outcomes {
        assert_eq!(results.len(), 2);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.round, i as u64 + 1);
            assert_eq!(names(r), ["Ann", "Ben", "Cid"]);
            assert!(r.order.iter().all(|x| x.answered && x.rtt_micros.is_some()));
            assert!(
                r.text.starts_with(&format!("Round {}: Ann ", i + 1)),
                "{}",
                r.text
            );
        }
        assert_eq!(
            scores,
            &[
                ("Ann".to_owned(), 2),
                ("Ben".to_owned(), 0),
                ("Cid".to_owned(), 0)
            ]
        );
    }
    assert_eq!(
        outcomes[0].0, outcomes[1].0,
        "every party gets the same results"
    );
}

/// Far sits behind a 40 ms TCP-terminating proxy (80 ms more round trip) and reacts 20 ms sooner
/// than Near. The server's kernel sees the proxy, a loopback away, so the server is set up as
/// behind a proxy (`--rtt-source ping`) and without the minimum reaction (the parties react in
/// 0 and 20 ms). By arrival Near wins; by reaction Far does.
#[test]
fn reaction_order_names_the_delayed_party_that_reacted_first() {
    for (order, first) in [(Order::Reaction, "Far"), (Order::Arrival, "Near")] {
        let (addr, _stop) = server_with(Config {
            rounds: 0,
            kernel_rtt: false,
            session: SessionConfig {
                rounds: 1,
                order,
                answer_timeout: Duration::from_secs(5),
                pings: 4,
                ping_every: Duration::from_millis(20),
                go_jitter: Jitter::NONE,
                min_reaction: Duration::ZERO,
                ..SessionConfig::default()
            },
            ..Config::default()
        });
        let proxy_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_addr = proxy_listener.local_addr().unwrap().to_string();
        let _proxy =
            arrival::bench::delay_proxy(proxy_listener, addr.clone(), Duration::from_millis(40))
                .unwrap();
        let (far, near) = rt::block_on(async {
            let far = join(&proxy_addr, "buzz", "Far").await;
            let near = join(&addr, "buzz", "Near").await;
            let far = rt::spawn(play(far, Duration::ZERO));
            let near = rt::spawn(play(near, Duration::from_millis(20)));
            (far.await, near.await)
        });
        let result = &far.0[0];
        assert_eq!(result, &near.0[0]);
        assert_eq!(result.order[0].name, first, "{order:?}: {}", result.text);
        let rtt = |name: &str| {
            let r = result.order.iter().find(|x| x.name == name).unwrap();
            r.rtt_micros.unwrap()
        };
        // The proxy adds 80 ms to Far's round trip; the estimate cannot be below it.
        assert!(rtt("Far") >= 80_000, "{}", rtt("Far"));
        assert!(rtt("Near") < rtt("Far"));
    }
}

#[test]
fn a_version_1_client_plays_one_shot_rounds_exactly_as_before() {
    let (addr, _stop) = server(1, Order::Arrival);
    let verdicts = rt::block_on(async {
        let mut x = Link::connect(&addr).await.unwrap();
        let mut y = Link::connect(&addr).await.unwrap();
        for link in [&mut x, &mut y] {
            link.send(&Frame::Hello {
                version: 1,
                room: None,
            })
            .await
            .unwrap();
            assert_eq!(
                link.recv().await.unwrap(),
                Some(Frame::Welcome { version: 1 })
            );
        }
        let mut verdicts = Vec::new();
        for (link, name) in [(&mut x, "Alice"), (&mut y, "Bob")] {
            assert!(matches!(
                link.recv().await.unwrap(),
                Some(Frame::Connected { .. })
            ));
            link.send(&Frame::Message { name: name.into() })
                .await
                .unwrap();
        }
        for link in [&mut x, &mut y] {
            match link.recv().await.unwrap() {
                Some(Frame::Ack { text, .. }) => verdicts.push(text),
                other => panic!("{other:?}"),
            }
        }
        verdicts
    });
    assert_eq!(verdicts[0], verdicts[1]);
    assert!(verdicts[0].contains(" received before "), "{}", verdicts[0]);
}

#[test]
fn joins_are_refused_in_version_1_and_under_a_taken_name() {
    let (addr, _stop) = server(1, Order::Arrival);
    rt::block_on(async {
        let mut old = Link::connect(&addr).await.unwrap();
        old.send(&Frame::Join {
            version: 1,
            room: Some("q".into()),
            name: "Ann".into(),
        })
        .await
        .unwrap();
        match old.recv().await.unwrap() {
            Some(Frame::Error { kind, message }) => {
                assert_eq!(kind, ErrorKind::Version);
                assert_eq!(message, "Join needs protocol version 2 or later, not 1");
            }
            other => panic!("{other:?}"),
        }
        let _ann = join(&addr, "q", "Ann").await;
        let mut again = Link::connect(&addr).await.unwrap();
        again
            .send(&Frame::Join {
                version: 2,
                room: Some("q".into()),
                name: "Ann".into(),
            })
            .await
            .unwrap();
        match again.recv().await.unwrap() {
            Some(Frame::Error { kind, message }) => {
                assert_eq!(kind, ErrorKind::InvalidName);
                assert!(
                    message.starts_with("the seat of Ann is held for the device that took it"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    });
}

/// The binaries: a server and three `arrival-client --stay` players, each answering every round
/// with a line of standard input. A session counts as one round, so the one-shot server exits
/// after it.
#[test]
fn three_players_with_the_real_client_to_the_final_scores() {
    let (mut srv, addr) = common::server(&[
        "--parties",
        "3",
        "--session-rounds",
        "2",
        "--session-pause",
        "0.1",
        "--go-jitter",
        "0.05s..0.2s",
    ]);
    let mut players: Vec<common::Proc> = ["Ann", "Ben", "Cid"]
        .iter()
        .map(|name| common::client(name, &addr, &["--stay", "--room", "quiz", "--name", name]))
        .collect();
    // Each presses Enter once it has shown "go!", as a player would.
    for round in 1..=2 {
        for p in &mut players {
            p.wait_for("go", |l| {
                l == format!("Round {round}: go! (10 s to answer)")
            });
            p.send_stdin("\n");
        }
    }
    let mut total = 0;
    for p in players {
        let name = p.name.clone();
        let out = p.finish();
        assert_eq!(out.code, Some(0), "{name}: {out:?}");
        // Who is in the room, who joins, when a round gets ready, the player's round trip.
        let news = |l: &str| {
            l.starts_with("In the room: ")
                || l.contains(" joined (")
                || l.ends_with(": get ready (measuring round trips)")
                || l.starts_with("Your round trip: ")
        };
        let all = &out.stdout;
        let lines: Vec<&String> = all.iter().filter(|l| !news(l)).collect();
        assert_eq!(*lines[0], format!("Joined the quiz in room quiz as {name}"));
        assert_eq!(*lines[1], "Round 1: go! (10 s to answer)");
        assert!(lines[2].starts_with("Round 1: "), "{lines:?}");
        assert!(lines[3].starts_with("You: "), "{lines:?}");
        assert!(lines[4].starts_with("Scores: "), "{lines:?}");
        assert_eq!(*lines[5], "Round 2: go! (10 s to answer)");
        assert!(all[1].starts_with("In the room: "), "{all:?}");
        assert!(all
            .iter()
            .any(|l| l == "Round 2: get ready (measuring round trips)"));
        let rtt = all
            .iter()
            .find(|l| l.starts_with("Your round trip: "))
            .expect("its round trip");
        assert!(rtt.ends_with(" ms (checked by the kernel)"), "{rtt}");
        let last = lines.last().unwrap();
        let finals = "Session over after 2 rounds (the last round was played). Final scores: ";
        assert!(last.starts_with(finals), "{lines:?}");
        total = last
            .trim_start_matches(finals)
            .split(", ")
            .map(|s| s.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
    }
    assert_eq!(total, 2, "one point a round");
    let srv_out = {
        srv.wait_for("the session's end", |l| {
            l.starts_with("Session [quiz] over after 2 rounds")
        });
        srv.finish()
    };
    assert_eq!(srv_out.code, Some(0), "{srv_out:?}");
    assert!(srv_out
        .stdout
        .iter()
        .any(|l| l.starts_with("Session [quiz] Round 1: ")));
}
