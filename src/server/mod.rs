//! The server: listener, accept loop, limits and shutdown; the rooms below hold the rest.
//!
//! The actors and the channels between them are drawn once, in the crate's docs (`src/lib.rs`).
//!
//! - `listener`: the accept loop owns the listener, the cooldowns, the PROXY headers being read
//!   and the tally of finished rounds and sessions; it decides when the server stops (rounds
//!   done, the caller's shutdown future, or the end of a drain). `door` starts each accepted
//!   connection's task (after its TLS handshake, with `--tls-cert`) or refuses it at a limit;
//!   `spare` is the descriptor held for running out of them.
//! - `config`, `stats`, `summary`: what the server is told, its live counters, what it did.
//! - `lobby`: the rounds still filling, by room, as state: it alone creates rounds, and gives
//!   each a task of its own when it fills; it starts each room's session and hands joiners its
//!   channel.
//! - `connection`: one task per socket, every wire, its only reader and writer; it lends a
//!   browser's connection to `web::http`, and plays on over the WebSocket wire after an upgrade.
//! - `proxy`: the PROXY v2 header a trusted balancer sends first (`--proxy-protocol`): read by a
//!   short task of its own per connection, which hands the accept loop the client's real address.
//! - `agent`: the balancer's agent check (`--agent-addr`): how full the server is, or `drain`.
//! - [`cooldown`]: the addresses whose connections abort rounds, or offer wrong host keys,
//!   refused for a while; the accept loop alone holds the tables, fed by the rounds' reports and
//!   the connections' wrong keys.
//! - `echo`: the RFC 862 echo connection.
//!
//! Shutdown: the accept loop fires a [`Stop`](crate::stop::Stop); connections say what they have queued and then
//! `ShuttingDown`, rounds and the lobby return. `run` returns only after every connection task
//! and every round has ended: nothing is leaked, which [`Stats`] lets tests check.
//!
//! This module must not interpret bytes (wires do) or round rules (rounds do).

mod agent;
mod config;
mod connection;
pub mod cooldown;
mod door;
mod echo;
mod listener;
mod lobby;
mod proxy;
mod spare;
mod stats;
mod summary;

pub use crate::wire::WireKind as Wire;
pub use config::{check_verdict_fits, Config, Mode};
pub use listener::{bind, run, Drain, Server, LISTEN_BACKLOG};
pub use proxy::Network;
pub use stats::Stats;
pub use summary::Summary;
