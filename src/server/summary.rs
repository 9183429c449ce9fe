//! What a server run amounted to, tallied from the reports of its rounds and sessions, and the
//! service's one-line summary.

use crate::round::{Outcome, RoundReport};
use crate::session::SessionReport;

/// What the lobby's rounds and sessions report to the accept loop when they end.
#[derive(Debug)]
pub(crate) enum Report {
    Round(RoundReport),
    Session(SessionReport),
}

/// What a server run amounted to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rounds_completed: u64,
    /// Rounds that filled and then completed or were aborted: what `--rounds N` counts.
    pub rounds_played: u64,
    /// Completed rounds in which some acknowledgment could not be delivered.
    pub rounds_undelivered: u64,
    pub rounds_aborted: u64,
    pub connections: u64,
    /// Quiz sessions that played at least one round, and the rounds they played. Each such
    /// session is also one of `rounds_completed` (one round of the server's budget).
    pub sessions: u64,
    pub session_rounds: u64,
    /// The shutdown future resolved before the rounds were done.
    pub interrupted: bool,
}

impl Summary {
    pub(crate) fn record(&mut self, report: &Report) {
        match report {
            Report::Round(round) => self.record_round(round),
            Report::Session(session) => self.record_session(session),
        }
    }

    /// A session that played a round is one round of the server's budget, completed.
    fn record_session(&mut self, report: &SessionReport) {
        if report.rounds > 0 {
            self.sessions += 1;
            self.session_rounds += report.rounds;
            self.rounds_completed += 1;
            self.rounds_played += 1;
        }
    }

    fn record_round(&mut self, report: &RoundReport) {
        match &report.outcome {
            Outcome::Completed { undelivered, .. } => {
                self.rounds_completed += 1;
                if !undelivered.is_empty() {
                    self.rounds_undelivered += 1;
                }
            }
            Outcome::Aborted { .. } => self.rounds_aborted += 1,
            Outcome::Abandoned => {}
        }
        if report.started {
            self.rounds_played += 1;
        }
    }

    /// The service's one-line summary: `2 rounds completed, 0 aborted, 1 quiz session of 3
    /// rounds in all, 9 connections served`, each part only where it has something to count.
    pub fn describe(&self) -> String {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let rounds = self.rounds_completed - self.sessions.min(self.rounds_completed);
        let mut parts = Vec::new();
        if rounds > 0 || self.rounds_aborted > 0 || self.sessions == 0 {
            parts.push(format!(
                "{} completed, {} aborted",
                plural(rounds, "round", "rounds"),
                self.rounds_aborted
            ));
        }
        if self.sessions > 0 {
            parts.push(format!(
                "{} of {} in all",
                plural(self.sessions, "quiz session", "quiz sessions"),
                plural(self.session_rounds, "round", "rounds")
            ));
        }
        format!(
            "{}, {} served",
            parts.join(", "),
            plural(self.connections, "connection", "connections")
        )
    }

    /// Every round completed and every acknowledgment was delivered.
    pub fn is_clean(&self) -> bool {
        !self.interrupted && self.rounds_aborted == 0 && self.rounds_undelivered == 0
    }
}

#[cfg(test)]
mod tests {
    use super::{Report, Summary};
    use crate::session::SessionReport;

    #[test]
    fn a_session_that_played_is_one_round_of_the_budget_and_one_that_did_not_is_none() {
        let mut s = Summary::default();
        let session = |rounds| {
            Report::Session(SessionReport {
                room: Some("quiz".into()),
                rounds,
                scores: Vec::new(),
            })
        };
        s.record(&session(0));
        assert_eq!(
            s,
            Summary::default(),
            "a session without rounds counts nothing"
        );
        s.record(&session(3));
        assert_eq!(
            (
                s.sessions,
                s.session_rounds,
                s.rounds_completed,
                s.rounds_played
            ),
            (1, 3, 1, 1)
        );
        assert!(s.is_clean());
    }

    #[test]
    fn a_summary_counts_rounds_and_sessions_in_words_that_fit() {
        let mut s = Summary {
            rounds_completed: 1,
            connections: 1,
            ..Summary::default()
        };
        assert_eq!(
            s.describe(),
            "1 round completed, 0 aborted, 1 connection served"
        );
        // A session is one of the completed rounds the budget counts, said apart.
        s = Summary {
            rounds_completed: 3,
            rounds_aborted: 1,
            sessions: 1,
            session_rounds: 4,
            connections: 9,
            ..Summary::default()
        };
        assert_eq!(
            s.describe(),
            "2 rounds completed, 1 aborted, 1 quiz session of 4 rounds in all, 9 connections served"
        );
        s = Summary {
            rounds_completed: 2,
            sessions: 2,
            session_rounds: 1,
            connections: 6,
            ..Summary::default()
        };
        assert_eq!(
            s.describe(),
            "2 quiz sessions of 1 round in all, 6 connections served"
        );
        assert_eq!(
            Summary::default().describe(),
            "0 rounds completed, 0 aborted, 0 connections served"
        );
    }
}
