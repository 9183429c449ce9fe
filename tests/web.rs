//! Browsers' protocol on the server's own port, without a browser: WebSocket players and a
//! WebSocket host in the same sessions as framed clients (tests/browser.rs plays the pages in
//! Chromium; tests/attacks.rs case 17 is what hostile browsers get).

mod common;

use arrival::protocol::{
    Change, ErrorKind, Frame, OverReason, RttSource, Standing, PROTOCOL_VERSION,
};
use common::ws::RawWs;
use common::Raw;

fn join(room: &str, name: &str) -> Frame {
    Frame::Join {
        version: PROTOCOL_VERSION,
        room: Some(room.into()),
        name: name.into(),
    }
}

fn host(room: &str, key: &str) -> Frame {
    Frame::Host {
        version: PROTOCOL_VERSION,
        room: Some(room.into()),
        key: key.into(),
    }
}

/// The host key of the servers these tests start.
const KEY: &str = "web-tests-host-key";

/// A service with the web side on and the host key [`KEY`].
fn web_server() -> (common::Proc, String) {
    let (mut srv, addr) = common::server(&[
        "--rounds",
        "0",
        "--web",
        "on",
        "--host-key",
        KEY,
        "--answer-timeout",
        "2",
        // Races, as without a host: the host's judgements are the browser test's.
        "--hosted-mode",
        "race",
    ]);
    srv.next_line();
    srv.next_line();
    (srv, addr)
}

/// A browser player and a framed player in one hosted session: the browser's answer is ranked
/// with the kernel's figures like anyone's, and both see the same result.
#[test]
fn a_websocket_player_plays_with_a_framed_player_under_a_websocket_host() {
    let (_srv, addr) = web_server();
    let mut boss = RawWs::connect(&addr);
    boss.send(&host("mixed", KEY));
    assert_eq!(
        boss.recv(),
        Some(Frame::Welcome {
            version: PROTOCOL_VERSION
        })
    );
    assert!(matches!(boss.recv(), Some(Frame::Rules { .. })));

    let mut web = RawWs::connect(&addr);
    web.send(&join("mixed", "Web"));
    assert_eq!(
        web.recv(),
        Some(Frame::Welcome {
            version: PROTOCOL_VERSION
        })
    );
    assert!(matches!(web.recv(), Some(Frame::Rules { .. })));
    let mut tcp = Raw::connect(&addr);
    tcp.send(&join("mixed", "Tcp"));
    assert!(matches!(tcp.recv(), Some(Frame::Welcome { .. })));
    assert!(matches!(tcp.recv(), Some(Frame::Rules { .. })));

    // The host hears both join, and waits to open the round itself.
    let mut joined = Vec::new();
    while joined.len() < 2 {
        if let Some(Frame::Lineup(r)) = boss.recv() {
            if let Change::Joined { name } = &r.change {
                joined.push(name.clone());
                assert!(r.hosted);
            }
        }
    }
    assert_eq!(joined, ["Web", "Tcp"]);
    boss.send(&Frame::Open);

    // Each player pongs until its Go; the browser answers at once, the framed player never.
    loop {
        match web.recv().unwrap() {
            Frame::Ping { seq } => web.send(&Frame::Pong { seq }),
            Frame::Go { round } => {
                assert_eq!(round, 1);
                web.send(&Frame::Answer);
                break;
            }
            Frame::Lineup(_) | Frame::Seated { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    let tcp_result = loop {
        match tcp.recv().unwrap() {
            Frame::Ping { seq } => tcp.send(&Frame::Pong { seq }),
            Frame::Outcome(r) => break r,
            Frame::Lineup(_) | Frame::Seated { .. } | Frame::Go { .. } => {}
            other => panic!("{other:?}"),
        }
    };
    let web_result = loop {
        match web.recv().unwrap() {
            Frame::Outcome(r) => break r,
            Frame::Ping { seq } => web.send(&Frame::Pong { seq }),
            _ => {}
        }
    };
    assert_eq!(web_result, tcp_result);
    let first = &web_result.order[0];
    assert_eq!(
        (first.name.as_str(), first.standing),
        ("Web", Standing::Answered)
    );
    assert!(first.after_go_micros.is_some());
    // The browser's round trip is bounded by the kernel's figure for its connection.
    assert_eq!(first.rtt_source, RttSource::Kernel);
    assert_eq!(web_result.order[1].standing, Standing::NoAnswer);
    assert_eq!(web_result.scores[0].name, "Web");

    boss.send(&Frame::Finish);
    let (code, _, frames) = boss.expect_close();
    assert_eq!(code, 1000);
    assert!(frames.iter().any(|f| matches!(
        f,
        Frame::Over {
            why: OverReason::HostEnded,
            rounds: 1,
            ..
        }
    )));
    let (code, _, frames) = web.expect_close();
    assert_eq!(code, 1000);
    assert!(matches!(frames.last(), Some(Frame::Over { rounds: 1, .. })));
}

#[test]
fn a_wrong_host_key_and_a_player_acting_as_host_are_refused() {
    let (_srv, addr) = web_server();
    let mut impostor = RawWs::connect(&addr);
    impostor.send(&host("r", "not-the-key"));
    let (code, reason, frames) = impostor.expect_close();
    assert_eq!((code, reason.as_str()), (4010, "wrong host key"));
    assert!(matches!(
        frames.as_slice(),
        [Frame::Error {
            kind: ErrorKind::Forbidden,
            ..
        }]
    ));

    let mut player = RawWs::connect(&addr);
    player.send(&join("r", "Ann"));
    assert_eq!(
        player.recv(),
        Some(Frame::Welcome {
            version: PROTOCOL_VERSION
        })
    );
    assert!(matches!(player.recv(), Some(Frame::Rules { .. })));
    player.send(&Frame::Open);
    let (code, reason, _) = player.expect_close();
    assert_eq!(code, 4010);
    assert_eq!(reason, "only the host opens rounds and ends the session");

    // Over the framed wire, `Host` needs protocol 4.
    let mut old = Raw::connect(&addr);
    old.send(&Frame::Host {
        version: 3,
        room: None,
        key: KEY.into(),
    });
    let (kind, message) = old.expect_error();
    assert_eq!(kind, ErrorKind::Version);
    assert_eq!(message, "Host needs protocol version 4 or later, not 3");
}

/// A player who leaves during a round is named in its result, and everyone hears who left.
#[test]
fn a_player_who_leaves_during_a_round_is_named_in_its_result() {
    let (_srv, addr) = web_server();
    let mut boss = RawWs::connect(&addr);
    boss.send(&host("leave", KEY));
    assert_eq!(
        boss.recv(),
        Some(Frame::Welcome {
            version: PROTOCOL_VERSION
        })
    );
    assert!(matches!(boss.recv(), Some(Frame::Rules { .. })));
    let mut players: Vec<RawWs> = ["Ann", "Ben", "Cid"]
        .iter()
        .map(|name| {
            let mut ws = RawWs::connect(&addr);
            ws.send(&join("leave", name));
            assert_eq!(
                ws.recv(),
                Some(Frame::Welcome {
                    version: PROTOCOL_VERSION
                })
            );
            assert!(matches!(ws.recv(), Some(Frame::Rules { .. })));
            ws
        })
        .collect();
    // Once the host has heard all three, it opens the round.
    while !matches!(boss.recv(), Some(Frame::Lineup(r)) if r.players.len() == 3) {}
    boss.send(&Frame::Open);
    for p in &mut players {
        loop {
            match p.recv().unwrap() {
                Frame::Ping { seq } => p.send(&Frame::Pong { seq }),
                Frame::Go { .. } => break,
                _ => {}
            }
        }
    }
    // Cid leaves after go; Ann answers; Ben does not.
    let cid = players.pop().unwrap();
    drop(cid);
    let ann = &mut players[0];
    ann.send(&Frame::Answer);
    let mut heard_left = false;
    let result = loop {
        match ann.recv().unwrap() {
            Frame::Lineup(r)
                if r.change
                    == (Change::Away {
                        name: "Cid".into(),
                        round: 1,
                    }) =>
            {
                heard_left = true;
                // Cid's seat is held for him, shown as away.
                let here: Vec<_> = r
                    .players
                    .iter()
                    .map(|p| (p.name.as_str(), p.here))
                    .collect();
                assert_eq!(here, [("Ann", true), ("Ben", true), ("Cid", false)]);
            }
            Frame::Outcome(r) => break r,
            Frame::Ping { seq } => ann.send(&Frame::Pong { seq }),
            _ => {}
        }
    };
    assert!(heard_left, "Ann was not told Cid left");
    let standings: Vec<(&str, Standing)> = result
        .order
        .iter()
        .map(|p| (p.name.as_str(), p.standing))
        .collect();
    assert_eq!(
        standings,
        [
            ("Ann", Standing::Answered),
            ("Ben", Standing::NoAnswer),
            ("Cid", Standing::Left)
        ]
    );
    assert!(
        result
            .text
            .ends_with("; Ben did not answer; Cid left during the round"),
        "{}",
        result.text
    );
    // Scores list every seat, Cid's held one too.
    let names: Vec<&str> = result.scores.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Ann", "Ben", "Cid"]);
}

/// Over real delay (40 ms each way between network namespaces, in the packets): a browser far
/// away that reacts sooner than a near one is named first every round, its round trip the
/// kernel's figure for its connection, as for any player. Skipped, with the reason, without root
/// or /dev/net/tun.
#[test]
fn a_far_browser_that_reacts_sooner_wins_over_real_delay() {
    use arrival::bench::link::DelayedLink;
    use arrival::server::{Config, Server};
    use arrival::session::SessionConfig;
    use std::time::Duration;

    if let Some(why) = DelayedLink::unavailable() {
        common::skip(
            "a_far_browser_that_reacts_sooner_wins_over_real_delay",
            &format!("a packet-level delayed link {why}"),
        );
        return;
    }
    let link = DelayedLink::create(Duration::from_millis(40)).unwrap();
    let rounds = 4;
    let config = Config {
        rounds: 0,
        web: true,
        session: SessionConfig {
            // Time to react 110 and 170 ms behind an 80 ms round trip.
            answer_timeout: Duration::from_secs(3),
            ..common::reaction_sessions(rounds)
        },
        ..Config::default()
    };
    let server = Server::new(link.listen(0).unwrap(), config);
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    let running = arrival::rt::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    // A browser's play: pong at once, answer `reaction` after each go; the results it saw.
    let play = |mut ws: RawWs, name: &str, reaction: u64| {
        ws.send(&join("far", name));
        assert_eq!(
            ws.recv(),
            Some(Frame::Welcome {
                version: PROTOCOL_VERSION
            })
        );
        assert!(matches!(ws.recv(), Some(Frame::Rules { .. })));
        let mut results = Vec::new();
        loop {
            match ws.recv() {
                Some(Frame::Ping { seq }) => ws.send(&Frame::Pong { seq }),
                Some(Frame::Go { .. }) => {
                    std::thread::sleep(Duration::from_millis(reaction));
                    ws.send(&Frame::Answer);
                }
                Some(Frame::Outcome(r)) => results.push(r),
                Some(Frame::Over { .. }) => return results,
                Some(_) => {}
                None => panic!("{name}: closed early"),
            }
        }
    };
    let host = addr.to_string();
    let far = RawWs::upgrade(link.connect_far(addr).unwrap(), &host, "/ws?room=far");
    let near = RawWs::upgrade(link.connect_near(addr).unwrap(), &host, "/ws?room=far");
    // 60 ms sooner: far above the scheduling noise of a machine with every core busy, and short
    // of the 80 ms round trip, so a far player that were not compensated would lose (110 ms
    // stays clear of the 100 ms false-start rule).
    let (far_results, near_results) = std::thread::scope(|s| {
        let far = s.spawn(|| play(far, "Far", 110));
        let near = s.spawn(|| play(near, "Near", 170));
        (far.join().unwrap(), near.join().unwrap())
    });
    assert_eq!(far_results.len() as u64, rounds);
    assert_eq!(far_results, near_results);
    for r in &far_results {
        let first = &r.order[0];
        assert_eq!(first.name, "Far", "{}", r.text);
        assert_eq!(first.rtt_source, RttSource::Kernel);
        // The kernel's figure is the link's round trip: 80 ms, plus what the pump adds.
        assert!(first.rtt_micros.unwrap() >= 80_000, "{first:?}");
    }
    println!(
        "far browser (80 ms round trip) first in {} of {rounds} rounds: {}",
        far_results.len(),
        far_results.last().unwrap().text
    );
    let _ = stop.send(());
    arrival::rt::block_on(running).unwrap();
}

/// Everything a peer is sent until it closes, read as raw bytes.
fn bytes_until_closed(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    stream.set_read_timeout(Some(common::GUARD)).unwrap();
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .expect("closed within the guard");
    got
}

/// Browsers open connections ahead of need and leave them idle, and read whatever arrives on
/// one as the answer to the request they later send on it. So where pages are served, a
/// connection that has sent nothing when its handshake time runs out is closed without a byte;
/// one that has sent part of a frame is still told why.
#[test]
fn a_connection_that_sent_nothing_is_closed_without_a_word_where_pages_are_served() {
    let (_srv, addr) = common::server(&[
        "--rounds",
        "0",
        "--web",
        "on",
        "--handshake-timeout",
        "300ms",
    ]);
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    assert_eq!(
        bytes_until_closed(&mut silent),
        b"",
        "a byte would break a browser's page"
    );
    let mut partial = Raw::connect(&addr);
    partial.send_bytes(&[0, 0]);
    let (kind, message) = partial.expect_error();
    assert_eq!(kind, ErrorKind::Timeout);
    assert_eq!(message, "no handshake within 0.3 s");
}

/// The same at a limit: a connection refused for its address that sends nothing is closed
/// without a byte; a framed client that sends its `Hello` is told `Busy`.
#[test]
fn a_silent_connection_refused_at_a_limit_is_closed_without_a_word() {
    let (_srv, addr) = common::server(&["--rounds", "0", "--web", "on", "--max-per-address", "1"]);
    let mut held = Raw::connect(&addr);
    held.send(&Frame::Hello {
        version: PROTOCOL_VERSION,
        room: Some("held".into()),
    });
    assert!(matches!(held.recv(), Some(Frame::Welcome { .. })));
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    assert_eq!(bytes_until_closed(&mut silent), b"");
    let mut framed = Raw::connect(&addr);
    framed.send(&Frame::Hello {
        version: PROTOCOL_VERSION,
        room: None,
    });
    assert_eq!(framed.expect_error().0, ErrorKind::Busy);
}
