//! What a server is told to do: its settings, with the defaults of the assignment.

use std::time::Duration;

use super::cooldown::CooldownConfig;
use crate::round::Style;
use crate::session::SessionConfig;
use crate::transcript::Transcript;
use crate::wire::WireKind as Wire;

/// Server settings. `Default` is the assignment: one round of X and Y, then exit.
#[derive(Debug, Clone)]
pub struct Config {
    /// One label per party of a round.
    pub labels: Vec<String>,
    /// Rounds to run before exiting; 0 runs until the shutdown future resolves. Only rounds that
    /// fill count: a party that joins and leaves never uses one up.
    pub rounds: u64,
    /// Time a new connection has to complete its `Hello`.
    pub handshake_timeout: Duration,
    /// Time from a frame's first byte to its last, and the bound on writing one frame.
    pub frame_timeout: Duration,
    /// Abort a round not complete this long after its first party arrived.
    pub round_timeout: Option<Duration>,
    /// End a chat in which nobody typed for this long.
    pub chat_idle: Option<Duration>,
    /// Time from the round's start (a party learning its label) to that party's message; a
    /// party that has not sent by then is timed out, and its round aborted.
    pub message_timeout: Option<Duration>,
    /// Connections held at once; more are answered `Busy` and closed.
    pub max_connections: usize,
    /// Connections held at once from one IP address (0: no limit); more are answered `Busy`.
    pub max_per_address: usize,
    /// Where the user-facing lines go.
    pub transcript: Transcript,
    /// The assignment's play-by-play, one line per round, or nothing per round.
    pub style: Style,
    /// Arbitrate rounds, or echo bytes back.
    pub mode: Mode,
    /// Length-prefixed frames, or the assignment's raw text.
    pub wire: Wire,
    /// After the acknowledgment, relay chat lines between the parties until one says `Bye`.
    pub chat: bool,
    /// Order by the kernel's receive time (see `stamp`); off, or where the platform has none,
    /// by the time each message was read.
    pub kernel_timestamps: bool,
    /// Quiz sessions: bound each party's round trip by the kernel's figure for its connection
    /// (`TCP_INFO`). Off where the server's peers are not the players (behind a TCP-terminating
    /// proxy): then `Ping`/`Pong` alone, capped by the session's `max_compensation`.
    pub kernel_rtt: bool,
    /// When an address whose connections abort rounds is refused, and for how long.
    pub cooldown: CooldownConfig,
    /// Not empty: every connection starts with a PROXY v2 header from a balancer at one of these
    /// networks (any other peer is refused before a byte is read): the client's address is the
    /// one it names (for the transcript, the logs, `max_per_address` and cooldowns), and the
    /// kernel's round trip is the balancer's, so sessions take round trips from pings alone.
    pub proxy_protocol: Vec<super::proxy::Network>,
    /// Serve the player and host pages, and browsers over WebSocket, on the framed port (see
    /// `web`): a connection whose first bytes are an HTTP request is a browser.
    pub web: bool,
    /// The key a quiz host (protocol 4's `Host`) must offer; `None`: nobody can host.
    pub host_key: Option<String>,
    /// TLS on the framed port (see `tls`): a client whose first byte opens a TLS handshake
    /// speaks everything over TLS (pages, WebSocket, frames); others as before.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The names, besides addresses and `localhost`, pages and WebSocket upgrades may be asked
    /// for under (lowercase, no port): see `web::http::host_allowed`.
    pub web_names: Vec<String>,
    /// How quiz sessions (protocol 2's `Join`) run; `room` and `style` are filled in per session.
    pub session: SessionConfig,
}

/// What the server does with a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Rounds: decide whose message arrived first.
    #[default]
    Arbiter,
    /// RFC 862 echo (see `echo`).
    Echo,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        crate::cli::one_of(
            s,
            "a mode",
            &[("arbiter", Mode::Arbiter), ("echo", Mode::Echo)],
        )
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            labels: vec!["X".into(), "Y".into()],
            rounds: 1,
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(10),
            round_timeout: None,
            chat_idle: Some(Duration::from_secs(300)),
            message_timeout: None,
            max_connections: 1024,
            max_per_address: 256,
            transcript: Transcript::Silent,
            style: Style::Assignment,
            mode: Mode::Arbiter,
            wire: Wire::Framed,
            chat: false,
            kernel_timestamps: true,
            kernel_rtt: true,
            cooldown: CooldownConfig::default(),
            proxy_protocol: Vec::new(),
            web: false,
            host_key: None,
            web_names: Vec::new(),
            tls: None,
            session: SessionConfig::default(),
        }
    }
}

impl Config {
    /// Whether a connection's kernel round trip is its player's: not behind a balancer, whose
    /// kernel figure is the balancer's own.
    pub(crate) fn players_kernel_rtt(&self) -> bool {
        self.kernel_rtt && self.proxy_protocol.is_empty()
    }
}

/// The largest verdict `labels` can produce (every name 64 characters of 4 bytes each) must fit
/// in one frame; returns the largest number of such parties that fits, as an error, if not.
pub fn check_verdict_fits(labels: &[String]) -> Result<(), String> {
    let size = |labels: &[String]| {
        let order: Vec<crate::protocol::Arrival> = labels
            .iter()
            .map(|label| crate::protocol::Arrival {
                label: label.clone(),
                name: "\u{1F980}".repeat(crate::names::MAX_NAME_CHARS),
                after_micros: u64::MAX,
            })
            .collect();
        let text = crate::round::ack_text(&order);
        crate::protocol::encode(&crate::protocol::Frame::Ack { text, order })
            .map_or(usize::MAX, |b| b.len())
    };
    if size(labels) != usize::MAX {
        return Ok(());
    }
    let fits = (1..labels.len())
        .rev()
        .find(|&n| size(&labels[..n]) != usize::MAX)
        .unwrap_or(0);
    Err(format!(
        "a verdict for {} parties with {}-character names would not fit in one {}-byte frame; at \
         most {fits} parties fit",
        labels.len(),
        crate::names::MAX_NAME_CHARS,
        crate::protocol::MAX_FRAME_LEN
    ))
}
