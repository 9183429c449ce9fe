//! Every failure a client (or the world) can cause has a defined outcome. One test per
//! numbered case; each checks what the offending client sees, what the server prints, exit
//! statuses, and that the server still runs a good round afterwards where it is still running.

mod common;

use arrival::protocol::{ErrorKind, Frame, PROTOCOL_VERSION};
use common::{client, server, Finished, Proc, Raw, SERVER};

/// A good round on a running one-shot server: X "Alice" then Y "Bob", both exit 0. The server
/// exits after it, so the caller then checks its status.
fn good_round(srv: &mut Proc, addr: &str) {
    let x = client("X", addr, &["--name", "Alice"]);
    srv.wait_for("X to connect", |l| l.starts_with("Client X connected from"));
    let y = client("Y", addr, &["--name", "Bob"]);
    srv.wait_for("the acknowledgment", |l| {
        l == "Sent acknowledgment to both X and Y"
    });
    let (x, y) = (x.finish(), y.finish());
    assert_eq!((x.code, y.code), (Some(0), Some(0)), "{x:?} {y:?}");
    assert_eq!(x.stdout[0], "Client X connected");
    assert_eq!(y.stdout[0], "Client Y connected");
    assert_eq!(x.stdout[2], y.stdout[2]);
}

fn finish_ok(srv: Proc) -> Finished {
    let srv = srv.finish();
    assert_eq!(srv.code, Some(0), "server: {srv:?}");
    srv
}

fn one_line(stderr: &str) -> &str {
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected one line of stderr, got {stderr:?}"
    );
    stderr.trim_end()
}

fn connected(label: &str) -> Option<Frame> {
    Some(Frame::Connected {
        round: 1,
        label: label.into(),
    })
}

fn message(name: &str) -> Frame {
    Frame::Message { name: name.into() }
}

// ---- Before the barrier -------------------------------------------------------------------

#[test]
fn case01_leaving_before_the_partner_arrives_frees_the_label() {
    let (mut srv, addr) = server(&[]);
    let mut early = Raw::connect(&addr);
    early.hello();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    drop(early);
    srv.expect_line("Client X left before the round started (closed the connection)");

    let mut rude = Raw::connect(&addr);
    rude.hello();
    srv.wait_for("X again", |l| l.starts_with("Client X connected from"));
    rude.reset();
    srv.expect_line("Client X left before the round started (reset the connection)");

    good_round(&mut srv, &addr);
    finish_ok(srv);
}

#[test]
fn case02_a_third_client_is_told_the_round_is_full() {
    let (mut srv, addr) = server(&[]);
    let mut x = client("X", &addr, &[]);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = client("Y", &addr, &[]);
    x.expect_line("Client X connected");
    y.expect_line("Client Y connected");

    let third = client("third", &addr, &["--name", "Carol"]).finish();
    assert_eq!(third.code, Some(1));
    assert!(third.stdout.is_empty());
    assert_eq!(
        one_line(&third.stderr),
        "arrival-client: the round is full; this server runs a single round"
    );

    // The round is unaffected.
    x.send_stdin("Alice\n");
    x.expect_line("Client X: Alice");
    y.send_stdin("Bob\n");
    let (x, y) = (x.finish(), y.finish());
    assert_eq!(x.stdout[2], "X: Alice received before Y: Bob");
    assert_eq!(y.stdout[2], "X: Alice received before Y: Bob");
    let srv = finish_ok(srv);
    assert_eq!(
        srv.stdout.last().unwrap(),
        "Sent acknowledgment to both X and Y"
    );
}

#[test]
fn case03_a_connection_without_handshake_takes_no_slot_and_is_timed_out() {
    let (mut srv, addr) = server(&["--handshake-timeout", "0.5"]);
    let mut silent = Raw::connect(&addr);
    let mut half = Raw::connect(&addr);
    half.send_bytes(&[0, 0]);

    // Real clients are labelled X and Y as if the others did not exist.
    let x = client("X", &addr, &["--name", "Alice"]);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    for raw in [&mut silent, &mut half] {
        assert_eq!(
            raw.expect_error(),
            (ErrorKind::Timeout, "no handshake within 0.5 s".to_owned())
        );
        raw.expect_closed();
    }
    let y = client("Y", &addr, &["--name", "Bob"]);
    let (x, y) = (x.finish(), y.finish());
    assert_eq!((x.code, y.code), (Some(0), Some(0)));
    assert_eq!(x.stdout[0], "Client X connected");
    assert_eq!(y.stdout[0], "Client Y connected");
    finish_ok(srv);
}

// ---- After the barrier --------------------------------------------------------------------

/// X is a real client sitting at its prompt; Y is driven by hand and has just been told its label.
fn barrier_with_raw_y(extra: &[&str]) -> (Proc, Proc, Raw) {
    let (mut srv, addr) = server(extra);
    let mut x = client("X", &addr, &[]);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = Raw::connect(&addr);
    y.hello();
    assert_eq!(y.recv(), connected("Y"));
    x.expect_line("Client X connected");
    (srv, x, y)
}

fn assert_aborted(srv: Proc, mut x: Proc, why: &str) {
    let reason = format!("Client Y left before sending its message ({why})");
    // X is still at its prompt (stdin open): it must notice without a name being typed.
    let line = x.wait_for_stderr("the abort", |_| true);
    assert_eq!(line, format!("arrival-client: round aborted: {reason}"));
    let x = x.finish();
    assert_eq!(x.code, Some(1));
    assert_eq!(x.stdout, ["Client X connected"]);
    let srv = srv.finish();
    assert_eq!(srv.code, Some(1));
    assert_eq!(
        srv.stdout.last().unwrap(),
        &format!("Round aborted: {reason}")
    );
}

#[test]
fn case04_a_party_leaving_before_sending_aborts_the_round() {
    let (srv, x, y) = barrier_with_raw_y(&[]);
    drop(y);
    assert_aborted(srv, x, "closed the connection");
}

#[test]
fn case04_a_party_resetting_before_sending_aborts_the_round() {
    let (srv, x, y) = barrier_with_raw_y(&[]);
    y.reset();
    assert_aborted(srv, x, "reset the connection");
}

#[test]
fn case05_a_party_leaving_after_sending_does_not_cost_the_other_its_ack() {
    let (mut srv, addr) = server(&[]);
    let mut x = Raw::connect(&addr);
    x.hello();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = client("Y", &addr, &[]);
    assert_eq!(x.recv(), connected("X"));
    y.expect_line("Client Y connected");
    x.send(&message("Alice"));
    // Gone for good: a reset. (A plain close after sending is a half-close as far as TCP can
    // tell, and a half-closed party is still sent its verdict: see `half_close_*`.)
    x.reset();
    srv.wait_for("X to leave", |l| {
        l == "Client X disconnected after sending its message (reset the connection)"
    });

    y.send_stdin("Bob\n");
    let y = y.finish();
    assert_eq!(y.code, Some(0));
    assert_eq!(
        y.stdout,
        [
            "Client Y connected",
            "Client Y: Bob",
            "X: Alice received before Y: Bob"
        ]
    );
    let srv = srv.finish();
    assert_eq!(srv.code, Some(1), "not every acknowledgment was delivered");
    assert_eq!(
        srv.stdout[srv.stdout.len() - 3..],
        [
            "Client X: Alice",
            "Client Y: Bob",
            "Sent acknowledgment to Y only; delivery to X failed (disconnected)"
        ]
    );
}

#[test]
fn case06_a_message_before_the_barrier_is_refused_and_the_slot_freed() {
    let (mut srv, addr) = server(&[]);
    let mut eager = Raw::connect(&addr);
    eager.hello();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    eager.send(&message("Eager"));
    assert_eq!(
        eager.expect_error(),
        (
            ErrorKind::Protocol,
            "message sent before all parties were connected".to_owned()
        )
    );
    eager.expect_closed();
    srv.expect_line(
        "Client X left before the round started (sent a message before all parties were connected)",
    );
    good_round(&mut srv, &addr);
    finish_ok(srv);
}

#[test]
fn case06_a_second_message_is_refused_and_the_first_stands() {
    let (mut srv, addr) = server(&[]);
    let mut x = Raw::connect(&addr);
    x.hello();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = client("Y", &addr, &[]);
    assert_eq!(x.recv(), connected("X"));
    y.expect_line("Client Y connected");
    x.send(&message("Alice"));
    x.send(&message("Again"));
    assert_eq!(
        x.expect_error(),
        (
            ErrorKind::Protocol,
            "a second message; each party sends exactly one".to_owned()
        )
    );
    x.expect_closed();
    srv.wait_for("X to leave", |l| {
        l == "Client X disconnected after sending its message (sent a second message)"
    });
    y.send_stdin("Bob\n");
    let y = y.finish();
    assert_eq!(y.code, Some(0));
    assert_eq!(y.stdout[2], "X: Alice received before Y: Bob");
    assert_eq!(srv.finish().code, Some(1));
}

#[test]
fn case06_a_frame_not_allowed_after_the_barrier_aborts_the_round() {
    let (srv, x, mut y) = barrier_with_raw_y(&[]);
    y.send(&Frame::Hello {
        version: PROTOCOL_VERSION,
        room: None,
    });
    assert_eq!(
        y.expect_error(),
        (
            ErrorKind::Protocol,
            "unexpected Hello frame; expected Message".to_owned()
        )
    );
    y.expect_closed();
    assert_aborted(srv, x, "sent an unexpected Hello frame");
}

// ---- Hostile or broken bytes --------------------------------------------------------------

#[test]
fn case07_an_oversized_length_is_rejected_before_and_after_the_handshake() {
    let (mut srv, addr) = server(&[]);
    let expected = (
        ErrorKind::Malformed,
        "frame length 4294967295 exceeds the maximum of 65536 bytes".to_owned(),
    );
    let mut raw = Raw::connect(&addr);
    raw.send_bytes(&[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(raw.expect_error(), expected);
    raw.expect_closed();

    let mut raw = Raw::connect(&addr);
    raw.hello();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    raw.send_bytes(&[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(raw.expect_error(), expected);
    raw.expect_closed();
    srv.wait_for("X to leave", |l| {
        l.starts_with("Client X left before the round started")
    });

    good_round(&mut srv, &addr);
    finish_ok(srv);
}

#[test]
fn case08_undecodable_empty_truncated_unknown_and_wrong_version() {
    let (mut srv, addr) = server(&[]);
    let hello_v9 = arrival::protocol::encode(&Frame::Hello {
        version: 9,
        room: None,
    })
    .unwrap();
    let cases: Vec<(&str, Vec<u8>, bool, ErrorKind, &str)> = vec![
        (
            "undecodable",
            vec![0, 0, 0, 3, 1, 2, 3],
            false,
            ErrorKind::Malformed,
            "undecodable frame: ",
        ),
        (
            "zero length",
            vec![0, 0, 0, 0],
            false,
            ErrorKind::Malformed,
            "frame length is zero",
        ),
        (
            "unknown kind",
            vec![0, 0, 0, 4, 99, 0, 0, 0],
            false,
            ErrorKind::Malformed,
            "undecodable frame: ",
        ),
        (
            "truncated, then EOF",
            vec![0, 0, 0, 9, 1, 2],
            true,
            ErrorKind::Malformed,
            "connection closed inside a frame (6 of 13 bytes)",
        ),
        (
            "wrong version",
            hello_v9,
            false,
            ErrorKind::Version,
            "unsupported protocol version 9; this server speaks versions 1 to 6",
        ),
    ];
    for (what, bytes, then_eof, kind, text) in cases {
        let mut raw = Raw::connect(&addr);
        raw.send_bytes(&bytes);
        if then_eof {
            raw.shutdown_write();
        }
        let (got_kind, got_text) = raw.expect_error();
        assert_eq!(got_kind, kind, "{what}");
        assert!(got_text.starts_with(text), "{what}: {got_text}");
        raw.expect_closed();
    }
    good_round(&mut srv, &addr);
    finish_ok(srv);
}

#[test]
fn case09_a_frame_that_stalls_half_way_is_timed_out() {
    let (mut srv, addr) = server(&["--frame-timeout", "0.5"]);
    let stalled = (
        ErrorKind::Timeout,
        "frame stalled after 2 bytes for 500 ms".to_owned(),
    );
    let mut slow = Raw::connect(&addr);
    slow.hello();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    slow.send_bytes(&[0, 0]);
    assert_eq!(slow.expect_error(), stalled);
    slow.expect_closed();
    srv.expect_line(
        "Client X left before the round started (sent a bad frame: frame stalled after 2 bytes for 500 ms)",
    );
    good_round(&mut srv, &addr);
    finish_ok(srv);
}

#[test]
fn case10_bad_names_are_refused_and_never_printed_raw() {
    let long = "a".repeat(65);
    let cases = [
        ("", "name is empty"),
        (
            long.as_str(),
            "name is 65 characters long; the maximum is 64",
        ),
        (
            "\u{1b}[2J\u{1b}[31mEvil",
            "name contains the forbidden character U+001B at position 1",
        ),
        (
            "bell\u{7}",
            "name contains the forbidden character U+0007 at position 5",
        ),
    ];
    for (name, why) in cases {
        let (srv, x, mut y) = barrier_with_raw_y(&[]);
        y.send(&message(name));
        assert_eq!(y.expect_error(), (ErrorKind::InvalidName, why.to_owned()));
        y.expect_closed();
        let srv_out = {
            let reason = format!("sent an invalid name: {why}");
            let mut x = x;
            let line = x.wait_for_stderr("the abort", |_| true);
            assert_eq!(
                line,
                format!("arrival-client: round aborted: Client Y left before sending its message ({reason})")
            );
            assert_eq!(x.finish().code, Some(1));
            srv.finish()
        };
        assert_eq!(srv_out.code, Some(1));
        let all = srv_out.stdout.join("\n") + &srv_out.stderr;
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{7}'),
            "raw control bytes printed"
        );
    }
}

#[test]
fn case10_the_client_checks_its_name_before_connecting() {
    // Port 1 is never an arrival server: if the client tried to connect it would fail with 3.
    for (name, message) in [
        ("", "arrival-client: the name is empty"),
        (
            "a\u{1b}[31m",
            "arrival-client: the name contains the forbidden character U+001B at position 2",
        ),
    ] {
        let out = client("bad", "127.0.0.1:1", &["--name", name]).finish();
        assert_eq!(out.code, Some(2));
        assert_eq!(one_line(&out.stderr), message);
    }
}

// ---- Load and lifecycle -------------------------------------------------------------------

#[test]
fn case11_a_flood_of_connections_is_capped_and_the_server_keeps_serving() {
    let (limit, flood) = (1000, 2000);
    // This process holds the whole flood at once: more descriptors than a user's default 1024.
    let needed = flood as u64 + 256;
    let have = arrival::cli::raise_open_files(needed).unwrap_or(0);
    if have < needed {
        let why = format!("needs {needed} open files and may have only {have}");
        common::skip(
            "case11_a_flood_of_connections_is_capped_and_the_server_keeps_serving",
            &why,
        );
        return;
    }
    let limit_arg = limit.to_string();
    // The long handshake timeout keeps every admitted connection alive through the flood, so
    // which connections are refused is decided by order alone: connects are sequential, and the
    // listener accepts them in that order.
    let (mut srv, addr) = server(&[
        "--max-connections",
        &limit_arg,
        "--max-per-address",
        "0",
        "--handshake-timeout",
        "60",
    ]);
    let mut raws: Vec<Raw> = (0..flood).map(|_| Raw::connect(&addr)).collect();
    let (admitted, refused) = raws.split_at_mut(limit);
    for raw in refused {
        assert_eq!(
            raw.expect_error(),
            (
                ErrorKind::Busy,
                "the server is at its limit of 1000 connections; try again later".to_owned()
            )
        );
        raw.expect_closed();
    }
    // The admitted ones are still being served: each, closing, is closed in turn.
    for raw in admitted {
        raw.shutdown_write();
        raw.expect_closed();
    }
    drop(raws);
    good_round(&mut srv, &addr);
    finish_ok(srv);
}

fn interrupted(signal: &str, code: i32, name: &str) {
    let (mut srv, addr) = server(&[]);
    let mut x = client("X", &addr, &[]);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    srv.signal(signal);
    let line = x.wait_for_stderr("shutdown notice", |_| true);
    assert_eq!(line, "arrival-client: the server is shutting down");
    assert_eq!(x.finish().code, Some(1));
    let srv = srv.finish();
    assert_eq!(srv.code, Some(code));
    assert_eq!(
        srv.stderr,
        format!(
            "arrival-server: {name}, shutting down (send it again to exit at once)\n\
             arrival-server: stopped by {name} after 0 of 1 rounds\n"
        )
    );
}

#[test]
fn case12_sigint_tells_clients_and_exits_130() {
    interrupted("INT", 130, "SIGINT");
}

#[test]
fn case12_sigterm_tells_clients_and_exits_143() {
    interrupted("TERM", 143, "SIGTERM");
}

/// A second signal exits at once: another signal at any time, or the same one once the
/// 200 ms window in which a repeat counts as the same request has passed.
fn second_signal(first: &str, second: &str, after: std::time::Duration, code: i32) {
    let (mut srv, addr) = server(&[]);
    // A peer that never closes keeps the graceful shutdown waiting (up to its linger).
    let mut stubborn = Raw::connect(&addr);
    stubborn.hello();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    srv.signal(first);
    srv.wait_for_stderr("the first signal", |l| l.contains("shutting down"));
    // Not synchronisation: being outside the window is what this case is about.
    std::thread::sleep(after);
    srv.signal(second);
    let out = srv.finish();
    assert_eq!(out.code, Some(code));
    assert!(
        out.stderr
            .ends_with("arrival-server: second signal, exiting now\n"),
        "{}",
        out.stderr
    );
    drop(stubborn);
}

#[test]
fn case12_a_second_signal_exits_at_once() {
    // The status is the one the graceful stop would have given: 128 + the first signal.
    second_signal("INT", "TERM", std::time::Duration::ZERO, 130);
    second_signal("INT", "INT", std::time::Duration::from_millis(400), 130);
}

#[test]
fn case13_address_in_use_and_bad_address() {
    let (first, addr) = server(&[]);
    let second = Proc::spawn("second", SERVER, &["--addr", &addr]).finish();
    assert_eq!(second.code, Some(3));
    assert_eq!(
        one_line(&second.stderr),
        format!("arrival-server: cannot listen on {addr}: Address already in use (os error 98)")
    );
    first.signal("INT");
    assert_eq!(first.finish().code, Some(130));

    let bad = Proc::spawn("bad", SERVER, &["--addr", "nonsense"]).finish();
    assert_eq!(bad.code, Some(3));
    assert!(one_line(&bad.stderr).starts_with("arrival-server: cannot listen on nonsense: "));

    let usage = Proc::spawn("usage", SERVER, &["--rounds", "many"]).finish();
    assert_eq!(usage.code, Some(2));
}

#[test]
fn case13_unreachable_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = client("X", &addr, &["--name", "Alice"]).finish();
    assert_eq!(out.code, Some(3));
    assert_eq!(
        one_line(&out.stderr),
        format!("arrival-client: cannot connect to {addr}: Connection refused (os error 111)")
    );
}

/// A fake server that answers the handshake and then hangs up.
#[test]
fn case13_the_server_closing_mid_exchange() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hello = [0u8; 11];
        s.read_exact(&mut hello).unwrap();
        let welcome = arrival::protocol::encode(&Frame::Welcome {
            version: PROTOCOL_VERSION,
        })
        .unwrap();
        s.write_all(&welcome).unwrap();
    });
    let out = client("X", &addr, &["--name", "Alice"]).finish();
    fake.join().unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(
        one_line(&out.stderr),
        "arrival-client: the server closed the connection"
    );
}

#[test]
fn case13_stdin_ending_before_a_name() {
    let (mut srv, addr) = server(&[]);
    let mut x = client("X", &addr, &[]);
    x.close_stdin();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = client("Y", &addr, &[]);
    let x = x.finish();
    assert_eq!(x.code, Some(4));
    assert_eq!(x.stdout, ["Client X connected"]);
    assert_eq!(
        one_line(&x.stderr),
        "arrival-client: standard input ended before a name was given"
    );
    let line = y.wait_for_stderr("the abort", |_| true);
    assert_eq!(
        line,
        "arrival-client: round aborted: Client X left before sending its message (closed the connection)"
    );
    assert_eq!(y.finish().code, Some(1));
    assert_eq!(srv.finish().code, Some(1));
}

#[test]
fn case14_the_server_restarts_on_the_same_port_at_once() {
    let (mut srv, addr) = server(&[]);
    good_round(&mut srv, &addr);
    finish_ok(srv);
    let mut again = Proc::spawn("again", SERVER, &["--addr", &addr]);
    again.expect_line(&format!("arrival-server listening on {addr}"));
    good_round(&mut again, &addr);
    finish_ok(again);
}
