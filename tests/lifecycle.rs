//! The server as a library: after a batch of faulty clients and one good round, `run` returns
//! and no connection task is left behind.

mod common;

use std::time::Duration;

use arrival::protocol::{ErrorKind, Frame};
use arrival::rt as task;
use arrival::server::{Config, Server};
use arrival::transcript::Transcript;
use common::Raw;
use std::net::TcpListener;

#[test]
fn faulty_clients_then_a_good_round_leave_no_connection_behind() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = Config {
        handshake_timeout: Duration::from_millis(300),
        frame_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let server = Server::new(listener, config);
    let addr = server.local_addr().unwrap().to_string();
    let stats = server.stats();
    let running = task::spawn(server.run(futures::future::pending()));

    // Each faulty client waits for the server's verdict on it, so all are dealt with before the
    // good round starts.
    let mut faulty = 0;
    let mut expect = |bytes: &[u8], kind: ErrorKind| {
        let mut raw = Raw::connect(&addr);
        raw.send_bytes(bytes);
        assert_eq!(raw.expect_error().0, kind);
        raw.expect_closed();
        faulty += 1;
    };
    expect(&[], ErrorKind::Timeout); // silent
    expect(&[0, 0], ErrorKind::Timeout); // stalls inside its first frame
    expect(&[0xff, 0xff, 0xff, 0xff], ErrorKind::Malformed);
    expect(&[0, 0, 0, 0], ErrorKind::Malformed);
    expect(&[0, 0, 0, 2, 7, 7], ErrorKind::Malformed);
    let v9 = arrival::protocol::encode(&Frame::Hello {
        version: 9,
        room: None,
    })
    .unwrap();
    expect(&v9, ErrorKind::Version);
    // Takes slot X, then speaks out of turn: refused, slot freed.
    let mut eager = Raw::connect(&addr);
    eager.hello();
    eager.send(&Frame::Message {
        name: "Eager".into(),
    });
    assert_eq!(eager.expect_error().0, ErrorKind::Protocol);
    eager.expect_closed();
    faulty += 1;

    let [a, b] = common::play_pair(&addr, None);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.text, b.text);

    let summary = task::block_on(running).unwrap();
    assert_eq!(summary.rounds_completed, 1);
    assert!(summary.is_clean());
    assert_eq!(summary.connections, faulty + 2);
    assert_eq!(stats.accepted(), faulty + 2);
    assert_eq!(
        stats.live_connections(),
        0,
        "a connection task outlived the server"
    );
}

/// The read-time fallback (what a platform without kernel timestamps runs, exercised here on
/// Linux by switching them off): a round still completes with one verdict for both parties.
#[test]
fn without_kernel_timestamps_a_round_is_ordered_by_read_time() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let transcript = Transcript::memory();
    let config = Config {
        kernel_timestamps: false,
        transcript: transcript.clone(),
        ..Config::default()
    };
    let server = Server::new(listener, config);
    let addr = server.local_addr().unwrap().to_string();
    let running = task::spawn(server.run(futures::future::pending()));
    let [a, b] = common::play_pair(&addr, None);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.text, b.text);
    let mut names: Vec<&str> = a.order.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Alice", "Bob"]);
    assert_eq!(a.order[0].after_micros, 0);
    assert!(task::block_on(running).unwrap().is_clean());
    assert_eq!(
        transcript.lines().last().map(String::as_str),
        Some("Sent acknowledgment to both X and Y")
    );
}

/// A drain (an upgrade's first step): the running round is finished, no new one starts, and
/// then `run` returns on its own; the agent check says `drain` meanwhile.
#[test]
fn a_drained_server_finishes_its_rounds_starts_none_and_stops() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let agent = TcpListener::bind("127.0.0.1:0").unwrap();
    let agent_addr = agent.local_addr().unwrap().to_string();
    let config = Config {
        rounds: 0,
        ..Config::default()
    };
    let server = Server::new(listener, config).with_agent(agent);
    let addr = server.local_addr().unwrap().to_string();
    let (stats, drain) = (server.stats(), server.drain());
    let running = task::spawn(server.run(futures::future::pending()));
    let agent_line = || {
        let mut s = std::net::TcpStream::connect(&agent_addr).unwrap();
        s.set_read_timeout(Some(common::GUARD)).unwrap();
        let mut line = String::new();
        std::io::Read::read_to_string(&mut s, &mut line).unwrap();
        line
    };
    assert_eq!(agent_line(), "ready up 100%\n");
    let hello = |room: &str| Frame::Hello {
        version: arrival::protocol::PROTOCOL_VERSION,
        room: Some(room.into()),
    };
    // A room whose round waits for its second party.
    let mut x = Raw::connect(&addr);
    x.send(&hello("running"));
    assert!(matches!(x.recv(), Some(Frame::Welcome { .. })));
    drain.start();
    assert!(stats.draining());
    assert_eq!(agent_line(), "drain\n");
    // A new room is sent elsewhere; the running one still takes its party.
    let mut new = Raw::connect(&addr);
    new.send(&hello("new"));
    assert_eq!(
        new.expect_error(),
        (
            ErrorKind::Busy,
            "this server is draining: new rooms start on another; try again".to_owned()
        )
    );
    let mut y = Raw::connect(&addr);
    y.send(&hello("running"));
    assert!(matches!(y.recv(), Some(Frame::Welcome { .. })));
    for (raw, name) in [(&mut x, "Xena"), (&mut y, "Yann")] {
        while !matches!(raw.recv(), Some(Frame::Connected { .. })) {}
        raw.send(&Frame::Message { name: name.into() });
    }
    for raw in [&mut x, &mut y] {
        assert!(matches!(raw.recv(), Some(Frame::Ack { .. })));
    }
    // The last round ended: the server stops by itself.
    let summary = task::block_on(running).unwrap();
    assert_eq!(summary.rounds_completed, 1);
    assert_eq!(stats.live_connections(), 0);
}

/// A drain with a quiz session running: a new room's session is refused, a player still joins
/// the running one, and once that session is over the server stops.
#[test]
fn a_drained_server_finishes_its_session_starts_none_and_stops() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = Config {
        rounds: 0,
        session: arrival::session::SessionConfig {
            min_parties: 2,
            ..common::reaction_sessions(1)
        },
        ..Config::default()
    };
    let server = Server::new(listener, config);
    let addr = server.local_addr().unwrap().to_string();
    let drain = server.drain();
    let running = task::spawn(server.run(futures::future::pending()));
    let join = |room: &str, name: &str| Frame::Join {
        version: arrival::protocol::PROTOCOL_VERSION,
        room: Some(room.into()),
        name: name.into(),
    };
    let mut ann = Raw::connect(&addr);
    ann.send(&join("night", "Ann"));
    assert!(matches!(ann.recv(), Some(Frame::Welcome { .. })));
    drain.start();
    let mut other = Raw::connect(&addr);
    other.send(&join("another", "Cy"));
    assert_eq!(
        other.expect_error(),
        (
            ErrorKind::Busy,
            "this server is draining: new rooms start on another; try again".to_owned()
        )
    );
    // The running session still seats its player, and plays its one round.
    let mut ben = Raw::connect(&addr);
    ben.send(&join("night", "Ben"));
    assert!(matches!(ben.recv(), Some(Frame::Welcome { .. })));
    for raw in [&mut ann, &mut ben] {
        loop {
            match raw.recv() {
                Some(Frame::Ping { seq }) => raw.send(&Frame::Pong { seq }),
                Some(Frame::Go { .. }) => raw.send(&Frame::Answer),
                Some(Frame::SessionOver { .. } | Frame::Over { .. }) => break,
                Some(_) => {}
                None => panic!("closed before the session was over"),
            }
        }
    }
    let summary = task::block_on(running).unwrap();
    assert_eq!(summary.sessions, 1, "{summary:?}");
}
