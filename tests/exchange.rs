//! The assignment's exchange, end to end: the real `arrival-server` and two real
//! `arrival-client`s over loopback, every stdout line and exit status checked.

mod common;

use common::{client, server, Proc};

/// Connects X then Y (each waits for the server to label the previous one, so labels are
/// certain), with names to be typed on stdin.
fn connect_pair(addr: &str, server: &mut Proc) -> (Proc, Proc) {
    let x = client("X", addr, &[]);
    server.wait_for("X", |l| l.starts_with("Client X connected from 127.0.0.1:"));
    let y = client("Y", addr, &[]);
    server.wait_for("Y", |l| l.starts_with("Client Y connected from 127.0.0.1:"));
    (x, y)
}

/// Runs one round where `first` types its name, has sent it (its own stdout says so), and only
/// then `second` types its name. Sending is causally ordered: the second message leaves its
/// client after the first was on the wire, so the server must read them in that order.
fn round(x_name: &str, y_name: &str, x_first: bool) -> [common::Finished; 3] {
    let (mut srv, addr) = server(&[]);
    let (mut x, mut y) = connect_pair(&addr, &mut srv);
    x.expect_line("Client X connected");
    y.expect_line("Client Y connected");
    let ((first, first_line), (second, second_line)) = if x_first {
        (
            (&mut x, format!("Client X: {x_name}")),
            (&mut y, format!("Client Y: {y_name}")),
        )
    } else {
        (
            (&mut y, format!("Client Y: {y_name}")),
            (&mut x, format!("Client X: {x_name}")),
        )
    };
    let first_name = first_line.split(": ").nth(1).unwrap().to_owned();
    let second_name = second_line.split(": ").nth(1).unwrap().to_owned();
    first.send_stdin(&format!("{first_name}\n"));
    first.expect_line(&first_line);
    second.send_stdin(&format!("{second_name}\n"));
    second.expect_line(&second_line);
    [srv.finish(), x.finish(), y.finish()]
}

fn assert_ok(f: &common::Finished, who: &str) {
    assert_eq!(f.code, Some(0), "{who} exit status; stderr: {}", f.stderr);
    assert_eq!(f.stderr, "", "{who} stderr");
}

#[test]
fn x_sends_first() {
    let [srv, x, y] = round("Alice", "Bob", true);
    for (f, who) in [(&srv, "server"), (&x, "X"), (&y, "Y")] {
        assert_ok(f, who);
    }
    assert_eq!(srv.stdout.len(), 6, "{:?}", srv.stdout);
    assert!(srv.stdout[0].starts_with("arrival-server listening on 127.0.0.1:"));
    assert!(srv.stdout[1].starts_with("Client X connected from 127.0.0.1:"));
    assert!(srv.stdout[2].starts_with("Client Y connected from 127.0.0.1:"));
    assert_eq!(
        srv.stdout[3..],
        [
            "Client X: Alice",
            "Client Y: Bob",
            "Sent acknowledgment to both X and Y"
        ]
    );
    assert_eq!(
        x.stdout,
        [
            "Client X connected",
            "Client X: Alice",
            "X: Alice received before Y: Bob"
        ]
    );
    assert_eq!(
        y.stdout,
        [
            "Client Y connected",
            "Client Y: Bob",
            "X: Alice received before Y: Bob"
        ]
    );
}

#[test]
fn y_sends_first() {
    let [srv, x, y] = round("Alice", "Bob", false);
    for (f, who) in [(&srv, "server"), (&x, "X"), (&y, "Y")] {
        assert_ok(f, who);
    }
    assert_eq!(
        srv.stdout[3..],
        [
            "Client Y: Bob",
            "Client X: Alice",
            "Sent acknowledgment to both X and Y"
        ]
    );
    assert_eq!(
        x.stdout,
        [
            "Client X connected",
            "Client X: Alice",
            "Y: Bob received before X: Alice"
        ]
    );
    assert_eq!(
        y.stdout,
        [
            "Client Y connected",
            "Client Y: Bob",
            "Y: Bob received before X: Alice"
        ]
    );
}

#[test]
fn identical_names_are_attributed_to_the_right_client() {
    let [srv, x, y] = round("Alice", "Alice", false);
    assert_ok(&srv, "server");
    assert_eq!(
        srv.stdout[3..],
        [
            "Client Y: Alice",
            "Client X: Alice",
            "Sent acknowledgment to both X and Y"
        ]
    );
    assert_eq!(x.stdout[2], "Y: Alice received before X: Alice");
    assert_eq!(y.stdout[2], "Y: Alice received before X: Alice");
}

#[test]
fn names_from_the_command_line() {
    let (mut srv, addr) = server(&[]);
    let x = client("X", &addr, &["--name", "Zoë 李"]);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let y = client("Y", &addr, &["--name", "Bob"]);
    let (srv, x, y) = (srv.finish(), x.finish(), y.finish());
    assert_ok(&srv, "server");
    assert_ok(&x, "X");
    assert_ok(&y, "Y");
    assert_eq!(x.stdout[..2], ["Client X connected", "Client X: Zoë 李"]);
    // Both ran unattended, so either order is right, but both clients got the same verdict
    // and the server printed it the same way.
    assert_eq!(x.stdout[2], y.stdout[2]);
    let verdict = &x.stdout[2];
    assert!(
        verdict == "X: Zoë 李 received before Y: Bob"
            || verdict == "Y: Bob received before X: Zoë 李",
        "{verdict}"
    );
    let first = if verdict.starts_with('X') {
        "Client X: Zoë 李"
    } else {
        "Client Y: Bob"
    };
    assert_eq!(srv.stdout[3], first);
}

#[test]
fn help_and_version() {
    for bin in [common::SERVER, common::CLIENT] {
        for (flag, needle) in [
            ("--help", "USAGE"),
            ("--version", env!("CARGO_PKG_VERSION")),
        ] {
            let out = std::process::Command::new(bin).arg(flag).output().unwrap();
            assert!(out.status.success(), "{bin} {flag}");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains(needle), "{bin} {flag}: {stdout}");
        }
    }
}

/// A server waiting for a partner does not spin: over a 3 s wait it uses less than 1% of a core.
/// (This is a resource bound, not a speed measurement: an idle server should use ~0 ticks.)
#[test]
fn a_waiting_server_uses_no_cpu() {
    let (mut srv, addr) = server(&[]);
    let mut x = client("X", &addr, &[]);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let cpu = || arrival::bench::proc_stats(srv.pid()).unwrap().cpu_secs;
    let before = cpu();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let used = cpu() - before;
    println!("server CPU while waiting 3 s: {:.0} ms", used * 1000.0);
    assert!(used < 0.03, "server used {used} s of CPU in 3 s");
    x.close_stdin();
    srv.signal("INT");
    let _ = (srv.finish(), x.finish());
}
