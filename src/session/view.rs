//! What each screen of a session is sent, by the size of the room.
//!
//! A room whose lists all fit one frame (up to [`fitting_parties`] players with the longest
//! names) sends every list whole, one shared copy for all. A bigger room sends each player the
//! top [`TOP_PLACES`] of a result, its scores and the buzz queue with its own line after them,
//! and of the roster its own seat; each host gets as many top places as fit. No frame lists
//! every player. Its screens are told of joins and leaves at most every
//! [`ROSTER_EVERY`] and of the buzz queue at most every [`QUEUE_EVERY`], so a join storm or ten
//! thousand buzzes do not cost a frame per player each.
//!
//! Pure functions over the session's lists, and the bookkeeping of when a coalesced update is
//! due: nothing here decides who is in a list or in what order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::text::fitting_parties;
use crate::protocol::{BuzzQueue, Change, Lineup, RoundOutcome, Score};

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

/// The places a host of a big room is sent: as many as fit one frame.
pub(crate) fn host_places() -> usize {
    fitting_parties()
}

/// `all`'s first `top` entries, then entry `own` if it is not among them.
pub(crate) fn window<T: Clone>(all: &[T], top: usize, own: Option<usize>) -> Vec<T> {
    let mut cut: Vec<T> = all.iter().take(top).cloned().collect();
    if let Some(own) = own.filter(|&i| i >= top) {
        cut.extend(all.get(own).cloned());
    }
    cut
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

/// A result cut to the top `top` places of its order and scores and one reader's own lines.
pub(crate) fn outcome(
    all: &RoundOutcome,
    top: usize,
    own: (Option<usize>, Option<usize>),
) -> RoundOutcome {
    RoundOutcome {
        round: all.round,
        text: all.text.clone(),
        order: window(&all.order, top, own.0),
        scores: window(&all.scores, top, own.1),
    }
}

/// A lineup cut to its first `top` seats and the reader's own.
pub(crate) fn lineup(all: &Lineup, top: usize, own: Option<usize>) -> Lineup {
    Lineup {
        players: window(&all.players, top, own),
        change: all.change.clone(),
        ..lineup_head(all)
    }
}

/// A lineup's fields but its lists.
fn lineup_head(all: &Lineup) -> Lineup {
    Lineup {
        round: all.round,
        open: all.open,
        needed: all.needed,
        hosted: all.hosted,
        answer_micros: all.answer_micros,
        players: Vec::new(),
        change: Change::Update,
        game: all.game,
        buzz: all.buzz,
        correct: all.correct,
        penalty: all.penalty,
        early: all.early,
    }
}

/// A buzz queue cut to its top `top` buzzes and locked players, and the reader's own.
pub(crate) fn queue(all: &BuzzQueue, top: usize, own: (Option<usize>, Option<usize>)) -> BuzzQueue {
    BuzzQueue {
        round: all.round,
        open: all.open,
        buzzes: window(&all.buzzes, top, own.0),
        up: all.up.clone(),
        locked: window(&all.locked, top, own.1),
    }
}

/// Final scores cut to the top `top` and the reader's own.
pub(crate) fn scores(all: &[Score], top: usize, own: Option<usize>) -> Arc<[Score]> {
    window(all, top, own).into()
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
    fn a_window_is_the_top_and_the_readers_own_line() {
        let all: Vec<u32> = (0..100).collect();
        assert_eq!(window(&all, 3, None), [0, 1, 2]);
        assert_eq!(window(&all, 3, Some(1)), [0, 1, 2]);
        assert_eq!(window(&all, 3, Some(57)), [0, 1, 2, 57]);
        assert_eq!(window(&all[..2], 3, Some(5)), [0, 1]);
    }

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
