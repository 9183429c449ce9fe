//! The verdict and the English a round speaks.
//!
//! Owns how arrivals are ordered (by the instant each message arrived, then by the order the
//! round learnt of them) and every sentence a round prints or sends: the acknowledgment text and
//! the "Sent acknowledgment to both X and Y" line. Pure functions: no channels, no clock.

use std::time::Instant;

use crate::protocol::Arrival;

/// One party's message as the round holds it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// When it arrived (kernel receive time, or read time where the kernel cannot say).
    pub(crate) at: Instant,
    /// Order in which the round learnt of it: breaks ties between equal instants.
    pub(crate) seq: u64,
    pub(crate) name: String,
}

/// Orders `(label, message)` pairs by arrival and measures each gap from the first.
pub(crate) fn order<'a>(messages: impl Iterator<Item = (&'a str, &'a Received)>) -> Vec<Arrival> {
    let mut entries: Vec<(&str, &Received)> = messages.collect();
    // Equal instants are next to impossible; if they happen, delivery order decides.
    entries.sort_by_key(|(_, m)| (m.at, m.seq));
    let first = entries.first().map(|(_, m)| m.at);
    entries
        .into_iter()
        .map(|(label, m)| Arrival {
            label: label.to_owned(),
            name: m.name.clone(),
            after_micros: first.map_or(0, |f| {
                u64::try_from(m.at.duration_since(f).as_micros()).unwrap_or(u64::MAX)
            }),
        })
        .collect()
}

/// The acknowledgment sentence: `X: Alice received before Y: Bob`, extended for more parties as
/// `X: Alice received before Y: Bob before Z: Carol`.
pub fn ack_text(order: &[Arrival]) -> String {
    let mut text = String::new();
    for (i, a) in order.iter().enumerate() {
        match i {
            0 => {}
            1 => text.push_str(" received before "),
            _ => text.push_str(" before "),
        }
        text.push_str(&a.label);
        text.push_str(": ");
        text.push_str(&a.name);
    }
    text
}

/// `X and Y` for two labels, `X, Y and Z` for more, `X` for one.
pub(crate) fn list_labels(labels: &[&str]) -> String {
    match labels {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `Sent acknowledgment to both X and Y`, or which deliveries failed.
pub(crate) fn sent_line(all: &[String], delivered: &[String], undelivered: &[String]) -> String {
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let ok: Vec<&str> = delivered.iter().map(String::as_str).collect();
    if undelivered.is_empty() {
        return match all.len() {
            2 => format!("Sent acknowledgment to both {}", list_labels(&all)),
            1 => format!("Sent acknowledgment to {}", list_labels(&all)),
            _ => format!("Sent acknowledgment to all of {}", list_labels(&all)),
        };
    }
    let failed: Vec<&str> = undelivered.iter().map(String::as_str).collect();
    let to = if ok.is_empty() {
        "nobody".to_owned()
    } else {
        format!("{} only", list_labels(&ok))
    };
    format!(
        "Sent acknowledgment to {to}; delivery to {} failed (disconnected)",
        list_labels(&failed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences() {
        assert_eq!(list_labels(&["X", "Y", "Z"]), "X, Y and Z");
        let all = ["X".to_owned(), "Y".to_owned()];
        assert_eq!(
            sent_line(&all, &all, &[]),
            "Sent acknowledgment to both X and Y"
        );
        assert_eq!(
            sent_line(&all, &all[..1], &all[1..]),
            "Sent acknowledgment to X only; delivery to Y failed (disconnected)"
        );
    }
}
