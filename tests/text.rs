//! The plain-text wire: the assignment's own client behaviour (one write, no newline, read to
//! EOF) against `arrival-server --wire text`, and `arrival-client --wire text` against a minimal
//! text server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{client, server};

/// What the assignment's Python client does: read the greeting with one recv, send the message
/// with one send, then read until the server closes.
struct AssignmentClient {
    stream: TcpStream,
}

impl AssignmentClient {
    fn connect(addr: &str) -> AssignmentClient {
        AssignmentClient {
            stream: TcpStream::connect(addr).unwrap(),
        }
    }
    fn greeting(&mut self) -> String {
        let mut buf = [0u8; 1024];
        let n = self.stream.read(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }
    fn send(&mut self, message: &str) {
        self.stream.write_all(message.as_bytes()).unwrap();
    }
    fn reply(mut self) -> String {
        let mut reply = String::new();
        self.stream.read_to_string(&mut reply).unwrap();
        reply
    }
}

fn text_round(y_first: bool) -> (common::Finished, String, String) {
    let (mut srv, addr) = server(&["--wire", "text"]);
    let mut x = AssignmentClient::connect(&addr);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = AssignmentClient::connect(&addr);
    assert_eq!(x.greeting(), "Client X connected");
    assert_eq!(y.greeting(), "Client Y connected");
    // The second message is written only after the first write returned: on loopback the first
    // is in the server's receive queue by then, stamped by its kernel.
    if y_first {
        y.send("Client Y: Bob");
        x.send("Client X: Alice");
    } else {
        x.send("Client X: Alice");
        y.send("Bob"); // a bare name is accepted too
    }
    let (xr, yr) = (x.reply(), y.reply());
    (srv.finish(), xr, yr)
}

#[test]
fn the_assignments_client_against_the_text_server_x_first() {
    let (srv, x, y) = text_round(false);
    assert_eq!(x, "X: Alice received before Y: Bob");
    assert_eq!(y, "X: Alice received before Y: Bob");
    assert_eq!(srv.code, Some(0));
    assert_eq!(
        srv.stdout[3..],
        [
            "Client X: Alice",
            "Client Y: Bob",
            "Sent acknowledgment to both X and Y"
        ]
    );
}

#[test]
fn the_assignments_client_against_the_text_server_y_first() {
    let (srv, x, y) = text_round(true);
    assert_eq!(x, "Y: Bob received before X: Alice");
    assert_eq!(y, "Y: Bob received before X: Alice");
    assert_eq!(srv.code, Some(0));
    assert_eq!(
        srv.stdout[3..],
        [
            "Client Y: Bob",
            "Client X: Alice",
            "Sent acknowledgment to both X and Y"
        ]
    );
}

#[test]
fn over_long_and_empty_text_messages_get_a_one_line_error() {
    for (message, expected) in [
        // A message ends at a newline, within 1024 bytes: more without one is said as such.
        (
            "x".repeat(2000),
            "error: no newline within 1024 bytes: a message is one line, a name of at most 64 \
             characters\n",
        ),
        ("\r\n".to_owned(), "error: name is empty\n"),
    ] {
        let (mut srv, addr) = server(&["--wire", "text"]);
        let mut x = AssignmentClient::connect(&addr);
        srv.wait_for("X", |l| l.starts_with("Client X connected from"));
        let mut y = AssignmentClient::connect(&addr);
        assert_eq!(x.greeting(), "Client X connected");
        y.greeting();
        x.send(&message);
        assert_eq!(x.reply(), expected);
        // Y is told the round is over, as with framed clients.
        let y_reply = y.reply();
        assert!(
            y_reply.starts_with("error: round aborted: Client X left"),
            "{y_reply}"
        );
        assert_eq!(srv.finish().code, Some(1));
    }
}

/// `arrival-client --wire text` against the smallest possible text server.
#[test]
fn the_text_client_against_a_minimal_text_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"Client X connected").unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        let got = String::from_utf8(buf[..n].to_vec()).unwrap();
        s.write_all(b"X: Alice received before Y: Bob").unwrap();
        got
    });
    let out = client("X", &addr, &["--wire", "text", "--name", "Alice"]).finish();
    let received = fake.join().unwrap();
    assert_eq!(received, "Client X: Alice", "one write, no newline");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        [
            "Client X connected",
            "Client X: Alice",
            "X: Alice received before Y: Bob"
        ]
    );
}
