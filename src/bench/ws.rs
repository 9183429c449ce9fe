//! A player's connection for the bench, over the framed wire or over a WebSocket as a browser
//! plays: one protocol frame per binary message, masked as a client's must be.
//!
//! Owns only the bench's side of a connection; it must not know the server's internals. The
//! WebSocket reader runs as a task of its own that hands whole frames over a channel, so
//! [`Conn::recv`] can be raced against timers without losing bytes.

use std::io;

use futures::channel::mpsc;
use futures::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};

use crate::client::Link;
use crate::protocol::{self, Frame};
use crate::rt::{self, TcpStream};

/// The most a server's message may be: one whole frame and the WebSocket header.
const MESSAGE_MAX: u64 = protocol::MAX_FRAME_LEN as u64 + 4;

/// A player's connection.
pub enum Conn {
    Framed(Link),
    WebSocket {
        out: TcpStream,
        frames: mpsc::Receiver<Result<Frame, String>>,
    },
}

impl Conn {
    /// Upgrades a connected `std` stream to a WebSocket at `host` (the server's `host:port`,
    /// also the page's origin, as the server checks).
    pub async fn websocket(stream: std::net::TcpStream, host: &str) -> io::Result<Conn> {
        let mut out = rt::stream(stream)?;
        let _ = out.set_nodelay(true);
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        out.write_all(request.as_bytes()).await?;
        // The answer's head, a byte at a time: nothing of a message may be read past it.
        let mut head = Vec::new();
        let mut reader = out.clone();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            reader.read_exact(&mut byte).await?;
            head.push(byte[0]);
            if head.len() > 8192 {
                return Err(io::Error::other("the upgrade's answer never ended"));
            }
        }
        if !head.starts_with(b"HTTP/1.1 101") {
            let line = String::from_utf8_lossy(&head);
            let line = line.lines().next().unwrap_or_default().to_owned();
            return Err(io::Error::other(format!("upgrade refused: {line}")));
        }
        let (tx, frames) = mpsc::channel(64);
        rt::spawn(read_messages(reader, tx));
        Ok(Conn::WebSocket { out, frames })
    }

    /// Writes one frame.
    pub async fn send(&mut self, frame: &Frame) -> io::Result<()> {
        match self {
            Conn::Framed(link) => link.send(frame).await,
            Conn::WebSocket { out, .. } => {
                let bytes = protocol::encode(frame)?;
                let mask = [0x5a, 0xc3, 0x96, 0x0f];
                let mut message = vec![0x82];
                match bytes.len() {
                    n if n < 126 => message.push(0x80 | n as u8),
                    n => {
                        message.push(0x80 | 126);
                        message.extend_from_slice(&(n as u16).to_be_bytes());
                    }
                }
                message.extend_from_slice(&mask);
                message.extend(bytes.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
                out.write_all(&message).await?;
                out.flush().await
            }
        }
    }

    /// The next frame; `Ok(None)` at the end of the connection.
    pub async fn recv(&mut self) -> Result<Option<Frame>, String> {
        match self {
            Conn::Framed(link) => link.recv().await.map_err(|e| e.to_string()),
            Conn::WebSocket { frames, .. } => frames.next().await.transpose(),
        }
    }
}

/// Reads the server's messages (unmasked, never fragmented) until the connection ends, each a
/// whole frame.
async fn read_messages(mut input: TcpStream, mut tx: mpsc::Sender<Result<Frame, String>>) {
    loop {
        let message = async {
            let mut head = [0u8; 2];
            input.read_exact(&mut head).await?;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    input.read_exact(&mut n).await?;
                    u64::from(u16::from_be_bytes(n))
                }
                127 => {
                    let mut n = [0u8; 8];
                    input.read_exact(&mut n).await?;
                    u64::from_be_bytes(n)
                }
                n => u64::from(n),
            };
            if len > MESSAGE_MAX {
                return Err(io::Error::other(format!("a message of {len} bytes")));
            }
            let mut payload = vec![0u8; len as usize];
            input.read_exact(&mut payload).await?;
            Ok::<_, io::Error>((head[0] & 0x0f, payload))
        };
        let sent = match message.await {
            // A binary message: one frame.
            Ok((2, payload)) => {
                tx.send(protocol::decode_whole(&payload).map_err(|e| e.to_string()))
                    .await
            }
            // The server's close: the end.
            Ok((8, _)) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return,
            Err(e) => {
                let _ = tx.send(Err(format!("read: {e}"))).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
