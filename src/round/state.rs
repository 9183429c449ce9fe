//! A round's state machine: its slots and parties, the arrivals, the verdict's delivery, its
//! deadlines, and how it ends. Driven one event at a time by the coordinator; it never waits
//! (every send is a `try_send`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use futures::channel::{mpsc, oneshot};

use super::event::{
    Admit, ConnId, Event, Outbound, Outbox, Outcome, RoundConfig, RoundReport, Style,
};
use super::verdict::{self, ack_text, list_labels, sent_line, Received};
use crate::protocol::{Arrival, ErrorKind};
use crate::transcript::Transcript;

pub(super) struct Party {
    pub(super) id: ConnId,
    /// Where it connected from: the server keeps track of addresses that abort rounds.
    pub(super) peer: IpAddr,
    /// `None` once the connection has left: nothing more can be delivered to it.
    pub(super) reply: Option<Outbox>,
    pub(super) message: Option<Box<Received>>,
}

/// The round's state. Only the coordinator (and, before the barrier, whoever holds the
/// [`Filling`](super::coordinator::Filling)) drives it.
pub(crate) struct Round {
    pub(super) config: RoundConfig,
    pub(super) slots: Vec<Option<Party>>,
    pub(super) started: bool,
    pub(super) delivered_events: u64,
    pub(super) transcript: Transcript,
    /// When the round is aborted if not complete: its time limit from its first party's join.
    pub(super) deadline: Option<Instant>,
    /// When every party's message must be in: set at the barrier.
    pub(super) messages_due: Option<Instant>,
}

pub(super) enum Step {
    Continue,
    /// Messages are all in: send the acknowledgment.
    Complete,
    Abort(ErrorKind, String),
    /// The last party left before the barrier.
    Empty,
}

impl Round {
    /// A round for its first party, which is about to join: its clock starts now.
    pub(super) fn new(config: RoundConfig, transcript: Transcript) -> Round {
        let slots = (0..config.labels.len()).map(|_| None).collect();
        let deadline = config.timeout.map(|t| Instant::now() + t);
        Round {
            config,
            slots,
            started: false,
            delivered_events: 0,
            transcript,
            deadline,
            messages_due: None,
        }
    }

    /// A line of the assignment's play-by-play; silent in service mode.
    /// Formatted only when printed: service mode has rounds to run, not lines to throw away.
    pub(super) fn say(&self, line: std::fmt::Arguments<'_>) {
        if self.config.style == Style::Assignment {
            self.transcript.line(line.to_string());
        }
    }

    /// A line every style but `Quiet` prints; service mode stamps it with the time.
    pub(super) fn print(&self, line: String) {
        match self.config.style {
            Style::Assignment => self.transcript.line(line),
            Style::Summary => self.transcript.stamped(line),
            Style::Quiet => {}
        }
    }

    /// `Round 7` or `Round 7 [quiz]`, for service-mode lines.
    pub(super) fn title(&self) -> String {
        match &self.config.room {
            Some(room) => format!("Round {} [{room}]", self.config.id),
            None => format!("Round {}", self.config.id),
        }
    }

    pub(super) fn label(&self, slot: usize) -> &str {
        &self.config.labels[slot]
    }

    pub(super) fn slot_of(&self, id: ConnId) -> Option<usize> {
        self.slots
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.id == id))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    pub(super) fn handle(&mut self, event: Event) -> Step {
        match event {
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

    pub(super) fn join(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        mut reply: Outbox,
    ) -> Option<Admit> {
        let free = self.slots.iter().position(Option::is_none);
        let slot = free.filter(|_| !self.started)?;
        let label = self.label(slot).to_owned();
        let full = self.slots.iter().filter(|p| p.is_none()).count() == 1;
        log::info!("round {}: {peer} is {label}", self.config.id);
        self.say(format_args!("Client {label} connected from {peer}"));
        // The handshake is answered only once a round has a place for the connection, so a
        // refusal can come instead of it, and the last party's `Admitted` and `Started` leave
        // together.
        let _ = reply.try_send(Outbound::Admitted);
        self.slots[slot] = Some(Party {
            id,
            peer: peer.ip(),
            reply: Some(reply),
            message: None,
        });
        Some(Admit { label, full })
    }

    /// The barrier: every slot is filled, so every party learns its label, and where to send its
    /// message, at once.
    pub(super) fn start(&mut self, events: &mpsc::Sender<Event>) {
        self.started = true;
        self.messages_due = self.config.message_timeout.map(|t| Instant::now() + t);
        log::info!("round {}: all parties connected", self.config.id);
        for (slot, party) in self.slots.iter_mut().enumerate() {
            if let Some(Party {
                reply: Some(reply), ..
            }) = party
            {
                let label = self.config.labels[slot].clone();
                let _ = reply.try_send(Outbound::Started {
                    round: self.config.id,
                    label,
                    events: events.clone(),
                });
            }
        }
    }

    pub(super) fn arrived(&mut self, id: ConnId, name: String, at: Instant, reply: Outbox) -> Step {
        let Some(slot) = self.slot_of(id) else {
            return Step::Continue;
        };
        let label = self.label(slot).to_owned();
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
        party.message = Some(Box::new(Received { at, seq, name }));
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

    /// A chat line before the chat is open breaks the protocol, like any event out of turn.
    pub(super) fn chat_too_early(&mut self, id: ConnId) -> Step {
        if let Some(Some(party)) = self.slot_of(id).map(|s| &mut self.slots[s]) {
            if let Some(mut reply) = party.reply.clone() {
                let _ = reply.try_send(Outbound::ended(
                    ErrorKind::Protocol,
                    "a chat line before the chat was open",
                ));
            }
        }
        self.left(id, "sent a chat line before the chat was open")
    }

    pub(super) fn left(&mut self, id: ConnId, why: &str) -> Step {
        let Some(slot) = self.slot_of(id) else {
            return Step::Continue;
        };
        let label = self.label(slot).to_owned();
        if !self.started {
            log::info!(
                "round {}: {label} {why} before the round started; slot freed",
                self.config.id
            );
            self.say(format_args!(
                "Client {label} left before the round started ({why})"
            ));
            self.slots[slot] = None;
            return if self.is_empty() {
                Step::Empty
            } else {
                Step::Continue
            };
        }
        let Some(party) = self.slots[slot].as_mut() else {
            return Step::Continue;
        };
        party.reply = None;
        if party.message.is_some() {
            log::info!("round {}: {label} {why} after sending", self.config.id);
            self.say(format_args!(
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

    /// The first of its deadlines: the round's, or its parties' for their messages.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match (self.deadline, self.messages_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The parties' time to send their messages passed: each that has not sent is told so, and
    /// the round is aborted for the others in the first one's name.
    pub(super) fn messages_overdue(mut self) -> RoundReport {
        let t = self.config.message_timeout.unwrap_or_default();
        let told = format!(
            "no message within {} s of the round's start",
            t.as_secs_f64()
        );
        let mut first = None;
        for (slot, party) in self.slots.iter_mut().enumerate() {
            let Some(party) = party.as_mut().filter(|p| p.message.is_none()) else {
                continue;
            };
            log::warn!(
                "round {}: {} sent no message in time",
                self.config.id,
                self.config.labels[slot]
            );
            // Told here, so the abort below does not tell it a second time.
            if let Some(mut reply) = party.reply.take() {
                let _ = reply.try_send(Outbound::ended(ErrorKind::Timeout, told.clone()));
            }
            first.get_or_insert(slot);
        }
        let label = first.map_or("", |slot| self.label(slot)).to_owned();
        let reason =
            format!("Client {label} left before sending its message (sent no message in time)");
        self.abort(ErrorKind::PartyLeft, reason)
    }

    /// The time limit passed.
    pub(super) fn timed_out(self) -> RoundReport {
        let t = self.config.timeout.unwrap_or_default();
        let reason = format!("the round did not complete within {} s", t.as_secs_f64());
        self.abort(ErrorKind::RoundTimeout, reason)
    }

    pub(super) fn report(&self, outcome: Outcome) -> RoundReport {
        let parties = || self.slots.iter().flatten();
        let (leavers, finished) = match &outcome {
            // Only a round played with another address counts as good conduct: one address
            // playing itself cannot wash away what it did to others.
            Outcome::Completed { .. } => {
                let peers: Vec<IpAddr> = parties().map(|p| p.peer).collect();
                let mixed = peers.iter().any(|&p| p != peers[0]);
                (Vec::new(), if mixed { peers } else { Vec::new() })
            }
            // Those who left without a message (their connection is gone) or, when time ran out,
            // who sent none; not those still typing when another left.
            Outcome::Aborted { kind, .. } if self.started => {
                let timed_out = *kind == ErrorKind::RoundTimeout;
                let leavers = parties()
                    .filter(|p| p.message.is_none() && (timed_out || p.reply.is_none()))
                    .map(|p| p.peer)
                    .collect();
                (leavers, Vec::new())
            }
            _ => (Vec::new(), Vec::new()),
        };
        RoundReport {
            id: self.config.id,
            room: self.config.room.as_deref().map(str::to_owned),
            started: self.started,
            outcome,
            leavers,
            finished,
        }
    }

    /// Tells every party still connected why the round ends (except on a stop, which the
    /// connections announce themselves), and reports it.
    pub(super) fn abort(self, kind: ErrorKind, reason: String) -> RoundReport {
        log::warn!("round {}: aborted: {reason}", self.config.id);
        match self.config.style {
            Style::Assignment => self.transcript.line(format!("Round aborted: {reason}")),
            Style::Summary => self
                .transcript
                .stamped(format!("{} aborted: {reason}", self.title())),
            Style::Quiet => {}
        }
        // On a stop every connection tells its own client, in a round or not; a second,
        // different message from here would race with it.
        if kind != ErrorKind::ShuttingDown {
            let told = format!("round aborted: {reason}");
            for party in self.slots.iter().flatten() {
                if let Some(mut reply) = party.reply.clone() {
                    let _ = reply.try_send(Outbound::ended(kind, told.clone()));
                }
            }
        }
        self.report(Outcome::Aborted { kind, reason })
    }

    /// The verdict: every message in arrival order, and its sentence. Prints the messages.
    pub(super) fn verdict(&self) -> (Vec<Arrival>, String) {
        let order = verdict::order(self.slots.iter().enumerate().filter_map(|(slot, p)| {
            let m = p.as_ref()?.message.as_deref()?;
            Some((self.label(slot), m))
        }));
        let text = ack_text(&order);
        for a in &order {
            self.say(format_args!("Client {}: {}", a.label, a.name));
        }
        (order, text)
    }

    /// Every message is in: decide, tell everyone, and wait until each acknowledgment was written
    /// (or could not be), so the final line states what actually happened.
    pub(super) async fn complete(self) -> RoundReport {
        let (order, text) = self.verdict();
        let (shared_order, shared_text): (Arc<[Arrival]>, Arc<str>) =
            (order.as_slice().into(), text.as_str().into());
        let mut pending = Vec::new();
        let mut undelivered = Vec::new();
        for (slot, party) in self.slots.iter().enumerate() {
            let label = self.label(slot).to_owned();
            let sent = party
                .as_ref()
                .and_then(|p| p.reply.clone())
                .and_then(|mut reply| {
                    let (tx, rx) = oneshot::channel();
                    let verdict = Outbound::Verdict {
                        text: Arc::clone(&shared_text),
                        order: Arc::clone(&shared_order),
                        last: true,
                        delivered: Some(tx),
                    };
                    reply.try_send(verdict).ok().map(|()| rx)
                });
            match sent {
                Some(rx) => pending.push((label, rx)),
                None => undelivered.push(label),
            }
        }
        let mut delivered = Vec::new();
        for (label, rx) in pending {
            // Every connection answers within its write bound, or drops the sender when it ends.
            if rx.await.unwrap_or(false) {
                delivered.push(label);
            } else {
                undelivered.push(label);
            }
        }
        match self.config.style {
            Style::Assignment => {
                self.transcript
                    .line(sent_line(&self.config.labels, &delivered, &undelivered))
            }
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
        self.report(Outcome::Completed { order, undelivered })
    }
}

pub(super) fn shutting_down() -> String {
    "the server is shutting down".to_owned()
}
