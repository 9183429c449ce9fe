//! The floor for rounds: the fastest simple server of protocol-1 rounds this machine can run, to
//! measure `arrival-server` against (`make compare`). One thread, level-triggered epoll,
//! non-blocking sockets, no runtime, no timers, no logging: two parties a round, paired by room
//! (anonymous ones with each other), `Welcome`, `Connected`, then the verdict once both messages
//! are in, and the close. The happy path only: a peer that breaks the protocol is dropped.
//!
//! It is a measuring instrument, not a server to use: it has none of arrival's limits, time
//! bounds or failure handling, and orders messages by when it read them.
//!
//! Usage: `floor_rounds [PORT]` (0, the default, picks a free port); prints
//! `listening on 127.0.0.1:PORT`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

/// One connection's state.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The partner's descriptor once paired, and this party's label.
    partner: Option<RawFd>,
    label: &'static str,
    round: u64,
    /// Its message, and when it was read.
    message: Option<(String, Instant)>,
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    println!("listening on {}", listener.local_addr()?);
    let epoll = Epoll::new()?;
    epoll.add(listener.as_raw_fd())?;
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    // Rooms with one party waiting: room bytes (None: anonymous) to its descriptor.
    let mut waiting: HashMap<Option<Vec<u8>>, RawFd> = HashMap::new();
    let mut rounds = 0u64;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        let ready = epoll.wait(&mut events)?;
        for event in &events[..ready] {
            let fd = event.u64 as RawFd;
            if fd == listener.as_raw_fd() {
                while let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true)?;
                    stream.set_nodelay(true)?;
                    let fd = stream.as_raw_fd();
                    epoll.add(fd)?;
                    conns.insert(
                        fd,
                        Conn {
                            stream,
                            buf: Vec::new(),
                            partner: None,
                            label: "X",
                            round: 0,
                            message: None,
                        },
                    );
                }
                continue;
            }
            if !read_some(&mut conns, fd) {
                drop_conn(&mut conns, &mut waiting, fd);
                continue;
            }
            while let Some(payload) = conns.get_mut(&fd).and_then(|c| next_frame(&mut c.buf)) {
                if !handle(&mut conns, &mut waiting, &mut rounds, fd, &payload) {
                    drop_conn(&mut conns, &mut waiting, fd);
                    break;
                }
            }
        }
    }
}

/// Reads what is there; false at the end of the stream or an error.
fn read_some(conns: &mut HashMap<RawFd, Conn>, fd: RawFd) -> bool {
    let Some(conn) = conns.get_mut(&fd) else {
        return false;
    };
    let mut chunk = [0u8; 4096];
    match conn.stream.read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            conn.buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

/// The payload of the frame at the front of `buf`, once it is whole.
fn next_frame(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    if buf.len() < 4 + len {
        return None;
    }
    let payload = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Some(payload)
}

/// One frame from `fd`; false if the connection must go.
fn handle(
    conns: &mut HashMap<RawFd, Conn>,
    waiting: &mut HashMap<Option<Vec<u8>>, RawFd>,
    rounds: &mut u64,
    fd: RawFd,
    payload: &[u8],
) -> bool {
    let variant = u32::from_le_bytes(payload[..4].try_into().unwrap_or_default());
    match variant {
        // Hello { version, room }.
        0 if payload.len() >= 7 => {
            let version = u16::from_le_bytes([payload[4], payload[5]]);
            let room = (payload[6] == 1).then(|| payload.get(15..).unwrap_or_default().to_vec());
            match waiting.remove(&room) {
                Some(first) if conns.contains_key(&first) => {
                    *rounds += 1;
                    let round = *rounds;
                    for (me, other, label) in [(first, fd, "X"), (fd, first, "Y")] {
                        if let Some(c) = conns.get_mut(&me) {
                            c.partner = Some(other);
                            c.label = label;
                            c.round = round;
                        }
                    }
                    let mut out = frame(|p| welcome(p, version));
                    out.extend(frame(|p| connected(p, round, "Y")));
                    send(conns, fd, &out);
                    send(conns, first, &frame(|p| connected(p, round, "X")));
                }
                _ => {
                    waiting.insert(room, fd);
                    send(conns, fd, &frame(|p| welcome(p, version)));
                }
            }
            true
        }
        // Message { name }.
        3 => {
            let Some(name) = string_at(payload, 4) else {
                return false;
            };
            let Some(conn) = conns.get_mut(&fd) else {
                return false;
            };
            conn.message = Some((name, Instant::now()));
            let Some(partner) = conn.partner else {
                return false;
            };
            let both = conns.get(&partner).is_some_and(|p| p.message.is_some());
            if both {
                verdict(conns, fd, partner);
            }
            true
        }
        _ => false,
    }
}

/// Both messages are in: the same `Ack` to both, then the close.
fn verdict(conns: &mut HashMap<RawFd, Conn>, a: RawFd, b: RawFd) {
    let mut parties: Vec<(&'static str, String, Instant)> = [a, b]
        .iter()
        .filter_map(|fd| {
            let c = conns.get(fd)?;
            let (name, at) = c.message.clone()?;
            Some((c.label, name, at))
        })
        .collect();
    parties.sort_by_key(|p| p.2);
    let first_at = parties[0].2;
    let text = parties
        .iter()
        .map(|(label, name, _)| format!("{label}: {name}"))
        .collect::<Vec<_>>()
        .join(" received before ");
    let ack = frame(|p| {
        p.extend_from_slice(&4u32.to_le_bytes());
        put_str(p, &text);
        p.extend_from_slice(&(parties.len() as u64).to_le_bytes());
        for (label, name, at) in &parties {
            put_str(p, label);
            put_str(p, name);
            let after = at.saturating_duration_since(first_at).as_micros() as u64;
            p.extend_from_slice(&after.to_le_bytes());
        }
    });
    for fd in [a, b] {
        send(conns, fd, &ack);
        if let Some(conn) = conns.remove(&fd) {
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        }
    }
}

fn drop_conn(
    conns: &mut HashMap<RawFd, Conn>,
    waiting: &mut HashMap<Option<Vec<u8>>, RawFd>,
    fd: RawFd,
) {
    conns.remove(&fd);
    waiting.retain(|_, w| *w != fd);
}

fn send(conns: &mut HashMap<RawFd, Conn>, fd: RawFd, bytes: &[u8]) {
    if let Some(conn) = conns.get_mut(&fd) {
        // Loopback buffers take a round's few hundred bytes at once: the happy path.
        let _ = conn.stream.write_all(bytes);
    }
}

/// A length-prefixed frame whose payload `fill` writes.
fn frame(fill: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = vec![0; 4];
    fill(&mut out);
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

fn welcome(p: &mut Vec<u8>, version: u16) {
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&version.to_le_bytes());
}

fn connected(p: &mut Vec<u8>, round: u64, label: &str) {
    p.extend_from_slice(&2u32.to_le_bytes());
    p.extend_from_slice(&round.to_le_bytes());
    put_str(p, label);
}

fn put_str(p: &mut Vec<u8>, s: &str) {
    p.extend_from_slice(&(s.len() as u64).to_le_bytes());
    p.extend_from_slice(s.as_bytes());
}

fn string_at(payload: &[u8], at: usize) -> Option<String> {
    let len = u64::from_le_bytes(payload.get(at..at + 8)?.try_into().ok()?) as usize;
    let bytes = payload.get(at + 8..at + 8 + len)?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// A level-triggered epoll instance.
struct Epoll(RawFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 has no memory-safety preconditions.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    /// Watches `fd` for input, level-triggered: registered once, for its whole life (the kernel
    /// drops it when the descriptor closes).
    fn add(&self, fd: RawFd) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: valid descriptors and a live event.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        loop {
            // SAFETY: `events` is a live buffer of its length.
            let n =
                unsafe { libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, -1) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}
