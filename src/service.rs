//! What `arrival-server` is told on its command line, and the policy that turns it into a
//! server's settings: a service's defaults, when browsers are served, the host key, the session
//! settings, the summary line and the exit status. The binary parses arguments, installs
//! signals, binds, prints and exits; everything it decides is here, with unit tests.
//!
//! It must not run anything: it only reads arguments and a run's summary.

use std::time::Duration;

use structopt::StructOpt;

use crate::cli::{labels_for, parse_seconds};
use crate::round::Style;
use crate::server::{check_verdict_fits, cooldown::CooldownConfig, Config, Mode, Summary, Wire};
use crate::session::{HostedMode, Jitter, Order, SessionConfig};
use crate::transcript::Transcript;

/// Exit statuses (also in docs/operations.md).
pub const EXIT_ROUND_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_CANNOT_START: i32 = 3;

/// A service-mode round that has not completed after this long is aborted, unless told otherwise.
const SERVICE_ROUND_TIMEOUT: Duration = Duration::from_secs(60);
/// A service-mode party that has not sent its message this long after learning its label is
/// timed out, unless told otherwise: a party that never sends cannot hold a round.
const SERVICE_MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, StructOpt)]
#[structopt(
    name = "arrival-server",
    about = "Waits for every party, then tells all of them whose message arrived first. Clients \
             that join with `arrival-client --stay` play quiz sessions instead: many rounds in a \
             room, with scores.",
    after_help = "Durations take units (5s, 250ms, 2m) or bare seconds, at most one day. Exit \
                  statuses: 0 every round completed and every acknowledgment was delivered (with \
                  --rounds 0, a stop by signal is the normal end); 1 a round was aborted or an \
                  acknowledgment not delivered; 2 usage; 3 cannot listen; 130 / 143 stopped by \
                  SIGINT / SIGTERM before its rounds were done."
)]
pub struct ServerArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed)
    #[structopt(long, default_value = "127.0.0.1:12000")]
    pub addr: String,
    /// `arbiter` decides arrival order; `echo` sends every byte back (RFC 862) until stopped
    #[structopt(long, default_value = "arbiter")]
    pub mode: Mode,
    /// `framed` (arrival's protocol, versions 1 to 5: PROTOCOL.md) or `text` (the assignment's raw
    /// text; works with nc)
    #[structopt(long, default_value = "framed")]
    pub wire: Wire,
    /// After the acknowledgment, relay lines between the parties until one says `Bye` (framed wire
    /// only: the assignment's text clients close after the acknowledgment)
    #[structopt(long)]
    pub chat: bool,
    /// Rounds to run before exiting; 0 runs until SIGINT/SIGTERM
    #[structopt(long, default_value = "1")]
    pub rounds: u64,
    /// Parties per round, labelled X, Y, Z, A, B, ... [default: 2]
    #[structopt(long, conflicts_with = "labels")]
    pub parties: Option<usize>,
    /// Labels of a round's parties, comma-separated, in the order connections take them [default: X,Y]
    #[structopt(long, use_delimiter = true)]
    pub labels: Option<Vec<String>>,
    /// Seconds a new connection has to complete its handshake and be placed in a round
    #[structopt(long, default_value = "10", parse(try_from_str = parse_seconds))]
    pub handshake_timeout: Duration,
    /// Seconds a frame may take from its first byte to its last (and a write may take)
    #[structopt(long, default_value = "10", parse(try_from_str = parse_seconds))]
    pub frame_timeout: Duration,
    /// Abort a round that has not completed this many seconds after its first party arrived; 0
    /// never [default: never with --rounds 1, 60 otherwise]
    #[structopt(long, parse(try_from_str = parse_seconds))]
    pub round_timeout: Option<Duration>,
    /// End a chat in which nobody has typed for this many seconds; 0 never
    #[structopt(long, default_value = "300", parse(try_from_str = parse_seconds))]
    pub chat_idle: Duration,
    /// Seconds a party has to send its message once told its label; then it is timed out and
    /// its round aborted; 0 never [default: never with --rounds 1, 60 otherwise]
    #[structopt(long, parse(try_from_str = parse_seconds))]
    pub message_timeout: Option<Duration>,
    /// Quiz sessions (clients joining with `arrival-client --stay`): rank a round's answers by
    /// `arrival` or by `reaction` time (arrival minus each party's measured round trip)
    #[structopt(long, default_value = "arrival")]
    pub order: Order,
    /// Quiz sessions with a host: `buzz` (the host sees each buzz as it lands and judges the
    /// answer) or `race` (the fastest answer scores, as in a session without a host)
    #[structopt(long, default_value = "buzz")]
    pub hosted_mode: HostedMode,
    /// Quiz sessions: rounds before a session ends
    #[structopt(long, default_value = "5")]
    pub session_rounds: u64,
    /// Quiz sessions: seconds between rounds, spent measuring each party's round trip
    #[structopt(long, default_value = "2", parse(try_from_str = parse_seconds))]
    pub session_pause: Duration,
    /// Quiz sessions: seconds a round waits for answers
    #[structopt(long, default_value = "10", parse(try_from_str = parse_seconds))]
    pub answer_timeout: Duration,
    /// Quiz sessions: after the pause, `Go` waits a further random time in this range (`LOW..HIGH`,
    /// or one duration; 0 for none), so no client can time an answer to a go it has not seen
    #[structopt(long, default_value = "1s..4s")]
    pub go_jitter: Jitter,
    /// Quiz sessions with a host: once the host opens a round, `Go` waits a random time in this
    /// range after the pause, so no client can time it from what the server sent before
    #[structopt(long, default_value = "0.5s..3s")]
    pub hosted_jitter: Jitter,
    /// Quiz sessions: points an early press or a false start costs, besides the round (scores
    /// stop at zero); the host page can change it
    #[structopt(long, default_value = "1")]
    pub early_penalty: u64,
    /// Quiz sessions, reaction order: an answer with a reaction time below this is a false start
    /// (the sprint start rule); 0 turns the rule off
    #[structopt(long, default_value = "100ms", parse(try_from_str = parse_seconds))]
    pub min_reaction: Duration,
    /// Quiz sessions: where a party's round trip comes from. `kernel` bounds what Ping/Pong show
    /// by the kernel's own figure for the connection (TCP_INFO), falling back to `ping` where there
    /// is none; `ping` trusts Ping/Pong alone, capped by --max-compensation (use it behind a
    /// TCP-terminating proxy, whose kernel figure is the proxy's, not the player's)
    #[structopt(long, default_value = "kernel")]
    pub rtt_source: RttPolicy,
    /// Quiz sessions: how far a party's Ping/Pong round trip may exceed the kernel's figure
    #[structopt(long, default_value = "5ms", parse(try_from_str = parse_seconds))]
    pub rtt_slack: Duration,
    /// Quiz sessions: the most round trip compensated, whatever measured it (a player that
    /// controls its own network stack can make even the kernel's figure look longer)
    #[structopt(long, default_value = "150ms", parse(try_from_str = parse_seconds))]
    pub max_compensation: Duration,
    /// Rounds an address's connections may abort (leaving before their message, or sending none
    /// in time) before it is refused for a while; 0 never refuses. Once is never refused
    #[structopt(long, default_value = "2")]
    pub cooldown_strikes: u32,
    /// The first refusal of an address that aborts rounds; each further abort doubles it
    #[structopt(long, default_value = "10s", parse(try_from_str = parse_seconds))]
    pub cooldown: Duration,
    /// The longest refusal of an address that aborts rounds
    #[structopt(long, default_value = "10m", parse(try_from_str = parse_seconds))]
    pub cooldown_max: Duration,
    /// An address's aborted rounds are forgotten after this long without one (or at once when
    /// it completes a round with another address)
    #[structopt(long, default_value = "10m", parse(try_from_str = parse_seconds))]
    pub cooldown_forget: Duration,
    /// Behind balancers at these addresses or networks (`127.0.0.1`, `10.0.0.0/8`, comma
    /// separated): every connection starts with a PROXY protocol v2 header (HAProxy's
    /// send-proxy-v2) and the client's address is the one it names (transcript, logs,
    /// --max-per-address, cooldowns); a connection from any other peer is refused with a log
    /// line before a byte is read, and one without a valid header is closed with a log line;
    /// quiz round trips come from pings alone (the kernel sees the balancer)
    #[structopt(long, use_delimiter = true, min_values = 1)]
    pub proxy_protocol: Vec<crate::server::Network>,
    /// Browsers on the same port: the player page (/), the host page (/host) and their
    /// WebSocket. `auto` is on for a service (--rounds other than 1) on the framed wire, where a
    /// quiz night wants phones to join with no install; off for the assignment's one round,
    /// which a browser's session would use up, and for echo and the text wire
    #[structopt(long, default_value = "auto")]
    pub web: WebPolicy,
    /// The room the printed player and host links open
    #[structopt(long, default_value = "quiz")]
    pub web_room: String,
    /// The key the host page (or any quiz host) must give to open rounds and end sessions: 16
    /// to 128 letters, digits, `-` or `_`. A flag is visible to every user of the machine
    /// (`ps`); a service takes it from the environment or --host-key-file [default: a random
    /// one, shown in the host link only when standard output is a terminal]
    #[structopt(long, env = "ARRIVAL_HOST_KEY", hide_env_values = true)]
    pub host_key: Option<String>,
    /// Where players reach the server, as the printed links and QR codes should say:
    /// `https://quiz.example.org` (a balancer's or TLS name, with a port if not the scheme's);
    /// its name is one the pages are served under (see --allow-host) [default: the bound address]
    #[structopt(long)]
    pub public_url: Option<PublicUrl>,
    /// A name the pages and their WebSocket may be asked for under, besides the server's
    /// addresses, `localhost` and --public-url's name; any other `Host` is refused (421, 403), so
    /// a site rebinding its name to this server's address gets nothing. Repeat for more names
    #[structopt(long, number_of_values = 1)]
    pub allow_host: Vec<String>,
    /// Answer the balancer's agent check (HAProxy `agent-check`) on this address: `ready up 100%`,
    /// or `ready up 0%` at --max-connections (no new rooms, and still up), or `drain` after
    /// SIGUSR1
    #[structopt(long)]
    pub agent_addr: Option<String>,
    /// TLS on the server's port: the certificate chain (PEM) it presents. A client that opens
    /// with a TLS handshake speaks everything over it (pages over https, the WebSocket over wss,
    /// frames over TLS); plain clients are served as before. Round trips and arrival times stay
    /// the kernel's (docs/fairness.md). Needs --tls-key
    #[structopt(long, parse(from_os_str))]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[structopt(long, parse(from_os_str))]
    pub tls_key: Option<std::path::PathBuf>,
    /// A file whose first line is the host key (see --host-key)
    #[structopt(long, parse(from_os_str))]
    pub host_key_file: Option<std::path::PathBuf>,
    /// Connections held at once; further ones are told the server is busy and closed
    #[structopt(long, default_value = "1024")]
    pub max_connections: usize,
    /// Quiz sessions: players present before a round opens by itself (without a host): a
    /// lecture hall's quiz starts once its room is full [default: --parties, else 2]
    #[structopt(long)]
    pub min_players: Option<usize>,
    /// Quiz sessions: players one room seats at most (held seats count); the next is refused
    /// with the reason. Each is a connection too: --max-connections bounds them all
    #[structopt(long, default_value = "100000")]
    pub max_players: usize,
    /// Connections held at once from one IP address; further ones are told the server is busy;
    /// 0 no limit
    #[structopt(long, default_value = "256")]
    pub max_per_address: usize,
    /// Executor threads; 0 one per core. One was measured cheapest and fastest
    /// (docs/performance.md): the server's time is mostly the kernel's, and more threads add
    /// wake-ups
    #[structopt(long, default_value = "1")]
    pub threads: usize,
    /// Service mode: print no line per round, only the summary when the server stops
    #[structopt(short, long)]
    pub quiet: bool,
    /// Log diagnostics to stderr, with timestamps: -v warnings, -vv info, -vvv debug
    #[structopt(short, long, parse(from_occurrences))]
    pub verbose: u8,
}

/// Whether browsers are served (`--web`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebPolicy {
    Auto,
    On,
    Off,
}

impl std::str::FromStr for WebPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<WebPolicy, String> {
        crate::cli::one_of(
            s,
            "a web setting",
            &[
                ("auto", WebPolicy::Auto),
                ("on", WebPolicy::On),
                ("off", WebPolicy::Off),
            ],
        )
    }
}

/// Where quiz sessions take a party's round trip from (`--rtt-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RttPolicy {
    Kernel,
    Ping,
}

impl std::str::FromStr for RttPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<RttPolicy, String> {
        crate::cli::one_of(
            s,
            "a round-trip source",
            &[("kernel", RttPolicy::Kernel), ("ping", RttPolicy::Ping)],
        )
    }
}

/// What a server is to be, decided from its arguments.
#[derive(Debug)]
pub struct Service {
    pub addr: String,
    pub config: Config,
    /// The room the printed links open.
    pub web_room: String,
    /// The host key, also in `config`.
    pub host_key: String,
    /// Whether the server drew the key itself: nobody knows it but whoever sees the host link.
    pub host_key_drawn: bool,
    /// What the printed links start with, if not the bound address.
    pub public_url: Option<PublicUrl>,
    /// Where the balancer's agent check is answered.
    pub agent_addr: Option<String>,
    /// Executor threads, and how much to log.
    pub threads: usize,
    pub verbose: u8,
}

impl ServerArgs {
    /// The server these arguments ask for, writing its transcript to `transcript`; a one-line
    /// reason where they are not a usable combination.
    pub fn service(self, transcript: Transcript) -> Result<Service, String> {
        let labels = self.labels()?;
        check_verdict_fits(&labels)?;
        let web = self.web()?;
        crate::names::validate(&self.web_room).map_err(|e| format!("--web-room {e}"))?;
        let given = given_host_key(self.host_key.clone(), self.host_key_file.as_deref())?;
        let host_key_drawn = given.is_none();
        let host_key = host_key(given)?;
        let mut config = self.config(labels, web, &host_key, transcript);
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) if self.wire == Wire::Framed && self.mode == Mode::Arbiter => {
                Some(crate::tls::load(cert, key)?)
            }
            (Some(_), Some(_)) => {
                return Err("--tls-cert needs the framed wire and --mode arbiter".into())
            }
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        Ok(Service {
            addr: self.addr,
            config,
            web_room: self.web_room,
            host_key,
            host_key_drawn,
            public_url: self.public_url.clone(),
            agent_addr: self.agent_addr.clone(),
            threads: self.threads,
            verbose: self.verbose,
        })
    }

    /// The labels of a round's parties, checked.
    fn labels(&self) -> Result<Vec<String>, String> {
        let labels = match (&self.labels, self.parties) {
            (Some(labels), _) => labels.clone(),
            (None, parties) => labels_for(parties.unwrap_or(2)),
        };
        if self.chat && self.wire == Wire::Text {
            return Err(
                "--chat needs the framed wire (the text wire closes after the \
                        acknowledgment)"
                    .into(),
            );
        }
        if self.chat && self.mode == Mode::Echo {
            return Err("--chat is for rounds; an echo server (--mode echo) has no chat".into());
        }
        check_labels(&labels)?;
        Ok(labels)
    }

    /// The names pages are served under besides addresses and `localhost`: the listed ones and
    /// the public URL's.
    fn web_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .allow_host
            .iter()
            .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        names.extend(self.public_url.as_ref().map(PublicUrl::name));
        names
    }

    /// Whether browsers are served: `auto` is on for a service on the framed wire.
    fn web(&self) -> Result<bool, String> {
        let possible = self.mode == Mode::Arbiter && self.wire == Wire::Framed;
        match self.web {
            WebPolicy::On if !possible => {
                Err("--web on needs --mode arbiter and the framed wire".into())
            }
            WebPolicy::Auto => Ok(possible && self.rounds != 1),
            WebPolicy::On => Ok(true),
            WebPolicy::Off => Ok(false),
        }
    }

    /// An echo server has no rounds: it runs until stopped.
    fn rounds(&self) -> u64 {
        if self.mode == Mode::Echo {
            0
        } else {
            self.rounds
        }
    }

    fn config(&self, labels: Vec<String>, web: bool, key: &str, transcript: Transcript) -> Config {
        let rounds = self.rounds();
        let one_shot = rounds == 1;
        // 0 means never, whatever the mode; a service has a bound unless told otherwise.
        let service_bound = |given: Option<Duration>, default| {
            given
                .or((!one_shot).then_some(default))
                .filter(|t| !t.is_zero())
        };
        Config {
            labels,
            rounds,
            handshake_timeout: self.handshake_timeout,
            frame_timeout: self.frame_timeout,
            round_timeout: service_bound(self.round_timeout, SERVICE_ROUND_TIMEOUT),
            chat_idle: Some(self.chat_idle).filter(|t| !t.is_zero()),
            message_timeout: service_bound(self.message_timeout, SERVICE_MESSAGE_TIMEOUT),
            max_connections: self.max_connections,
            max_per_address: self.max_per_address,
            transcript,
            style: match (one_shot, self.quiet) {
                (true, _) => Style::Assignment,
                (false, false) => Style::Summary,
                (false, true) => Style::Quiet,
            },
            mode: self.mode,
            wire: self.wire,
            chat: self.chat,
            kernel_timestamps: true,
            kernel_rtt: self.rtt_source == RttPolicy::Kernel,
            proxy_protocol: self.proxy_protocol.clone(),
            web,
            host_key: Some(key.to_owned()),
            web_names: self.web_names(),
            tls: None,
            cooldown: CooldownConfig {
                strikes: self.cooldown_strikes,
                first: self.cooldown,
                max: self.cooldown_max.max(self.cooldown),
                forget: self.cooldown_forget,
            },
            session: self.session(),
        }
    }

    fn session(&self) -> SessionConfig {
        SessionConfig {
            // At least two players, or as many as --min-players (else --parties) asks for, or
            // as many as a session seats if that is fewer.
            min_parties: self
                .min_players
                .or(self.parties)
                .unwrap_or(2)
                .max(2)
                .min(self.max_players.max(2)),
            max_parties: self.max_players.max(2),
            rounds: self.session_rounds.max(1),
            order: self.order,
            answer_timeout: self.answer_timeout,
            ping_every: self.session_pause / 5,
            pings: 5,
            go_jitter: self.go_jitter,
            hosted_jitter: self.hosted_jitter,
            early_penalty: self.early_penalty.min(crate::session::config::MAX_POINTS),
            min_reaction: self.min_reaction,
            rtt_slack: self.rtt_slack,
            max_compensation: self.max_compensation,
            buzz: self.hosted_mode == HostedMode::Buzz,
            ..SessionConfig::default()
        }
    }
}

/// Where players reach the server: `http://` or `https://`, a name or address, maybe a port; no
/// path (the pages and the WebSocket are at the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// The URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.0
    }

    /// Its host name, lowercase, without a port.
    pub fn name(&self) -> String {
        let authority = self.0.split_once("://").map_or("", |(_, a)| a);
        let name = if authority.starts_with('[') {
            authority
                .split_once(']')
                .map_or(authority, |(n, _)| n)
                .to_owned()
                + "]"
        } else {
            authority.split(':').next().unwrap_or("").to_owned()
        };
        name.to_ascii_lowercase()
    }
}

impl std::str::FromStr for PublicUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<PublicUrl, String> {
        let url = s.trim().trim_end_matches('/');
        let bad = || {
            format!(
                "{s:?} is not a server's URL: http:// or https://, a name, maybe a port, no path"
            )
        };
        let (scheme, authority) = url.split_once("://").ok_or_else(bad)?;
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !authority.ends_with(']') => (h, Some(p)),
            _ => (authority, None),
        };
        let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            v6.parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        };
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        if !host_ok || !port_ok {
            return Err(bad());
        }
        Ok(PublicUrl(url.to_owned()))
    }
}

/// The shortest host key taken: 16 characters of an alphabet of 64 are 96 bits, far beyond
/// guessing at the few tries an hour an address gets (a 2-character key fell in under a second).
pub const MIN_HOST_KEY: usize = 16;

/// The host key given by flag or environment (`--host-key`), or by file (`--host-key-file`),
/// not both; `None` if neither.
pub fn given_host_key(
    key: Option<String>,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, String> {
    match (key, file) {
        (Some(_), Some(_)) => Err(
            "the host key is given twice: --host-key (or ARRIVAL_HOST_KEY) and --host-key-file"
                .into(),
        ),
        (Some(key), None) => Ok(Some(key)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--host-key-file {}: {e}", path.display()))?;
            Ok(Some(text.lines().next().unwrap_or("").trim().to_owned()))
        }
        (None, None) => Ok(None),
    }
}

/// The host key: the one given ([`MIN_HOST_KEY`] to 128 letters, digits, `-` or `_`), or a
/// fresh one from the operating system's random source; without that source no key is made up,
/// and the server does not start.
pub fn host_key(given: Option<String>) -> Result<String, String> {
    match given {
        Some(key)
            if key.len() < MIN_HOST_KEY
                || key.len() > 128
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Err(format!(
                "the host key takes {MIN_HOST_KEY} to 128 letters, digits, - or _ (one of {} \
                 characters was given)",
                key.chars().count()
            ))
        }
        Some(key) => Ok(key),
        None => crate::web::random_key()
            .map_err(|e| format!("no random host key (give one with --host-key): {e}")),
    }
}

fn check_labels(labels: &[String]) -> Result<(), String> {
    if labels.is_empty() {
        return Err("--labels needs at least one label".into());
    }
    for (i, label) in labels.iter().enumerate() {
        crate::names::validate(label).map_err(|e| format!("label {label:?} {e}"))?;
        if labels[..i].contains(label) {
            return Err(format!("label {label:?} is given twice"));
        }
    }
    Ok(())
}

impl Service {
    /// The run's last line on the transcript: none for the assignment's one round.
    pub fn summary_line(&self, summary: &Summary) -> Option<String> {
        match (self.config.mode, self.config.rounds) {
            (Mode::Echo, _) => Some(format!(
                "Summary: {} connections served",
                summary.connections
            )),
            (_, 1) => None,
            _ => Some(format!("Summary: {}", summary.describe())),
        }
    }

    /// The process's exit status after a run that ended with `summary`; `signal` is the signal
    /// that stopped it, if one did. With the one-line message to print, where there is one.
    pub fn exit_status(&self, summary: &Summary, signal: Option<i32>) -> (i32, Option<String>) {
        let rounds = self.config.rounds;
        if summary.interrupted && rounds == 0 {
            // Running until told to stop is what --rounds 0 means: stopping is the normal end.
            return (0, None);
        }
        if summary.interrupted {
            let signal = signal.unwrap_or(libc::SIGINT);
            let message = format!(
                "stopped by {} after {} of {rounds} rounds",
                signal_name(signal),
                summary.rounds_completed,
            );
            return (128 + signal, Some(message));
        }
        match summary.is_clean() {
            true => (0, None),
            false => (EXIT_ROUND_FAILED, None),
        }
    }

    /// Whether a stop by signal is the normal end of this server (it runs until stopped).
    pub fn stop_is_normal(&self) -> bool {
        self.config.rounds == 0
    }
}

/// `SIGTERM` or `SIGINT`.
pub fn signal_name(signal: i32) -> &'static str {
    if signal == libc::SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> ServerArgs {
        let all = std::iter::once("arrival-server").chain(line.iter().copied());
        ServerArgs::from_iter_safe(all).unwrap()
    }

    fn service(line: &[&str]) -> Result<Service, String> {
        args(line).service(Transcript::Silent)
    }

    #[test]
    fn browsers_are_served_by_a_framed_service_and_not_by_the_assignment() {
        assert!(!service(&[]).unwrap().config.web, "the one-shot round");
        assert!(service(&["--rounds", "0"]).unwrap().config.web);
        assert!(
            !service(&["--rounds", "0", "--wire", "text"])
                .unwrap()
                .config
                .web
        );
        assert!(!service(&["--mode", "echo"]).unwrap().config.web);
        assert!(service(&["--web", "on"]).unwrap().config.web);
        assert_eq!(
            service(&["--web", "on", "--mode", "echo"]).unwrap_err(),
            "--web on needs --mode arbiter and the framed wire"
        );
    }

    #[test]
    fn a_service_bounds_its_rounds_unless_told_never() {
        let one = service(&[]).unwrap().config;
        assert_eq!((one.round_timeout, one.message_timeout), (None, None));
        let svc = service(&["--rounds", "0"]).unwrap().config;
        assert_eq!(svc.round_timeout, Some(SERVICE_ROUND_TIMEOUT));
        assert_eq!(svc.message_timeout, Some(SERVICE_MESSAGE_TIMEOUT));
        let never = service(&["--rounds", "0", "--round-timeout", "0"])
            .unwrap()
            .config;
        assert_eq!(never.round_timeout, None);
        assert_eq!(svc.style, Style::Summary);
        let quiet = service(&["--rounds", "0", "-q"]).unwrap().config;
        assert_eq!(quiet.style, Style::Quiet);
        assert_eq!(service(&["--mode", "echo"]).unwrap().config.rounds, 0);
    }

    #[test]
    fn host_keys_are_checked_or_drawn_from_the_os() {
        let drawn = host_key(None).unwrap();
        assert_eq!(drawn.len(), 32);
        assert!(drawn.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(drawn, host_key(None).unwrap(), "two draws differ");
        let good = "quiz-night_2026-k3y";
        assert_eq!(host_key(Some(good.into())).unwrap(), good);
        for bad in [
            "",
            "k3y",
            "fifteen-chars15",
            "with space in the key",
            &"k".repeat(129),
        ] {
            assert!(host_key(Some(bad.to_owned())).is_err(), "{bad:?}");
        }
        let file = std::env::temp_dir().join(format!("arrival-key-{}", std::process::id()));
        std::fs::write(&file, format!("{good}\nignored\n")).unwrap();
        assert_eq!(
            given_host_key(None, Some(&file)).unwrap().as_deref(),
            Some(good)
        );
        assert!(given_host_key(Some(good.into()), Some(&file)).is_err());
        std::fs::remove_file(&file).unwrap();
        assert!(given_host_key(None, Some(&file)).is_err(), "a missing file");
    }

    #[test]
    fn bad_combinations_are_usage_errors_in_one_line() {
        for (line, error) in [
            (
                &["--chat", "--wire", "text"][..],
                "--chat needs the framed wire",
            ),
            (&["--chat", "--mode", "echo"][..], "--chat is for rounds"),
            (&["--labels", "X,X"][..], "label \"X\" is given twice"),
            (&["--web-room", "a\u{7}b"][..], "--web-room"),
        ] {
            let e = service(line).unwrap_err();
            assert!(e.starts_with(error), "{line:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_exit_status_says_how_the_run_went() {
        let once = service(&[]).unwrap();
        let clean = Summary {
            rounds_completed: 1,
            rounds_played: 1,
            ..Summary::default()
        };
        assert_eq!(once.exit_status(&clean, None), (0, None));
        let aborted = Summary {
            rounds_aborted: 1,
            ..clean.clone()
        };
        assert_eq!(once.exit_status(&aborted, None).0, EXIT_ROUND_FAILED);
        let stopped = Summary {
            interrupted: true,
            ..Summary::default()
        };
        let (code, message) = once.exit_status(&stopped, Some(libc::SIGTERM));
        assert_eq!(code, 128 + libc::SIGTERM);
        assert_eq!(message.unwrap(), "stopped by SIGTERM after 0 of 1 rounds");
        let forever = service(&["--rounds", "0"]).unwrap();
        assert_eq!(forever.exit_status(&stopped, Some(libc::SIGINT)), (0, None));
        assert_eq!(once.summary_line(&clean), None);
        assert_eq!(
            forever.summary_line(&clean).unwrap(),
            "Summary: 1 round completed, 0 aborted, 0 connections served"
        );
    }
}
