//! Echo mode: byte-exact under concurrency and random chunking, and bounded against a client
//! that never reads.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use arrival::rt as task;
use arrival::server::{Config, Mode, Server};
use futures::channel::oneshot;

/// A small deterministic generator (xorshift64*), so failures are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// An echo server in this process; dropping the returned sender stops it.
fn echo_server() -> (
    String,
    oneshot::Sender<()>,
    task::JoinHandle<std::io::Result<arrival::server::Summary>>,
) {
    let listener = arrival::server::bind("127.0.0.1:0").unwrap();
    let config = Config {
        mode: Mode::Echo,
        rounds: 0,
        ..Config::default()
    };
    let server = Server::new(listener, config);
    let addr = server.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = task::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, stop, running)
}

#[test]
fn fifty_connections_echo_ten_mib_each_byte_for_byte() {
    const CONNECTIONS: u64 = 50;
    const BYTES: usize = 10 * 1024 * 1024;
    let (addr, stop, running) = echo_server();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|seed| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (seed + 1));
                let data = rng.bytes(BYTES);
                let stream = TcpStream::connect(&addr).unwrap();
                let mut reader = stream.try_clone().unwrap();
                // Write in random chunks on one thread while reading on another, as a real
                // client must (the server applies backpressure).
                let sent = data.clone();
                let writer = std::thread::spawn(move || {
                    let mut w = &stream;
                    let mut rng = Rng(seed * 7 + 3);
                    let mut at = 0;
                    while at < sent.len() {
                        let n = (1 + (rng.next() % 65_536) as usize).min(sent.len() - at);
                        w.write_all(&sent[at..at + n]).unwrap();
                        at += n;
                    }
                    stream.shutdown(std::net::Shutdown::Write).unwrap();
                });
                let mut back = Vec::with_capacity(BYTES);
                reader.read_to_end(&mut back).unwrap();
                writer.join().unwrap();
                assert_eq!(back.len(), data.len(), "connection {seed}: length");
                assert!(back == data, "connection {seed}: bytes differ");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    drop(stop);
    let summary = task::block_on(running).unwrap();
    assert_eq!(summary.connections, CONNECTIONS);
}

#[test]
fn a_client_that_never_reads_is_held_back_not_buffered() {
    const OFFERED: usize = 64 * 1024 * 1024;
    let (addr, stop, running) = echo_server();
    let stream = TcpStream::connect(&addr).unwrap();
    stream.set_nonblocking(true).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut accepted = 0usize;
    let mut w = &stream;
    // Offer 64 MiB without ever reading. Whatever the kernel buffers on both sides, a server
    // that holds one buffer per connection stalls us long before; one that buffered without
    // limit would take it all. A stall is concluded after a second with no progress, which can
    // only make this test pass late, never fail wrongly.
    let mut idle_since = std::time::Instant::now();
    while accepted < OFFERED {
        match w.write(&chunk) {
            Ok(n) => {
                accepted += n;
                idle_since = std::time::Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if idle_since.elapsed() > Duration::from_secs(1) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    println!(
        "the server took {} KiB before holding the client back",
        accepted / 1024
    );
    assert!(
        accepted < OFFERED / 2,
        "the server absorbed {accepted} bytes"
    );

    // It is still a working echo: read back what it holds.
    stream.set_nonblocking(false).unwrap();
    let mut r = &stream;
    let mut first = [0u8; 4];
    r.read_exact(&mut first).unwrap();
    assert_eq!(first, [0xA5; 4]);
    drop(stream);
    drop(stop);
    task::block_on(running).unwrap();
}
