//! The `Coordinator`: the actor that runs a started round, fed by its connections' [`Event`]s,
//! owning the arrival list until the verdict; and the [`Filling`] round that becomes one at the
//! barrier.

use std::net::SocketAddr;
use std::time::Instant;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};

use super::chat;
use super::event::{Admit, ConnId, Event, Outbox, Outcome, RoundConfig, RoundReport};
use super::state::{shutting_down, Round, Step};
use crate::protocol::ErrorKind;
use crate::stop::Stop;
use crate::transcript::Transcript;

/// A round still filling: its state, with no task of its own. Whoever routes joins holds it,
/// tells it of each join ([`join`](Filling::join)) and each departure ([`left`](Filling::left)),
/// and, when a join fills its last slot, [starts](Filling::start) it; until then it also keeps
/// its clock ([`deadline`](Filling::deadline), then [`expire`](Filling::expire)) and ends it on a
/// stop ([`stop`](Filling::stop)). Its parties' connections send it nothing: what they have to
/// say before the barrier is a departure, and that goes to the holder.
pub struct Filling(Round);

impl Filling {
    /// A round for its first party, which is about to join: its clock starts now.
    pub fn new(config: RoundConfig, transcript: Transcript) -> Filling {
        Filling(Round::new(config, transcript))
    }

    pub fn id(&self) -> u64 {
        self.0.config.id
    }

    /// When the round is aborted if it has not started (and, if it has, completed).
    pub fn deadline(&self) -> Option<Instant> {
        self.0.deadline
    }

    /// Seats a connection that completed its handshake in the lowest free slot and welcomes it;
    /// `None` if every slot is taken.
    pub fn join(&mut self, id: ConnId, peer: SocketAddr, reply: Outbox) -> Option<Admit> {
        self.0.join(id, peer, reply)
    }

    /// Frees the slot of a party that left before the barrier (`why` is a short human phrase);
    /// the round's report if that left it empty, abandoned.
    pub fn left(&mut self, id: ConnId, why: &str) -> Option<RoundReport> {
        match self.0.left(id, why) {
            Step::Empty => {
                log::info!("round {}: every party left; abandoned", self.id());
                Some(self.0.report(Outcome::Abandoned))
            }
            _ => None,
        }
    }

    /// Its time limit passed before it filled: every party is told, and it is over.
    pub fn expire(self) -> RoundReport {
        self.0.timed_out()
    }

    /// The server is stopping: it is over (the connections tell their clients themselves).
    pub fn stop(self) -> RoundReport {
        self.0.abort(ErrorKind::ShuttingDown, shutting_down())
    }

    /// The barrier: tells every party its label, and returns the round's coordinator, to run as
    /// a task of its own, with a sender to it (its parties have theirs; a holder that has
    /// nothing to send drops it).
    pub fn start(
        self,
        stop: Stop,
    ) -> (
        impl std::future::Future<Output = RoundReport>,
        mpsc::Sender<Event>,
    ) {
        let mut round = self.0;
        let (tx, rx) = mpsc::channel(4 * round.config.labels.len() + 4);
        round.start(&tx);
        (coordinator_loop(round, rx, stop), tx)
    }
}

/// Runs a started round to its end and reports how it ended.
///
/// The loop ends when the round completes, is aborted (a party left, the round timed out, the
/// `stop` fired), or when every sender of `events` is gone before completion.
///
/// An `async` block rather than an `async fn`: an `async fn` keeps its arguments beside the
/// locals made from them (about 200 bytes more here), and a round is held as long as its
/// parties think.
#[allow(clippy::manual_async_fn)] // deliberately not an `async fn`: see above
fn coordinator_loop(
    mut round: Round,
    mut events: mpsc::Receiver<Event>,
    stop: Stop,
) -> impl std::future::Future<Output = RoundReport> {
    async move {
        // Made once for the round's life, not once per event: a waiting round holds them. One
        // timer for both deadlines: a timer costs the reactor a registration and a wake-up.
        let timer = match round.next_deadline() {
            Some(at) => futures::future::Either::Left(crate::rt::sleep(
                at.saturating_duration_since(Instant::now()),
            )),
            None => futures::future::Either::Right(futures::future::pending::<()>()),
        }
        .fuse();
        let stopped = stop.wait().fuse();
        futures::pin_mut!(timer, stopped);
        loop {
            futures::select_biased! {
                () = stopped => return round.abort(ErrorKind::ShuttingDown, shutting_down()),
                () = timer => {
                return match round.messages_due {
                    Some(due) if round.deadline.is_none_or(|d| due < d) => {
                        round.messages_overdue()
                    }
                    _ => round.timed_out(),
                }
            }
                event = events.next() => match event {
                    Some(event) => match round.handle(event) {
                        Step::Continue => {}
                        // Boxed: the completion state is large and lives only briefly, while a
                        // waiting round's future is held for as long as it waits.
                        Step::Complete if round.config.chat => {
                            return Box::pin(chat::chat(round, &mut events, &stop)).await
                        }
                        Step::Complete => return Box::pin(round.complete()).await,
                        Step::Abort(kind, reason) => return round.abort(kind, reason),
                        // Only a round that has not started can empty; this one has.
                        Step::Empty => return round.report(Outcome::Abandoned),
                    },
                    None => {
                        let reason = "every connection of the round is gone".to_owned();
                        return round.abort(ErrorKind::PartyLeft, reason);
                    }
                },
            }
        }
    }
}
