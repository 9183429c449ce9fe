//! The chat that follows a verdict on chat servers.
//!
//! Owns the relay phase of a round: the verdict goes out with `ChatOpen` after it, then every
//! line a party types is relayed to the others until someone says `Bye`, leaves, or nobody types
//! for the round's chat idle time. Relaying waits for a slow reader at most [`RELAY_BOUND`]: a
//! party that cannot take a line within it counts as gone, and only this round ever waits.

use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};

use super::verdict::sent_line;
use super::{Event, Outbound, Outcome, Round, RoundReport};
use crate::stop::Stop;

/// The longest a relayed line waits for room in one party's outbox.
pub(crate) const RELAY_BOUND: Duration = Duration::from_secs(10);

/// Runs the chat phase of `round`, whose every message is in.
pub(super) async fn chat(
    mut round: Round,
    events: &mut mpsc::Receiver<Event>,
    stop: &Stop,
) -> RoundReport {
    let (order, text) = round.verdict();
    let (shared_order, shared_text): (
        std::sync::Arc<[crate::protocol::Arrival]>,
        std::sync::Arc<str>,
    ) = (order.as_slice().into(), text.as_str().into());
    let mut undelivered = Vec::new();
    for (slot, party) in round.slots.iter_mut().enumerate() {
        let label = round.config.labels[slot].clone();
        let Some(reply) = party.as_mut().and_then(|p| p.reply.as_mut()) else {
            undelivered.push(label);
            continue;
        };
        let verdict = Outbound::Verdict {
            text: std::sync::Arc::clone(&shared_text),
            order: std::sync::Arc::clone(&shared_order),
            last: false,
            delivered: None,
        };
        let sent = reply.try_send(verdict).is_ok() && reply.try_send(Outbound::ChatOpen).is_ok();
        if !sent {
            undelivered.push(label);
        }
    }
    let delivered: Vec<String> = round
        .config
        .labels
        .iter()
        .filter(|l| !undelivered.contains(l))
        .cloned()
        .collect();
    round.print(sent_line(&round.config.labels, &delivered, &undelivered));

    // Lines each party typed that reached at least one other party.
    let mut relayed = vec![0u64; round.slots.len()];
    let idle = round.config.chat_idle;
    let ending = loop {
        let quiet = async {
            match idle {
                Some(t) => crate::rt::sleep(t).await,
                None => futures::future::pending().await,
            }
        };
        let event = futures::select_biased! {
            () = stop.wait().fuse() => break "the server is shutting down".to_owned(),
            event = events.next() => event,
            () = quiet.fuse() => {
                let t = idle.unwrap_or_default();
                break format!("nobody typed for {} s", t.as_secs_f64());
            }
        };
        match event {
            None => break "every connection of the round is gone".to_owned(),
            Some(Event::Chat { id, line }) => {
                let Some(slot) = round.slot_of(id) else {
                    continue;
                };
                let from = round.label(slot).to_owned();
                let mut reached = false;
                let mut stuck = None;
                for (other, party) in round.slots.iter_mut().enumerate() {
                    if other == slot {
                        continue;
                    }
                    let Some(reply) = party.as_mut().and_then(|p| p.reply.as_mut()) else {
                        continue;
                    };
                    let relay = Outbound::Relayed {
                        from: from.clone(),
                        line: line.clone(),
                    };
                    match crate::rt::timeout(RELAY_BOUND, reply.send(relay)).await {
                        Some(Ok(())) => reached = true,
                        Some(Err(_)) => {}
                        None => stuck = Some(other),
                    }
                }
                relayed[slot] += u64::from(reached);
                if let Some(other) = stuck {
                    let label = round.label(other).to_owned();
                    if let Some(p) = round.slots[other].as_mut() {
                        p.reply = None;
                    }
                    break format!("Client {label} stopped reading");
                }
                if line.trim() == "Bye" {
                    break format!("Client {from} said Bye");
                }
            }
            Some(Event::Left { id, why }) => {
                if let Some(slot) = round.slot_of(id) {
                    let label = round.label(slot).to_owned();
                    if let Some(p) = round.slots[slot].as_mut() {
                        p.reply = None;
                    }
                    break format!("Client {label} left ({why})");
                }
            }
            // Joins and messages have no place in a chat; connection actors do not send them.
            Some(_) => {}
        }
    };
    let over = format!("{ending}; the chat is over");
    for party in round.slots.iter_mut().flatten() {
        if let Some(mut reply) = party.reply.take() {
            let last = Outbound::ChatOver {
                message: over.clone(),
            };
            // Room is not guaranteed (lines may be queued); a party that cannot take it within
            // the bound is not waited for.
            let _ = crate::rt::timeout(RELAY_BOUND, reply.send(last)).await;
        }
    }
    let counts: Vec<String> = round
        .config
        .labels
        .iter()
        .zip(&relayed)
        .map(|(label, n)| format!("{n} from {label}"))
        .collect();
    round.print(format!(
        "Chat over: {ending}; lines relayed: {}",
        counts.join(", ")
    ));
    round.report(Outcome::Completed { order, undelivered })
}
