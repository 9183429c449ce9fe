//! The floor for echo: the fastest simple RFC 862 echo server this machine can run, to measure
//! `arrival-server --mode echo` against (`make compare`). One thread, level-triggered epoll,
//! non-blocking sockets, no runtime: every byte read is written back; bytes the socket cannot
//! take yet wait for it to be writable.
//!
//! A measuring instrument, not a server to use: it has no connection limit and no time bounds.
//!
//! Usage: `floor_echo [PORT]` (0, the default, picks a free port); prints
//! `listening on 127.0.0.1:PORT`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet written back.
    pending: Vec<u8>,
    /// Watched for room to write (while `pending` waits) rather than for input.
    writing: bool,
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    println!("listening on {}", listener.local_addr()?);
    // SAFETY: epoll_create1 has no memory-safety preconditions.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(io::Error::last_os_error());
    }
    watch(epoll, libc::EPOLL_CTL_ADD, listener.as_raw_fd(), false)?;
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `events` is a live buffer of its length.
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in &events[..n as usize] {
            let fd = event.u64 as RawFd;
            if fd == listener.as_raw_fd() {
                while let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true)?;
                    stream.set_nodelay(true)?;
                    let fd = stream.as_raw_fd();
                    watch(epoll, libc::EPOLL_CTL_ADD, fd, false)?;
                    conns.insert(
                        fd,
                        Conn {
                            stream,
                            pending: Vec::new(),
                            writing: false,
                        },
                    );
                }
                continue;
            }
            let Some(conn) = conns.get_mut(&fd) else {
                continue;
            };
            let mut alive = true;
            if conn.pending.is_empty() {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => alive = false,
                    Ok(n) => conn.pending.extend_from_slice(&chunk[..n]),
                    Err(e) => alive = e.kind() == io::ErrorKind::WouldBlock,
                }
            }
            if alive && !conn.pending.is_empty() {
                match conn.stream.write(&conn.pending) {
                    Ok(n) => {
                        conn.pending.drain(..n);
                    }
                    Err(e) => alive = e.kind() == io::ErrorKind::WouldBlock,
                }
                // Stop reading while bytes wait to go out; wait for room instead. Changed only
                // when that changes: one registration per connection in the usual case.
                let writing = !conn.pending.is_empty();
                if writing != conn.writing {
                    watch(epoll, libc::EPOLL_CTL_MOD, fd, writing)?;
                    conn.writing = writing;
                }
            }
            if !alive {
                conns.remove(&fd);
            }
        }
    }
}

/// Watches `fd` for input, or, while bytes wait to be written, for room to write them.
fn watch(epoll: RawFd, op: libc::c_int, fd: RawFd, writing: bool) -> io::Result<()> {
    let events = if writing {
        libc::EPOLLOUT
    } else {
        libc::EPOLLIN
    };
    let mut event = libc::epoll_event {
        events: events as u32,
        u64: fd as u64,
    };
    // SAFETY: valid descriptors and a live event.
    if unsafe { libc::epoll_ctl(epoll, op, fd, &mut event) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
