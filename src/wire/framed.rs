//! The framed wire: the protocol of `PROTOCOL.md`, versions 1 to 6, on a server connection.
//!
//! Owns the translation between frames and the connection's events: `Hello`, `Message`, `Chat`
//! and the session's `Join`, `Pong` and `Answer` in (with the kernel's receive time and, for
//! the session, its round-trip figure); the round's and the session's events out as frames of
//! the version the client negotiated (a version-2 client gets `Result`, a version-3 one
//! `Outcome` and `Early`). Framing itself is `protocol`'s.

use std::time::{Duration, Instant};

use super::codec::JoinRequest;
use super::codec::{Inbound, Wire};
use crate::close::Discard;
use crate::protocol::{
    self, window, Cut, ErrorKind, Frame, FrameReader, FrameRef, ReadError, SessionResult, Version,
};
use crate::round::Outbound;
use crate::session::{PlayerSeat, Seat};
use crate::stamp::StampedStream;

/// A framed connection's read half.
pub(crate) struct Framed {
    frames: FrameReader<StampedStream>,
    /// The version the handshake settled on; `Welcome` says it.
    version: Version,
    /// Whether the kernel's round trip describes the client's path (no proxy in between).
    kernel_rtt: bool,
    /// An HTTP request is a browser to hand to the web side (`Inbound::Web`), not bad bytes.
    web: bool,
}

impl Framed {
    pub(crate) fn new(input: StampedStream, frame_timeout: Duration) -> Framed {
        Framed {
            frames: FrameReader::new(input).with_frame_timeout(Some(frame_timeout)),
            version: Version::NEWEST,
            kernel_rtt: true,
            web: false,
        }
    }

    /// Whether a connection that starts with an HTTP request is a browser for the web side.
    pub(crate) fn with_web(mut self, on: bool) -> Framed {
        self.web = on;
        self
    }

    /// Whether to read the kernel's round trip for the quiz: off where the socket's peer is not
    /// the player (a TCP-terminating proxy), so its figure describes the wrong path.
    pub(crate) fn with_kernel_rtt(mut self, on: bool) -> Framed {
        self.kernel_rtt = on;
        self
    }
}

/// The frame that says `event` (`Welcome` in the newest version; see [`to_frame_in`]).
pub fn to_frame(event: &Outbound) -> Frame {
    to_frame_in(event, Version::NEWEST)
}

/// The frame that says `event` to a peer speaking protocol `version`.
pub fn to_frame_in(event: &Outbound, version: Version) -> Frame {
    match event {
        Outbound::Cut { shared, cut } => cut_frame(to_frame_in(shared, version), *cut),
        Outbound::Admitted => Frame::Welcome {
            version: version.number(),
        },
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
        Outbound::RoundResult(r) if version.has_standings() => {
            Frame::Outcome(Box::new(r.in_version(version)))
        }
        Outbound::RoundResult(r) => Frame::Result(Box::new(r.to_v2())),
        Outbound::Early { round } => Frame::Early { round: *round },
        Outbound::Roster { lineup, .. } if version.has_buzz() => {
            Frame::Lineup(Box::new((**lineup).clone()))
        }
        Outbound::Roster { roster, .. } => Frame::Roster(Box::new((**roster).clone())),
        Outbound::Seated { secret } => Frame::Seated {
            secret: secret.clone(),
        },
        Outbound::Buzzes(q) => Frame::Buzzes(Box::new((**q).clone())),
        Outbound::SessionOver {
            why,
            rounds,
            scores,
        } if version.has_hosts() => Frame::Over {
            why: *why,
            rounds: *rounds,
            scores: scores.to_vec(),
        },
        Outbound::SessionOver { scores, .. } => Frame::SessionOver {
            scores: scores.to_vec(),
        },
        Outbound::Rules(ranking) => Frame::Rules { ranking: *ranking },
    }
}

/// `frame`'s lists cut to one reader's window.
fn cut_frame(frame: Frame, cut: Cut) -> Frame {
    match frame {
        Frame::Outcome(o) => Frame::Outcome(Box::new(o.cut(cut))),
        Frame::Result(r) => Frame::Result(Box::new(SessionResult {
            order: window(&r.order, cut.top, cut.own[0]),
            scores: window(&r.scores, cut.top, cut.own[1]),
            ..*r
        })),
        Frame::Lineup(l) => Frame::Lineup(Box::new(l.cut(cut))),
        Frame::Roster(r) => Frame::Roster(Box::new(r.cut(cut))),
        Frame::Buzzes(q) => Frame::Buzzes(Box::new(q.cut(cut))),
        Frame::Over {
            why,
            rounds,
            scores,
        } => Frame::Over {
            why,
            rounds,
            scores: window(&scores, cut.top, cut.own[0]),
        },
        Frame::SessionOver { scores } => Frame::SessionOver {
            scores: window(&scores, cut.top, cut.own[0]),
        },
        other => other,
    }
}

/// What a well-formed frame from a client means to the connection: `at` is when it arrived,
/// `kernel_rtt` the kernel's round trip for the connection (asked only where a frame needs it).
/// Shared by every wire that carries the protocol's frames (this one and the WebSocket).
pub(crate) fn inbound(
    frame: Frame,
    at: impl FnOnce() -> Instant,
    kernel_rtt: impl FnOnce() -> Option<Duration>,
) -> Inbound {
    match frame {
        Frame::Hello { version, room } => Inbound::Hello { version, room },
        // When the kernel received it; when we read it only if the kernel cannot say.
        Frame::Message { name } => Inbound::Message { name, at: at() },
        Frame::Chat { line } => Inbound::Chat { line },
        Frame::Join {
            version,
            room,
            name,
        } => Inbound::Join(Box::new(JoinRequest {
            version,
            room,
            seat: Seat::Player(Box::new(PlayerSeat {
                name,
                team: None,
                secret: None,
            })),
            key: None,
        })),
        Frame::Host { version, room, key } => Inbound::Join(Box::new(JoinRequest {
            version,
            room,
            // A host of protocol 6 can judge buzzes; an older one plays races as before.
            seat: Seat::Host {
                judges: Version::spoken(version).is_ok_and(Version::has_buzz),
            },
            key: Some(key),
        })),
        Frame::Seat {
            version,
            room,
            name,
            team,
            secret,
        } => Inbound::Join(Box::new(JoinRequest {
            version,
            room,
            seat: Seat::Player(Box::new(PlayerSeat { name, team, secret })),
            key: None,
        })),
        Frame::Control(control) => Inbound::Control(control),
        Frame::Open => Inbound::Open,
        Frame::Finish => Inbound::Finish,
        Frame::Pong { seq } => Inbound::Pong {
            seq,
            at: at(),
            kernel_rtt: kernel_rtt(),
        },
        Frame::Answer => Inbound::Answer {
            at: at(),
            kernel_rtt: kernel_rtt(),
        },
        other => Inbound::Bad {
            kind: ErrorKind::Protocol,
            message: format!("unexpected {} frame from a client", other.kind_name()),
        },
    }
}

/// Appends the frame that says `event` to a client of protocol `version` (none, where that
/// version has no such frame). Shared by every wire that carries the protocol's frames.
pub(crate) fn render_frame(event: &Outbound, version: Version, out: &mut Vec<u8>) {
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
        // A session's result, roster and final scores are shared by every party: encoded from
        // the shared copy, not from a copy each, through each reader's window in a big room.
        Outbound::Cut { shared, cut } => return render_shared(shared, *cut, version, out),
        Outbound::RoundResult(_)
        | Outbound::SessionOver { .. }
        | Outbound::Roster { .. }
        | Outbound::Buzzes(_) => return render_shared(event, Cut::ALL, version, out),
        // Older clients have no secret to keep.
        Outbound::Seated { .. } if !version.has_buzz() => return,
        // A version-2 client has no frame for an early buzz: its next result says it.
        Outbound::Early { .. } if !version.has_standings() => return,
        // Older clients have no frame for the rules: they read the result's sentence.
        Outbound::Rules(_) if !version.has_rules() => return,
        other => protocol::encode_into(&to_frame_in(other, version), out),
    };
    // Only a frame over the size limit fails; the limits on names and parties make every
    // verdict fit (checked at start-up), so this is a bug worth a log line, not a panic.
    if let Err(e) = encoded {
        log::error!("cannot encode {:?}: {e}", to_frame(event).kind_name());
    }
}

/// Appends the frame that says `event`, a session's shared list, to a client of `version`
/// through its window `cut`.
fn render_shared(event: &Outbound, cut: Cut, version: Version, out: &mut Vec<u8>) {
    let encoded = match event {
        Outbound::RoundResult(r) if version.has_standings() && r.fits(version) => {
            protocol::encode_into(&FrameRef::Outcome(r, cut), out)
        }
        Outbound::SessionOver {
            why,
            rounds,
            scores,
        } if version.has_hosts() => {
            let (why, rounds) = (*why, *rounds);
            let over = FrameRef::Over {
                why,
                rounds,
                scores,
                cut,
            };
            protocol::encode_into(&over, out)
        }
        Outbound::SessionOver { scores, .. } => {
            protocol::encode_into(&FrameRef::SessionOver { scores, cut }, out)
        }
        Outbound::Roster { lineup, .. } if version.has_buzz() => {
            protocol::encode_into(&FrameRef::Lineup(lineup, cut), out)
        }
        Outbound::Roster { roster, .. } if version.has_hosts() && cut == Cut::ALL => {
            protocol::encode_into(&FrameRef::Roster(roster), out)
        }
        // Older clients have no frame for the roster: they play as before.
        Outbound::Roster { .. } if !version.has_hosts() => return,
        Outbound::Buzzes(q) if version.has_buzz() => {
            protocol::encode_into(&FrameRef::Buzzes(q, cut), out)
        }
        // Older clients have no frames for buzz mode.
        Outbound::Buzzes(_) => return,
        other => protocol::encode_into(&cut_frame(to_frame_in(other, version), cut), out),
    };
    if let Err(e) = encoded {
        log::error!("cannot encode {:?}: {e}", to_frame(event).kind_name());
    }
}

/// The first four bytes of an HTTP request, as a frame reader sees them (a length no frame
/// has): a method's capital letters, or a short one and its space. Any method, known or not, goes
/// to the web side, which answers what it does not serve in HTTP (`405`, `501`).
pub(crate) fn is_http_method(head: &str) -> bool {
    let method = head.strip_suffix(' ').unwrap_or(head);
    let method = method.strip_suffix(' ').unwrap_or(method);
    !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase())
}

impl Wire for Framed {
    const HANDSHAKE: bool = true;

    async fn next(&mut self) -> Inbound {
        match self.frames.read_frame().await {
            Ok(Some(frame)) => {
                let stream = self.frames.get_ref();
                let kernel_rtt = self.kernel_rtt;
                inbound(
                    frame,
                    || stream.arrival().unwrap_or_else(Instant::now),
                    || kernel_rtt.then(|| stream.min_rtt()).flatten(),
                )
            }
            Ok(None) => Inbound::Closed,
            Err(ReadError::Text { head }) if self.web && is_http_method(&head) => Inbound::Web,
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

    fn negotiated(&mut self, version: Version) {
        self.version = version;
    }

    fn render(&mut self, event: &Outbound, out: &mut Vec<u8>) {
        render_frame(event, self.version, out);
    }

    fn into_web(self) -> Option<(StampedStream, Vec<u8>)> {
        Some(self.frames.into_parts())
    }

    fn heard_nothing(&self) -> bool {
        self.frames.buffered() == 0
    }
}

impl Discard for Framed {
    async fn discard(&mut self) {
        self.frames.discard_until_eof().await;
    }

    fn discarded(&self) -> u64 {
        self.frames.discarded()
    }
}
