//! Test harness: run the real binaries as child processes and talk to them.
//!
//! Lines of a child's stdout are read on a thread into a channel, so a test *waits for a line*
//! (a readiness signal) instead of sleeping. `GUARD` only turns a hang into a failure; it never
//! decides an outcome.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use arrival::client::Link;
use arrival::protocol::{self, Frame, ReadError};
use arrival::rt::block_on;

pub const GUARD: Duration = Duration::from_secs(30);

pub const SERVER: &str = env!("CARGO_BIN_EXE_arrival-server");
pub const CLIENT: &str = env!("CARGO_BIN_EXE_arrival-client");
pub const BENCH: &str = env!("CARGO_BIN_EXE_arrival-bench");

/// A child process under test. Dropped, it is killed and reaped: no process started by the
/// suite outlives it, whatever a test does.
pub struct Proc {
    pub name: String,
    /// Taken by [`finish`](Proc::finish); killed on drop if still here.
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    errs: Receiver<String>,
    seen_errs: Vec<String>,
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Finished {
    /// The last line the process wrote to stdout ("" if none).
    pub fn last_line(&self) -> &str {
        self.stdout.last().map(String::as_str).unwrap_or("")
    }

    /// The process exited 0 and its last line on stdout was `last`.
    pub fn assert_ended_with(&self, last: &str) {
        assert_eq!(self.code, Some(0), "{self:?}");
        assert_eq!(self.last_line(), last, "{self:?}");
    }
}

impl Proc {
    pub fn spawn(name: &str, bin: &str, args: &[&str]) -> Proc {
        Proc::spawn_with(name, bin, args, |_| {})
    }

    /// As [`spawn`](Self::spawn), with a chance to adjust the command first.
    pub fn spawn_with(
        name: &str,
        bin: &str,
        args: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Proc {
        let mut command = Command::new(bin);
        adjust(&mut command);
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let lines = line_channel(child.stdout.take().unwrap());
        let errs = line_channel(child.stderr.take().unwrap());
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child: Some(child),
            lines,
            seen: Vec::new(),
            errs,
            seen_errs: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The next stdout line; panics if stdout ends or nothing comes within the guard.
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(GUARD) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no output line (so far: {:?})", self.name, self.seen)
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("{}: stdout ended (so far: {:?})", self.name, self.seen)
            }
        }
    }

    /// Skips stderr lines until one satisfies `pred`; returns it.
    pub fn wait_for_stderr(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let line = match self.errs.recv_timeout(GUARD) {
                Ok(line) => line,
                Err(_) => panic!(
                    "{}: no stderr line for {what} (so far: {:?})",
                    self.name, self.seen_errs
                ),
            };
            self.seen_errs.push(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }

    /// Asserts the next stdout line.
    pub fn expect_line(&mut self, expected: &str) {
        let line = self.next_line();
        assert_eq!(line, expected, "{}: unexpected line", self.name);
    }

    /// Skips lines until one satisfies `pred`; returns it.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self.next_line();
            if pred(&line) {
                return line;
            }
            eprintln!("{}: (skipping while waiting for {what}) {line}", self.name);
        }
    }

    pub fn send_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for exit; returns status, every stdout line (including those already read), stderr.
    pub fn finish(mut self) -> Finished {
        self.stdin = None;
        let (tx, rx) = mpsc::channel();
        let mut child = self.child.take().expect("finished once");
        let name = self.name.clone();
        let waiter = thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            (status, child)
        });
        if rx.recv_timeout(GUARD).is_err() {
            panic!("{name}: did not exit (stdout so far: {:?})", self.seen);
        }
        let (status, _) = waiter.join().unwrap();
        let mut stdout = std::mem::take(&mut self.seen);
        stdout.extend(self.lines.iter());
        let mut stderr = std::mem::take(&mut self.seen_errs);
        stderr.extend(self.errs.iter());
        Finished {
            code: status.unwrap().code(),
            stdout,
            stderr: stderr.iter().map(|l| format!("{l}\n")).collect(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn line_channel(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `--web off` unless `extra` says otherwise: a service prints its web links after its first
/// line, which only the tests of the web side read.
fn web_off_unless_asked(extra: &[&str]) -> &'static [&'static str] {
    if extra.contains(&"--web") {
        &[]
    } else {
        &["--web", "off"]
    }
}

/// Starts `arrival-server` on a free port; returns it and its address.
pub fn server(extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    args.extend_from_slice(web_off_unless_asked(extra));
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn("server", SERVER, &args);
    let first = proc.next_line();
    let addr = first
        .strip_prefix("arrival-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    (proc, addr)
}

/// Starts `arrival-server` on a free port with `extra` arguments and its own pipes, so a test
/// can close them early; returns the child, its address and its stdout after the first line.
pub fn server_with_pipes(
    extra: &[&str],
) -> (
    std::process::Child,
    String,
    BufReader<std::process::ChildStdout>,
) {
    let mut child = Command::new(SERVER)
        .args(["--addr", "127.0.0.1:0"])
        .args(web_off_unless_asked(extra))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {SERVER}: {e}"));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .trim_end()
        .strip_prefix("arrival-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    (child, addr, stdout)
}

/// Starts `arrival-client` against `addr`.
pub fn client(name: &str, addr: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--addr", addr];
    args.extend_from_slice(extra);
    Proc::spawn(name, CLIENT, &args)
}

/// One round of two in-process clients (the library's, not the binary) on `addr`, anonymous or
/// in `room`; returns both results.
pub fn play_pair(
    addr: &str,
    room: Option<&str>,
) -> [Result<arrival::client::Verdict, arrival::client::Error>; 2] {
    use arrival::client::{self, NameSource};
    let play = |name: &str| {
        let config = client::Config {
            addr: addr.to_owned(),
            room: room.map(str::to_owned),
            ..client::Config::default()
        };
        let name = name.to_owned();
        arrival::rt::spawn(async move {
            let transcript = arrival::transcript::Transcript::Silent;
            client::run(&config, NameSource::Given(name), &transcript).await
        })
    };
    let (a, b) = (play("Alice"), play("Bob"));
    block_on(async { [a.await, b.await] })
}

/// A client from another loopback address (127.0.0.2, say), so per-address limits can tell it
/// from the legitimate users on 127.0.0.1.
pub fn connect_from(source: [u8; 4], addr: &str) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((source, 0)).into())
        .unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    stream
}

/// A hand-driven protocol peer, for saying what `arrival-client` never would.
pub struct Raw {
    link: Link,
}

impl Raw {
    pub fn connect(addr: &str) -> Raw {
        Raw {
            link: block_on(Link::connect(addr)).unwrap(),
        }
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        // The peer may have closed already; what matters is what we read back.
        let _ = block_on(self.link.send_bytes(bytes));
    }

    pub fn send(&mut self, frame: &Frame) {
        self.send_bytes(&protocol::encode(frame).unwrap());
    }

    pub fn hello(&mut self) {
        self.send(&Frame::Hello {
            version: protocol::PROTOCOL_VERSION,
            room: None,
        });
        assert_eq!(
            self.recv(),
            Some(Frame::Welcome {
                version: protocol::PROTOCOL_VERSION
            })
        );
    }

    /// The next frame, `None` at a clean end of stream.
    pub fn recv(&mut self) -> Option<Frame> {
        match self.try_recv() {
            Ok(f) => f,
            Err(e) => panic!("reading from the server: {e}"),
        }
    }

    pub fn try_recv(&mut self) -> Result<Option<Frame>, ReadError> {
        let link = &mut self.link;
        block_on(arrival::rt::timeout(GUARD, link.recv()))
            .unwrap_or_else(|| panic!("no frame from the server"))
    }

    /// Reads frames until `Error`; returns its kind and message.
    pub fn expect_error(&mut self) -> (protocol::ErrorKind, String) {
        loop {
            match self.recv() {
                Some(Frame::Error { kind, message }) => return (kind, message),
                Some(_) => continue,
                None => panic!("connection closed without an error frame"),
            }
        }
    }

    /// After the server's last frame, the connection ends (EOF, or reset if we left bytes unread).
    pub fn expect_closed(&mut self) {
        match self.try_recv() {
            Ok(None) | Err(ReadError::Io(_)) => {}
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }

    /// Half-closes: the server sees end-of-stream but can still write to us.
    pub fn shutdown_write(&mut self) {
        let _ = self.link.shutdown_write();
    }

    /// Closes abruptly: RST instead of FIN.
    pub fn reset(self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket descriptor and a correctly sized `linger` value.
        let rc = unsafe {
            libc::setsockopt(
                self.link.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    }
}

pub mod webdriver;

/// Quiz sessions of `rounds` rounds in reaction order with the server's rules, quick pings and a
/// short random wait before `Go`: what the tests over the delayed link play.
pub fn reaction_sessions(rounds: u64) -> arrival::session::SessionConfig {
    use arrival::session::{Jitter, Order, SessionConfig};
    SessionConfig {
        rounds,
        order: Order::Reaction,
        answer_timeout: Duration::from_secs(2),
        pings: 4,
        ping_every: Duration::from_millis(25),
        go_jitter: Jitter {
            low: Duration::from_millis(50),
            high: Duration::from_millis(200),
        },
        ..SessionConfig::default()
    }
}

pub mod ws;

/// Says, past the test harness's capture, that `test` did not run and why: a skipped test
/// passes, so the line is the only trace (`.ci/run` fails a run that has one, since CI has
/// everything the tests need).
#[allow(dead_code)]
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}
