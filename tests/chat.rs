//! The chat relay: after the verdict, the clients say the chat is open and how it ends; lines
//! typed on one appear on the other as `Alice: <line>`; `Bye` ends it for both, and the server
//! reports what it relayed.

mod common;

use common::{client, server};

#[test]
fn twenty_lines_each_way_then_bye() {
    let (mut srv, addr) = server(&["--chat"]);
    let mut x = client("X", &addr, &[]);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = client("Y", &addr, &[]);
    x.expect_line("Client X connected");
    y.expect_line("Client Y connected");
    x.send_stdin("Alice\n");
    x.expect_line("Client X: Alice");
    y.send_stdin("Bob\n");
    y.expect_line("Client Y: Bob");
    x.expect_line("X: Alice received before Y: Bob");
    y.expect_line("X: Alice received before Y: Bob");
    let open = "The chat is open: type lines to send them; Bye ends it for everyone.";
    x.expect_line(open);
    y.expect_line(open);

    // Each direction in turn, each line seen on the other side before the next step.
    for i in 1..=20 {
        x.send_stdin(&format!("from Alice, line {i}\n"));
    }
    for i in 1..=20 {
        y.expect_line(&format!("Alice: from Alice, line {i}"));
    }
    for i in 1..=20 {
        y.send_stdin(&format!("from Bob, line {i}\n"));
    }
    for i in 1..=20 {
        x.expect_line(&format!("Bob: from Bob, line {i}"));
    }
    // A line as long as a chat line gets, far past a name's 64 characters.
    let long = "é".repeat(1024);
    x.send_stdin(&format!("{long}\n"));
    y.expect_line(&format!("Alice: {long}"));
    x.send_stdin("Bye\n");
    y.expect_line("Alice: Bye");
    let over = "Client X said Bye; the chat is over";
    y.expect_line(over);
    x.expect_line(over);

    let (x, y, srv) = (x.finish(), y.finish(), srv.finish());
    assert_eq!(
        (x.code, y.code),
        (Some(0), Some(0)),
        "{} {}",
        x.stderr,
        y.stderr
    );
    assert_eq!(x.stdout.len(), 4 + 20 + 1, "{:?}", x.stdout);
    assert_eq!(y.stdout.len(), 4 + 22 + 1, "{:?}", y.stdout);
    assert_eq!(srv.code, Some(0));
    assert_eq!(
        srv.stdout[3..],
        [
            "Client X: Alice",
            "Client Y: Bob",
            "Sent acknowledgment to both X and Y",
            "Chat over: Client X said Bye; lines relayed: 22 from X, 20 from Y",
        ]
    );
}

#[test]
fn end_of_input_says_bye() {
    let (mut srv, addr) = server(&["--chat"]);
    let x = client("X", &addr, &["--name", "Alice"]);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let mut y = client("Y", &addr, &["--name", "Bob"]);
    y.wait_for("the verdict", |l| l.contains(" received before "));
    // X's stdin closes when the harness finishes it: that is its Bye.
    let x = x.finish();
    assert_eq!(x.code, Some(0));
    y.expect_line("The chat is open: type lines to send them; Bye ends it for everyone.");
    y.expect_line("Alice: Bye");
    y.expect_line("Client X said Bye; the chat is over");
    assert_eq!(y.finish().code, Some(0));
    let srv = srv.finish();
    assert_eq!(
        srv.stdout.last().unwrap(),
        "Chat over: Client X said Bye; lines relayed: 1 from X, 0 from Y"
    );
}

#[test]
fn chat_needs_the_framed_wire() {
    let out = common::Proc::spawn("server", common::SERVER, &["--chat", "--wire", "text"]).finish();
    assert_eq!(out.code, Some(2));
}

#[test]
fn chat_is_refused_on_an_echo_server() {
    let out = common::Proc::spawn("server", common::SERVER, &["--chat", "--mode", "echo"]).finish();
    assert_eq!(out.code, Some(2));
    assert_eq!(
        out.stderr.trim_end(),
        "arrival-server: --chat is for rounds; an echo server (--mode echo) has no chat"
    );
}
