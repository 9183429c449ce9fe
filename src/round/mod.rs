//! One round: the arbiter, its state machine, its verdict and its chat.
//!
//! A round's state is in one place at a time. While it fills it is a [`Filling`], held by
//! whoever routes joins (the server's lobby), which tells it of each join and each departure:
//! a party waiting for others costs a table entry, not a task and a channel. At the barrier
//! ([`Filling::start`]) the state moves into the `Coordinator` ([`coordinator`]), a single task fed by [`Event`]s
//! over a `futures` mpsc channel from the connection actors (each learns that channel with its
//! label), which owns the arrival list and the verdict. Either way it answers each connection
//! through that connection's [`Outbox`] with domain events ([`Outbound`]): admitted, started
//! with a label, the verdict, aborted, and the chat's events. How an event looks on the wire is
//! the wire's business (`wire`), never the round's. Nothing else reads or writes round state.
//!
//! Layout: `event` the types that cross the round's boundary (what connections tell it, what it
//! tells them, its settings and its report); `state` the state machine; `coordinator` the
//! filling round and the `Coordinator` actor's loop; `verdict` the order and the English
//! sentences; `chat` the relay that follows a verdict on chat servers. The quiz session (many
//! rounds in a room) is a module of its own, [`session`](crate::session), which speaks to its
//! connections with this module's [`Outbound`] events.
//!
//! Invariants:
//! - A slot (label) is taken only by a connection whose handshake completed, and freed if it
//!   leaves before the barrier; labels are handed out lowest-free-first. A round whose every
//!   party left before the barrier ends at once, [`Outcome::Abandoned`]: it holds no memory and
//!   uses up no round of the server's budget.
//! - The round's time limit runs from its first party's arrival in it; each party's time to
//!   send its message runs from the barrier. A started round keeps both with one timer.
//! - No `Message` is accepted before the barrier (all slots filled): the coordinator, which
//!   alone takes messages, exists only from the barrier on, and a connection refuses a message
//!   sent before it was told its label.
//! - The order is decided only by each `Arrived::at` — the instant the kernel received the
//!   message's data (see `stamp`), or, where the kernel cannot say, the instant the connection
//!   actor finished reading it — never by label, connection order, message text or the order in
//!   which events reach this actor.
//! - It never awaits a connection before the verdict: outboxes are written with `try_send`
//!   (their capacity covers every event a round sends before its chat), so one stuck client
//!   cannot stall the round.
//!
//! It must not touch sockets, bytes or the clock's notion of arrival: timestamps come in
//! `Arrived`.

mod chat;
pub mod coordinator;
mod event;
mod state;
mod verdict;

pub use coordinator::Filling;
pub use event::{
    Admit, ConnId, Event, Outbound, Outbox, Outcome, RoundConfig, RoundReport, RoundResult, Style,
    OUTBOX_CAPACITY,
};
pub use verdict::ack_text;

#[cfg(test)]
mod tests;
