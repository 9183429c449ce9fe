//! What a session says in words, and how big what it sends can get: a round's result sentence,
//! the final scores, and the most parties whose every result fits one frame. Pure functions of
//! their arguments; nothing here holds state.

use std::sync::OnceLock;

use super::config::Order;
use crate::protocol::{
    Buzz, BuzzQueue, Change, Contestant, Judgement, Lineup, OverReason, Placing, RoundOutcome,
    RttSource, Score, Standing,
};

/// Names a result's sentence lists in each part; the rest are counted (`and 12 more`). The
/// structured order lists everyone; the sentence is for people, and keeps a big session's
/// result within one frame.
pub const TEXT_NAMES: usize = 8;

/// Joins `items` with `sep`, listing at most [`TEXT_NAMES`] and counting the rest.
pub(crate) fn listed(items: Vec<String>, sep: &str) -> String {
    let more = items.len().saturating_sub(TEXT_NAMES);
    let mut text = items
        .into_iter()
        .take(TEXT_NAMES)
        .collect::<Vec<_>>()
        .join(sep);
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// The most parties whose every result (and final scores) fits one frame, each with the longest
/// name allowed (64 characters of 4 bytes) and the widest figures: computed once, from the
/// encoding itself.
pub fn fitting_parties() -> usize {
    static FITTING: OnceLock<usize> = OnceLock::new();
    *FITTING.get_or_init(|| {
        let size = |n: usize| {
            worst_frames(n)
                .iter()
                .map(|f| crate::protocol::encode(f).map_or(usize::MAX, |b| b.len()))
                .max()
                .unwrap_or(usize::MAX)
        };
        // Sizes grow with n; the largest n that fits.
        let (mut fits, mut too_many) = (1, 2);
        while size(too_many) != usize::MAX {
            fits = too_many;
            too_many *= 2;
        }
        while too_many - fits > 1 {
            let mid = (fits + too_many) / 2;
            if size(mid) == usize::MAX {
                too_many = mid;
            } else {
                fits = mid;
            }
        }
        fits
    })
}

/// The largest frames a session of `n` parties sends: its result (as protocol 2 and 3 have it),
/// its lineup and its buzz queue.
pub(crate) fn worst_frames(n: usize) -> [crate::protocol::Frame; 4] {
    use crate::protocol::Frame;
    let outcome = worst_result(n);
    let (lineup, queue) = worst_room(n);
    [
        Frame::Result(Box::new(outcome.to_v2())),
        Frame::Outcome(Box::new(outcome)),
        Frame::Lineup(Box::new(lineup)),
        Frame::Buzzes(Box::new(queue)),
    ]
}

/// The largest result `n` parties can have: the longest names, the widest figures, and every
/// kind of standing, so the sentence has all its parts, each as long as it gets.
pub(crate) fn worst_result(n: usize) -> RoundOutcome {
    let name = "\u{1F980}".repeat(crate::names::MAX_NAME_CHARS);
    let standings = [
        Standing::Answered,
        Standing::FalseStart,
        Standing::Early,
        Standing::LockedOut,
        Standing::NoAnswer,
        Standing::Left,
        Standing::Correct,
    ];
    let order: Vec<Placing> = (0..n)
        .map(|i| Placing {
            name: name.clone(),
            standing: standings[(i / TEXT_NAMES.max(1)) % standings.len()],
            after_go_micros: Some(u64::from(u32::MAX) * 1000),
            rtt_micros: Some(u64::MAX),
            rtt_source: RttSource::Kernel,
            reaction_micros: Some(i64::MIN),
        })
        .collect();
    let scores = (0..n)
        .map(|_| Score {
            name: name.clone(),
            points: u64::MAX,
        })
        .collect();
    RoundOutcome {
        round: u64::MAX,
        text: result_text(u64::MAX, &order, Order::Reaction),
        order,
        scores,
    }
}

/// The largest lineup and buzz queue `n` players can have: the longest names and team names,
/// every player buzzing and locked out.
pub(crate) fn worst_room(n: usize) -> (Lineup, BuzzQueue) {
    let name = "\u{1F980}".repeat(crate::names::MAX_NAME_CHARS);
    let team = "\u{1F980}".repeat(crate::names::MAX_TEAM_CHARS);
    let lineup = Lineup {
        round: u64::MAX,
        open: true,
        needed: u32::MAX,
        hosted: true,
        answer_micros: u64::MAX,
        players: (0..n)
            .map(|_| Contestant {
                name: name.clone(),
                team: team.clone(),
                rtt_micros: Some(u64::MAX),
                rtt_source: RttSource::Kernel,
                points: u64::MAX,
                from_round: u64::MAX,
                here: true,
            })
            .collect(),
        change: Change::Left {
            name: name.clone(),
            round: u64::MAX,
        },
        game: u64::MAX,
        buzz: true,
        correct: u64::MAX,
        penalty: u64::MAX,
        early: u64::MAX,
    };
    let queue = BuzzQueue {
        round: u64::MAX,
        open: true,
        buzzes: (0..n)
            .map(|_| Buzz {
                name: name.clone(),
                team: team.clone(),
                after_go_micros: u64::MAX,
                rtt_micros: Some(u64::MAX),
                rtt_source: RttSource::Kernel,
                reaction_micros: Some(i64::MIN),
                gap_micros: u64::MAX,
                judgement: Judgement::Void,
                points: i64::MIN,
                // A flag's words with the widest figures are well under this.
                flag: "x".repeat(96),
            })
            .collect(),
        up: Some(name.clone()),
        locked: vec![name; n],
    };
    (lineup, queue)
}

/// `Round 3: Ann 152.3 ms before Ben 170.1 ms (reaction times); false start: Cid 40.2 ms;
/// too early: Dan; locked out: Eve; Fay did not answer`. A party ranked by arrival for lack of a
/// round-trip figure is marked `*`.
pub fn result_text(round: u64, order: &[Placing], by: Order) -> String {
    let ms = |us: i64| format!("{:.1} ms", us as f64 / 1000.0);
    let figure = |p: &Placing| match (by, p.reaction_micros) {
        (Order::Reaction, Some(reaction)) => format!("{} {}", p.name, ms(reaction)),
        (Order::Reaction, None) => {
            format!("{} {}*", p.name, ms(p.after_go_micros.unwrap_or(0) as i64))
        }
        (Order::Arrival, _) => format!("{} {}", p.name, ms(p.after_go_micros.unwrap_or(0) as i64)),
    };
    let of = |standing: Standing| order.iter().filter(move |p| p.standing == standing);
    let names = |standing: Standing| of(standing).map(|p| p.name.clone()).collect::<Vec<_>>();
    // Buzzes the host judged are named with the judgement, in their place among the answers.
    let answered: Vec<String> = order
        .iter()
        .filter(|p| {
            matches!(
                p.standing,
                Standing::Answered | Standing::Correct | Standing::Wrong
            )
        })
        .map(|p| match p.standing {
            Standing::Correct => format!("{} (correct)", figure(p)),
            Standing::Wrong => format!("{} (wrong)", figure(p)),
            _ => figure(p),
        })
        .collect();
    let false_starts: Vec<String> = of(Standing::FalseStart).map(figure).collect();
    let mut text = format!("Round {round}: ");
    if answered.is_empty() && false_starts.is_empty() {
        text.push_str("nobody answered");
    } else if answered.is_empty() {
        text.push_str("no valid answer");
    } else {
        text.push_str(&listed(answered, " before "));
        text.push_str(match by {
            Order::Arrival => " (arrival after go)",
            Order::Reaction => " (reaction times)",
        });
    }
    if !false_starts.is_empty() {
        text.push_str(&format!("; false start: {}", listed(false_starts, ", ")));
    }
    for (standing, words) in [
        (Standing::Early, "too early"),
        (Standing::LockedOut, "locked out"),
    ] {
        let names = names(standing);
        if !names.is_empty() {
            text.push_str(&format!("; {words}: {}", listed(names, ", ")));
        }
    }
    for (standing, words) in [
        (Standing::NoAnswer, "did not answer"),
        (Standing::Left, "left during the round"),
    ] {
        let names = names(standing);
        if !names.is_empty() {
            text.push_str(&format!("; {} {words}", listed(names, ", ")));
        }
    }
    text
}

/// `Session over after 3 rounds (the host ended it). Final scores: Ann 2, Ben 1`, or, for a
/// session that played no round, why it ended and no scores.
pub fn over_text(why: OverReason, rounds: u64, scores: &[Score]) -> String {
    match rounds {
        0 => format!("Session over before its first round: {}", why.describe()),
        1 => format!(
            "Session over after 1 round ({}). {}",
            why.describe(),
            scores_text(scores)
        ),
        n => format!(
            "Session over after {n} rounds ({}). {}",
            why.describe(),
            scores_text(scores)
        ),
    }
}

/// `Final scores: Ann 3, Ben 1, Dot 1`: everyone in a room whose lists fit one frame, else the
/// top [`TEXT_NAMES`] and a count of the rest.
pub fn scores_text(scores: &[Score]) -> String {
    let list: Vec<String> = scores
        .iter()
        .map(|s| format!("{} {}", s.name, s.points))
        .collect();
    if scores.len() > fitting_parties() {
        return format!("Final scores: {}", listed(list, ", "));
    }
    format!("Final scores: {}", list.join(", "))
}
