//! The lobby: which round a connection plays in.
//!
//! Owns the table of rounds still filling, keyed by room (`None` for anonymous rounds), and the
//! count of rounds started. It alone creates rounds (one coordinator task each) and routes each
//! joining connection to the round filling for its room, creating one when there is none.
//!
//! Invariants:
//! - A round leaves the table the moment it is full; one that ended while filling (abandoned by
//!   every party, or timed out) is swept out, so the table holds at most about twice the rounds
//!   that have a party waiting, plus a small constant: abandoned rooms cost nothing.
//! - Only a round that fills counts against the server's budget of rounds (`--rounds N`): a
//!   party that joins and leaves never uses one up, whatever room it named.
//!
//! It must not read or write sockets, or decide anything inside a round.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt, StreamExt};

use super::Config;
use crate::protocol::ErrorKind;
use crate::round::{coordinator_loop, ConnId, Event, Outbox, RoundConfig, RoundReport};
use crate::rt;
use crate::stop::Stop;

/// Pending joins the lobby queues before connections wait to hand theirs over.
pub(crate) const LOBBY_CAPACITY: usize = 256;

/// A handshaken connection asking the lobby for a place in a round.
pub(crate) struct Join {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) room: Option<String>,
    pub(crate) reply: Outbox,
    pub(crate) placed: oneshot::Sender<Result<Placement, (ErrorKind, String)>>,
}

/// Where the lobby put a connection.
pub(crate) struct Placement {
    pub(crate) label: String,
    pub(crate) round: mpsc::Sender<Event>,
}

/// Routes each joining connection to the round filling for its room, creating rounds as needed
/// and refusing joins once the configured number of rounds has started. Each round's report goes
/// to `reports`. Returns when `joins` ends or `stop` fires.
pub(crate) async fn lobby_loop(
    mut joins: mpsc::Receiver<Join>,
    config: Config,
    reports: mpsc::Sender<RoundReport>,
    stop: Stop,
) {
    let mut filling: HashMap<Option<String>, mpsc::Sender<Event>> = HashMap::new();
    let labels: Arc<[String]> = config.labels.clone().into();
    let mut created: u64 = 0;
    let mut started: u64 = 0;
    // Table size after the last sweep; sweeping when it doubles keeps the cost per join constant.
    let mut swept_at = 0;
    loop {
        let join = futures::select_biased! {
            () = stop.wait().fuse() => break,
            join = joins.next() => match join {
                Some(join) => join,
                None => break,
            },
        };
        if filling.len() > 2 * swept_at + 64 {
            filling.retain(|_, round| !round.is_closed());
            swept_at = filling.len();
        }
        if config.rounds != 0 && started >= config.rounds {
            let message = if config.rounds == 1 {
                "the round is full; this server runs a single round".to_owned()
            } else {
                format!("all {} rounds of this server are taken", config.rounds)
            };
            let _ = join.placed.send(Err((ErrorKind::RoundFull, message)));
            continue;
        }
        loop {
            if let Some(round) = filling.get(&join.room) {
                let mut round = round.clone();
                let (admitted, answer) = oneshot::channel();
                let event = Event::Join {
                    id: join.id,
                    peer: join.peer,
                    reply: join.reply.clone(),
                    admitted,
                };
                // A filling round answers a join at once; the bound covers a wedged one.
                let asked = async {
                    round.send(event).await.ok()?;
                    answer.await.ok().flatten()
                };
                let admit = rt::bounded(config.frame_timeout, asked).await.flatten();
                if let Some(admit) = admit {
                    if admit.full {
                        started += 1;
                        filling.remove(&join.room);
                    }
                    let placement = Placement {
                        label: admit.label,
                        round,
                    };
                    let _ = join.placed.send(Ok(placement));
                    break;
                }
                // That round ended (abandoned or timed out) while filling.
                filling.remove(&join.room);
            }
            created += 1;
            let (tx, rx) = mpsc::channel(4 * config.labels.len() + 4);
            let round = RoundConfig {
                id: created,
                room: join.room.clone(),
                labels: Arc::clone(&labels),
                timeout: config.round_timeout,
                style: config.style,
                chat: config.chat,
                chat_idle: config.chat_idle,
            };
            let mut reports = reports.clone();
            let (stop, transcript) = (stop.clone(), config.transcript.clone());
            rt::spawn(async move {
                let report = coordinator_loop(round, rx, stop, transcript).await;
                let _ = reports.send(report).await;
            });
            filling.insert(join.room.clone(), tx);
        }
    }
}
