//! The framed wire: protocol v1 (`PROTOCOL.md`) on a server connection.
//!
//! Owns the translation between frames and the connection's events: `Hello`, `Message` and
//! `Chat` in; the round's events out as `Welcome`, `Connected`, `Ack`, `Error` and the chat
//! frames. Framing itself is `protocol`'s.

use std::time::{Duration, Instant};

use super::{Inbound, Wire};
use crate::protocol::{self, ErrorKind, Frame, FrameReader, FrameRef, ReadError, PROTOCOL_VERSION};
use crate::round::Outbound;
use crate::stamp::StampedStream;

/// A framed connection's read half.
pub(crate) struct Framed {
    frames: FrameReader<StampedStream>,
    /// The version the handshake settled on; `Welcome` says it.
    version: u16,
}

impl Framed {
    pub(crate) fn new(input: StampedStream, frame_timeout: Duration) -> Framed {
        Framed {
            frames: FrameReader::new(input).with_frame_timeout(Some(frame_timeout)),
            version: PROTOCOL_VERSION,
        }
    }
}

/// The frame that says `event` (`Welcome` in the newest version; see [`to_frame_in`]).
pub fn to_frame(event: &Outbound) -> Frame {
    to_frame_in(event, PROTOCOL_VERSION)
}

/// The frame that says `event` to a peer speaking protocol `version`.
pub fn to_frame_in(event: &Outbound, version: u16) -> Frame {
    match event {
        Outbound::Admitted => Frame::Welcome { version },
        Outbound::Started { round, label, .. } => Frame::Connected {
            round: *round,
            label: label.clone(),
        },
        Outbound::Verdict { text, order, .. } => Frame::Ack {
            text: text.to_string(),
            order: order.to_vec(),
        },
        Outbound::ChatOpen => Frame::ChatOpen,
        Outbound::Relayed { from, line } => Frame::Relayed {
            from: from.clone(),
            line: line.clone(),
        },
        Outbound::ChatOver { message } => Frame::ChatOver {
            message: message.clone(),
        },
        Outbound::Ended { kind, message } => Frame::error(*kind, message.clone()),
        Outbound::Ping { seq, .. } => Frame::Ping { seq: *seq },
        Outbound::Go { round, .. } => Frame::Go { round: *round },
        Outbound::RoundResult(r) => Frame::Result(r.clone()),
        Outbound::SessionOver { scores } => Frame::SessionOver {
            scores: scores.clone(),
        },
    }
}

impl Wire for Framed {
    const HANDSHAKE: bool = true;

    async fn next(&mut self) -> Inbound {
        match self.frames.read_frame().await {
            Ok(Some(Frame::Hello { version, room })) => Inbound::Hello { version, room },
            Ok(Some(Frame::Message { name })) => Inbound::Message {
                name,
                // When the kernel received it; when we read it only if the kernel cannot say.
                at: self.frames.get_ref().arrival().unwrap_or_else(Instant::now),
            },
            Ok(Some(Frame::Chat { line })) => Inbound::Chat { line },
            Ok(Some(Frame::Join {
                version,
                room,
                name,
            })) => Inbound::Join(Box::new(super::JoinRequest {
                version,
                room,
                name,
            })),
            Ok(Some(Frame::Pong { seq })) => Inbound::Pong {
                seq,
                at: self.frames.get_ref().arrival().unwrap_or_else(Instant::now),
            },
            Ok(Some(Frame::Answer)) => Inbound::Answer {
                at: self.frames.get_ref().arrival().unwrap_or_else(Instant::now),
            },
            Ok(Some(other)) => Inbound::Bad {
                kind: ErrorKind::Protocol,
                message: format!("unexpected {} frame from a client", other.kind_name()),
            },
            Ok(None) => Inbound::Closed,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                Inbound::Failed("reset the connection".into())
            }
            Err(ReadError::Io(e)) => Inbound::Failed(format!("connection failed: {e}")),
            Err(e) => Inbound::Bad {
                kind: e.kind(),
                message: e.to_string(),
            },
        }
    }

    fn negotiated(&mut self, version: u16) {
        self.version = version;
    }

    fn render(&self, event: &Outbound, out: &mut Vec<u8>) {
        // Every round's `Connected` and verdict are encoded from the event itself, not from a
        // `Frame` copied out of it.
        let encoded = match event {
            Outbound::Started { round, label, .. } => protocol::encode_into(
                &FrameRef::Connected {
                    round: *round,
                    label,
                },
                out,
            ),
            Outbound::Verdict { text, order, .. } => {
                protocol::encode_into(&FrameRef::Ack { text, order }, out)
            }
            other => protocol::encode_into(&to_frame_in(other, self.version), out),
        };
        // Only a frame over the size limit fails; the limits on names and parties make every
        // verdict fit (checked at start-up), so this is a bug worth a log line, not a panic.
        if let Err(e) = encoded {
            log::error!("cannot encode {:?}: {e}", to_frame(event).kind_name());
        }
    }

    async fn discard(&mut self) {
        self.frames.discard_until_eof().await;
    }

    fn discarded(&self) -> u64 {
        self.frames.discarded()
    }
}
