//! The arbiter of one round.
//!
//! A `Coordinator` owns everything about one round: which connection holds which label, the
//! arrival list, and the verdict. It is a single task ([`coordinator_loop`]) fed by
//! [`Event`]s over a `futures` mpsc channel from the connection actors, and it answers each
//! connection through that connection's [`Outbox`]. Nothing else reads or writes round state.
//!
//! Invariants:
//! - A slot (label) is taken only by a connection whose handshake completed, and freed if it
//!   leaves before the barrier; labels are handed out lowest-free-first.
//! - No `Message` is accepted before the barrier (all slots filled).
//! - The order is decided only by each `Arrived::at` — the instant the kernel received the
//!   message's data (see `stamp`), or, where the kernel cannot say, the instant the connection
//!   actor finished reading it — never by label, connection order, message text or the order in
//!   which events reach this actor.
//! - It never awaits a connection: outboxes are written with `try_send` (their capacity covers
//!   every frame a round sends), so one stuck client cannot stall the round.
//!
//! It must not touch sockets, bytes or the clock's notion of arrival: timestamps come in
//! `Arrived`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt, StreamExt};

use crate::protocol::{Arrival, ErrorKind, Frame, PROTOCOL_VERSION};
use crate::stop::Stop;
use crate::transcript::Transcript;

/// Identifies a connection for the lifetime of a server.
pub type ConnId = u64;

/// Frames are given to a connection's writer actor through its outbox.
pub type Outbox = mpsc::Sender<Outbound>;

/// Capacity of a connection's outbox. A round sends a connection at most a `Welcome`, a
/// `Connected` and one final frame, so `try_send` into a live outbox cannot fail for lack of room.
pub const OUTBOX_CAPACITY: usize = 4;

/// What a writer actor is asked to do.
#[derive(Debug)]
pub enum Outbound {
    /// Write this frame and keep the connection open.
    Send(Frame),
    /// Write this frame, report whether it was written, then close the connection.
    Final {
        frame: Frame,
        delivered: Option<oneshot::Sender<bool>>,
    },
}

impl Outbound {
    /// An error frame that ends the connection.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Outbound {
        Outbound::Final {
            frame: Frame::error(kind, message),
            delivered: None,
        }
    }
}

/// What connection actors (and the lobby, for `Join`) tell a coordinator.
#[derive(Debug)]
pub enum Event {
    /// A connection that completed its handshake asks for a slot. `admitted` receives its slot,
    /// or `None` if this round no longer takes parties.
    Join {
        id: ConnId,
        peer: SocketAddr,
        reply: Outbox,
        admitted: oneshot::Sender<Option<Admit>>,
    },
    /// A connection finished reading its party's message at instant `at`.
    Arrived {
        id: ConnId,
        name: String,
        at: Instant,
        reply: Outbox,
    },
    /// A connection ended; `why` is a short human phrase ("closed the connection").
    Left { id: ConnId, why: String },
    /// A line typed in the chat that follows the acknowledgment (chat servers only).
    Chat { id: ConnId, line: String },
}

/// The answer to an accepted `Join`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admit {
    pub label: String,
    /// This join filled the round's last slot. Whoever routes joins must stop sending them here:
    /// a started round no longer reads joins promptly (it may be delivering acknowledgments).
    pub full: bool,
}

/// What a round prints on the transcript.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Style {
    /// The assignment's lines: each party connecting, each message, `Sent acknowledgment to both
    /// X and Y`.
    #[default]
    Assignment,
    /// One line per round (service mode), stamped with the time: `2026-11-25T21:40:01.123Z
    /// Round 7 [quiz]: X: Alice received before Y: Bob (margin 38 us)`.
    Summary,
    /// Nothing per round (service mode with `--quiet`): only the server's summary at the end.
    Quiet,
}

/// How a round is set up.
#[derive(Debug, Clone)]
pub struct RoundConfig {
    pub id: u64,
    pub room: Option<String>,
    /// One label per party, in the order slots are handed out.
    pub labels: Arc<[String]>,
    /// Abort the round if it has not completed this long after it was created.
    pub timeout: Option<Duration>,
    pub style: Style,
    /// After the acknowledgment, keep the parties connected and relay their lines.
    pub chat: bool,
}

/// How a round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every party's message arrived; `undelivered` lists the labels whose acknowledgment could
    /// not be written (they had left or their socket failed).
    Completed {
        order: Vec<Arrival>,
        undelivered: Vec<String>,
    },
    /// The round could not complete; every remaining party was told `round aborted: <reason>`
    /// (on a stop, the connections' writers tell them instead).
    Aborted { kind: ErrorKind, reason: String },
}

/// What a coordinator returns when its round is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundReport {
    pub id: u64,
    pub room: Option<String>,
    pub outcome: Outcome,
}

impl RoundReport {
    /// Completed, and every party got its acknowledgment.
    pub fn is_clean(&self) -> bool {
        matches!(&self.outcome, Outcome::Completed { undelivered, .. } if undelivered.is_empty())
    }
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

/// `both X and Y` for two labels, `all of X, Y and Z` for more, `X` for one.
fn list_labels(labels: &[&str]) -> String {
    match labels {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [a, b] if labels.len() == 2 => format!("{a} and {b}"),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

struct Party {
    id: ConnId,
    /// `None` once the connection has left: nothing more can be delivered to it.
    reply: Option<Outbox>,
    /// (instant read, order of delivery to this actor, name)
    message: Option<Box<(Instant, u64, String)>>,
}

/// The round's state. Private: only [`coordinator_loop`] drives it.
struct Round {
    config: RoundConfig,
    slots: Vec<Option<Party>>,
    started: bool,
    delivered_events: u64,
    transcript: Transcript,
}

enum Step {
    Continue,
    /// Messages are all in: send the acknowledgment.
    Complete,
    Abort(ErrorKind, String),
}

impl Round {
    /// A line of the assignment's play-by-play; silent in service mode.
    fn say(&self, line: String) {
        if self.config.style == Style::Assignment {
            self.transcript.line(line);
        }
    }

    /// A line every style but `Quiet` prints; service mode stamps it with the time.
    fn print(&self, line: String) {
        match self.config.style {
            Style::Assignment => self.transcript.line(line),
            Style::Summary => self.transcript.stamped(line),
            Style::Quiet => {}
        }
    }

    /// `Round 7` or `Round 7 [quiz]`, for service-mode lines.
    fn title(&self) -> String {
        match &self.config.room {
            Some(room) => format!("Round {} [{room}]", self.config.id),
            None => format!("Round {}", self.config.id),
        }
    }

    fn label(&self, slot: usize) -> &str {
        &self.config.labels[slot]
    }

    fn slot_of(&self, id: ConnId) -> Option<usize> {
        self.slots
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.id == id))
    }

    fn handle(&mut self, event: Event) -> Step {
        match event {
            Event::Join {
                id,
                peer,
                reply,
                admitted,
            } => self.join(id, peer, reply, admitted),
            Event::Arrived {
                id,
                name,
                at,
                reply,
            } => self.arrived(id, name, at, reply),
            Event::Left { id, why } => self.left(id, &why),
            Event::Chat { id, .. } => self.chat_too_early(id),
        }
    }

    fn join(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        reply: Outbox,
        admitted: oneshot::Sender<Option<Admit>>,
    ) -> Step {
        let free = self.slots.iter().position(Option::is_none);
        let Some(slot) = free.filter(|_| !self.started) else {
            let _ = admitted.send(None);
            return Step::Continue;
        };
        let label = self.label(slot).to_owned();
        let full = self.slots.iter().filter(|p| p.is_none()).count() == 1;
        let admit = Admit {
            label: label.clone(),
            full,
        };
        if admitted.send(Some(admit)).is_err() {
            // The joiner gave up waiting; the slot stays free.
            return Step::Continue;
        }
        log::info!("round {}: {peer} is {label}", self.config.id);
        self.say(format!("Client {label} connected from {peer}"));
        // The handshake is answered only once a round has a place for the connection, so a
        // refusal can come instead of it, and the last party's `Welcome` and `Connected` leave
        // together.
        let mut reply = reply;
        let _ = reply.try_send(Outbound::Send(Frame::Welcome {
            version: PROTOCOL_VERSION,
        }));
        self.slots[slot] = Some(Party {
            id,
            reply: Some(reply),
            message: None,
        });
        if full {
            self.start();
        }
        Step::Continue
    }

    /// The barrier: every slot is filled, so every party learns its label at once.
    fn start(&mut self) {
        self.started = true;
        log::info!("round {}: all parties connected", self.config.id);
        for (slot, party) in self.slots.iter_mut().enumerate() {
            if let Some(Party {
                reply: Some(reply), ..
            }) = party
            {
                let label = self.config.labels[slot].clone();
                let _ = reply.try_send(Outbound::Send(Frame::Connected {
                    round: self.config.id,
                    label,
                }));
            }
        }
    }

    fn arrived(&mut self, id: ConnId, name: String, at: Instant, reply: Outbox) -> Step {
        let Some(slot) = self.slot_of(id) else {
            return Step::Continue;
        };
        let label = self.label(slot).to_owned();
        if !self.started {
            log::warn!(
                "round {}: {label} sent a message before the barrier",
                self.config.id
            );
            let _ = reply.clone().try_send(Outbound::error(
                ErrorKind::Protocol,
                "message sent before all parties were connected",
            ));
            return self.left(id, "sent a message before all parties were connected");
        }
        let seq = self.delivered_events;
        self.delivered_events += 1;
        let Some(party) = self.slots[slot].as_mut() else {
            return Step::Continue;
        };
        if party.message.is_some() {
            // Connection actors refuse a second message themselves; this is a second line of
            // defence, and the first message stands.
            log::warn!("round {}: {label} sent a second message", self.config.id);
            return Step::Continue;
        }
        party.message = Some(Box::new((at, seq, name)));
        party.reply = Some(reply);
        if self
            .slots
            .iter()
            .all(|p| p.as_ref().is_some_and(|p| p.message.is_some()))
        {
            Step::Complete
        } else {
            Step::Continue
        }
    }

    /// A chat line before the chat is open breaks the protocol, like any frame out of turn.
    fn chat_too_early(&mut self, id: ConnId) -> Step {
        if let Some(Some(party)) = self.slot_of(id).map(|s| &mut self.slots[s]) {
            if let Some(mut reply) = party.reply.clone() {
                let _ = reply.try_send(Outbound::error(
                    ErrorKind::Protocol,
                    "a chat line before the chat was open",
                ));
            }
        }
        self.left(id, "sent a chat line before the chat was open")
    }

    fn left(&mut self, id: ConnId, why: &str) -> Step {
        let Some(slot) = self.slot_of(id) else {
            return Step::Continue;
        };
        let label = self.label(slot).to_owned();
        if !self.started {
            log::info!(
                "round {}: {label} {why} before the round started; slot freed",
                self.config.id
            );
            self.say(format!(
                "Client {label} left before the round started ({why})"
            ));
            self.slots[slot] = None;
            return Step::Continue;
        }
        let Some(party) = self.slots[slot].as_mut() else {
            return Step::Continue;
        };
        party.reply = None;
        if party.message.is_some() {
            log::info!("round {}: {label} {why} after sending", self.config.id);
            self.say(format!(
                "Client {label} disconnected after sending its message ({why})"
            ));
            Step::Continue
        } else {
            Step::Abort(
                ErrorKind::PartyLeft,
                format!("Client {label} left before sending its message ({why})"),
            )
        }
    }

    /// Tells every party still connected why the round ends (except on a stop, which the
    /// writers announce), and reports it.
    fn abort(self, kind: ErrorKind, reason: String) -> RoundReport {
        log::warn!("round {}: aborted: {reason}", self.config.id);
        match self.config.style {
            Style::Assignment => self.transcript.line(format!("Round aborted: {reason}")),
            Style::Summary => self
                .transcript
                .stamped(format!("{} aborted: {reason}", self.title())),
            Style::Quiet => {}
        }
        // On a stop every writer tells its own client, connected to a round or not; a second,
        // different message from here would race with it.
        let told = format!("round aborted: {reason}");
        let parties = self.slots.into_iter().flatten();
        for party in parties.filter(|_| kind != ErrorKind::ShuttingDown) {
            if let Some(mut reply) = party.reply {
                let _ = reply.try_send(Outbound::error(kind, told.clone()));
            }
        }
        RoundReport {
            id: self.config.id,
            room: self.config.room,
            outcome: Outcome::Aborted { kind, reason },
        }
    }

    /// The verdict: every message in arrival order, and its sentence. Prints the messages.
    fn verdict(&self) -> (Vec<Arrival>, String) {
        let mut entries: Vec<(Instant, u64, usize, String)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, p)| {
                let (at, seq, name) = &**p.as_ref()?.message.as_ref()?;
                Some((*at, *seq, slot, name.clone()))
            })
            .collect();
        // Equal instants are next to impossible; if they happen, delivery order decides.
        entries.sort_by_key(|&(at, seq, _, _)| (at, seq));
        let first = entries.first().map(|e| e.0);
        let order: Vec<Arrival> = entries
            .into_iter()
            .map(|(at, _, slot, name)| Arrival {
                label: self.label(slot).to_owned(),
                name,
                after_micros: first
                    .map(|f| at.duration_since(f).as_micros() as u64)
                    .unwrap_or(0),
            })
            .collect();
        let text = ack_text(&order);
        for a in &order {
            self.say(format!("Client {}: {}", a.label, a.name));
        }
        (order, text)
    }

    /// Every message is in: decide, tell everyone, and wait until each acknowledgment was written
    /// (or could not be), so the final line states what actually happened.
    async fn complete(self) -> RoundReport {
        let (order, text) = self.verdict();

        let mut pending = Vec::new();
        let mut undelivered = Vec::new();
        for (slot, party) in self.slots.iter().enumerate() {
            let label = self.label(slot).to_owned();
            let sent = party
                .as_ref()
                .and_then(|p| p.reply.clone())
                .and_then(|mut reply| {
                    let (tx, rx) = oneshot::channel();
                    let frame = Frame::Ack {
                        text: text.clone(),
                        order: order.clone(),
                    };
                    reply
                        .try_send(Outbound::Final {
                            frame,
                            delivered: Some(tx),
                        })
                        .ok()
                        .map(|()| rx)
                });
            match sent {
                Some(rx) => pending.push((label, rx)),
                None => undelivered.push(label),
            }
        }
        let mut delivered = Vec::new();
        for (label, rx) in pending {
            if rx.await.unwrap_or(false) {
                delivered.push(label);
            } else {
                undelivered.push(label);
            }
        }
        match self.config.style {
            Style::Assignment => self
                .transcript
                .line(self.sent_line(&delivered, &undelivered)),
            Style::Summary => {
                let margin = order.get(1).map_or(0, |a| a.after_micros);
                let mut line = format!("{}: {text} (margin {margin} us)", self.title());
                if !undelivered.is_empty() {
                    let failed: Vec<&str> = undelivered.iter().map(String::as_str).collect();
                    line.push_str(&format!("; delivery to {} failed", list_labels(&failed)));
                }
                self.transcript.stamped(line);
            }
            Style::Quiet => {}
        }
        RoundReport {
            id: self.config.id,
            room: self.config.room.clone(),
            outcome: Outcome::Completed { order, undelivered },
        }
    }

    /// Chat servers: the verdict goes out with the chat opened after it, then every line a party
    /// types is relayed to the others, until someone says `Bye` or leaves. Relaying awaits slow
    /// readers: only this round waits for them.
    async fn chat(mut self, events: &mut mpsc::Receiver<Event>, stop: &Stop) -> RoundReport {
        let (order, text) = self.verdict();
        let mut undelivered = Vec::new();
        for (slot, party) in self.slots.iter_mut().enumerate() {
            let label = self.config.labels[slot].clone();
            let Some(reply) = party.as_mut().and_then(|p| p.reply.as_mut()) else {
                undelivered.push(label);
                continue;
            };
            let ack = Frame::Ack {
                text: text.clone(),
                order: order.clone(),
            };
            let sent = reply.try_send(Outbound::Send(ack)).is_ok()
                && reply.try_send(Outbound::Send(Frame::ChatOpen)).is_ok();
            if !sent {
                undelivered.push(label);
            }
        }
        let delivered: Vec<String> = self
            .config
            .labels
            .iter()
            .filter(|l| !undelivered.contains(l))
            .cloned()
            .collect();
        self.print(self.sent_line(&delivered, &undelivered));

        let mut relayed = vec![0u64; self.slots.len()];
        let ending = loop {
            let event = futures::select_biased! {
                () = stop.wait().fuse() => break "the server is shutting down".to_owned(),
                event = events.next() => event,
            };
            match event {
                None => break "every connection of the round is gone".to_owned(),
                Some(Event::Chat { id, line }) => {
                    let Some(slot) = self.slot_of(id) else {
                        continue;
                    };
                    let from = self.label(slot).to_owned();
                    relayed[slot] += 1;
                    for (other, party) in self.slots.iter_mut().enumerate() {
                        if other == slot {
                            continue;
                        }
                        if let Some(reply) = party.as_mut().and_then(|p| p.reply.as_mut()) {
                            let frame = Frame::Relayed {
                                from: from.clone(),
                                line: line.clone(),
                            };
                            let _ = reply.send(Outbound::Send(frame)).await;
                        }
                    }
                    if line.trim() == "Bye" {
                        break format!("Client {from} said Bye");
                    }
                }
                Some(Event::Left { id, why }) => {
                    if let Some(slot) = self.slot_of(id) {
                        let label = self.label(slot).to_owned();
                        if let Some(p) = self.slots[slot].as_mut() {
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
        for party in self.slots.iter_mut().flatten() {
            if let Some(mut reply) = party.reply.take() {
                let frame = Frame::ChatOver {
                    message: over.clone(),
                };
                let _ = reply
                    .send(Outbound::Final {
                        frame,
                        delivered: None,
                    })
                    .await;
            }
        }
        let counts: Vec<String> = self
            .config
            .labels
            .iter()
            .zip(&relayed)
            .map(|(label, n)| format!("{n} from {label}"))
            .collect();
        self.print(format!(
            "Chat over: {ending}; lines relayed: {}",
            counts.join(", ")
        ));
        RoundReport {
            id: self.config.id,
            room: self.config.room.clone(),
            outcome: Outcome::Completed { order, undelivered },
        }
    }

    fn sent_line(&self, delivered: &[String], undelivered: &[String]) -> String {
        let all: Vec<&str> = self.config.labels.iter().map(String::as_str).collect();
        let ok: Vec<&str> = delivered.iter().map(String::as_str).collect();
        if undelivered.is_empty() {
            match all.len() {
                2 => format!("Sent acknowledgment to both {}", list_labels(&all)),
                1 => format!("Sent acknowledgment to {}", list_labels(&all)),
                _ => format!("Sent acknowledgment to all of {}", list_labels(&all)),
            }
        } else {
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
    }
}

/// Runs one round to its end and reports how it ended.
///
/// The loop ends when the round completes, is aborted (a party left, the round timed out, the
/// `stop` fired), or when every sender of `events` is gone before completion (abandoned).
pub async fn coordinator_loop(
    config: RoundConfig,
    mut events: mpsc::Receiver<Event>,
    stop: Stop,
    transcript: Transcript,
) -> RoundReport {
    // Made once for the round's life, not once per event: an idle round holds them as it waits.
    let timer = match config.timeout {
        Some(t) => futures::future::Either::Left(async_std::task::sleep(t)),
        None => futures::future::Either::Right(futures::future::pending::<()>()),
    }
    .fuse();
    let stopped = stop.wait().fuse();
    futures::pin_mut!(timer, stopped);
    let slots = (0..config.labels.len()).map(|_| None).collect();
    let mut round = Round {
        config,
        slots,
        started: false,
        delivered_events: 0,
        transcript,
    };
    loop {
        futures::select_biased! {
            () = stopped => {
                let reason = "the server is shutting down".to_owned();
                return round.abort(ErrorKind::ShuttingDown, reason);
            }
            () = timer => {
                let t = round.config.timeout.unwrap_or_default();
                let reason = format!("the round did not complete within {} s", t.as_secs_f64());
                return round.abort(ErrorKind::RoundTimeout, reason);
            }
            event = events.next() => match event {
                Some(event) => match round.handle(event) {
                    Step::Continue => {}
                    // Boxed: the completion state is large and lives only briefly, while an idle
                    // round's future is held for as long as it waits.
                    Step::Complete if round.config.chat => {
                        return Box::pin(round.chat(&mut events, &stop)).await
                    }
                    Step::Complete => return Box::pin(round.complete()).await,
                    Step::Abort(kind, reason) => return round.abort(kind, reason),
                },
                None => {
                    let reason = "every connection of the round is gone".to_owned();
                    return round.abort(ErrorKind::PartyLeft, reason);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests;
