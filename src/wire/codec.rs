//! What every wire shares: the inbound events a wire reads, and the trait a wire implements.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::close::Discard;
use crate::protocol::{ErrorKind, Version};
use crate::round::Outbound;

/// Which wire a server speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WireKind {
    /// Protocol v1, `PROTOCOL.md`.
    #[default]
    Framed,
    /// The assignment's raw text (see [`text`](super::text)).
    Text,
}

impl std::str::FromStr for WireKind {
    type Err = String;
    fn from_str(s: &str) -> Result<WireKind, String> {
        crate::cli::one_of(
            s,
            "a wire format",
            &[("framed", WireKind::Framed), ("text", WireKind::Text)],
        )
    }
}

/// What a peer said, as the connection actor needs it.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// The framed handshake.
    Hello { version: u16, room: Option<String> },
    /// Protocol 2's handshake for a quiz session. Boxed: it is the largest event and comes once,
    /// while every connection's future holds one event's room.
    Join(Box<JoinRequest>),
    /// A session party's answer to a ping; `at` is when it arrived, `kernel_rtt` the kernel's
    /// minimum round trip for the connection (where it gives one and the server trusts it).
    Pong {
        seq: u32,
        at: Instant,
        kernel_rtt: Option<Duration>,
    },
    /// A session's host opens the next round.
    Open,
    /// A session's host ends the session.
    Finish,
    /// A session's host judges a buzz or controls the game (protocol 6).
    Control(crate::protocol::Control),
    /// A session party pressed its buzzer; `at` is when the answer arrived.
    Answer {
        at: Instant,
        kernel_rtt: Option<Duration>,
    },
    /// A party's message; `at` is when it arrived (kernel receive time, or read time).
    Message { name: String, at: Instant },
    /// A chat line.
    Chat { line: String },
    /// The peer closed its sending side between messages (it may still be reading).
    Closed,
    /// The peer broke the wire's rules: it is told `message` (as `kind`) and the connection ends.
    Bad { kind: ErrorKind, message: String },
    /// The socket failed (reset, ...): nothing can be told.
    Failed(String),
    /// The peer asked for something only the wire can answer (a WebSocket ping): the connection
    /// writes what [`Wire::owed`] renders, and reads on.
    Owed,
    /// A browser's HTTP request on the framed port: the connection goes to the web side.
    Web,
}

/// Protocol 2's `Join` (a player) or protocol 4's `Host`, as the connection needs it.
#[derive(Debug)]
pub(crate) struct JoinRequest {
    pub(crate) version: u16,
    pub(crate) room: Option<String>,
    pub(crate) seat: crate::session::Seat,
    /// The host key a `Host` offers.
    pub(crate) key: Option<String>,
}

/// A server connection's codec. See the module docs.
pub(crate) trait Wire: Discard + Send {
    /// Whether a connection must send `Hello` before it is placed in a round.
    const HANDSHAKE: bool;

    /// The next event from the peer. Cancel-safe: dropping it loses no bytes.
    fn next(&mut self) -> impl Future<Output = Inbound> + Send;

    /// Appends the bytes that say `event` to `out` (possibly none).
    fn render(&mut self, event: &Outbound, out: &mut Vec<u8>);

    /// Appends what the wire owes the peer after an [`Inbound::Owed`] (a WebSocket pong).
    fn owed(&mut self, _out: &mut Vec<u8>) {}

    /// Appends the wire's own last words before the connection closes (a WebSocket close
    /// frame), if it has any.
    fn farewell(&mut self, _out: &mut Vec<u8>) {}

    /// The read half and the bytes read but not yet used, for a connection that turned out to
    /// be a browser ([`Inbound::Web`]); `None` for wires that never say that.
    fn into_web(self) -> Option<(crate::stamp::StampedStream, Vec<u8>)>
    where
        Self: Sized,
    {
        None
    }

    /// The peer has sent no byte of its handshake yet (so far as this wire can tell): a
    /// connection a browser opened ahead of need, which must be closed without a word, since the
    /// browser would read any bytes on it as the answer to its next request.
    fn heard_nothing(&self) -> bool {
        false
    }

    /// The handshake settled on protocol `version`.
    fn negotiated(&mut self, _version: Version) {}

    /// The round started and this connection plays as `label` among `labels`.
    fn started(&mut self, _label: &str, _labels: &[String]) {}
}
