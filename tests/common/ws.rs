//! A raw HTTP and WebSocket client for tests: every byte by hand, so tests can send what no
//! browser would and see exactly what the server answers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;

use arrival::protocol::{self, Frame};

use super::GUARD;

/// The RFC 6455 example key and the accept the server must answer it with.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A valid upgrade request for `/ws` on `addr`.
pub fn upgrade_request(addr: &str) -> String {
    upgrade_request_to(addr, "/ws")
}

/// A valid upgrade request for `path` on `addr`.
pub fn upgrade_request_to(addr: &str, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{addr}\r\n\r\n"
    )
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(GUARD)).unwrap();
    s
}

/// An HTTP answer: its status, head and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `request` as it is and reads the answer to its end (the server closes after one).
pub fn http(addr: &str, request: &[u8]) -> Answer {
    let mut s = connect(addr);
    let _ = s.write_all(request);
    read_answer(&mut s)
}

/// Reads an HTTP answer until the server closes.
pub fn read_answer(s: &mut TcpStream) -> Answer {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// One WebSocket frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub struct WsFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// A WebSocket connection after a successful upgrade.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Connects and upgrades; panics unless the server switches protocols with the right key.
    pub fn connect(addr: &str) -> RawWs {
        RawWs::connect_to(addr, "/ws")
    }

    /// As [`connect`](Self::connect), to `path` (`/ws?room=quiz`, as the pages ask).
    pub fn connect_to(addr: &str, path: &str) -> RawWs {
        RawWs::upgrade(connect(addr), addr, path)
    }

    /// Upgrades `stream`, a connection to `addr` made elsewhere (in another network namespace).
    pub fn upgrade(mut stream: TcpStream, addr: &str, path: &str) -> RawWs {
        stream.set_read_timeout(Some(GUARD)).unwrap();
        stream
            .write_all(upgrade_request_to(addr, path).as_bytes())
            .unwrap();
        RawWs::after_upgrade(stream)
    }

    /// Reads the `101` to an upgrade request already sent on `stream`; panics unless the server
    /// switches protocols with the right key.
    pub fn after_upgrade(mut stream: TcpStream) -> RawWs {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).unwrap();
            assert!(
                n > 0,
                "closed during the upgrade: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}")),
            "{head}"
        );
        buf.drain(..end);
        RawWs { stream, buf }
    }

    /// Sends one frame: `fin`, `opcode`, `payload`, masked (as a browser must) or not.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n < 65536 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        if masked {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        self.send_raw(&out);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Sends `frame` as a browser does: one masked binary message.
    pub fn send(&mut self, frame: &Frame) {
        self.send_frame(true, 2, &protocol::encode(frame).unwrap(), true);
    }

    fn fill(&mut self, want: usize) -> bool {
        let mut chunk = [0u8; 4096];
        while self.buf.len() < want {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    }

    /// The server's next frame; `None` at the end of the stream.
    pub fn recv_ws(&mut self) -> Option<WsFrame> {
        if !self.fill(2) {
            return None;
        }
        let (fin, opcode) = (self.buf[0] & 0x80 != 0, self.buf[0] & 0x0f);
        assert_eq!(self.buf[1] & 0x80, 0, "a server's frames are not masked");
        let (len, at) = match self.buf[1] & 0x7f {
            126 => {
                assert!(self.fill(4));
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                assert!(self.fill(10));
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (n as usize, 2),
        };
        assert!(self.fill(at + len), "the stream ended inside a frame");
        let payload = self.buf[at..at + len].to_vec();
        self.buf.drain(..at + len);
        Some(WsFrame {
            fin,
            opcode,
            payload,
        })
    }

    /// The next protocol frame (one binary message), skipping nothing.
    pub fn recv(&mut self) -> Option<Frame> {
        let ws = self.recv_ws()?;
        assert_eq!((ws.fin, ws.opcode), (true, 2), "a binary message: {ws:?}");
        Some(protocol::decode_whole(&ws.payload).expect("one whole frame"))
    }

    /// Reads to the close frame; returns its code and reason, and checks the server then closes.
    /// Binary messages on the way are returned too.
    pub fn expect_close(&mut self) -> (u16, String, Vec<Frame>) {
        let mut frames = Vec::new();
        loop {
            let ws = self.recv_ws().expect("a close frame before the end");
            match ws.opcode {
                2 => frames.push(protocol::decode_whole(&ws.payload).unwrap()),
                8 => {
                    let code = u16::from_be_bytes([ws.payload[0], ws.payload[1]]);
                    let reason = String::from_utf8_lossy(&ws.payload[2..]).into_owned();
                    let _ = self.stream.shutdown(std::net::Shutdown::Write);
                    assert!(self.recv_ws().is_none(), "nothing after the close");
                    return (code, reason, frames);
                }
                other => panic!("unexpected opcode {other}"),
            }
        }
    }
}
