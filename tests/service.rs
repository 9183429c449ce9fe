//! Service mode: many rounds at once, N parties, rooms, `--rounds`.

mod common;

use std::collections::BTreeMap;

use arrival::client::{self, NameSource, Verdict};
use arrival::protocol::{ErrorKind, Frame};
use arrival::rt as task;
use arrival::transcript::Transcript;
use common::{client, server, Proc, Raw};

/// Plays one client through the library against `addr`.
fn play(
    addr: &str,
    name: &str,
    room: Option<&str>,
) -> task::JoinHandle<Result<Verdict, client::Error>> {
    let config = client::Config {
        addr: addr.to_owned(),
        room: room.map(str::to_owned),
        ..client::Config::default()
    };
    let name = name.to_owned();
    task::spawn(
        async move { client::run(&config, NameSource::Given(name), &Transcript::Silent).await },
    )
}

/// A service-mode round line without its timestamp; `None` for any other line. The stamp must be
/// a real RFC 3339 time.
fn round_line(line: &str) -> Option<&str> {
    let (time, rest) = line.split_once(' ')?;
    humantime::parse_rfc3339(time).ok()?;
    rest.starts_with("Round ").then_some(rest)
}

#[test]
fn a_hundred_concurrent_rounds_all_complete_correctly() {
    let (srv, addr) = server(&["--rounds", "100"]);
    let clients: Vec<_> = (0..200)
        .map(|i| play(&addr, &format!("P{i}"), None))
        .collect();
    let verdicts: Vec<Verdict> = task::block_on(futures::future::join_all(clients))
        .into_iter()
        .map(|r| r.expect("every client completes"))
        .collect();

    let mut rounds: BTreeMap<u64, Vec<&Verdict>> = BTreeMap::new();
    for v in &verdicts {
        rounds.entry(v.round).or_default().push(v);
    }
    assert_eq!(rounds.len(), 100);
    for (round, pair) in &rounds {
        assert_eq!(pair.len(), 2, "round {round}");
        let mut labels: Vec<&str> = pair.iter().map(|v| v.label.as_str()).collect();
        labels.sort_unstable();
        assert_eq!(labels, ["X", "Y"], "round {round}");
        // Both got the same verdict, and it names exactly these two parties under their labels.
        assert_eq!(pair[0].text, pair[1].text);
        assert_eq!(pair[0].order, pair[1].order);
        let mut named: Vec<(String, String)> = pair[0]
            .order
            .iter()
            .map(|a| (a.label.clone(), a.name.clone()))
            .collect();
        named.sort();
        let mut played: Vec<(String, String)> = pair
            .iter()
            .map(|v| (v.label.clone(), v.name.clone()))
            .collect();
        played.sort();
        assert_eq!(named, played, "round {round}");
    }

    let srv = srv.finish();
    assert_eq!(srv.code, Some(0));
    let round_lines = srv
        .stdout
        .iter()
        .filter(|l| round_line(l).is_some())
        .count();
    assert_eq!(round_lines, 100);
    assert_eq!(
        srv.last_line(),
        "Summary: 100 rounds completed, 0 aborted, 200 connections served"
    );
}

#[test]
fn three_parties_in_all_six_arrival_orders() {
    let names = [("X", "Alice"), ("Y", "Bob"), ("Z", "Carol")];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let (mut srv, addr) = server(&["--parties", "3"]);
        let mut clients: Vec<Proc> = Vec::new();
        for (label, _) in names {
            clients.push(client(label, &addr, &[]));
            srv.wait_for(label, |l| {
                l.starts_with(&format!("Client {label} connected from"))
            });
        }
        for (c, (label, _)) in clients.iter_mut().zip(names) {
            c.expect_line(&format!("Client {label} connected"));
        }
        // Each message is sent only after the previous client has said it sent its own.
        for &i in &order {
            let (label, name) = names[i];
            clients[i].send_stdin(&format!("{name}\n"));
            clients[i].expect_line(&format!("Client {label}: {name}"));
        }
        let expected = format!(
            "{}: {} received before {}: {} before {}: {}",
            names[order[0]].0,
            names[order[0]].1,
            names[order[1]].0,
            names[order[1]].1,
            names[order[2]].0,
            names[order[2]].1
        );
        for c in clients {
            let out = c.finish();
            assert_eq!(out.code, Some(0));
            assert_eq!(out.stdout[2], expected);
        }
        let srv = srv.finish();
        assert_eq!(srv.code, Some(0));
        let printed: Vec<String> = order
            .iter()
            .map(|&i| format!("Client {}: {}", names[i].0, names[i].1))
            .collect();
        let n = srv.stdout.len();
        assert_eq!(srv.stdout[n - 4..n - 1], printed[..]);
        assert_eq!(
            srv.stdout[n - 1],
            "Sent acknowledgment to all of X, Y and Z"
        );
    }
}

#[test]
fn rooms_group_the_right_parties_even_when_connections_interleave() {
    let (srv, addr) = server(&["--rounds", "3"]);
    // Connections alternate between rooms and the anonymous pool.
    let plan = [
        ("red-1", Some("red")),
        ("blue-1", Some("blue")),
        ("anon-1", None),
        ("red-2", Some("red")),
        ("anon-2", None),
        ("blue-2", Some("blue")),
    ];
    let clients: Vec<_> = plan
        .iter()
        .map(|(name, room)| play(&addr, name, *room))
        .collect();
    let verdicts: Vec<Verdict> = task::block_on(futures::future::join_all(clients))
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let round_of = |name: &str| verdicts.iter().find(|v| v.name == name).unwrap().round;
    for group in [
        ["red-1", "red-2"],
        ["blue-1", "blue-2"],
        ["anon-1", "anon-2"],
    ] {
        assert_eq!(round_of(group[0]), round_of(group[1]), "{group:?}");
        let v = verdicts.iter().find(|v| v.name == group[0]).unwrap();
        let mut named: Vec<&str> = v.order.iter().map(|a| a.name.as_str()).collect();
        named.sort_unstable();
        assert_eq!(named, group);
    }
    let srv = srv.finish();
    assert_eq!(srv.code, Some(0));
    assert!(srv
        .stdout
        .iter()
        .any(|l| round_line(l).is_some_and(|r| r.contains("[red]: "))));
    assert!(srv
        .stdout
        .iter()
        .any(|l| round_line(l).is_some_and(|r| r.contains("[blue]: "))));
}

#[test]
fn a_faulty_round_does_not_disturb_concurrent_good_rounds() {
    let (mut srv, addr) = server(&["--rounds", "0"]);
    // The bad round: two parties in room "bad"; one leaves after the barrier.
    let hello_bad = || {
        let mut raw = Raw::connect(&addr);
        raw.send(&Frame::Hello {
            version: arrival::protocol::PROTOCOL_VERSION,
            room: Some("bad".into()),
        });
        raw
    };
    let (mut stayer, mut leaver) = (hello_bad(), hello_bad());
    assert!(matches!(stayer.recv(), Some(Frame::Welcome { .. })));
    assert!(matches!(leaver.recv(), Some(Frame::Welcome { .. })));
    assert!(matches!(stayer.recv(), Some(Frame::Connected { .. })));
    assert!(matches!(leaver.recv(), Some(Frame::Connected { .. })));

    // Good rounds start while the bad one is open...
    let good: Vec<_> = (0..20)
        .map(|i| play(&addr, &format!("G{i}"), Some(&format!("good-{}", i / 2))))
        .collect();
    // ...and the bad one fails in the middle of them.
    drop(leaver);
    let (kind, message) = stayer.expect_error();
    assert_eq!(kind, ErrorKind::PartyLeft);
    assert!(message.starts_with("round aborted: Client "), "{message}");

    for r in task::block_on(futures::future::join_all(good)) {
        let v = r.expect("good rounds are unaffected");
        assert_eq!(v.order.len(), 2);
    }
    srv.wait_for("the bad round's line", |l| {
        l.contains("[bad] aborted: Client ")
    });
    srv.signal("INT");
    let srv = srv.finish();
    assert_eq!(srv.code, Some(0), "--rounds 0 ends normally on a signal");
    assert_eq!(
        srv.last_line(),
        "Summary: 10 rounds completed, 1 aborted, 22 connections served"
    );
}

#[test]
fn rounds_3_runs_exactly_three_rounds_then_exits() {
    let (srv, addr) = server(&["--rounds", "3"]);
    // Six clients start all three rounds and hold them open (their names are not typed yet)...
    let mut six: Vec<Proc> = (0..6)
        .map(|i| client(&format!("P{i}"), &addr, &[]))
        .collect();
    for c in &mut six {
        c.wait_for("its label", |l| l.ends_with(" connected"));
    }
    // ...so two more are refused, certainly not placed in a fourth round.
    for i in 6..8 {
        let extra = client(&format!("P{i}"), &addr, &["--name", "Late"]).finish();
        assert_eq!(extra.code, Some(1));
        assert_eq!(
            extra.stderr,
            "arrival-client: all 3 rounds of this server are taken\n"
        );
    }
    for (i, c) in six.iter_mut().enumerate() {
        c.send_stdin(&format!("P{i}\n"));
    }
    for c in six {
        assert_eq!(c.finish().code, Some(0));
    }
    let srv = srv.finish();
    assert_eq!(srv.code, Some(0));
    let rounds: Vec<&String> = srv
        .stdout
        .iter()
        .filter(|l| round_line(l).is_some())
        .collect();
    assert_eq!(rounds.len(), 3, "{rounds:?}");
    assert_eq!(
        srv.last_line(),
        "Summary: 3 rounds completed, 0 aborted, 8 connections served"
    );
}

#[test]
fn a_party_left_waiting_past_the_round_timeout_is_told_and_its_room_starts_afresh() {
    let (mut srv, addr) = server(&["--rounds", "0", "--round-timeout", "0.3"]);
    let mut alone = Raw::connect(&addr);
    alone.send(&Frame::Hello {
        version: arrival::protocol::PROTOCOL_VERSION,
        room: Some("lonely".into()),
    });
    assert!(matches!(alone.recv(), Some(Frame::Welcome { .. })));
    // Nobody else comes: the lobby, which holds the waiting round, ends it at its deadline.
    assert_eq!(
        alone.expect_error(),
        (
            ErrorKind::RoundTimeout,
            "round aborted: the round did not complete within 0.3 s".to_owned()
        )
    );
    alone.expect_closed();
    let line = srv.wait_for("the timed-out round", |l| round_line(l).is_some());
    assert_eq!(
        round_line(&line),
        Some("Round 1 [lonely] aborted: the round did not complete within 0.3 s")
    );
    // The room is free again: a pair that comes now plays a round of its own, with its own clock.
    let (x, y) = (
        play(&addr, "Alice", Some("lonely")),
        play(&addr, "Bob", Some("lonely")),
    );
    let (x, y) = task::block_on(async { (x.await, y.await) });
    assert_eq!(x.unwrap().text, y.unwrap().text);
    srv.signal("TERM");
    let srv = srv.finish();
    // A service server stopped by a signal has ended normally, whatever its rounds did.
    assert_eq!(srv.code, Some(0), "{srv:?}");
    assert_eq!(
        srv.last_line(),
        "Summary: 1 round completed, 1 aborted, 3 connections served"
    );
}
