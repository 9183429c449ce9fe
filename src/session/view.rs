//! What each screen of a session is sent, by the size of the room.
//!
//! A room whose lists all fit one frame (up to [`fitting_parties`] players with the longest
//! names) sends every list whole, one shared copy for all. A bigger room sends each player the
//! top [`TOP_PLACES`] of a result, its scores and the buzz queue with its own line after them,
//! and of the roster its own seat; each host gets as many top places as fit (of the roster, the
//! seats with the most points, which the session picks). No frame lists every player. Its screens are told of joins and leaves at most every
//! [`ROSTER_EVERY`] and of the buzz queue at most every [`QUEUE_EVERY`], so a join storm or ten
//! thousand buzzes do not cost a frame per player each.
//!
//! Pure functions over the session's lists, and the bookkeeping of when a coalesced update is
//! due: nothing here decides who is in a list or in what order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::text::fitting_parties;
use crate::protocol::Cut;
use crate::round::Outbound;

/// Places of each list a player of a big room is sent, before its own line.
pub const TOP_PLACES: usize = 10;

/// The most often a big room's screens hear of joins, leaves and round trips.
pub const ROSTER_EVERY: Duration = Duration::from_millis(500);

/// The most often a big room's screens hear of the buzz queue while buzzes come in.
pub const QUEUE_EVERY: Duration = Duration::from_millis(100);

/// Whether a room of `players` lists everyone in every frame.
pub(crate) fn small(players: usize) -> bool {
    players <= fitting_parties()
}

/// What a host of a big room is sent of each list: the top places that fit one frame.
pub(crate) fn host_cut() -> Cut {
    Cut::top_and(fitting_parties(), [None, None])
}

/// Where each name stands in a list of named entries.
pub(crate) fn places<'a, T>(all: &'a [T], name: impl Fn(&T) -> &str) -> HashMap<&'a str, usize>
where
    T: 'a,
{
    let mut at = HashMap::with_capacity(all.len());
    for (i, entry) in all.iter().enumerate() {
        at.entry(name(entry)).or_insert(i);
    }
    at
}

/// `event` (one copy for the room) as a reader with window `cut` is sent it: the shared event
/// itself when the reader sees every line.
pub(crate) fn cut(event: &Arc<Outbound>, cut: Cut) -> Outbound {
    match (cut == Cut::ALL, &**event) {
        (true, Outbound::RoundResult(r)) => Outbound::RoundResult(Arc::clone(r)),
        (true, Outbound::Buzzes(q)) => Outbound::Buzzes(Arc::clone(q)),
        (true, Outbound::Roster { roster, lineup }) => Outbound::Roster {
            roster: Arc::clone(roster),
            lineup: Arc::clone(lineup),
        },
        (
            true,
            Outbound::SessionOver {
                why,
                rounds,
                scores,
            },
        ) => Outbound::SessionOver {
            why: *why,
            rounds: *rounds,
            scores: Arc::clone(scores),
        },
        _ => Outbound::Cut {
            shared: Arc::clone(event),
            cut,
        },
    }
}

/// When a big room's coalesced update is next due: at once after a quiet spell, then at most
/// once every `every`.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    due: Option<Instant>,
}

impl Throttle {
    /// An update is wanted at `now`: true if it goes now, else it is due later.
    pub(crate) fn want(&mut self, now: Instant, every: Duration) -> bool {
        if self.due.is_some() {
            return false;
        }
        match self.last {
            Some(last) if now < last + every => {
                self.due = Some(last + every);
                false
            }
            _ => {
                self.last = Some(now);
                true
            }
        }
    }

    /// The update went at `now` (wanted or not): nothing is due.
    pub(crate) fn sent(&mut self, now: Instant) {
        self.last = Some(now);
        self.due = None;
    }

    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_sends_at_once_after_a_quiet_spell_then_at_most_once_per_period() {
        let every = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut t = Throttle::default();
        assert!(t.want(t0, every));
        assert!(!t.want(t0 + every / 2, every));
        assert_eq!(t.due(), Some(t0 + every));
        assert!(!t.want(t0 + every / 2, every), "one due update at a time");
        t.sent(t0 + every);
        assert_eq!(t.due(), None);
        assert!(t.want(t0 + every * 3, every));
    }
}
