//! One question in buzz mode: its buzzes in fair order, who is up to answer, the host's
//! judgements and the teams locked out. Owned by the session's state while the question is
//! open; it knows no connection and sends nothing (the state tells everyone its snapshot).
//!
//! Fair order is the session's ranking: by arrival after the buzzers opened, or by reaction
//! (arrival − the player's round trip). In reaction order a buzz that arrives later may still
//! rank first, if its player's round trip is longer; so the first buzz is named *up* only once
//! no player still able to buzz could rank before it: at `go + its key + the largest round trip
//! among those still waiting` ([`BuzzRound::settles_at`]), which the round trip's own cap bounds.

use std::time::{Duration, Instant};

use crate::protocol::{Buzz, BuzzQueue, Judgement, RttSource};

/// One buzz.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) team: String,
    /// The ranking key, in microseconds after the buzzers opened (reaction or arrival).
    pub(crate) key: i128,
    pub(crate) after_go_micros: u64,
    pub(crate) rtt_micros: Option<u64>,
    pub(crate) rtt_source: RttSource,
    pub(crate) reaction_micros: Option<i64>,
    pub(crate) judgement: Judgement,
    pub(crate) points: i64,
    pub(crate) flag: String,
}

#[derive(Debug, Default)]
pub(crate) struct BuzzRound {
    /// Judged (or voided) buzzes first, in the order they were decided; then the rest by key.
    entries: Vec<Entry>,
    /// Index of the buzz that answers now.
    up: Option<usize>,
    /// Teams (or, without a team, players) locked out of this question by a wrong answer.
    locked: Vec<String>,
    /// A correct answer ended it, or the host moved on.
    pub(crate) over: bool,
}

impl BuzzRound {
    /// Takes a buzz: it goes after every decided buzz and after the undecided ones that rank
    /// before it. A buzz from a locked-out team is void from the start.
    pub(crate) fn take(&mut self, mut entry: Entry) {
        if self.is_locked(&entry) {
            entry.judgement = Judgement::Void;
        }
        // Undecided entries are in key order: a big room's thousands of buzzes are placed by
        // halving, not by a pass each.
        let decided = self.decided();
        let at = decided + self.entries[decided..].partition_point(|e| e.key <= entry.key);
        self.entries.insert(at, entry);
    }

    /// The entries before the first undecided one (judged, void, or up).
    fn decided(&self) -> usize {
        self.entries
            .iter()
            .enumerate()
            .position(|(i, e)| e.judgement == Judgement::Waiting && Some(i) != self.up)
            .unwrap_or(self.entries.len())
    }

    fn is_locked(&self, entry: &Entry) -> bool {
        self.locked.contains(&lock_key(entry))
    }

    /// The first buzz still to be judged, if nobody is up.
    fn next_candidate(&self) -> Option<usize> {
        if self.up.is_some() || self.over {
            return None;
        }
        self.entries
            .iter()
            .position(|e| e.judgement == Judgement::Waiting)
    }

    /// Whether a buzz waits to be named up (nobody is up, the question is open).
    pub(crate) fn settling(&self) -> bool {
        self.next_candidate().is_some()
    }

    /// When the next buzz to judge can be named up: `None` if there is none, or someone is up.
    /// `go` is when the buzzers opened; `slowest` the largest round trip among players who may
    /// still buzz (zero in arrival order, where no later buzz can rank first).
    pub(crate) fn settles_at(&self, go: Instant, slowest: Duration) -> Option<Instant> {
        let next = &self.entries[self.next_candidate()?];
        let micros = (next.key + slowest.as_micros() as i128).max(0);
        Some(go + Duration::from_micros(micros.min(u64::MAX as i128) as u64))
    }

    /// Names the next buzz up if it has settled by `now`; true if someone became up.
    pub(crate) fn settle(&mut self, go: Instant, slowest: Duration, now: Instant) -> bool {
        match (self.next_candidate(), self.settles_at(go, slowest)) {
            (Some(i), Some(at)) if now >= at => {
                self.up = Some(i);
                true
            }
            _ => false,
        }
    }

    /// Who is up.
    pub(crate) fn up(&self) -> Option<&Entry> {
        self.up.map(|i| &self.entries[i])
    }

    /// Judges the buzz that is up: `points` to it (negative: taken). A correct answer ends
    /// the question; a wrong one locks out its team (or player) and voids the team's other
    /// buzzes. Returns the judged entry's name and lock key, or `None` if nobody was up.
    pub(crate) fn judge(&mut self, correct: bool, points: i64) -> Option<(String, String)> {
        let i = self.up.take()?;
        let entry = &mut self.entries[i];
        entry.points = points;
        entry.judgement = if correct {
            Judgement::Correct
        } else {
            Judgement::Wrong
        };
        let judged = (entry.name.clone(), lock_key(entry));
        if correct {
            self.over = true;
        } else {
            let key = judged.1.clone();
            for e in &mut self.entries {
                if e.judgement == Judgement::Waiting && lock_key(e) == key {
                    e.judgement = Judgement::Void;
                }
            }
            if !self.locked.contains(&key) {
                self.locked.push(key);
            }
        }
        Some(judged)
    }

    /// Voids the buzz of a player who is no longer in the game.
    pub(crate) fn void(&mut self, name: &str) {
        if self.up().is_some_and(|e| e.name == name) {
            self.up = None;
        }
        for e in &mut self.entries {
            if e.name == name && e.judgement == Judgement::Waiting {
                e.judgement = Judgement::Void;
            }
        }
    }

    /// Whether `team` (or the player, without a team) is locked out.
    pub(crate) fn locks(&self, name: &str, team: &str) -> bool {
        if self.locked.is_empty() {
            return false;
        }
        let key = if team.is_empty() {
            format!("player:{name}")
        } else {
            format!("team:{team}")
        };
        self.locked.contains(&key)
    }

    /// Buzzes still to judge (one up, or waiting to be).
    pub(crate) fn pending(&self) -> bool {
        !self.over
            && self
                .entries
                .iter()
                .any(|e| e.judgement == Judgement::Waiting)
    }

    /// The question ends: buzzes never judged are void.
    pub(crate) fn close(&mut self) {
        self.over = true;
        self.up = None;
        for e in &mut self.entries {
            if e.judgement == Judgement::Waiting {
                e.judgement = Judgement::Void;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The queue as every screen sees it; `locked` names the players out of this question.
    pub(crate) fn snapshot(&self, round: u64, locked: Vec<String>) -> BuzzQueue {
        let first = self.entries.iter().map(|e| e.key).min().unwrap_or(0);
        BuzzQueue {
            round,
            open: !self.over,
            buzzes: self
                .entries
                .iter()
                .map(|e| Buzz {
                    name: e.name.clone(),
                    team: e.team.clone(),
                    after_go_micros: e.after_go_micros,
                    rtt_micros: e.rtt_micros,
                    rtt_source: e.rtt_source,
                    reaction_micros: e.reaction_micros,
                    gap_micros: (e.key - first).max(0) as u64,
                    judgement: e.judgement,
                    points: e.points,
                    flag: e.flag.clone(),
                })
                .collect(),
            up: self.up().map(|e| e.name.clone()),
            locked,
        }
    }
}

/// What a wrong answer locks: the team, or the player where there are no teams.
fn lock_key(entry: &Entry) -> String {
    if entry.team.is_empty() {
        format!("player:{}", entry.name)
    } else {
        format!("team:{}", entry.team)
    }
}

/// The night's record of one question as CSV rows (no header): game, question, place, name,
/// team, after go, reaction, gap (ms), round trip (ms), its source, judgement, points, total.
pub fn csv_rows(game: u64, queue: &BuzzQueue, total: impl Fn(&str) -> u64) -> Vec<String> {
    let ms = |us: Option<i128>| us.map_or(String::new(), tenths_of_ms);
    queue
        .buzzes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            [
                game.to_string(),
                queue.round.to_string(),
                (i + 1).to_string(),
                csv_field(&b.name),
                csv_field(&b.team),
                ms(Some(i128::from(b.after_go_micros))),
                ms(b.reaction_micros.map(i128::from)),
                ms(Some(i128::from(b.gap_micros))),
                ms(b.rtt_micros.map(i128::from)),
                format!("{:?}", b.rtt_source).to_lowercase(),
                b.judgement.describe().to_owned(),
                b.points.to_string(),
                total(&b.name).to_string(),
            ]
            .join(",")
        })
        .collect()
}

/// Microseconds as milliseconds with one decimal, rounded half away from zero in integers (the
/// host page writes the same digits).
fn tenths_of_ms(us: i128) -> String {
    let tenths = (us.abs() + 50) / 100;
    let sign = if us < 0 && tenths > 0 { "-" } else { "" };
    format!("{sign}{}.{}", tenths / 10, tenths % 10)
}

/// The header of [`csv_rows`].
pub const CSV_HEADER: &str = "game,question,place,name,team,after_go_ms,reaction_ms,gap_ms,\
                              rtt_ms,rtt_source,judgement,points,total";

/// A CSV field: quoted where it holds a comma, a quote or a line break, and defused where a
/// spreadsheet would read it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, team: &str, key: i128) -> Entry {
        Entry {
            name: name.into(),
            team: team.into(),
            key,
            after_go_micros: key as u64,
            rtt_micros: None,
            rtt_source: RttSource::None,
            reaction_micros: None,
            judgement: Judgement::Waiting,
            points: 0,
            flag: String::new(),
        }
    }

    #[test]
    fn a_later_buzz_that_ranks_first_goes_first_until_someone_is_up() {
        let go = Instant::now();
        let mut q = BuzzRound::default();
        q.take(entry("Ben", "", 300_000));
        q.take(entry("Ann", "", 200_000));
        let slow = Duration::from_millis(100);
        // Ann ranks first; she is up once nobody still waiting could rank before her.
        assert_eq!(
            q.settles_at(go, slow),
            Some(go + Duration::from_millis(300))
        );
        assert!(!q.settle(go, slow, go + Duration::from_millis(299)));
        assert!(q.settle(go, slow, go + Duration::from_millis(300)));
        assert_eq!(q.up().unwrap().name, "Ann");
        // A buzz ranking before Ann, too late to matter, waits behind her.
        q.take(entry("Cid", "", 100_000));
        let names: Vec<_> = q.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Ann", "Cid", "Ben"]);
    }

    #[test]
    fn a_wrong_answer_locks_the_team_and_voids_its_other_buzzes() {
        let go = Instant::now();
        let mut q = BuzzRound::default();
        q.take(entry("Ann", "Red", 1));
        q.take(entry("Ben", "Blue", 2));
        q.take(entry("Amy", "Red", 3));
        assert!(q.settle(go, Duration::ZERO, go + Duration::from_millis(1)));
        assert_eq!(q.judge(false, -5).unwrap().0, "Ann");
        assert!(q.locks("Amy", "Red"));
        assert!(!q.locks("Ben", "Blue"));
        assert!(q.settle(go, Duration::ZERO, go + Duration::from_millis(1)));
        assert_eq!(q.up().unwrap().name, "Ben");
        let judged: Vec<_> = q.entries().iter().map(|e| e.judgement).collect();
        assert_eq!(
            judged,
            [Judgement::Wrong, Judgement::Waiting, Judgement::Void]
        );
        // A later buzz from the locked team is void as it lands.
        q.take(entry("Ava", "Red", 4));
        assert_eq!(q.entries()[3].judgement, Judgement::Void);
        assert_eq!(q.judge(true, 10).unwrap().0, "Ben");
        assert!(q.over && !q.pending());
        let snap = q.snapshot(1, vec![]);
        assert_eq!(snap.buzzes[1].points, 10);
        assert_eq!(snap.buzzes[1].gap_micros, 1);
        assert!(!snap.open);
    }

    #[test]
    fn nobody_is_up_without_a_buzz_and_judging_nobody_does_nothing() {
        let mut q = BuzzRound::default();
        assert_eq!(q.settles_at(Instant::now(), Duration::ZERO), None);
        assert_eq!(q.judge(true, 1), None);
    }

    #[test]
    fn milliseconds_round_half_away_from_zero() {
        let cases = [
            (12_250, "12.3"),
            (12_249, "12.2"),
            (0, "0.0"),
            (-49, "0.0"),
            (-150, "-0.2"),
        ];
        for (us, text) in cases {
            assert_eq!(tenths_of_ms(us), text, "{us}");
        }
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("Ann"), "Ann");
        assert_eq!(csv_field("A, B"), "\"A, B\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
    }
}
