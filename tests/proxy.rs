//! `--proxy-protocol`: behind a balancer every connection starts with a PROXY v2 header, and the
//! client's address is the one it names: in the transcript, for `--max-per-address`, and for the
//! leavers' cooldown. The balancer's own connections (`LOCAL`: its health checks) are answered
//! `Welcome` and join nothing;
//! a connection without a valid header is closed; without the flag a header is a protocol error
//! as any other bytes that are not a frame.

mod common;

use std::time::Duration;

use arrival::client::Link;
use arrival::protocol::{ErrorKind, Frame, PROTOCOL_VERSION};
use arrival::rt;
use arrival::server::{Config, Server};
use arrival::transcript::Transcript;
use ppp::v2::{Builder, Command, IPv4, Protocol, Version};

fn header(command: Command, source: [u8; 4], port: u16) -> Vec<u8> {
    let addresses = IPv4::new(source, [127, 0, 0, 1], port, 12000);
    Builder::with_addresses(Version::Two | command, Protocol::Stream, addresses)
        .build()
        .unwrap()
}

/// An in-process server behind a (pretend) balancer; its transcript kept in memory.
fn behind_a_balancer(
    config: Config,
) -> (String, Transcript, futures::channel::oneshot::Sender<()>) {
    let listener = arrival::server::bind("127.0.0.1:0").unwrap();
    let transcript = Transcript::memory();
    let server = Server::new(
        listener,
        Config {
            proxy_protocol: vec!["127.0.0.1".parse().unwrap()],
            transcript: transcript.clone(),
            ..config
        },
    );
    let addr = server.local_addr().unwrap().to_string();
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    rt::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, transcript, stop)
}

/// The balancer's health check (a LOCAL header), answered `Welcome`: the link, to read on.
async fn health_check(addr: &str) -> Link {
    let mut check = Link::connect(addr).await.unwrap();
    check
        .send_bytes(&header(Command::Local, [0, 0, 0, 0], 0))
        .await
        .unwrap();
    assert_eq!(
        check.recv().await.unwrap(),
        Some(Frame::Welcome {
            version: PROTOCOL_VERSION
        })
    );
    check
}

/// A connection from the balancer for the client at `source`: the header, then the client's
/// `Hello`.
async fn relayed(addr: &str, source: [u8; 4], port: u16) -> Link {
    let mut link = Link::connect(addr).await.unwrap();
    let mut bytes = header(Command::Proxy, source, port);
    bytes.extend(
        arrival::protocol::encode(&Frame::Hello {
            version: PROTOCOL_VERSION,
            room: Some("r".into()),
        })
        .unwrap(),
    );
    link.send_bytes(&bytes).await.unwrap();
    link
}

#[test]
fn the_clients_address_is_the_one_the_header_names() {
    let (addr, transcript, _stop) = behind_a_balancer(Config::default());
    let verdicts = rt::block_on(async {
        let mut x = relayed(&addr, [127, 0, 0, 2], 40001).await;
        assert!(matches!(x.recv().await, Ok(Some(Frame::Welcome { .. }))));
        let mut y = relayed(&addr, [127, 0, 0, 3], 40002).await;
        let mut texts = Vec::new();
        for (link, name) in [(&mut x, "Alice"), (&mut y, "Bob")] {
            loop {
                match link.recv().await.unwrap() {
                    Some(Frame::Connected { .. }) => break,
                    Some(Frame::Welcome { .. }) => {}
                    other => panic!("{other:?}"),
                }
            }
            link.send(&Frame::Message { name: name.into() })
                .await
                .unwrap();
        }
        for link in [&mut x, &mut y] {
            match link.recv().await.unwrap() {
                Some(Frame::Ack { text, .. }) => texts.push(text),
                other => panic!("{other:?}"),
            }
        }
        texts
    });
    assert_eq!(verdicts[0], verdicts[1]);
    let lines = transcript.lines();
    assert_eq!(
        lines[0], "Client X connected from 127.0.0.2:40001",
        "{lines:?}"
    );
    assert_eq!(
        lines[1], "Client Y connected from 127.0.0.3:40002",
        "{lines:?}"
    );
}

#[test]
fn the_per_address_limit_counts_the_clients_not_the_balancer() {
    let (addr, _transcript, _stop) = behind_a_balancer(Config {
        rounds: 0,
        max_per_address: 1,
        ..Config::default()
    });
    rt::block_on(async {
        let mut first = relayed(&addr, [127, 0, 0, 2], 1).await;
        assert!(matches!(
            first.recv().await,
            Ok(Some(Frame::Welcome { .. }))
        ));
        // The same client again: over its limit, though every connection comes from the balancer.
        let mut again = relayed(&addr, [127, 0, 0, 2], 2).await;
        match again.recv().await.unwrap() {
            Some(Frame::Error { kind, message }) => {
                assert_eq!(kind, ErrorKind::Busy);
                assert!(
                    message.contains("this address already holds 1"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Another client through the same balancer is let in.
        let mut other = relayed(&addr, [127, 0, 0, 3], 3).await;
        assert!(matches!(
            other.recv().await,
            Ok(Some(Frame::Welcome { .. }))
        ));
    });
}

#[test]
fn health_checks_join_nothing_and_a_missing_header_is_refused() {
    let (addr, transcript, _stop) = behind_a_balancer(Config {
        handshake_timeout: Duration::from_millis(500),
        ..Config::default()
    });
    rt::block_on(async {
        // The balancer's own connection (a LOCAL header): told the server is serving, closed.
        let mut check = health_check(&addr).await;
        assert!(matches!(check.recv().await, Ok(None)), "then closed");
        // A client that reached the server directly, without the header.
        let mut direct = Link::connect(&addr).await.unwrap();
        direct
            .send(&Frame::Hello {
                version: PROTOCOL_VERSION,
                room: None,
            })
            .await
            .unwrap();
        // Closed when the header's time is up, without a word: it speaks to the balancer only.
        assert!(!matches!(direct.recv().await, Ok(Some(_))));
        // Neither took a seat: two real clients still play the one-shot server's round.
        let mut x = relayed(&addr, [127, 0, 0, 2], 1).await;
        let mut y = relayed(&addr, [127, 0, 0, 3], 2).await;
        for link in [&mut x, &mut y] {
            assert!(matches!(link.recv().await, Ok(Some(Frame::Welcome { .. }))));
        }
    });
    // Both connected lines are in once the round has started; any line about the balancer's own
    // connections (there must be none) would have been written before them.
    let until = std::time::Instant::now() + common::GUARD;
    while transcript
        .lines()
        .iter()
        .filter(|l| l.contains(" connected"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < until,
            "{:?}",
            transcript.lines()
        );
        std::thread::yield_now();
    }
    assert!(
        transcript.lines().iter().all(|l| !l.contains("127.0.0.1")),
        "{:?}",
        transcript.lines()
    );
}

#[test]
fn without_the_flag_a_proxy_header_is_refused_like_any_text() {
    let (srv, addr) = common::server(&[]);
    let mut raw = common::Raw::connect(&addr);
    raw.send_bytes(&header(Command::Proxy, [127, 0, 0, 2], 1));
    let (kind, _) = raw.expect_error();
    assert_eq!(kind, ErrorKind::Protocol);
    srv.signal("TERM");
    let _ = srv.finish();
}

/// Behind a balancer the kernel's round trip is the balancer's: quiz round trips come from pings
/// alone, and every result says so.
#[test]
fn quiz_round_trips_behind_a_balancer_come_from_pings() {
    use arrival::protocol::RttSource;
    use arrival::session::{Jitter, SessionConfig};
    let (addr, _transcript, _stop) = behind_a_balancer(Config {
        session: SessionConfig {
            rounds: 1,
            pings: 2,
            ping_every: Duration::from_millis(10),
            go_jitter: Jitter::NONE,
            min_reaction: Duration::ZERO,
            ..SessionConfig::default()
        },
        ..Config::default()
    });
    let outcome = rt::block_on(async {
        let mut players = Vec::new();
        for (source, name) in [([127, 0, 0, 2], "Ann"), ([127, 0, 0, 3], "Ben")] {
            let mut link = Link::connect(&addr).await.unwrap();
            let mut bytes = header(Command::Proxy, source, 1);
            bytes.extend(
                arrival::protocol::encode(&Frame::Join {
                    version: PROTOCOL_VERSION,
                    room: Some("quiz".into()),
                    name: name.into(),
                })
                .unwrap(),
            );
            link.send_bytes(&bytes).await.unwrap();
            players.push(rt::spawn(async move {
                loop {
                    match link.recv().await.unwrap().unwrap() {
                        Frame::Ping { seq } => {
                            // A pong may cross the server's last word: no error.
                            let _ = link.send(&Frame::Pong { seq }).await;
                        }
                        Frame::Go { .. } => link.send(&Frame::Answer).await.unwrap(),
                        Frame::Outcome(outcome) => return outcome,
                        _ => {}
                    }
                }
            }));
        }
        let mut outcomes = Vec::new();
        for p in players {
            outcomes.push(p.await);
        }
        outcomes.remove(0)
    });
    assert!(
        outcome
            .order
            .iter()
            .all(|p| p.rtt_source == RttSource::Ping),
        "{outcome:?}"
    );
}

/// Only the listed balancers may send the header: straight to the instance, one socket could
/// otherwise claim any address (ten seats past a per-address limit of 2, a cooled-down leaver
/// back as another address, a forged abort charged to a real player's address).
#[test]
fn a_header_from_a_peer_that_is_not_a_trusted_proxy_is_refused_unread() {
    let (addr, transcript, _stop) = behind_a_balancer(Config {
        rounds: 0,
        ..Config::default()
    });
    for claimed in 1..=3u8 {
        let mut forger = common::connect_from([127, 0, 0, 2], &addr);
        let mut bytes = header(Command::Proxy, [10, 9, 8, claimed], 40000);
        bytes.extend(
            arrival::protocol::encode(&Frame::Hello {
                version: PROTOCOL_VERSION,
                room: Some("r".into()),
            })
            .unwrap(),
        );
        // The server may close before the bytes are all written: either way nothing comes back.
        let _ = std::io::Write::write_all(&mut forger, &bytes);
        forger.set_read_timeout(Some(common::GUARD)).unwrap();
        let mut got = Vec::new();
        let _ = std::io::Read::read_to_end(&mut forger, &mut got);
        assert!(got.is_empty(), "answered: {got:?}");
    }
    // The balancer's relayed clients are served as before.
    rt::block_on(async {
        let mut x = relayed(&addr, [127, 0, 0, 4], 1).await;
        assert!(matches!(x.recv().await, Ok(Some(Frame::Welcome { .. }))));
    });
    assert!(transcript.lines().iter().all(|l| !l.contains("10.9.8.")));
}

/// A full instance is not a dead one: at its connection limit it still answers the balancer's
/// health check, and refuses the next client in words.
#[test]
fn a_full_instance_answers_its_health_check_and_refuses_clients_in_words() {
    let (addr, _transcript, _stop) = behind_a_balancer(Config {
        rounds: 0,
        max_connections: 2,
        ..Config::default()
    });
    rt::block_on(async {
        let mut held = Vec::new();
        for (i, source) in [[127, 0, 0, 2], [127, 0, 0, 3]].into_iter().enumerate() {
            let mut link = relayed(&addr, source, i as u16 + 1).await;
            assert!(matches!(link.recv().await, Ok(Some(Frame::Welcome { .. }))));
            held.push(link);
        }
        health_check(&addr).await;
        let mut third = relayed(&addr, [127, 0, 0, 4], 3).await;
        match third.recv().await.unwrap() {
            Some(Frame::Error { kind, message }) => {
                assert_eq!(kind, ErrorKind::Busy);
                assert_eq!(
                    message,
                    "the server is at its limit of 2 connections; try again later"
                );
            }
            other => panic!("{other:?}"),
        }
        drop(held);
    });
}
