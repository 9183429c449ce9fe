//! The WebSocket wire: arrival's protocol for browsers, one frame per binary message.
//!
//! Owns the WebSocket framing of a server connection after its upgrade (RFC 6455): reading the
//! browser's frames (headers parsed by `tungstenite`, checked before anything is allocated),
//! unmasking them, and wrapping every outbound protocol frame in one binary message. What the
//! messages mean is the framed wire's (`framed::inbound`, `framed::render_frame`): a browser
//! is a client like any other.
//!
//! A message's arrival is the kernel's receive time of the read that completed it (as for a
//! framed client); its round trip is the kernel's figure for the connection, as for any player.
//!
//! What a browser may not do, and what it gets (a close code with the reason, after an `Error`
//! frame when the protocol has words for it):
//!
//! | the browser sends | close |
//! |---|---|
//! | a text message | 1003, with the rule |
//! | a fragmented message | 1008 |
//! | a message over one frame's size (`4 + MAX_FRAME_LEN`) | 1009, before any of it is buffered |
//! | a frame unmasked, with reserved bits, or a control frame over 125 bytes | 1002 |
//! | a frame's bytes slower than the frame timeout | 1008 |
//! | a binary message that is not one whole frame | 1007 |
//!
//! A ping is answered with a pong (`Inbound::Owed`); a pong is ignored; a close is answered
//! with a close and ends the connection. The server's own ends close with 1000 (the session is
//! over), 1001 (the server stops) or 4000 + the protocol's error kind.
//!
//! It must not decide anything about rounds, and must not write: rendering fills a buffer.

use std::time::{Duration, Instant};

use futures::AsyncReadExt;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};

use super::codec::{Inbound, Wire};
use crate::close::Discard;
use crate::protocol::{self, ErrorKind, ReadError, Version, HEADER_LEN, MAX_FRAME_LEN};
use crate::round::Outbound;
use crate::rt;
use crate::stamp::StampedStream;
use crate::wire::framed::{inbound, render_frame};

/// The largest binary message: one whole frame, its length prefix included.
pub const MAX_MESSAGE: usize = HEADER_LEN + MAX_FRAME_LEN as usize;

/// The largest WebSocket frame header (RFC 6455, 5.2).
const MAX_WS_HEADER: usize = 14;

/// The largest control frame payload (RFC 6455, 5.5).
const MAX_CONTROL: usize = 125;

/// A browser connection's read half, and the WebSocket framing of what it is sent.
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 256;

pub(crate) struct WebSocket {
    input: StampedStream,
    /// Bytes received and not yet taken, starting at a WebSocket frame boundary.
    buf: Vec<u8>,
    frame_timeout: Duration,
    /// When the frame being received must be complete; set by its first byte.
    deadline: Option<Instant>,
    version: Version,
    kernel_rtt: bool,
    /// The payload of a ping to answer.
    pong: Option<Vec<u8>>,
    /// The close frame to send last: set by a rule broken, an error told, or the peer's close.
    close: Option<(u16, String)>,
    /// A close frame has been rendered: nothing follows it.
    closed: bool,
    discarded: u64,
}

/// Why a frame was refused: the protocol's words, and the close code.
struct Refusal {
    kind: ErrorKind,
    code: u16,
    message: String,
}

impl WebSocket {
    /// Wraps the read half of an upgraded connection; `rest` is what arrived after the request.
    pub(crate) fn new(input: StampedStream, rest: Vec<u8>, frame_timeout: Duration) -> WebSocket {
        WebSocket {
            input,
            deadline: (!rest.is_empty()).then(|| Instant::now() + frame_timeout),
            buf: rest,
            frame_timeout,
            version: Version::NEWEST,
            kernel_rtt: true,
            pong: None,
            close: None,
            closed: false,
            discarded: 0,
        }
    }

    /// Whether to read the kernel's round trip for the quiz (off behind a proxy).
    pub(crate) fn with_kernel_rtt(mut self, on: bool) -> WebSocket {
        self.kernel_rtt = on;
        self
    }

    fn refuse(&mut self, refusal: Refusal) -> Inbound {
        self.close = Some((refusal.code, refusal.message.clone()));
        Inbound::Bad {
            kind: refusal.kind,
            message: refusal.message,
        }
    }

    /// The next whole WebSocket frame in the buffer: its header and unmasked payload.
    fn parse_buffered(&mut self) -> Result<Option<(FrameHeader, Vec<u8>)>, Refusal> {
        let protocol_error = |message: &str| Refusal {
            kind: ErrorKind::Protocol,
            code: 1002,
            message: message.to_owned(),
        };
        let mut cursor = std::io::Cursor::new(&self.buf[..]);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(None),
            Err(e) => return Err(protocol_error(&format!("a bad WebSocket frame: {e}"))),
        };
        let start = cursor.position() as usize;
        let control = matches!(header.opcode, OpCode::Control(_));
        let limit = if control { MAX_CONTROL } else { MAX_MESSAGE };
        // Before a byte of payload is held: the declared length against the limit.
        if len > limit as u64 {
            if control {
                return Err(protocol_error("a control frame over 125 bytes"));
            }
            return Err(Refusal {
                kind: ErrorKind::Malformed,
                code: 1009,
                message: format!(
                    "a message of {len} bytes; one frame is at most {MAX_MESSAGE} bytes"
                ),
            });
        }
        let Some(mask) = header.mask else {
            return Err(protocol_error("a browser's frames must be masked"));
        };
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(protocol_error("reserved bits set: no extension was agreed"));
        }
        let end = start + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let mut payload: Vec<u8> = self.buf[start..end].to_vec();
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        self.buf.drain(..end);
        if self.buf.is_empty() {
            // An idle player keeps no buffer: a burst's capacity would stay with it otherwise.
            self.buf = Vec::new();
        }
        self.deadline = (!self.buf.is_empty()).then(|| Instant::now() + self.frame_timeout);
        Ok(Some((header, payload)))
    }

    /// What a whole frame means; `None` for one that asks nothing of the connection (a pong).
    fn interpret(&mut self, header: FrameHeader, payload: Vec<u8>) -> Option<Inbound> {
        if !header.is_final || header.opcode == OpCode::Data(Data::Continue) {
            return Some(self.refuse(Refusal {
                kind: ErrorKind::Protocol,
                code: 1008,
                message: "a fragmented message: send each frame as one binary message".into(),
            }));
        }
        match header.opcode {
            OpCode::Data(Data::Binary) => match protocol::decode_whole(&payload) {
                Ok(frame) => {
                    let stream = &self.input;
                    let kernel_rtt = self.kernel_rtt;
                    Some(inbound(
                        frame,
                        || stream.arrival().unwrap_or_else(Instant::now),
                        || kernel_rtt.then(|| stream.min_rtt()).flatten(),
                    ))
                }
                Err(e) => Some(self.refuse(Refusal {
                    kind: e.kind(),
                    code: 1007,
                    message: format!("a binary message that is not one frame: {e}"),
                })),
            },
            OpCode::Data(_) => Some(self.refuse(Refusal {
                kind: ErrorKind::Protocol,
                code: 1003,
                message: "a text message: arrival's frames travel as binary messages".into(),
            })),
            OpCode::Control(Control::Ping) => {
                self.pong = Some(payload);
                Some(Inbound::Owed)
            }
            OpCode::Control(Control::Close) => {
                // Answered with its own code (RFC 6455, 5.5.1), or a plain normal close.
                let code = match payload.get(..2) {
                    Some(&[a, b]) => u16::from_be_bytes([a, b]),
                    _ => 1000,
                };
                let code = if is_sendable(code) { code } else { 1000 };
                self.close.get_or_insert((code, String::new()));
                Some(Inbound::Closed)
            }
            _ => None,
        }
    }
}

/// A close code a server may send (RFC 6455, 7.4): not one reserved for local use.
fn is_sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// The close code for ending with the protocol's `kind`: 4000 plus its index.
fn close_code(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::ShuttingDown => 1001,
        kind => 4000 + kind as u16,
    }
}

/// Appends one unmasked WebSocket frame (server to client) to `out`.
fn frame_into(frame: Frame, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = frame.format(out);
}

impl Wire for WebSocket {
    const HANDSHAKE: bool = true;

    async fn next(&mut self) -> Inbound {
        loop {
            match self.parse_buffered() {
                Ok(Some((header, payload))) => match self.interpret(header, payload) {
                    Some(inbound) => return inbound,
                    None => continue,
                },
                Ok(None) => {}
                Err(refusal) => return self.refuse(refusal),
            }
            // Small: it is part of every waiting player's future, and a player's messages are
            // a few bytes (a bigger one takes a few reads).
            let mut chunk = [0u8; READ_CHUNK];
            let read = match self.deadline {
                None => Some(self.input.read(&mut chunk).await),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    rt::bounded(left, self.input.read(&mut chunk)).await
                }
            };
            match read {
                None => {
                    let message = format!(
                        "a WebSocket frame took more than {} s to arrive",
                        self.frame_timeout.as_secs_f64()
                    );
                    return self.refuse(Refusal {
                        kind: ErrorKind::Timeout,
                        code: 1008,
                        message,
                    });
                }
                Some(Ok(0)) if self.buf.is_empty() => return Inbound::Closed,
                Some(Ok(0)) => {
                    return Inbound::Bad {
                        kind: ErrorKind::Malformed,
                        message: ReadError::Truncated {
                            have: self.buf.len(),
                            need: self.buf.len() + 1,
                        }
                        .to_string(),
                    }
                }
                Some(Ok(n)) => {
                    if self.buf.is_empty() {
                        self.deadline = Some(Instant::now() + self.frame_timeout);
                    }
                    // Never more than one frame's worth and a header: a longer frame was
                    // refused by its header before its payload is held.
                    if self.buf.len() + n > MAX_MESSAGE + MAX_WS_HEADER + chunk.len() {
                        return self.refuse(Refusal {
                            kind: ErrorKind::Malformed,
                            code: 1009,
                            message: "more than one frame's bytes at once".into(),
                        });
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Inbound::Failed("reset the connection".into())
                }
                Some(Err(e)) => return Inbound::Failed(format!("connection failed: {e}")),
            }
        }
    }

    fn negotiated(&mut self, version: Version) {
        self.version = version;
    }

    fn render(&mut self, event: &Outbound, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        let mut frame = Vec::new();
        render_frame(event, self.version, &mut frame);
        if !frame.is_empty() {
            frame_into(Frame::message(frame, OpCode::Data(Data::Binary), true), out);
        }
        match event.shared() {
            Outbound::Ended { kind, message } => {
                self.close
                    .get_or_insert_with(|| (close_code(*kind), message.clone()));
            }
            Outbound::SessionOver { .. } | Outbound::Verdict { last: true, .. } => {
                self.close.get_or_insert_with(|| (1000, String::new()));
            }
            _ => {}
        }
    }

    fn owed(&mut self, out: &mut Vec<u8>) {
        if let Some(payload) = self.pong.take().filter(|_| !self.closed) {
            frame_into(Frame::pong(payload), out);
        }
    }

    fn farewell(&mut self, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        self.closed = true;
        let (code, reason) = self.close.take().unwrap_or((1000, String::new()));
        // A close frame's reason is at most 123 bytes; cut at a character boundary.
        let mut cut = reason.len().min(MAX_CONTROL - 2);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let close = CloseFrame {
            code: CloseCode::from(code),
            reason: reason[..cut].into(),
        };
        frame_into(Frame::close(Some(close)), out);
    }
}

impl Discard for WebSocket {
    async fn discard(&mut self) {
        self.buf = Vec::new();
        crate::close::discard_until_eof(&mut self.input, &mut self.discarded).await;
    }

    fn discarded(&self) -> u64 {
        self.discarded
    }
}
