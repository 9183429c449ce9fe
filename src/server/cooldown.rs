//! Cooldowns for addresses whose connections abort rounds, or guess host keys.
//!
//! Owns a table of addresses with offences of one kind ([`Offence`]): a connection that leaves
//! a started round before sending its message, or sends none in time, is an offence of its
//! address (the round reports it); so, in a table of its own, is a wrong host key (the
//! connection reports it). After `strikes` offences an address is refused new connections for `first`, doubled with
//! each further offence up to `max`; a round it completes, or `forget` without an offence, wipes
//! its record. So a person whose connection drops once is never refused, and one address cannot
//! keep pairing itself with strangers and walking away.
//!
//! The accept loop alone holds it: it records each round's report and asks it about each new
//! connection. The table is bounded ([`MAX_ADDRESSES`]); when full, forgotten records go first,
//! then the one with the oldest offence.
//!
//! It must not know about connections or frames: it keeps time per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses remembered at most. At about 64 bytes each, a few megabytes whatever the number of
/// addresses that offend.
pub const MAX_ADDRESSES: usize = 65_536;

/// When addresses are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownConfig {
    /// Offences before the first refusal; 0 turns cooldowns off.
    pub strikes: u32,
    /// The first refusal's length; each further offence doubles it.
    pub first: Duration,
    /// The longest refusal.
    pub max: Duration,
    /// A record with no offence for this long is forgotten.
    pub forget: Duration,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        CooldownConfig {
            strikes: 2,
            first: Duration::from_secs(10),
            max: Duration::from_secs(600),
            forget: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    offences: u32,
    last: Instant,
    /// Refused until then.
    until: Option<Instant>,
}

/// What a table counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// A round left before sending its message, or no message in time.
    AbortedRound,
    /// A host key that is not the server's.
    WrongHostKey,
}

impl CooldownConfig {
    /// Wrong host keys: three are forgiven (a host's typos), then the address waits 10 s,
    /// doubled with each further one up to 10 minutes: about a dozen guesses an hour.
    pub const HOST_KEYS: CooldownConfig = CooldownConfig {
        strikes: 4,
        first: Duration::from_secs(10),
        max: Duration::from_secs(600),
        forget: Duration::from_secs(600),
    };
}

/// A refusal: how long is left, and the offences behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub left: Duration,
    pub offences: u32,
    pub kind: Offence,
}

impl Refusal {
    /// The one line a refused client is told.
    pub fn message(&self, ip: IpAddr) -> String {
        let secs = self.left.as_secs_f64().ceil() as u64;
        match self.kind {
            Offence::AbortedRound => format!(
                "connections from {ip} left {} rounds before sending their message; refused for \
                 {secs} s more",
                self.offences
            ),
            Offence::WrongHostKey => format!(
                "connections from {ip} offered {} wrong host keys; refused for {secs} s more",
                self.offences
            ),
        }
    }
}

/// The table; see the module docs.
#[derive(Debug)]
pub struct Cooldowns {
    config: CooldownConfig,
    kind: Offence,
    table: HashMap<IpAddr, Record>,
}

impl Cooldowns {
    pub fn new(config: CooldownConfig, kind: Offence) -> Cooldowns {
        Cooldowns {
            config,
            kind,
            table: HashMap::new(),
        }
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// An offence of `ip` at `now`; returns the refusal it starts, if any.
    pub fn offence(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.config.strikes == 0 {
            return None;
        }
        if !self.table.contains_key(&ip) && self.table.len() >= MAX_ADDRESSES {
            self.make_room(now);
        }
        let forget = self.config.forget;
        let record = self.table.entry(ip).or_insert(Record {
            offences: 0,
            last: now,
            until: None,
        });
        if now.saturating_duration_since(record.last) >= forget
            && record.until.is_none_or(|u| u <= now)
        {
            record.offences = 0;
        }
        record.offences += 1;
        record.last = now;
        let over = record.offences.checked_sub(self.config.strikes)?;
        let length = self
            .config
            .first
            .saturating_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
            .min(self.config.max);
        record.until = Some(now + length);
        Some(length)
    }

    /// `ip` completed a round: its record is wiped.
    pub fn good(&mut self, ip: IpAddr) {
        // Every completed round asks, and the table is nearly always empty: no hashing then.
        if !self.table.is_empty() {
            self.table.remove(&ip);
        }
    }

    /// Whether a connection from `ip` is refused now, and for how long yet.
    /// A round's report, as the table needs it: who aborted it, who completed it.
    pub(crate) fn note_conduct(&mut self, report: &crate::round::RoundReport, now: Instant) {
        for &ip in &report.leavers {
            if let Some(length) = self.offence(ip, now) {
                log::warn!(
                    "{ip}: its connections aborted {} rounds; refused for {} s",
                    self.refused_at(ip, now).map_or(0, |r| r.offences),
                    length.as_secs_f64()
                );
            }
        }
        for &ip in &report.finished {
            self.good(ip);
        }
    }

    pub fn refused(&self, ip: IpAddr) -> Option<Refusal> {
        // Asked of every connection, and the table is nearly always empty: no clock, no hashing.
        if self.table.is_empty() {
            return None;
        }
        self.refused_at(ip, Instant::now())
    }

    /// Whether a connection from `ip` at `now` is refused, and for how long yet.
    pub fn refused_at(&self, ip: IpAddr, now: Instant) -> Option<Refusal> {
        let record = self.table.get(&ip)?;
        let until = record.until.filter(|&u| u > now)?;
        Some(Refusal {
            left: until - now,
            offences: record.offences,
            kind: self.kind,
        })
    }

    /// Drops forgotten records; if that frees too little, the eighth with the oldest offences,
    /// so a full table is swept once per many inserts, not on each.
    fn make_room(&mut self, now: Instant) {
        let forget = self.config.forget;
        self.table.retain(|_, r| {
            now.saturating_duration_since(r.last) < forget || r.until.is_some_and(|u| u > now)
        });
        if self.table.len() >= MAX_ADDRESSES * 7 / 8 {
            let mut ages: Vec<(Instant, IpAddr)> =
                self.table.iter().map(|(ip, r)| (r.last, *ip)).collect();
            let cut = MAX_ADDRESSES / 8;
            ages.select_nth_unstable(cut);
            for (_, ip) in &ages[..cut] {
                self.table.remove(ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn one_drop_is_never_refused_and_a_second_starts_a_cooldown_that_doubles() {
        let mut c = Cooldowns::new(CooldownConfig::default(), Offence::AbortedRound);
        let t = Instant::now();
        let a = ip(0x7f00_0002);
        assert_eq!(c.offence(a, t), None);
        assert_eq!(c.refused_at(a, t), None);
        assert_eq!(c.offence(a, t + S), Some(10 * S));
        let refusal = c.refused_at(a, t + 2 * S).unwrap();
        assert_eq!(
            refusal,
            Refusal {
                left: 9 * S,
                offences: 2,
                kind: Offence::AbortedRound,
            }
        );
        assert_eq!(
            refusal.message(a),
            "connections from 127.0.0.2 left 2 rounds before sending their message; refused for \
             9 s more"
        );
        assert_eq!(c.refused_at(a, t + 11 * S), None);
        assert_eq!(c.offence(a, t + 12 * S), Some(20 * S));
        assert_eq!(c.offence(a, t + 40 * S), Some(40 * S));
        // Up to the longest.
        for k in 0..20 {
            c.offence(a, t + (100 + k) * S);
        }
        assert_eq!(c.refused_at(a, t + 119 * S).unwrap().left, 600 * S);
    }

    #[test]
    fn three_wrong_host_keys_are_forgiven_and_the_fourth_starts_a_cooldown() {
        let mut c = Cooldowns::new(CooldownConfig::HOST_KEYS, Offence::WrongHostKey);
        let t = Instant::now();
        let a = ip(0x7f00_0003);
        for k in 0..3 {
            assert_eq!(c.offence(a, t + k * S), None, "wrong key {k}");
        }
        assert_eq!(c.offence(a, t + 3 * S), Some(10 * S));
        let refusal = c.refused_at(a, t + 4 * S).unwrap();
        assert_eq!(
            refusal.message(a),
            "connections from 127.0.0.3 offered 4 wrong host keys; refused for 9 s more"
        );
        assert_eq!(c.offence(a, t + 14 * S), Some(20 * S));
    }

    #[test]
    fn a_completed_round_or_a_quiet_while_forgives() {
        let mut c = Cooldowns::new(CooldownConfig::default(), Offence::AbortedRound);
        let t = Instant::now();
        let a = ip(1);
        c.offence(a, t);
        c.good(a);
        assert_eq!(c.offence(a, t + S), None, "forgiven by a completed round");
        assert_eq!(
            c.offence(a, t + 700 * S),
            None,
            "forgotten after ten quiet minutes"
        );
        assert_eq!(c.offence(a, t + 701 * S), Some(10 * S));
        // Other addresses are unaffected.
        assert_eq!(c.refused_at(ip(2), t + 701 * S), None);
    }

    #[test]
    fn no_strikes_means_no_cooldowns() {
        let mut c = Cooldowns::new(
            CooldownConfig {
                strikes: 0,
                ..CooldownConfig::default()
            },
            Offence::AbortedRound,
        );
        let t = Instant::now();
        for _ in 0..10 {
            assert_eq!(c.offence(ip(1), t), None);
        }
        assert!(c.is_empty());
    }

    #[test]
    fn the_table_stays_bounded_whatever_the_number_of_addresses() {
        let mut c = Cooldowns::new(CooldownConfig::default(), Offence::AbortedRound);
        let t = Instant::now();
        for n in 0..(MAX_ADDRESSES as u32 + 1000) {
            c.offence(ip(n), t + Duration::from_micros(u64::from(n)));
        }
        assert!(c.len() <= MAX_ADDRESSES);
        // The newest offender is remembered.
        let last = ip(MAX_ADDRESSES as u32 + 999);
        assert_eq!(c.offence(last, t + 10 * S), Some(10 * S));
    }
}
