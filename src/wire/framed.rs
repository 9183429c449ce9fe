//! The framed wire: the protocol of `PROTOCOL.md`, versions 1 to 3, on a server connection.
//!
//! Owns the translation between frames and the connection's events: `Hello`, `Message`, `Chat`
//! and the session's `Join`, `Pong` and `Answer` in (with the kernel's receive time and, for
//! the session, its round-trip figure); the round's and the session's events out as frames of
//! the version the client negotiated (a version-2 client gets `Result`, a version-3 one
//! `Outcome` and `Early`). Framing itself is `protocol`'s.

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
    /// Whether the kernel's round trip describes the client's path (no proxy in between).
    kernel_rtt: bool,
}

impl Framed {
    pub(crate) fn new(input: StampedStream, frame_timeout: Duration) -> Framed {
        Framed {
            frames: FrameReader::new(input).with_frame_timeout(Some(frame_timeout)),
            version: PROTOCOL_VERSION,
            kernel_rtt: true,
        }
    }

    /// Whether to read the kernel's round trip for the quiz: off where the socket's peer is not
    /// the player (a TCP-terminating proxy), so its figure describes the wrong path.
    pub(crate) fn with_kernel_rtt(mut self, on: bool) -> Framed {
        self.kernel_rtt = on;
        self
    }

    fn kernel_rtt(&self) -> Option<Duration> {
        self.kernel_rtt
            .then(|| self.frames.get_ref().min_rtt())
            .flatten()
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
        Outbound::RoundResult(r) if version >= 3 => Frame::Outcome(Box::new((**r).clone())),
        Outbound::RoundResult(r) => Frame::Result(Box::new(r.to_v2())),
        Outbound::Early { round } => Frame::Early { round: *round },
        Outbound::SessionOver { scores } => Frame::SessionOver {
            scores: scores.to_vec(),
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
                kernel_rtt: self.kernel_rtt(),
            },
            Ok(Some(Frame::Answer)) => Inbound::Answer {
                at: self.frames.get_ref().arrival().unwrap_or_else(Instant::now),
                kernel_rtt: self.kernel_rtt(),
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
            // A session's result and final scores are shared by every party: encoded from the
            // shared copy, not from a copy each.
            Outbound::RoundResult(r) if self.version >= 3 => {
                protocol::encode_into(&FrameRef::Outcome(r), out)
            }
            Outbound::SessionOver { scores } => {
                protocol::encode_into(&FrameRef::SessionOver { scores }, out)
            }
            // A version-2 client has no frame for an early buzz: its next result says it.
            Outbound::Early { .. } if self.version < 3 => return,
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
