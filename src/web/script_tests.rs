//! The pages' script (`pages/arrival.js`) is a second copy of the protocol's numbering: these
//! tests fail when it drifts from the protocol's own (`crate::protocol`).

use bincode::Options;
use serde::de::DeserializeOwned;

use super::http::SCRIPT;
use crate::protocol::{
    encode, BuzzQueue, Change, Control, ErrorKind, Frame, Judgement, Lineup, OverReason, Ranking,
    RoundOutcome, RttSource, Standing,
};

/// Every `case N: return { type: "Name"` (decoded) and `name: (...) => frame(N` (encoded) in
/// the script: (N, frame name).
fn script_tags() -> Vec<(u32, String)> {
    let mut tags = Vec::new();
    for line in SCRIPT.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("case ") {
            if let Some((n, body)) = rest.split_once(": return { type: \"") {
                let name = body.split('"').next().unwrap_or_default();
                tags.push((n.parse().unwrap(), name.to_owned()));
            }
        }
        if let Some((name, rest)) = line.split_once(": (") {
            if let Some((_, after)) = rest.split_once("=> frame(") {
                let n = after.split([',', ')']).next().unwrap_or_default();
                let mut frame = name.to_owned();
                frame[..1].make_ascii_uppercase();
                tags.push((n.parse().unwrap(), frame));
            }
        }
    }
    tags
}

/// A frame of every kind a page reads or sends.
fn samples() -> Vec<Frame> {
    let outcome = RoundOutcome {
        round: 1,
        text: String::new(),
        order: Vec::new(),
        scores: Vec::new(),
    };
    let lineup = Lineup {
        round: 0,
        open: false,
        needed: 2,
        hosted: false,
        answer_micros: 0,
        players: Vec::new(),
        change: Change::Update,
        game: 1,
        buzz: true,
        correct: 1,
        penalty: 0,
        early: 1,
    };
    let roster = lineup.to_roster();
    let queue = BuzzQueue {
        round: 1,
        open: true,
        buzzes: Vec::new(),
        up: None,
        locked: Vec::new(),
    };
    vec![
        Frame::Seated {
            secret: String::new(),
        },
        Frame::Lineup(Box::new(lineup)),
        Frame::Buzzes(Box::new(queue)),
        Frame::Seat {
            version: 6,
            room: None,
            name: String::new(),
            team: None,
            secret: None,
        },
        Frame::Control(Control::NewGame),
        Frame::Welcome { version: 5 },
        Frame::error(ErrorKind::Busy, ""),
        Frame::Ping { seq: 0 },
        Frame::Go { round: 1 },
        Frame::Outcome(Box::new(outcome)),
        Frame::Early { round: 1 },
        Frame::Roster(Box::new(roster)),
        Frame::Over {
            why: OverReason::LastRound,
            rounds: 0,
            scores: Vec::new(),
        },
        Frame::Rules {
            ranking: Ranking::Arrival,
        },
        Frame::Join {
            version: 5,
            room: None,
            name: String::new(),
        },
        Frame::Pong { seq: 0 },
        Frame::Answer,
        Frame::Host {
            version: 5,
            room: None,
            key: String::new(),
        },
        Frame::Open,
        Frame::Finish,
    ]
}

#[test]
fn the_scripts_frame_tags_are_the_protocols() {
    let tags = script_tags();
    assert!(
        tags.len() >= 20,
        "the script's tags were not found: {tags:?}"
    );
    for frame in samples() {
        let bytes = encode(&frame).unwrap();
        let tag = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
        let name = frame.kind_name();
        let in_script: Vec<u32> = tags
            .iter()
            .filter(|(_, n)| n == name)
            .map(|&(t, _)| t)
            .collect();
        assert!(!in_script.is_empty(), "the script has no {name}");
        assert!(
            in_script.iter().all(|&t| t == tag),
            "{name} is {tag}, the script says {in_script:?}"
        );
    }
}

/// The names in the script's `const NAME = [...]` table.
fn script_table(name: &str) -> Vec<String> {
    let start = SCRIPT.find(&format!("const {name} = [")).expect(name) + name.len() + 10;
    let end = start + SCRIPT[start..].find(']').unwrap();
    SCRIPT[start..end]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The variants of a protocol enum, by index, as its wire format numbers them.
fn variants<T: DeserializeOwned>() -> Vec<T> {
    let codec = bincode::DefaultOptions::new().with_fixint_encoding();
    (0u32..)
        .map_while(|i| codec.deserialize::<T>(&i.to_le_bytes()).ok())
        .collect()
}

#[test]
fn the_scripts_tables_follow_the_protocols_enums() {
    let lower = |names: Vec<String>| -> Vec<String> {
        names.into_iter().map(|n| n.to_lowercase()).collect()
    };
    let errors: Vec<String> = variants::<ErrorKind>()
        .iter()
        .map(|k| format!("{k:?}"))
        .collect();
    assert_eq!(script_table("ERROR"), errors);
    let sources = lower(
        variants::<RttSource>()
            .iter()
            .map(|s| format!("{s:?}"))
            .collect(),
    );
    assert_eq!(script_table("SOURCE"), sources);
    let rankings = lower(
        variants::<Ranking>()
            .iter()
            .map(|r| format!("{r:?}"))
            .collect(),
    );
    assert_eq!(script_table("RANKING"), rankings);
    let over: Vec<&str> = variants::<OverReason>()
        .iter()
        .map(|o| o.describe())
        .collect();
    assert_eq!(script_table("OVER"), over);
    let judgements: Vec<&str> = variants::<Judgement>()
        .iter()
        .map(|j| j.describe())
        .collect();
    assert_eq!(script_table("JUDGEMENT"), judgements);
    // Standings are said in the page's own words; one for each, in order.
    assert_eq!(script_table("STANDING").len(), variants::<Standing>().len());
}

#[test]
fn the_scripts_host_controls_are_the_protocols() {
    // `name: (...) => encode.control(N` in the script, by name.
    let script: Vec<(String, u32)> = SCRIPT
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let (name, rest) = line.split_once(": (")?;
            let n = rest.split_once("=> encode.control(")?.1;
            Some((name.to_owned(), n.split([',', ')']).next()?.parse().ok()?))
        })
        .collect();
    let name = String::new;
    let controls = [
        Control::Correct,
        Control::Wrong,
        Control::Next,
        Control::SetScore {
            name: name(),
            points: 0,
        },
        Control::Kick { name: name() },
        Control::Free { name: name() },
        Control::NewGame,
        Control::Scoring {
            correct: 0,
            penalty: 0,
            early: 0,
        },
    ];
    assert_eq!(script.len(), controls.len(), "{script:?}");
    for control in controls {
        let bytes = encode(&Frame::Control(control.clone())).unwrap();
        let index = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        let debug = format!("{control:?}");
        let variant = debug.split([' ', '{']).next().unwrap();
        let mut js = variant.to_owned();
        js[..1].make_ascii_lowercase();
        assert!(
            script.contains(&(js.clone(), index)),
            "{variant} is {index}; the script has {script:?}"
        );
    }
}
