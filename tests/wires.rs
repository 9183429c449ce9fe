//! The wires as users of real peers need them, driving the real binaries.
//!
//! - `arrival-client --wire text` against emulated servers in the styles students wrote: each
//!   greeting style, a go-ahead line, an acknowledgment followed by a wait for the client to
//!   close, no greeting at all (with and without `--label`).
//! - `arrival-server --wire text` against raw clients: messages split over writes (ASCII and a
//!   split UTF-8 character), label prefixes in any case, a prefix naming another label.
//! - Half-close on both wires: after the message, the verdict still arrives; before it, the
//!   party has left.
//! - Wire mismatches, each way, are named as such.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

use arrival::protocol::{ErrorKind, Frame, FrameReader};
use common::{client, server, Raw};

/// A one-connection server run by `script` on a thread; returns its address and what the
/// script returns.
fn emulated(
    script: impl FnOnce(TcpStream) -> String + Send + 'static,
) -> (String, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(common::GUARD))
            .expect("read timeout");
        script(stream)
    });
    (addr, handle)
}

/// Reads one message the way the assignment's server does: one `recv(1024)`.
fn recv_message(s: &mut TcpStream) -> String {
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Reads until the peer closes; returns what came.
fn until_closed(s: &mut TcpStream) -> String {
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    rest
}

const ACK: &str = "X: Alice received before Y: Bob";

#[test]
fn the_text_client_learns_its_label_from_any_greeting_and_closes_after_the_ack() {
    for greeting in [
        "Client X connected",
        "From Server: Client X Connected",
        "client x connected\n",
    ] {
        let (addr, server) = emulated(move |mut s| {
            s.write_all(greeting.as_bytes()).unwrap();
            let got = recv_message(&mut s);
            s.write_all(ACK.as_bytes()).unwrap();
            // This server waits for the client to close first.
            let rest = until_closed(&mut s);
            assert_eq!(rest, "", "nothing after the message");
            got
        });
        let out = client("X", &addr, &["--wire", "text", "--name", "Alice"]).finish();
        let label = if greeting.starts_with("client x") {
            "x"
        } else {
            "X"
        };
        assert_eq!(server.join().unwrap(), format!("Client {label}: Alice"));
        assert_eq!(out.code, Some(0), "{greeting:?}: {}", out.stderr);
        assert_eq!(
            out.stdout,
            [greeting.trim_end(), &format!("Client {label}: Alice"), ACK]
        );
    }
}

#[test]
fn the_text_client_skips_a_go_ahead_line_glued_to_the_ack() {
    let (addr, server) = emulated(|mut s| {
        // Greets on accept (capital C), then a go-ahead before the acknowledgment.
        s.write_all(b"Client Y Connected").unwrap();
        let got = recv_message(&mut s);
        s.write_all(b"yes").unwrap();
        s.write_all(b"X: Client X: Alice received before Y: Client Y: Bob")
            .unwrap();
        got
    });
    let out = client("Y", &addr, &["--wire", "text", "--name", "Bob"]).finish();
    assert_eq!(server.join().unwrap(), "Client Y: Bob");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        [
            "Client Y Connected",
            "Client Y: Bob",
            "X: Client X: Alice received before Y: Client Y: Bob"
        ]
    );
}

#[test]
fn without_a_greeting_the_text_client_needs_label() {
    // This server expects the client to speak first and never greets.
    let (addr, server) = emulated(|mut s| {
        let got = recv_message(&mut s);
        s.write_all(ACK.as_bytes()).unwrap();
        got
    });
    let args = ["--wire", "text", "--name", "Alice", "--label", "X"];
    let out = client("X", &addr, &args).finish();
    assert_eq!(server.join().unwrap(), "Client X: Alice");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, ["Client X: Alice", ACK]);

    let (addr, server) = emulated(|mut s| until_closed(&mut s));
    let args = [
        "--wire",
        "text",
        "--name",
        "Alice",
        "--connect-timeout",
        "0.3",
    ];
    let out = client("X", &addr, &args).finish();
    assert_eq!(server.join().unwrap(), "", "nothing was sent");
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "arrival-client: no greeting naming our label from the server within 0.3 s"
        ) && out.stderr.contains("--label X"),
        "{}",
        out.stderr
    );
}

/// A raw text client of `arrival-server --wire text`.
struct TextPeer(TcpStream);

impl TextPeer {
    fn connect(addr: &str) -> TextPeer {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(common::GUARD)).unwrap();
        TextPeer(s)
    }
    fn greeting(&mut self) -> String {
        recv_message(&mut self.0)
    }
    fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
        self.0.flush().unwrap();
    }
    fn reply(mut self) -> String {
        until_closed(&mut self.0)
    }
}

/// A text round: X and Y greeted, then `x_sends` and `y_sends` run in that order.
fn text_round(
    x_sends: impl FnOnce(&mut TextPeer),
    y_sends: impl FnOnce(&mut TextPeer),
) -> (common::Finished, String, String) {
    let (mut srv, addr) = server(&["--wire", "text"]);
    let mut x = TextPeer::connect(&addr);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = TextPeer::connect(&addr);
    assert_eq!(x.greeting(), "Client X connected");
    assert_eq!(y.greeting(), "Client Y connected");
    x_sends(&mut x);
    y_sends(&mut y);
    let (xr, yr) = (x.reply(), y.reply());
    (srv.finish(), xr, yr)
}

#[test]
fn text_messages_split_over_writes_are_joined() {
    let (srv, x, y) = text_round(
        |x| {
            x.send(b"Client X: Ali");
            x.send(b"ce\n");
        },
        |y| {
            // A two-byte character split between two writes.
            let zoe = "Zoë\n".as_bytes();
            y.send(&zoe[..3]);
            y.send(&zoe[3..]);
        },
    );
    assert_eq!(srv.code, Some(0), "{srv:?}");
    assert_eq!(x, "X: Alice received before Y: Zoë");
    assert_eq!(y, x);
}

#[test]
fn text_prefixes_in_any_case_are_stripped() {
    let (srv, x, y) = text_round(|x| x.send(b"client x: Alice"), |y| y.send(b"Y:Bob\r\n"));
    assert_eq!(srv.code, Some(0), "{srv:?}");
    assert_eq!(x, ACK);
    assert_eq!(y, ACK);
}

#[test]
fn a_text_prefix_naming_another_label_is_refused() {
    let (srv, x, y) = text_round(|x| x.send(b"Client Y: Mallory\n"), |_| {});
    assert_eq!(
        x,
        "error: this connection plays as X, but the message is labelled Y: send \
         `Client X: <name>` or just the name\n"
    );
    assert!(y.starts_with("error: round aborted: Client X left"), "{y}");
    assert_eq!(srv.code, Some(1));
}

#[test]
fn a_text_client_that_half_closes_after_its_message_gets_the_verdict() {
    // `echo Alice | nc -N host port`: the message, then end of stream; still reading.
    let (srv, x, y) = text_round(
        |x| {
            x.send(b"Alice\n");
            x.0.shutdown(Shutdown::Write).unwrap();
        },
        |y| y.send(b"Bob"),
    );
    assert_eq!(x, ACK);
    assert_eq!(y, ACK);
    srv.assert_ended_with("Sent acknowledgment to both X and Y");
}

/// A framed round at its barrier: X driven by hand, Y a real client waiting at its prompt.
fn framed_barrier() -> (common::Proc, Raw, common::Proc) {
    let (mut srv, addr) = server(&[]);
    let mut x = Raw::connect(&addr);
    x.hello();
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = client("Y", &addr, &[]);
    assert!(matches!(x.recv(), Some(Frame::Connected { .. })));
    y.expect_line("Client Y connected");
    (srv, x, y)
}

#[test]
fn a_framed_client_that_half_closes_after_its_message_gets_the_verdict() {
    let (srv, mut x, mut y) = framed_barrier();
    x.send(&Frame::Message {
        name: "Alice".into(),
    });
    x.shutdown_write();
    y.send_stdin("Bob\n");
    match x.recv() {
        Some(Frame::Ack { text, .. }) => assert_eq!(text, ACK),
        other => panic!("expected the verdict, got {other:?}"),
    }
    x.expect_closed();
    assert_eq!(y.finish().code, Some(0));
    srv.finish()
        .assert_ended_with("Sent acknowledgment to both X and Y");
}

#[test]
fn a_framed_client_that_half_closes_before_its_message_has_left() {
    let (srv, mut x, mut y) = framed_barrier();
    x.shutdown_write();
    let line = y.wait_for_stderr("the abort", |_| true);
    assert_eq!(
        line,
        "arrival-client: round aborted: Client X left before sending its message (closed the \
         connection)"
    );
    assert_eq!(y.finish().code, Some(1));
    assert_eq!(srv.finish().code, Some(1));
}

#[test]
fn wire_mismatches_are_named() {
    // Text to a framed server: the answer is a frame that says so.
    let (srv, addr) = server(&[]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"Client X: Alice\n").unwrap();
    s.set_read_timeout(Some(common::GUARD)).unwrap();
    let mut reader = FrameReader::new(futures::io::AllowStdIo::new(s));
    let frame = arrival::rt::block_on(reader.read_frame());
    match frame {
        Ok(Some(Frame::Error { kind, message })) => {
            assert_eq!(kind, ErrorKind::Protocol);
            assert!(message.contains("--wire text"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    drop(srv);

    // A framed client on a text server.
    let (srv, addr) = server(&["--wire", "text"]);
    let out = client("X", &addr, &["--name", "Alice"]).finish();
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(
        out.stderr,
        "arrival-client: the server answered in text, not arrival's framed protocol: if it \
         speaks the assignment's text wire, use --wire text\n"
    );
    drop(srv);

    // A text client on a framed server.
    let (srv, addr) = server(&[]);
    let args = ["--wire", "text", "--label", "X", "--name", "Alice"];
    let out = client("X", &addr, &args).finish();
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.starts_with(
            "arrival-client: the server answered in binary, not the assignment's text"
        ),
        "{}",
        out.stderr
    );
    drop(srv);
}

/// The assignment's real servers, as they answer: each acknowledgment is printed as the server
/// sent it (less `From Server:`), whatever its spelling and label style, and the client exits 0.
#[test]
fn the_text_client_prints_real_servers_acknowledgments_as_sent() {
    for (label_flag, sent, shown) in [
        (
            false,
            "From Server: X : Client X: Alice received before Y : Client Y: Bob",
            "X : Client X: Alice received before Y : Client Y: Bob",
        ),
        (
            true,
            "Client X: Alice received before Client Y: Bob",
            "Client X: Alice received before Client Y: Bob",
        ),
        (
            false,
            "X: Client X: Alice recieved before Y: Client Y: Bob",
            "X: Client X: Alice recieved before Y: Client Y: Bob",
        ),
    ] {
        let (addr, server) = emulated(move |mut s| {
            if !label_flag {
                s.write_all(b"Client X connected").unwrap();
            }
            let got = recv_message(&mut s);
            // Then the acknowledgment and the close, as these servers do.
            s.write_all(sent.as_bytes()).unwrap();
            got
        });
        let mut args = vec!["--wire", "text", "--name", "Alice"];
        if label_flag {
            args.extend(["--label", "X"]);
        }
        let out = client("X", &addr, &args).finish();
        assert_eq!(server.join().unwrap(), "Client X: Alice");
        assert_eq!(out.code, Some(0), "{sent}: {}", out.stderr);
        assert_eq!(out.last_line(), shown, "{sent}");
    }
}

/// A server that takes the message and never answers (one that deadlocks): the client gives up
/// after its bound, in one line.
#[test]
fn the_text_client_bounds_its_wait_for_a_silent_server() {
    let (addr, server) = emulated(|mut s| {
        s.write_all(b"Client X connected").unwrap();
        let got = recv_message(&mut s);
        // Silent until the client gives up and closes.
        let _ = until_closed(&mut s);
        got
    });
    let args = [
        "--wire",
        "text",
        "--name",
        "Alice",
        "--reply-timeout",
        "0.5",
    ];
    let out = client("X", &addr, &args).finish();
    assert_eq!(server.join().unwrap(), "Client X: Alice");
    assert_eq!(out.code, Some(3));
    assert_eq!(
        out.stderr.trim_end(),
        "arrival-client: no acknowledgment from the server within 0.5 s of our message (it may \
         still be waiting for another party; --reply-timeout sets the bound)"
    );
}

/// A framed client that connects to a text server is told so, and takes no seat: the text
/// client already waiting plays its round with the next text client as if nothing happened.
#[test]
fn a_framed_client_on_a_text_server_costs_the_waiting_player_nothing() {
    let (mut srv, addr) = server(&["--wire", "text"]);
    let mut x = TextPeer::connect(&addr);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let framed = client("F", &addr, &["--name", "Mallory"]).finish();
    assert_eq!(framed.code, Some(3), "{framed:?}");
    assert!(
        framed.stderr.contains("the server answered in text"),
        "{}",
        framed.stderr
    );
    let mut y = TextPeer::connect(&addr);
    assert_eq!(x.greeting(), "Client X connected");
    assert_eq!(y.greeting(), "Client Y connected");
    x.send(b"Client X: Alice\n");
    y.send(b"Client Y: Bob\n");
    assert!(x.reply().starts_with("X: Alice received before Y: Bob"));
    assert!(y.reply().starts_with("X: Alice received before Y: Bob"));
    let srv = srv.finish();
    assert_eq!(srv.code, Some(0), "{srv:?}");
    assert!(
        !srv.stdout.iter().any(|l| l.contains("aborted")),
        "{:?}",
        srv.stdout
    );
}
