//! No client can lock others out, grow the server, or crash it. One test per numbered
//! case of the attack campaign, driving the real server over loopback (in-process where the
//! lifecycle counters are needed), each asserting the defended outcome. Long variants are
//! `#[ignore]`d; `make attack` runs them and prints their figures.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrival::protocol::{self, ErrorKind, Frame, PROTOCOL_VERSION};
use arrival::rt;
use arrival::server::{Config, Server, Stats, Summary};
use common::{client, connect_from, server, Proc, Raw, SERVER};

/// An in-process server with `config`; returns its address, counters, stop and handle.
fn in_process(
    config: Config,
) -> (
    String,
    Arc<Stats>,
    futures::channel::oneshot::Sender<()>,
    rt::JoinHandle<std::io::Result<Summary>>,
) {
    let listener = arrival::server::bind("127.0.0.1:0").unwrap();
    let server = Server::new(listener, config);
    let addr = server.local_addr().unwrap().to_string();
    let stats = server.stats();
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    let running = rt::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, stats, stop, running)
}

/// Waits (at most the guard) until `done` holds; for counters that settle after clients leave,
/// with no event to await.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + common::GUARD;
    while !done() {
        assert!(Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn hello(room: Option<&str>) -> Vec<u8> {
    protocol::encode(&Frame::Hello {
        version: PROTOCOL_VERSION,
        room: room.map(str::to_owned),
    })
    .unwrap()
}

/// Reads one frame from a blocking stream.
fn read_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut reader = protocol::FrameReader::new(futures::io::AllowStdIo::new(s));
    rt::block_on(reader.read_frame()).ok().flatten()
}

/// One round of two in-process clients on `addr`, anonymous or in `room`; both must succeed.
fn good_pair(addr: &str, room: Option<&str>) {
    let [a, b] = common::play_pair(addr, room);
    let (a, b) = (a.expect("Alice's round"), b.expect("Bob's round"));
    assert_eq!(a.text, b.text);
}

// 1. Leaked connection tasks --------------------------------------------------------------------

fn hello_then_close(count: usize) {
    let (addr, stats, stop, running) = in_process(Config {
        rounds: 0,
        // Every client here, and the good pair after them, share one address: this is about
        // what connections leave behind, not about the address's conduct (case 16).
        cooldown: arrival::server::cooldown::CooldownConfig {
            strikes: 0,
            ..Default::default()
        },
        ..Config::default()
    });
    for i in 0..count {
        let mut s = TcpStream::connect(&addr).unwrap();
        // Half of them in rooms of their own, half anonymous.
        let room = format!("r{i}");
        let _ = s.write_all(&hello((i % 2 == 0).then_some(room.as_str())));
        drop(s);
    }
    eventually("every connection task ended", || {
        stats.live_connections() == 0
    });
    eventually("every abandoned round ended", || stats.rounds_live() == 0);
    good_pair(&addr, Some("after"));
    eventually("the good pair's tasks ended", || {
        stats.live_connections() == 0
    });
    drop(stop);
    let summary = rt::block_on(running).unwrap();
    assert_eq!(summary.rounds_completed, 1);
    assert_eq!(stats.live_connections(), 0);
    println!("{count} Hello-then-close clients: 0 connection tasks and 0 rounds left");
}

#[test]
fn case01_hello_then_close_leaves_no_connection_behind() {
    hello_then_close(200);
}

#[test]
#[ignore = "long: make attack"]
fn case01_long_two_thousand_hello_then_close() {
    hello_then_close(2_000);
}

fn chat_send_and_close(rounds: usize) {
    let (addr, stats, stop, running) = in_process(Config {
        rounds: 0,
        chat: true,
        // As in case 1's other half: one address for all, and a pair that closes at once can
        // abort its round when the machine is busy; this is about what connections leave
        // behind, and the good pair after them must not be refused as a leaver.
        cooldown: arrival::server::cooldown::CooldownConfig {
            strikes: 0,
            ..Default::default()
        },
        ..Config::default()
    });
    for r in 0..rounds {
        let room = format!("chat{r}");
        let mut pair: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.write_all(&hello(Some(&room))).unwrap();
                s
            })
            .collect();
        for (i, s) in pair.iter_mut().enumerate() {
            let name = protocol::encode(&Frame::Message {
                name: format!("P{i}"),
            })
            .unwrap();
            let _ = s.write_all(&name);
        }
        // Both close at once, as soon as they have sent.
        drop(pair);
    }
    good_pair(&addr, Some("after"));
    eventually("every connection task ended", || {
        stats.live_connections() == 0
    });
    drop(stop);
    rt::block_on(running).unwrap();
    println!("{rounds} send-and-close chat rounds: 0 connection tasks left");
}

#[test]
fn case01_chat_parties_that_send_and_close_leave_nothing_behind() {
    chat_send_and_close(50);
}

// 2. Memory for every abandoned room --------------------------------------------------------------

fn abandoned_rooms(count: usize) -> (usize, usize) {
    let (addr, stats, stop, running) = in_process(Config {
        rounds: 0,
        ..Config::default()
    });
    for i in 0..count {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(&hello(Some(&format!("room-{i}")))).unwrap();
        let _ = read_frame(&mut s); // Welcome: the room's round exists
        drop(s);
    }
    eventually("every abandoned round ended", || stats.rounds_live() == 0);
    good_pair(&addr, Some("after"));
    let filling = stats.rooms_filling();
    drop(stop);
    rt::block_on(running).unwrap();
    (filling, stats.live_connections())
}

#[test]
fn case02_abandoned_rooms_are_forgotten() {
    let (filling, live) = abandoned_rooms(1_000);
    assert_eq!(live, 0);
    // A room leaves the lobby's table when its last party leaves.
    assert_eq!(filling, 0, "rooms still in the lobby's table");
}

#[test]
fn case02_a_stop_with_many_rooms_waiting_ends_every_round() {
    // More rooms than the reports channel holds: the lobby reports each as it stops.
    const ROOMS: usize = 200;
    let (addr, stats, stop, running) = in_process(Config {
        rounds: 0,
        ..Config::default()
    });
    let mut waiting: Vec<TcpStream> = (0..ROOMS)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(common::GUARD)).unwrap();
            s.write_all(&hello(Some(&format!("alone-{i}")))).unwrap();
            assert!(matches!(read_frame(&mut s), Some(Frame::Welcome { .. })));
            s
        })
        .collect();
    eventually("every room waiting", || stats.rooms_filling() == ROOMS);
    assert_eq!(stats.rounds_live(), ROOMS);
    drop(stop);
    let summary = rt::block_on(running).unwrap();
    assert!(summary.interrupted);
    assert_eq!((stats.rounds_live(), stats.live_connections()), (0, 0));
    for s in &mut waiting {
        assert!(matches!(
            read_frame(s),
            Some(Frame::Error {
                kind: ErrorKind::ShuttingDown,
                ..
            })
        ));
    }
}

/// RSS of this process (the server runs in it), KiB.
fn rss_kib() -> u64 {
    arrival::bench::proc_stats(std::process::id())
        .expect("/proc")
        .rss_kib
}

#[test]
#[ignore = "long: make attack (release mode)"]
fn case02_long_a_hundred_thousand_abandoned_rooms_keep_memory_flat() {
    let (addr, stats, stop, running) = in_process(Config {
        rounds: 0,
        ..Config::default()
    });
    let abandon = |from: usize, to: usize| {
        for i in from..to {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(&hello(Some(&format!("room-{i}")))).unwrap();
            let _ = read_frame(&mut s);
        }
        eventually("every abandoned round ended", || stats.rounds_live() == 0);
        good_pair(&addr, Some(&format!("after-{to}")));
    };
    abandon(0, 1_000); // warm-up: allocator arenas, the table's first growth
    let before = rss_kib();
    let started = Instant::now();
    abandon(1_000, 101_000);
    let after = rss_kib();
    println!(
        "100,000 abandoned rooms in {:.1} s: RSS {before} KiB -> {after} KiB ({:+} KiB); \
         lobby table {} entries",
        started.elapsed().as_secs_f64(),
        after as i64 - before as i64,
        stats.rooms_filling()
    );
    drop(stop);
    rt::block_on(running).unwrap();
    // The campaign measured ~1.5 KB kept per room (146 MB for this many); a fixed margin now.
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

// 3. One-shot server bricked by one connection -------------------------------------------------

#[test]
fn case03_a_room_join_and_close_does_not_use_up_a_one_shot_server() {
    let (mut srv, addr) = server(&[]);
    let mut raw = Raw::connect(&addr);
    raw.send_bytes(&hello(Some("x")));
    assert!(matches!(raw.recv(), Some(Frame::Welcome { .. })));
    drop(raw);
    srv.wait_for("x to leave", |l| {
        l.starts_with("Client X left before the round started")
    });
    let x = client("X", &addr, &["--name", "Alice"]);
    let y = client("Y", &addr, &["--name", "Bob"]);
    let (x, y) = (x.finish(), y.finish());
    assert_eq!((x.code, y.code), (Some(0), Some(0)), "{x:?} {y:?}");
    srv.finish()
        .assert_ended_with("Sent acknowledgment to both X and Y");
}

#[test]
fn case03_rounds_n_counts_only_rounds_that_filled() {
    let (mut srv, addr) = server(&["--rounds", "2", "-vv"]);
    for room in ["a", "b", "c"] {
        let mut raw = Raw::connect(&addr);
        raw.send_bytes(&hello(Some(room)));
        assert!(matches!(raw.recv(), Some(Frame::Welcome { .. })));
        drop(raw);
        srv.wait_for_stderr("the room abandoned", |l| l.contains("abandoned"));
    }
    good_pair(&addr, None);
    good_pair(&addr, Some("d"));
    srv.finish()
        .assert_ended_with("Summary: 2 rounds completed, 0 aborted, 7 connections served");
}

// 4. Slowloris -------------------------------------------------------------------------------------

#[test]
fn case04_one_address_cannot_take_every_connection() {
    let (srv, addr) = server(&["--rounds", "0", "--max-per-address", "8"]);
    // The attacker holds eight silent connections and eight that sent Hello and wait.
    let mut held = Vec::new();
    for i in 0..8 {
        let mut s = connect_from([127, 0, 0, 2], &addr);
        if i % 2 == 0 {
            s.write_all(&hello(Some(&format!("slow{i}")))).unwrap();
            assert!(matches!(read_frame(&mut s), Some(Frame::Welcome { .. })));
        }
        held.push(s);
    }
    // The ninth from that address is told at once.
    let mut ninth = connect_from([127, 0, 0, 2], &addr);
    match read_frame(&mut ninth) {
        Some(Frame::Error { kind, message }) => {
            assert_eq!(kind, ErrorKind::Busy);
            assert!(
                message.contains("this address already holds 8 connections"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Everyone else is served meanwhile.
    good_pair(&addr, None);
    good_pair(&addr, Some("room"));
    drop(held);
    drop(srv);
}

#[test]
fn case04_a_silent_connection_is_closed_at_the_handshake_deadline() {
    let (srv, addr) = server(&["--rounds", "0", "--handshake-timeout", "0.2"]);
    let mut silent = connect_from([127, 0, 0, 3], &addr);
    match read_frame(&mut silent) {
        Some(Frame::Error { kind, .. }) => assert_eq!(kind, ErrorKind::Timeout),
        other => panic!("{other:?}"),
    }
    drop(srv);
}

// 5. Griefing anonymous rounds -------------------------------------------------------------------

#[test]
fn case05_a_party_that_never_sends_is_timed_out() {
    let (srv, addr) = server(&["--rounds", "0", "--message-timeout", "0.3"]);
    let mut griefer = Raw::connect(&addr);
    griefer.send_bytes(&hello(None));
    assert!(matches!(griefer.recv(), Some(Frame::Welcome { .. })));
    let mut victim = client("Y", &addr, &["--name", "Bob"]);
    assert!(matches!(griefer.recv(), Some(Frame::Connected { .. })));
    // The griefer never sends: it is timed out, and the victim learns why at once.
    let (kind, message) = griefer.expect_error();
    assert_eq!(kind, ErrorKind::Timeout);
    assert_eq!(message, "no message within 0.3 s of the round's start");
    // The victim is not punished: it plays a new round, with whoever comes next.
    victim.expect_line("Client Y connected");
    victim.expect_line("Client Y: Bob");
    victim.expect_line(
        "round aborted: Client X left before sending its message (sent no message in time); \
         playing in a new round (rejoin 1 of 3)",
    );
    let partner = client("Ann", &addr, &["--name", "Ann"]);
    assert_eq!(partner.finish().code, Some(0));
    let victim = victim.finish();
    assert_eq!(victim.code, Some(0), "{victim:?}");
    assert_eq!(victim.stdout[3], "Client X connected");
    srv.signal("TERM");
    assert_eq!(srv.finish().code, Some(0));
}

// 6. Shutdown bounded whatever clients do ------------------------------------------------------

#[test]
fn case06_shutdown_does_not_wait_for_a_client_that_streams_and_never_reads() {
    let (srv, addr) = server(&["--rounds", "0", "--mode", "echo"]);
    let mut hog = TcpStream::connect(&addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Fill both directions: the server's echo is stuck writing to us, and we keep sending.
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    while hog.write(&chunk).is_ok() && sent < 64 << 20 {
        sent += chunk.len();
    }
    let started = Instant::now();
    srv.signal("TERM");
    let out = srv.finish();
    println!(
        "server exited {:?} after SIGTERM with a streaming peer",
        started.elapsed()
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut rest = Vec::new();
    let _ = hog.read_to_end(&mut rest);
}

// 7. Idle chat ---------------------------------------------------------------------------------------

#[test]
fn case07_a_quiet_chat_is_ended() {
    let (srv, addr) = server(&["--chat", "--chat-idle", "0.3"]);
    let mut x = client("X", &addr, &["--name", "Alice"]);
    let mut y = client("Y", &addr, &["--name", "Bob"]);
    for p in [&mut x, &mut y] {
        p.wait_for("the chat's end", |l| {
            l == "nobody typed for 0.3 s; the chat is over"
        });
    }
    assert_eq!((x.finish().code, y.finish().code), (Some(0), Some(0)));
    assert_eq!(
        srv.finish().last_line(),
        "Chat over: nobody typed for 0.3 s; lines relayed: 0 from X, 0 from Y"
    );
}

// 8. Diagnostics ------------------------------------------------------------------------------------

#[test]
fn case08_logging_with_stdout_and_stderr_closed_cannot_panic_or_wedge() {
    let (mut child, addr, stdout) = common::server_with_pipes(&["-vvv"]);
    // Nobody reads either stream any more: `arrival-server -vvv 2>&1 | head -1`.
    drop(stdout);
    drop(child.stderr.take());
    let x = client("X", &addr, &["--name", "Alice"]);
    let y = client("Y", &addr, &["--name", "Bob"]);
    assert_eq!((x.finish().code, y.finish().code), (Some(0), Some(0)));
    assert_eq!(child.wait().unwrap().code(), Some(0), "no panic (101)");
}

#[test]
fn case06_with_one_thread_a_streaming_peer_does_not_hold_up_others() {
    let (srv, addr) = server(&["--rounds", "0", "--threads", "1"]);
    // A party that is refused (a second Hello after its first) and keeps streaming while the
    // server closes on it.
    let mut streamer = TcpStream::connect(&addr).unwrap();
    streamer.write_all(&hello(None)).unwrap();
    streamer.write_all(&hello(None)).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let pump = std::thread::spawn(move || {
        let chunk = vec![0u8; 16 * 1024];
        streamer
            .set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if streamer.write(&chunk).is_err() {
                break;
            }
        }
    });
    good_pair(&addr, Some("others"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pump.join().unwrap();
    drop(srv);
}

// 9. Absurd durations ----------------------------------------------------------------------------

#[test]
fn case09_out_of_range_durations_are_usage_errors() {
    for flag in [
        "--frame-timeout",
        "--handshake-timeout",
        "--round-timeout",
        "--message-timeout",
        "--chat-idle",
    ] {
        let out = Proc::spawn("server", SERVER, &["--addr", "127.0.0.1:0", flag, "1e19"]).finish();
        assert_eq!(out.code, Some(2), "{flag}: {out:?}");
        assert!(out.stdout.is_empty());
        assert!(
            out.stderr.contains("longer than the maximum of 86400 s"),
            "{flag}: {}",
            out.stderr
        );
    }
}

// 10. Text wire: a party that never sends ----------------------------------------------------------

#[test]
fn case10_a_silent_text_party_is_timed_out() {
    let (mut srv, addr) = server(&["--wire", "text", "--message-timeout", "0.3"]);
    let mut x = TcpStream::connect(&addr).unwrap();
    x.set_read_timeout(Some(common::GUARD)).unwrap();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = TcpStream::connect(&addr).unwrap();
    y.set_read_timeout(Some(common::GUARD)).unwrap();
    // Y sends; X, greeted, never does.
    let mut greeting = [0u8; 18];
    y.read_exact(&mut greeting).unwrap();
    y.write_all(b"Bob\n").unwrap();
    let mut xs = String::new();
    let _ = x.read_to_string(&mut xs);
    assert_eq!(
        xs,
        "Client X connectederror: no message within 0.3 s of the round's start\n"
    );
    let mut ys = String::new();
    let _ = y.read_to_string(&mut ys);
    assert_eq!(
        ys,
        "error: round aborted: Client X left before sending its message (sent no message in \
         time)\n"
    );
    assert_eq!(srv.finish().code, Some(1));
}

// 11. Round timer starts with the round's own first party --------------------------------------

#[test]
fn case11_a_pair_joining_an_abandoned_room_gets_a_fresh_round() {
    let (mut srv, addr) = server(&["--rounds", "0", "--round-timeout", "30", "-vv"]);
    let mut early = Raw::connect(&addr);
    early.send_bytes(&hello(Some("r")));
    assert!(matches!(early.recv(), Some(Frame::Welcome { .. })));
    drop(early);
    srv.wait_for_stderr("the room abandoned", |l| l.contains("abandoned"));
    let mut a = Raw::connect(&addr);
    a.send_bytes(&hello(Some("r")));
    let mut b = Raw::connect(&addr);
    b.send_bytes(&hello(Some("r")));
    assert!(matches!(a.recv(), Some(Frame::Welcome { .. })));
    // Round 1 was the abandoned one; this pair's round is new, with a clock of its own.
    assert!(matches!(a.recv(), Some(Frame::Connected { round: 2, .. })));
    drop(srv);
}

// 12. Oversized verdict --------------------------------------------------------------------------------

#[test]
fn case12_parties_whose_verdict_cannot_fit_a_frame_are_refused_at_start() {
    let out = Proc::spawn(
        "server",
        SERVER,
        &["--addr", "127.0.0.1:0", "--parties", "130"],
    )
    .finish();
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.starts_with(
            "arrival-server: a verdict for 130 parties with 64-character names would not fit in \
             one 65536-byte frame; at most "
        ),
        "{}",
        out.stderr
    );
    let fits: usize = out
        .stderr
        .trim_end()
        .trim_end_matches(" parties fit")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The most that fit is accepted.
    let mut srv = Proc::spawn(
        "server",
        SERVER,
        &["--addr", "127.0.0.1:0", "--parties", &fits.to_string()],
    );
    assert!(srv.next_line().starts_with("arrival-server listening on"));
    srv.signal("TERM");
    let _ = srv.finish();
}

// 13. Descriptor exhaustion ------------------------------------------------------------------------

#[test]
fn case13_out_of_descriptors_the_server_answers_busy_and_logs_rarely() {
    // A hard limit of 48 descriptors, which the server cannot raise.
    let mut srv = Proc::spawn(
        "server",
        "/bin/sh",
        &[
            "-c",
            &format!("ulimit -n 48 && exec {SERVER} --addr 127.0.0.1:0 --rounds 0 -v"),
        ],
    );
    let first = srv.next_line();
    let addr = first.rsplit(' ').next().unwrap().to_owned();
    let mut held = Vec::new();
    let (mut welcomed, mut busy) = (0, 0);
    for i in 0..80 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(common::GUARD)).unwrap();
        s.write_all(&hello(Some(&format!("fd{i}")))).unwrap();
        match read_frame(&mut s) {
            Some(Frame::Welcome { .. }) => welcomed += 1,
            Some(Frame::Error {
                kind: ErrorKind::Busy,
                ..
            }) => busy += 1,
            other => panic!("connection {i}: {other:?}"),
        }
        held.push(s);
    }
    assert_eq!(welcomed + busy, 80);
    assert!(busy > 0 && welcomed > 0, "welcomed {welcomed}, busy {busy}");
    drop(held);
    // Descriptors back: served again.
    let x = client("X", &addr, &["--name", "Alice", "--room", "back"]);
    let y = client("Y", &addr, &["--name", "Bob", "--room", "back"]);
    assert_eq!((x.finish().code, y.finish().code), (Some(0), Some(0)));
    srv.signal("TERM");
    let out = srv.finish();
    let lines = out
        .stderr
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} log lines:\n{}",
        out.stderr
    );
}

// 14. Smaller ones --------------------------------------------------------------------------------------

#[test]
fn case14_two_signals_to_a_service_server_exit_as_one_would() {
    let (mut srv, addr) = server(&["--rounds", "0"]);
    let mut stubborn = Raw::connect(&addr);
    stubborn.send_bytes(&hello(None));
    assert!(matches!(stubborn.recv(), Some(Frame::Welcome { .. })));
    srv.signal("INT");
    srv.wait_for_stderr("the first signal", |l| l.contains("shutting down"));
    // Not synchronisation: a second signal outside the repeat window is what this case is about.
    std::thread::sleep(Duration::from_millis(300));
    srv.signal("INT");
    assert_eq!(srv.finish().code, Some(0));
}

// 15. A big quiz session -----------------------------------------------------------------------

/// What the players of one big session saw, and the server's memory around it.
struct BigSession {
    /// Rounds each admitted player got a result of, whether it got the final scores, and the
    /// longest list it was sent.
    admitted: Vec<(u64, bool, usize)>,
    /// The refusals the others were sent.
    refused: Vec<(ErrorKind, String)>,
    idle_kib: u64,
    peak_kib: u64,
    after_kib: u64,
    /// Server log lines that say a frame could not be encoded.
    encode_errors: usize,
}

/// `players` (names of 60 characters) join one session of `rounds` rounds on a server of its
/// own that seats `seats`, which starts the session once it holds as many as it can; each
/// admitted player pongs and answers at once, and checks its own line is in every result.
fn big_session(players: usize, seats: usize, rounds: u64) -> BigSession {
    let most = seats.min(players).to_string();
    let seats = seats.to_string();
    let rounds_arg = rounds.to_string();
    let (srv, addr) = server(&[
        "--rounds",
        "0",
        "--max-players",
        &seats,
        "--min-players",
        &most,
        "--session-rounds",
        &rounds_arg,
        "--session-pause",
        "0.1",
        "--go-jitter",
        "0",
        "--max-per-address",
        "0",
        "--max-connections",
        "4096",
        "-v",
    ]);
    let stats = || arrival::bench::proc_stats(srv.pid()).expect("/proc");
    let idle_kib = stats().rss_kib;
    let play = |i: usize| {
        let addr = addr.clone();
        async move {
            let mut link = arrival::client::Link::connect(&addr).await.unwrap();
            let name = format!("{i:04}{}", "n".repeat(56));
            link.send(&Frame::Join {
                version: PROTOCOL_VERSION,
                room: Some("big".into()),
                name: name.clone(),
            })
            .await
            .unwrap();
            // The longest result list, and the last lineup's (earlier ones came while the room
            // was smaller).
            let (mut results, mut longest, mut lineup_len) = (0, 0, 0);
            loop {
                match link.recv().await {
                    Ok(Some(
                        Frame::Welcome { .. }
                        | Frame::Rules { .. }
                        | Frame::Seated { .. }
                        | Frame::Early { .. },
                    )) => {}
                    Ok(Some(Frame::Lineup(lineup))) => {
                        assert!(lineup.players.iter().any(|p| p.name == name));
                        lineup_len = lineup.players.len();
                    }
                    // A pong may cross the server's last word (the session over): no error.
                    Ok(Some(Frame::Ping { seq })) => {
                        let _ = link.send(&Frame::Pong { seq }).await;
                    }
                    Ok(Some(Frame::Go { .. })) => link.send(&Frame::Answer).await.unwrap(),
                    Ok(Some(Frame::Outcome(outcome))) => {
                        let own = |names: Vec<&String>| names.contains(&&name);
                        assert!(own(outcome.order.iter().map(|p| &p.name).collect()));
                        assert!(own(outcome.scores.iter().map(|s| &s.name).collect()));
                        longest = longest.max(outcome.order.len()).max(outcome.scores.len());
                        results += 1;
                    }
                    Ok(Some(Frame::Over { scores, .. })) => {
                        assert!(scores.iter().any(|s| s.name == name));
                        let longest = longest.max(scores.len()).max(lineup_len);
                        return Ok((results, true, longest));
                    }
                    Ok(Some(Frame::Error { kind, message })) => return Err((kind, message)),
                    other => panic!("player {i}: {other:?}"),
                }
            }
        }
    };
    let outcomes = rt::block_on(async {
        let tasks: Vec<_> = (0..players).map(|i| rt::spawn(play(i))).collect();
        futures::future::join_all(tasks).await
    });
    let (admitted, refused): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(Result::is_ok);
    let (mut peak_kib, mut after_kib) = (0, u64::MAX);
    // The players are gone; the server frees what their connections held as they close.
    let until = Instant::now() + common::GUARD;
    while Instant::now() < until {
        let now = stats();
        peak_kib = now.peak_rss_kib;
        after_kib = now.rss_kib;
        if after_kib <= 2 * idle_kib {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    srv.signal("INT");
    let out = srv.finish();
    BigSession {
        admitted: admitted.into_iter().map(Result::unwrap).collect(),
        refused: refused.into_iter().map(Result::unwrap_err).collect(),
        idle_kib,
        peak_kib,
        after_kib,
        encode_errors: out.stderr.matches("cannot encode").count(),
    }
}

/// Checks a session of `players` on a server seating `seats`: the rest refused with the reason,
/// every result delivered to every admitted player, each list within what one frame carries.
fn check_big_session(players: usize, seats: usize, rounds: u64) {
    let fits = arrival::session::fitting_parties();
    let s = big_session(players, seats, rounds);
    println!(
        "{players} players: {} admitted ({seats} seats), {} refused; server RSS {} KiB idle, \
         {} KiB peak, {} KiB after all left; {} encode errors",
        s.admitted.len(),
        s.refused.len(),
        s.idle_kib,
        s.peak_kib,
        s.after_kib,
        s.encode_errors
    );
    assert_eq!(s.admitted.len(), seats.min(players));
    assert!(
        s.admitted
            .iter()
            .all(|&(r, over, _)| (r, over) == (rounds, true)),
        "{:?}",
        s.admitted
    );
    // A room that fits one frame lists everyone; a bigger one each player's window.
    let window = if seats.min(players) <= fits {
        seats.min(players)
    } else {
        arrival::session::TOP_PLACES + 1
    };
    assert!(s.admitted.iter().all(|&(_, _, longest)| longest <= window));
    assert!(s.admitted.iter().any(|&(_, _, longest)| longest == window));
    assert_eq!(s.refused.len(), players.saturating_sub(seats));
    for (kind, message) in &s.refused {
        assert_eq!(*kind, ErrorKind::RoundFull);
        assert!(message.contains("is full"), "{message}");
    }
    assert_eq!(s.encode_errors, 0);
    assert!(
        s.after_kib <= 2 * s.idle_kib,
        "RSS {} KiB after all left, {} KiB idle",
        s.after_kib,
        s.idle_kib
    );
    // Per admitted player at the peak: its connection, and one encoded result in flight.
    let per_player = (s.peak_kib - s.idle_kib) / s.admitted.len() as u64;
    assert!(per_player <= 256, "{per_player} KiB per player at the peak");
}

#[test]
fn case15_a_session_beyond_one_frame_sends_windows_and_refuses_past_its_seats() {
    let fits = arrival::session::fitting_parties();
    check_big_session(fits + 10, fits + 5, 2);
}

#[test]
fn case15_a_session_that_fits_one_frame_lists_everyone() {
    check_big_session(12, 10, 2);
}

#[test]
#[ignore = "long: make attack (release mode)"]
fn case15_long_nine_hundred_players_in_one_session() {
    check_big_session(900, 900, 3);
}

// 16. One address denying everyone their rounds --------------------------------------------------

/// What the griefer does once its round has started.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grief {
    /// Leaves at once, before sending: the round is aborted for its partner.
    Leave,
    /// Stays, silent, until the server gives up on the round.
    Silent,
}

/// Until `done`, from 127.0.0.2: joins a round in `room` (or, with `rooms`, the newest room it
/// has learned of), and once it starts, grieves. Returns the rounds it got into and the refusals.
async fn griefer(
    addr: String,
    mut room: Option<String>,
    mut rooms: Option<futures::channel::mpsc::UnboundedReceiver<String>>,
    grief: Grief,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut started, mut refused) = (0, 0);
    while !done.load(Relaxed) {
        if let Some(rx) = rooms.as_mut() {
            while let Ok(name) = rx.try_recv() {
                room = Some(name);
            }
            if room.is_none() {
                rt::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        // Blocking, but a loopback connect is immediate.
        let stream = connect_from([127, 0, 0, 2], &addr);
        let mut link = arrival::client::Link::from_std(stream).unwrap();
        let _ = link
            .send(&Frame::Hello {
                version: PROTOCOL_VERSION,
                room: room.clone(),
            })
            .await;
        while !done.load(Relaxed) {
            // A read is cancel-safe: a timeout only lets it look at `done`.
            match rt::timeout(Duration::from_millis(100), link.recv()).await {
                None => {}
                Some(Ok(Some(Frame::Welcome { .. }))) => {}
                Some(Ok(Some(Frame::Connected { .. }))) => {
                    started += 1;
                    if grief == Grief::Leave {
                        break;
                    }
                }
                Some(Ok(Some(Frame::Error { kind, .. }))) => {
                    if kind == ErrorKind::Busy {
                        refused += 1;
                        rt::sleep(Duration::from_millis(100)).await;
                    }
                    break;
                }
                _ => break,
            }
        }
    }
    (started, refused)
}

/// Ten legitimate clients from 127.0.0.1, one every 300 ms, each in `room(i)`, against a griefer
/// from 127.0.0.2. Returns how many got a verdict (every verdict is between two legitimate
/// clients: the griefer never sends a name) within `bound` of their start.
fn against_a_griefer(
    config: Config,
    room: impl Fn(usize) -> Option<String>,
    learns_rooms: bool,
    grief: Grief,
    bound: Duration,
) -> usize {
    let (addr, _stats, stop, running) = in_process(config);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (learned, rooms) = futures::channel::mpsc::unbounded();
    // It knows the room everyone meets in, or learns each as it is used.
    let known = if learns_rooms { None } else { room(0) };
    let griefing = rt::spawn(griefer(
        addr.clone(),
        known,
        learns_rooms.then_some(rooms),
        grief,
        Arc::clone(&done),
    ));
    // The griefer waits first, as in the campaign.
    std::thread::sleep(Duration::from_millis(100));
    let mut players = Vec::new();
    for i in 0..10 {
        let config = arrival::client::Config {
            addr: addr.clone(),
            room: room(i),
            ..arrival::client::Config::default()
        };
        if let (true, Some(name)) = (learns_rooms, config.room.clone()) {
            let _ = learned.unbounded_send(name);
        }
        let name = format!("Legit{i}");
        players.push(rt::spawn(async move {
            let started = Instant::now();
            let played = rt::timeout(
                bound,
                arrival::client::run(
                    &config,
                    arrival::client::NameSource::Given(name),
                    &arrival::transcript::Transcript::Silent,
                ),
            )
            .await;
            match played {
                Some(Ok(verdict)) => {
                    assert!(verdict.order.iter().all(|a| a.name.starts_with("Legit")));
                    Some(started.elapsed())
                }
                _ => None,
            }
        }));
        std::thread::sleep(Duration::from_millis(300));
    }
    let served: Vec<Option<Duration>> = rt::block_on(futures::future::join_all(players));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (rounds, refusals) = rt::block_on(griefing);
    drop(stop);
    let _ = rt::block_on(running);
    let slowest = served.iter().flatten().max().copied().unwrap_or_default();
    let served = served.iter().flatten().count();
    println!(
        "{served} of 10 legitimate clients served: the slowest in {:.1} s; the griefer got into \
         {rounds} rounds and was refused {refusals} times",
        slowest.as_secs_f64()
    );
    served
}

/// The service server's time limits, as `arrival-server --rounds 0` has them.
fn service(round_timeout: Option<Duration>) -> Config {
    Config {
        rounds: 0,
        round_timeout,
        message_timeout: Some(Duration::from_secs(60)),
        ..Config::default()
    }
}

const SERVED_WITHIN: Duration = Duration::from_secs(25);

#[test]
fn case16_a_griefer_leaving_anonymous_rounds_does_not_deny_them() {
    let served = against_a_griefer(service(None), |_| None, false, Grief::Leave, SERVED_WITHIN);
    assert!(served >= 9, "{served} of 10");
}

#[test]
fn case16_a_griefer_in_a_room_it_knows_does_not_deny_it() {
    let room = |_| Some("quiz-42".to_owned());
    let served = against_a_griefer(service(None), room, false, Grief::Leave, SERVED_WITHIN);
    assert!(served >= 9, "{served} of 10");
}

#[test]
fn case16_a_griefer_joining_rooms_as_it_learns_them_does_not_deny_them() {
    let room = |i: usize| Some(format!("room-{}", i / 2));
    let served = against_a_griefer(service(None), room, true, Grief::Leave, SERVED_WITHIN);
    assert!(served >= 9, "{served} of 10");
}

#[test]
fn case16_a_silent_griefer_does_not_deny_anonymous_rounds() {
    let config = service(Some(Duration::from_secs(5)));
    let served = against_a_griefer(config, |_| None, false, Grief::Silent, SERVED_WITHIN);
    assert!(served >= 9, "{served} of 10");
}

// 17. Hostile browsers -----------------------------------------------------------------------------

/// A service with the web side on, and short limits so the slow cases end quickly. The
/// handshake's deadline is longer than a frame's, so a frame that stalls after the upgrade meets
/// its own limit first.
fn web_server(extra: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "--rounds",
        "0",
        "--web",
        "on",
        "--handshake-timeout",
        "2",
        "--frame-timeout",
        "1",
        "-v",
    ];
    args.extend_from_slice(extra);
    let (mut srv, addr) = server(&args);
    srv.next_line(); // the players' link
    srv.next_line(); // the host's link
    (srv, addr)
}

/// The server still serves a page and a framed round.
fn still_serving(addr: &str) {
    let page = common::ws::http(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("arrival buzzer"));
    good_pair(addr, Some("after"));
}

#[test]
fn case17_bad_http_requests_get_a_status_with_the_reason() {
    let (_srv, addr) = web_server(&[]);
    let long_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    let many_headers = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        (0..60).map(|i| format!("X-{i}: y\r\n")).collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "not HTTP after GET",
            b"GET \x00\x01\x02\r\n\r\n".to_vec(),
            400,
            "not an HTTP request",
        ),
        (
            "no version",
            b"GET /\r\n\r\n".to_vec(),
            400,
            "not an HTTP request",
        ),
        (
            "a POST",
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            405,
            "POST is not served here",
        ),
        (
            "a DELETE",
            b"DELETE /host HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            405,
            "DELETE is not served here",
        ),
        (
            "no such page",
            b"GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            404,
            "no page at /admin",
        ),
        (
            "a head over the limit",
            long_header.into_bytes(),
            431,
            "over 8192 bytes",
        ),
        (
            "too many headers",
            many_headers.into_bytes(),
            431,
            "more than 48 headers",
        ),
    ];
    for (what, request, status, reason) in cases {
        let answer = common::ws::http(&addr, &request);
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        assert!(answer.body.contains(reason), "{what}: {answer:?}");
        assert!(answer.head.contains("Connection: close"), "{what}");
    }
    // HEAD: the headers of the page, no body.
    let head = common::ws::http(&addr, b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert!(head
        .head
        .contains("Content-Security-Policy: default-src 'none'"));
    still_serving(&addr);
}

#[test]
fn case17_a_request_that_never_completes_is_answered_408_in_the_handshake_time() {
    let (_srv, addr) = web_server(&[]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(common::GUARD)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let started = Instant::now();
    let answer = common::ws::read_answer(&mut s);
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(answer
        .body
        .starts_with("the request did not arrive within 2 s"));
    assert!(started.elapsed() < common::GUARD);
    still_serving(&addr);
}

#[test]
fn case17_bad_upgrades_get_400_426_or_403() {
    let (_srv, addr) = web_server(&[]);
    let valid = common::ws::upgrade_request(&addr);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "no Upgrade header",
            valid.replace("Upgrade: websocket\r\n", ""),
            400,
            "/ws is the WebSocket endpoint",
        ),
        (
            "HTTP/1.0",
            valid.replace("HTTP/1.1", "HTTP/1.0"),
            400,
            "a WebSocket upgrade is a GET in HTTP/1.1",
        ),
        (
            "version 8",
            valid.replace("Version: 13", "Version: 8"),
            426,
            "this server speaks WebSocket version 13",
        ),
        (
            "a short key",
            valid.replace(common::ws::KEY, "c2hvcnQ="),
            400,
            "Sec-WebSocket-Key is missing",
        ),
        (
            "another site's page",
            valid.replace(
                &format!("Origin: http://{addr}"),
                "Origin: http://evil.example",
            ),
            403,
            "a page from another site",
        ),
    ];
    for (what, request, status, reason) in cases {
        let answer = common::ws::http(&addr, request.as_bytes());
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        assert!(answer.body.starts_with(reason), "{what}: {answer:?}");
    }
    let version = common::ws::http(&addr, valid.replace("Version: 13", "Version: 8").as_bytes());
    assert!(version.head.contains("Sec-WebSocket-Version: 13"));
    still_serving(&addr);
}

#[test]
fn case17_websocket_rule_breakers_are_closed_with_the_reason() {
    use common::ws::RawWs;
    let (_srv, addr) = web_server(&[]);
    let answer = protocol::encode(&Frame::Answer).unwrap();
    // (what, bytes to send, close code, words in the reason)
    type Send = Box<dyn Fn(&mut RawWs)>;
    let cases: Vec<(&str, Send, u16, &str)> = vec![
        (
            "a text message",
            Box::new(|ws| ws.send_frame(true, 1, b"hello", true)),
            1003,
            "a text message",
        ),
        (
            "a fragmented message",
            Box::new(move |ws| ws.send_frame(false, 2, &answer[..4], true)),
            1008,
            "a fragmented message",
        ),
        (
            "a message over one frame's size, refused by its header",
            // Only the header: the server must not wait for (or hold) 1 MiB.
            Box::new(|ws| ws.send_raw(&[0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4])),
            1009,
            "a message of 1048576 bytes",
        ),
        (
            "an unmasked frame",
            Box::new(|ws| ws.send_frame(true, 2, &[0, 0, 0, 4, 14, 0, 0, 0], false)),
            1002,
            "must be masked",
        ),
        (
            "reserved bits",
            Box::new(|ws| ws.send_raw(&[0xC2, 0x80, 1, 2, 3, 4])),
            1002,
            "reserved bits",
        ),
        (
            "a control frame over 125 bytes",
            Box::new(|ws| ws.send_frame(true, 9, &[0; 126], true)),
            1002,
            "a control frame over 125 bytes",
        ),
        (
            "a frame that stalls",
            Box::new(|ws| ws.send_raw(&[0x82, 0x88, 1, 2, 3, 4, 9])),
            1008,
            "took more than 1 s",
        ),
        (
            "a message that is not one frame",
            Box::new(|ws| ws.send_frame(true, 2, &[0, 0, 0, 9, 1], true)),
            1007,
            "not one frame",
        ),
        (
            "no handshake at all",
            Box::new(|_| {}),
            4003,
            "no handshake within 2 s",
        ),
        (
            "a frame that is not a handshake",
            Box::new(|ws| ws.send(&Frame::Answer)),
            4001,
            "expected Hello, got",
        ),
    ];
    for (what, send, code, reason) in cases {
        let mut ws = RawWs::connect(&addr);
        send(&mut ws);
        let (got_code, got_reason, frames) = ws.expect_close();
        assert_eq!(got_code, code, "{what}: {got_reason}");
        assert!(got_reason.contains(reason), "{what}: {got_reason}");
        // The protocol's own last word comes first, where it has one.
        assert!(
            matches!(frames.as_slice(), [Frame::Error { .. }]),
            "{what}: {frames:?}"
        );
    }
    still_serving(&addr);
}

#[test]
fn case17_a_websocket_ping_is_answered_and_a_close_is_returned() {
    let (_srv, addr) = web_server(&[]);
    let mut ws = common::ws::RawWs::connect(&addr);
    ws.send_frame(true, 9, b"are you there", true);
    let pong = ws.recv_ws().unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (10, &b"are you there"[..])
    );
    // A pong nobody asked for is ignored; a close is answered with the same code.
    ws.send_frame(true, 10, b"", true);
    ws.send_frame(true, 8, &1001u16.to_be_bytes(), true);
    let (code, _, frames) = ws.expect_close();
    assert_eq!((code, frames.len()), (1001, 0));
    still_serving(&addr);
}

#[test]
fn case17_a_flood_of_page_loads_is_bounded_by_the_address_limit_and_answered() {
    let (addr, stats, stop, running) = in_process(Config {
        rounds: 0,
        web: true,
        max_per_address: 4,
        handshake_timeout: Duration::from_secs(5),
        ..Config::default()
    });
    // Four page loads that never finish their request hold the address's four places.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    eventually("the four held", || stats.live_connections() == 4);
    // Every further load from the address is told why, in HTTP, and when to come back.
    let refused = common::ws::http(&addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.head.contains("Retry-After: 10"));
    assert!(refused
        .body
        .contains("this address already holds 4 connections"));
    drop(held);
    eventually("the held ones gone", || stats.live_connections() == 0);
    // Two hundred loads from eight threads at once: each gets the page or a 503, none hangs.
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let loads: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..25)
                        .map(|_| {
                            common::ws::http(&addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                                .status
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        loads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(answers.len(), 200);
    assert!(
        answers.iter().all(|s| matches!(s, 200 | 503)),
        "{answers:?}"
    );
    assert!(answers.contains(&200));
    eventually("every load's connection gone", || {
        stats.live_connections() == 0
    });
    println!(
        "200 page loads: {} served, {} refused with 503",
        answers.iter().filter(|&&s| s == 200).count(),
        answers.iter().filter(|&&s| s == 503).count()
    );
    let _ = stop.send(());
    rt::block_on(running).unwrap();
}

// 18. Taking a seat by its name ------------------------------------------------------------------

/// From 127.0.0.2, asks for a seat in room `q` as `name`, offering `secret`: the seat's secret
/// if admitted, else the error the server gave.
fn seat_from_elsewhere(
    addr: &str,
    name: &str,
    secret: Option<&str>,
) -> Result<String, (ErrorKind, String)> {
    seat_from([127, 0, 0, 2], addr, name, secret)
}

fn seat_from(
    source: [u8; 4],
    addr: &str,
    name: &str,
    secret: Option<&str>,
) -> Result<String, (ErrorKind, String)> {
    let mut s = connect_from(source, addr);
    let seat = Frame::Seat {
        version: PROTOCOL_VERSION,
        room: Some("q".into()),
        name: name.into(),
        team: None,
        secret: secret.map(str::to_owned),
    };
    s.write_all(&protocol::encode(&seat).unwrap()).unwrap();
    // One reader for every frame: it reads ahead.
    let mut reader = protocol::FrameReader::new(futures::io::AllowStdIo::new(&mut s));
    loop {
        match rt::block_on(reader.read_frame()).ok().flatten() {
            Some(Frame::Seated { secret }) => return Ok(secret),
            Some(Frame::Error { kind, message }) => return Err((kind, message)),
            Some(_) => {}
            None => panic!("{name}: closed without a word"),
        }
    }
}

/// The refusal of a join under Ann's held seat.
fn refused_as_held(addr: &str, state: &str) {
    for secret in [None, Some("0123456789abcdef0123456789abcdef")] {
        let (kind, message) = seat_from_elsewhere(addr, "Ann", secret)
            .expect_err(&format!("a join under Ann's name while she is {state}"));
        assert_eq!(kind, ErrorKind::InvalidName, "{state}: {message}");
        assert_eq!(
            message,
            "the seat of Ann is held for the device that took it: only that device takes it \
             back (or the host frees it)",
            "{state}"
        );
        println!("Ann {state}, a join as Ann from 127.0.0.2 with secret {secret:?}: {message}");
    }
}

#[test]
fn case18_a_held_seat_is_refused_to_another_device_whatever_its_connections_state() {
    let (_srv, addr) = server(&[
        "--rounds",
        "0",
        "--go-jitter",
        "0",
        "--session-pause",
        "0.1",
        "--answer-timeout",
        "60",
        "--session-rounds",
        "3",
    ]);
    let stay = |name: &str| {
        client(
            name,
            &addr,
            &["--stay", "--room", "q", "--name", name, "-vv"],
        )
    };
    let mut ann = stay("Ann");
    ann.wait_for("Ann's seat", |l| l == "Joined the quiz in room q as Ann");
    let mut ben = stay("Ben");
    ben.wait_for("Ben's seat", |l| l == "Joined the quiz in room q as Ben");
    // In an open round, Ann waiting to answer.
    ann.wait_for("go", |l| l.starts_with("Round 1: go!"));
    refused_as_held(&addr, "in an open round");
    ann.send_stdin("\n");
    ben.send_stdin("\n");
    ann.wait_for("Ann's scores", |l| l.starts_with("Scores: "));
    // Between rounds, her connection answering every ping.
    refused_as_held(&addr, "between rounds, answering");
    // Stalled: her client stops (a phone locking its screen), and its pings go unanswered for
    // longer than a live client ever leaves them.
    ann.signal("STOP");
    std::thread::sleep(Duration::from_secs(3));
    refused_as_held(&addr, "stalled for 3 s");
    ann.signal("CONT");
    // Away: her connection is gone; the seat, with her point if she won, is held.
    ann.signal("KILL");
    ben.wait_for("Ann away", |l| l == "Ann is away (the seat is held)");
    refused_as_held(&addr, "away");
    // Ben played on, never disturbed: he answers round 2, and alone, the session ends.
    ben.send_stdin("\n");
    ben.close_stdin();
    let out = ben.finish();
    assert!(
        out.stdout.iter().all(|l| !l.contains("took this seat")),
        "{:?}",
        out.stdout
    );
}

#[test]
fn case18_a_name_that_looks_like_a_players_is_refused() {
    let (_srv, addr) = server(&["--rounds", "0", "--go-jitter", "0"]);
    let mut victim = client(
        "Victim",
        &addr,
        &["--stay", "--room", "q", "--name", "Victim"],
    );
    victim.wait_for("the victim's seat", |l| {
        l == "Joined the quiz in room q as Victim"
    });
    for (name, why) in [
        ("Vi\u{0441}tim", "looks like Victim"),
        ("VICTIM", "looks like Victim"),
        ("Vict\u{0456}m", "looks like Victim"),
        ("Victim ", "starts or ends with a space"),
        (" Victim", "starts or ends with a space"),
        ("Victim (you)", "which the quiz's pages use to mark names"),
        (
            "Victim \u{00B7} away",
            "which the quiz's pages use to mark names",
        ),
    ] {
        let (kind, message) =
            seat_from_elsewhere(&addr, name, None).expect_err(&format!("{name:?} was seated"));
        assert_eq!(kind, ErrorKind::InvalidName, "{name:?}: {message}");
        assert!(message.contains(why), "{name:?}: {message}");
        println!("{name:?}: {message}");
    }
    // A name of its own is welcome (from an address whose refusals have not cooled it down).
    assert!(seat_from([127, 0, 0, 3], &addr, "Vic", None).is_ok());
}

// 19. The web side closed, and the host key kept -------------------------------------------------

/// The host key of the servers of case 19.
const KEY19: &str = "case-nineteen-host-key";

#[test]
fn case19_a_page_or_upgrade_under_a_foreign_host_is_refused() {
    let (_srv, addr) = web_server(&["--allow-host", "Quiz.Example.org"]);
    let port = addr.rsplit(':').next().unwrap();
    let get = |host: &str| {
        let request = format!("GET /?room=quiz HTTP/1.1\r\nHost: {host}\r\n\r\n");
        common::ws::http(&addr, request.as_bytes())
    };
    // DNS rebinding: a site's own name, pointed at this server's address.
    let rebound = get(&format!("rebind.test:{port}"));
    assert_eq!(rebound.status, 421, "{rebound:?}");
    assert!(rebound
        .body
        .contains("this server has no page for the name \"rebind.test:"));
    let upgrade = common::ws::upgrade_request(&addr).replace(&addr, &format!("rebind.test:{port}"));
    assert!(upgrade.contains("Origin: http://rebind.test:"));
    let refused = common::ws::http(&addr, upgrade.as_bytes());
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("no connection for the name"));
    // The server's addresses, localhost and the names the operator listed are served.
    for host in [
        addr.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("quiz.example.org:{port}"),
        "QUIZ.example.org.".to_owned(),
    ] {
        assert_eq!(get(&host).status, 200, "{host}");
    }
    let no_host = common::ws::http(&addr, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(no_host.status, 400, "{no_host:?}");
    still_serving(&addr);
}

#[test]
fn case19_an_unknown_method_is_answered_in_http() {
    let (_srv, addr) = web_server(&[]);
    for (method, status) in [
        ("BREW", 501),
        ("PROPFIND", 501),
        ("QUERY", 501),
        ("PUT", 405),
    ] {
        let request = format!("{method} / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let answer = common::ws::http(&addr, request.as_bytes());
        assert_eq!(answer.status, status, "{method}: {answer:?}");
        assert!(answer.head.starts_with("HTTP/1.1 "), "{method}: {answer:?}");
        assert!(answer.body.starts_with(method), "{method}: {answer:?}");
    }
    // No page allows an inline script.
    let page = common::ws::http(&addr, b"GET /host HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let policy = page
        .head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Security-Policy: "))
        .unwrap();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(!page.body.contains("<script>"), "an inline script");
    still_serving(&addr);
}

#[test]
fn case19_a_short_operator_key_stops_the_server_at_start() {
    let file = std::env::temp_dir().join(format!("arrival-case19-{}", std::process::id()));
    std::fs::write(&file, "abc\n").unwrap();
    let file_arg = file.to_str().unwrap();
    let starts: [(&[&str], Option<&str>); 3] = [
        (&["--host-key", "ab"], None),
        (&["--host-key-file", file_arg], None),
        (&[], Some("fifteen-chars15")),
    ];
    for (args, env) in starts {
        let mut all = vec!["--addr", "127.0.0.1:0", "--rounds", "0"];
        all.extend_from_slice(args);
        let out = Proc::spawn_with("server", SERVER, &all, |c| {
            c.env_remove("ARRIVAL_HOST_KEY");
            if let Some(key) = env {
                c.env("ARRIVAL_HOST_KEY", key);
            }
        })
        .finish();
        assert_eq!(out.code, Some(2), "{args:?} {env:?}: {out:?}");
        assert!(
            out.stderr
                .starts_with("arrival-server: the host key takes 16 to 128 letters"),
            "{args:?} {env:?}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn case19_key_guessing_from_one_address_cools_down_and_the_key_is_in_no_log() {
    let file = std::env::temp_dir().join(format!("arrival-case19-key-{}", std::process::id()));
    std::fs::write(&file, format!("{KEY19}\n")).unwrap();
    let (mut srv, addr) = server(&[
        "--rounds",
        "0",
        "--web",
        "on",
        "--host-key-file",
        file.to_str().unwrap(),
        "-vvv",
    ]);
    let links = [srv.next_line(), srv.next_line()];
    assert!(links[1].ends_with("/host?room=quiz and types the host key"));
    let guess = |key: &str| {
        let mut s = connect_from([127, 0, 0, 2], &addr);
        let frame = Frame::Host {
            version: PROTOCOL_VERSION,
            room: Some("guess".into()),
            key: key.into(),
        };
        s.write_all(&protocol::encode(&frame).unwrap()).unwrap();
        match read_frame(&mut s) {
            Some(Frame::Error { kind, message }) => (kind, message),
            other => panic!("{other:?}"),
        }
    };
    // A host's typos are forgiven; guessing is not.
    for k in 0..4 {
        let wrong = format!("{KEY19}-{k}");
        assert_eq!(
            guess(&wrong),
            (ErrorKind::Forbidden, "wrong host key".to_owned())
        );
    }
    let (kind, message) = guess(KEY19);
    assert_eq!(kind, ErrorKind::Busy);
    assert!(
        message.starts_with("connections from 127.0.0.2 offered 4 wrong host keys; refused for "),
        "{message}"
    );
    // Another address hosts with the key, and a player joins.
    let mut host = Raw::connect(&addr);
    host.send(&Frame::Host {
        version: PROTOCOL_VERSION,
        room: Some("quiz".into()),
        key: KEY19.into(),
    });
    assert!(matches!(host.recv(), Some(Frame::Welcome { .. })));
    srv.wait_for_stderr("the cooldown's log line", |l| {
        l.contains("127.0.0.2: offered 4 wrong host keys; refused for 10 s")
    });
    drop(host);
    srv.signal("TERM");
    let out = srv.finish();
    std::fs::remove_file(&file).unwrap();
    assert!(!out.stderr.contains(KEY19), "the key in the log");
    assert!(
        !out.stdout.iter().any(|l| l.contains(KEY19)),
        "the key in the transcript"
    );
}

#[test]
fn case19_the_three_stages_of_a_handshake_share_one_deadline() {
    // Framed sniffing, an HTTP request, a WebSocket's first frame: each stage used to start a
    // fresh timeout (3 s each here), so holding the first two for a second each kept the
    // connection 5 s. Now it is closed at its one deadline, 3 s after it was accepted.
    let (mut srv, addr) = server(&["--rounds", "0", "--web", "on", "--handshake-timeout", "3"]);
    srv.next_line(); // the players' link
    srv.next_line(); // the host's link
    let started = Instant::now();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(common::GUARD)).unwrap();
    // The attacker's own pacing, not a wait for the server.
    std::thread::sleep(Duration::from_secs(1));
    let request = common::ws::upgrade_request(&addr);
    let (first, rest) = request.split_at(20);
    s.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    s.write_all(rest.as_bytes()).unwrap();
    let mut ws = common::ws::RawWs::after_upgrade(s);
    // No first frame: the server ends the connection at the deadline, and says why.
    let (_, _, frames) = ws.expect_close();
    let held = started.elapsed();
    assert!(
        matches!(
            frames.as_slice(),
            [Frame::Error { kind: ErrorKind::Timeout, message }] if message == "no handshake within 3 s"
        ),
        "{frames:?}"
    );
    println!(
        "a handshake held in three stages: closed {:.1} s after connecting (the deadline: 3 s)",
        held.as_secs_f64()
    );
    assert!(
        held < Duration::from_millis(4500),
        "held {held:?}: a fresh timeout per stage"
    );
    still_serving(&addr);
}

#[test]
fn case19_a_ping_flood_that_never_reads_its_pongs_is_dropped() {
    let (_srv, addr) = web_server(&[]);
    let mut ws = common::ws::RawWs::connect(&addr);
    // Seated in a quiet room: nothing but pongs is owed to it.
    ws.send(&Frame::Join {
        version: PROTOCOL_VERSION,
        room: Some("flood".into()),
        name: "Flo".into(),
    });
    assert!(matches!(ws.recv(), Some(Frame::Welcome { .. })));
    ws.stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let until = Instant::now() + common::GUARD;
    let mut sent = 0usize;
    let ping = {
        let mut frame = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
        frame.extend(std::iter::repeat_n(0x55, 125));
        frame
    };
    let dropped = loop {
        assert!(
            Instant::now() < until,
            "still open after {sent} bytes of pings"
        );
        match ws.stream.write(&ping) {
            Ok(n) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            dropped.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{dropped:?}"
    );
    println!(
        "a ping flood that never reads: dropped after {} KiB of pings",
        sent / 1024
    );
    still_serving(&addr);
}
