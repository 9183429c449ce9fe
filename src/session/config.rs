//! How a session is set up: its settings, the ranking order, the random wait before `Go`, and
//! the timing constants of its rules. Plain data and parsing; nothing here runs.

use std::time::Duration;

use crate::round::Style;

/// How long after a party could have seen a round's result an answer still counts as a late
/// answer to that round rather than an early buzz: scheduling noise on either side.
pub const LATE_GRACE: Duration = Duration::from_millis(20);

/// A press this soon after the player's own answer is the same press (a double tap, a bouncing
/// key: two at most), ignored rather than taken for an early buzz at the next round.
pub const TAP_GRACE: Duration = Duration::from_millis(500);

/// How often a hosted session that waits for its host's `Open` measures round trips and sends
/// the roster, so the host sees every player's figure before it opens a round.
pub const HOSTED_MEASURE_EVERY: Duration = Duration::from_secs(2);

/// While a round waits for answers, each player still to answer is pinged this often (while
/// [`ANSWER_PINGS_IN_FLIGHT`] allows; less often in a big room, see [`answer_ping_every`]), so the segment that carries its `Answer` also
/// acknowledges a recent `Ping`: the kernel's round trip read at the answer then measures the
/// answer's own path, however the player delayed its other packets. A player can hide at most
/// the age of that `Ping` (plus `rtt_slack`) of its path.
pub const ANSWER_PING_EVERY: Duration = Duration::from_millis(5);

/// The most answer pings a session sends a second, all players together: a big room's players
/// are pinged less often than [`ANSWER_PING_EVERY`] (10,000 players: every 500 ms), so the pings
/// do not crowd out the answers. Those players can hide more of their path, up to the cap.
pub const ANSWER_PINGS_PER_SECOND: u32 = 20_000;

/// How often each of `players` still to answer is pinged.
pub fn answer_ping_every(players: usize) -> Duration {
    let spread = Duration::from_secs(1) * u32::try_from(players).unwrap_or(u32::MAX)
        / ANSWER_PINGS_PER_SECOND;
    spread.max(ANSWER_PING_EVERY)
}

/// The most of a player's pings that may await their `Pong` before it is sent another while a
/// round waits. Pings to a far player are then spread over its round trip (80 ms away: one every
/// 40 ms), not sent in bursts whose `Pong`s, arriving just after its `Answer`, would be read
/// with it and lend it their later receive time (measured: an honest far player 5 ms quicker
/// than a near one was first in 82 of 100 rounds with 8 in flight, 100 of 100 with 2); and the
/// pings of a slow reader never crowd out its result.
pub const ANSWER_PINGS_IN_FLIGHT: usize = 2;

/// How much shorter than before `Go` a player's round trip may be at its answer before the host
/// is told: more than the pings' spacing and a busy machine's scheduling.
pub const FLAG_NOISE: Duration = Duration::from_millis(10);

/// The most names the host can keep out of a game (kicked players): a bound on the table.
pub const MAX_BARRED: usize = 256;

/// The most points a host's scoring may give or take for one answer.
pub const MAX_POINTS: u64 = 1_000_000;

/// Unanswered pings a party keeps; older ones are forgotten and bound nothing else.
pub(crate) const MAX_PENDING_PINGS: usize = 64;

/// How a session ranks the answers of a round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// By when each answer reached the server: the assignment's meaning.
    #[default]
    Arrival,
    /// By reaction time: arrival − go − the party's round-trip estimate.
    Reaction,
}

impl From<Order> for crate::protocol::Ranking {
    fn from(order: Order) -> Self {
        match order {
            Order::Arrival => crate::protocol::Ranking::Arrival,
            Order::Reaction => crate::protocol::Ranking::Reaction,
        }
    }
}

impl std::str::FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Order, String> {
        crate::cli::one_of(
            s,
            "an order",
            &[("arrival", Order::Arrival), ("reaction", Order::Reaction)],
        )
    }
}

/// How a hosted session plays its questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostedMode {
    /// The host sees each buzz as it lands and judges the answer of the player who is up.
    #[default]
    Buzz,
    /// The fastest valid answer scores, as in a session without a host.
    Race,
}

impl std::str::FromStr for HostedMode {
    type Err = String;
    fn from_str(s: &str) -> Result<HostedMode, String> {
        crate::cli::one_of(
            s,
            "a hosted mode",
            &[("buzz", HostedMode::Buzz), ("race", HostedMode::Race)],
        )
    }
}

/// A range of durations `Go` is delayed by, drawn uniformly (`1s..4s`; `0` for none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Jitter {
    pub low: Duration,
    pub high: Duration,
}

impl Jitter {
    /// No random wait.
    pub const NONE: Jitter = Jitter {
        low: Duration::ZERO,
        high: Duration::ZERO,
    };

    /// A draw from the operating system's random source. Should it fail, the middle of the
    /// range: still unknown to clients that do not know the range.
    pub fn draw(&self) -> Duration {
        let span = self.high.saturating_sub(self.low);
        if span.is_zero() {
            return self.low;
        }
        let nanos = span.as_nanos().min(u128::from(u64::MAX)) as u64;
        let offset = match getrandom::u64() {
            Ok(r) => r % (nanos + 1),
            Err(e) => {
                log::error!("no random number for the go jitter: {e}");
                nanos / 2
            }
        };
        self.low + Duration::from_nanos(offset)
    }
}

impl std::str::FromStr for Jitter {
    type Err = String;
    /// `1s..4s`, `500ms..2s`, or one duration for a fixed wait (`0` for none).
    fn from_str(s: &str) -> Result<Jitter, String> {
        let parse = |d: &str| crate::cli::parse_seconds(d.trim());
        let (low, high) = match s.split_once("..") {
            Some((low, high)) => (parse(low)?, parse(high)?),
            None => {
                let d = parse(s)?;
                (d, d)
            }
        };
        if low > high {
            return Err(format!("`{s}`: the range's low end is above its high end"));
        }
        Ok(Jitter { low, high })
    }
}

impl std::fmt::Display for Jitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}..{:?}", self.low, self.high)
    }
}

/// How a session is set up. Its `Default`, the server's defaults, is in the session module's
/// root.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub room: Option<String>,
    pub min_parties: usize,
    /// Rounds before the session ends.
    pub rounds: u64,
    pub order: Order,
    pub answer_timeout: Duration,
    /// Pings before each round, and the gap between them.
    pub pings: u32,
    pub ping_every: Duration,
    /// Round-trip samples a party's estimate is the minimum of.
    pub rtt_window: usize,
    /// After the pings, `Go` waits a further random time in this range.
    pub go_jitter: Jitter,
    /// The same, in a hosted session, after the host opens a round: short, but no client can
    /// time its answer to a `Go` it has not seen.
    pub hosted_jitter: Jitter,
    /// Points an early press or a false start costs (scores stop at zero), besides the round.
    pub early_penalty: u64,
    /// Reaction order: an answer with a reaction time below this is a false start (zero: off).
    pub min_reaction: Duration,
    /// How far a party's round-trip estimate may exceed the kernel's figure for its connection.
    pub rtt_slack: Duration,
    /// The most a round-trip estimate may be where the kernel gives no figure.
    pub max_compensation: Duration,
    /// Players a session seats at most (held seats count).
    pub max_parties: usize,
    /// What the session prints: each round's result and the final scores (nothing when quiet).
    pub style: Style,
    /// Whether a host who can judge (protocol 6) plays questions in buzz mode; otherwise, and
    /// without such a host, every round is a race the fastest answer wins.
    pub buzz: bool,
}
