//! The chat that follows a verdict on chat servers.
//!
//! Owns the relay phase of a round: the verdict goes out with `ChatOpen` after it, then every
//! line a party types is relayed to the others until someone says `Bye`, leaves, or nobody types
//! for the round's chat idle time. Relaying waits for a slow reader at most [`RELAY_BOUND`]: a
//! party that cannot take a line within it counts as gone, and only this round ever waits.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};

use super::event::{ConnId, Event, Outbound, Outcome, RoundReport};
use super::state::Round;
use super::verdict::sent_line;
use crate::protocol::Arrival;
use crate::stop::Stop;

/// The longest a relayed line waits for room in one party's outbox.
pub(crate) const RELAY_BOUND: Duration = Duration::from_secs(10);

/// Runs the chat phase of `round`, whose every message is in.
pub(super) async fn chat(
    round: Round,
    events: &mut mpsc::Receiver<Event>,
    stop: &Stop,
) -> RoundReport {
    let (order, text) = round.verdict();
    let mut relay = Relay {
        relayed: vec![0; round.slots.len()],
        round,
    };
    let undelivered = relay.open(&order, &text);
    let ending = relay.run(events, stop).await;
    relay.close(ending, order, undelivered).await
}

/// The chat's state: the round, and the lines each party typed that reached at least one other.
struct Relay {
    round: Round,
    relayed: Vec<u64>,
}

impl Relay {
    /// Sends every party the verdict and `ChatOpen`; returns the labels it could not reach.
    fn open(&mut self, order: &[Arrival], text: &str) -> Vec<String> {
        let round = &mut self.round;
        let (shared_order, shared_text): (Arc<[Arrival]>, Arc<str>) = (order.into(), text.into());
        let mut undelivered = Vec::new();
        for (slot, party) in round.slots.iter_mut().enumerate() {
            let label = round.config.labels[slot].clone();
            let Some(reply) = party.as_mut().and_then(|p| p.reply.as_mut()) else {
                undelivered.push(label);
                continue;
            };
            let verdict = Outbound::Verdict {
                text: Arc::clone(&shared_text),
                order: Arc::clone(&shared_order),
                last: false,
                delivered: None,
            };
            let sent =
                reply.try_send(verdict).is_ok() && reply.try_send(Outbound::ChatOpen).is_ok();
            if !sent {
                undelivered.push(label);
            }
        }
        let labels = &round.config.labels;
        let delivered: Vec<String> = labels
            .iter()
            .filter(|l| !undelivered.contains(l))
            .cloned()
            .collect();
        round.print(sent_line(labels, &delivered, &undelivered));
        undelivered
    }

    /// Relays lines until the chat ends; returns why it ended.
    async fn run(&mut self, events: &mut mpsc::Receiver<Event>, stop: &Stop) -> String {
        let idle = self.round.config.chat_idle;
        loop {
            let quiet = async {
                match idle {
                    Some(t) => crate::rt::sleep(t).await,
                    None => futures::future::pending().await,
                }
            };
            let event = futures::select_biased! {
                () = stop.wait().fuse() => return "the server is shutting down".to_owned(),
                event = events.next() => event,
                () = quiet.fuse() => {
                    let t = idle.unwrap_or_default();
                    return format!("nobody typed for {} s", t.as_secs_f64());
                }
            };
            let ended = match event {
                None => Some("every connection of the round is gone".to_owned()),
                Some(Event::Chat { id, line }) => self.line(id, line).await,
                Some(Event::Left { id, why }) => self.left(id, &why),
                // Joins and messages have no place in a chat; connection actors do not send them.
                Some(_) => None,
            };
            if let Some(ending) = ended {
                return ending;
            }
        }
    }

    /// Relays `line` from connection `id` to the others; `Some` ends the chat, saying why.
    async fn line(&mut self, id: ConnId, line: String) -> Option<String> {
        let round = &mut self.round;
        let slot = round.slot_of(id)?;
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
        self.relayed[slot] += u64::from(reached);
        if let Some(other) = stuck {
            let label = self.gone(other);
            return Some(format!("Client {label} stopped reading"));
        }
        (line.trim() == "Bye").then(|| format!("Client {from} said Bye"))
    }

    /// Connection `id` left; it ends the chat.
    fn left(&mut self, id: ConnId, why: &str) -> Option<String> {
        let slot = self.round.slot_of(id)?;
        let label = self.gone(slot);
        Some(format!("Client {label} left ({why})"))
    }

    /// The party in `slot` can be told nothing more; its label.
    fn gone(&mut self, slot: usize) -> String {
        if let Some(p) = self.round.slots[slot].as_mut() {
            p.reply = None;
        }
        self.round.label(slot).to_owned()
    }

    /// Tells everyone still here why the chat ended, and reports the round.
    async fn close(
        mut self,
        ending: String,
        order: Vec<Arrival>,
        undelivered: Vec<String>,
    ) -> RoundReport {
        let over = format!("{ending}; the chat is over");
        for party in self.round.slots.iter_mut().flatten() {
            if let Some(mut reply) = party.reply.take() {
                let last = Outbound::ChatOver {
                    message: over.clone(),
                };
                // Room is not guaranteed (lines may be queued); a party that cannot take it
                // within the bound is not waited for.
                let _ = crate::rt::timeout(RELAY_BOUND, reply.send(last)).await;
            }
        }
        let counts: Vec<String> = self
            .round
            .config
            .labels
            .iter()
            .zip(&self.relayed)
            .map(|(label, n)| format!("{n} from {label}"))
            .collect();
        self.round.print(format!(
            "Chat over: {ending}; lines relayed: {}",
            counts.join(", ")
        ));
        self.round.report(Outcome::Completed { order, undelivered })
    }
}
