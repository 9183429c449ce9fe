//! `arrival`: decide, fairly and provably, whose message reached the server first.
//!
//! The server is an actor system on async-std. Per connection, a reader actor and exactly one
//! writer actor; per round, one [`coordinator`] actor that alone owns the round's state; a lobby
//! actor that routes connections to rounds. They talk over bounded `futures` mpsc channels whose
//! graph is acyclic (readers → lobby → coordinator → writers), so dropping senders shuts
//! everything down in order.
//!
//! Modules:
//! - [`protocol`]: frames and byte-level framing (the only code that touches length prefixes).
//! - [`names`]: what a name may be.
//! - [`coordinator`]: one round's arbiter.
//! - [`server`]: accept loop, lobby, connection actors, limits and shutdown.
//! - [`stamp`]: kernel receive timestamps, which decide arrival order.
//! - [`client`]: the client side of one exchange.
//! - [`echo`]: RFC 862 echo mode.
//! - [`text`]: the assignment's raw-text wire, server and client side.
//! - [`bench`]: measurements for the `arrival-bench` load generator.

pub mod bench;
pub mod cli;
pub mod client;
pub mod coordinator;
pub mod echo;
pub mod names;
pub mod protocol;
pub mod server;
pub mod stamp;
pub mod stop;
pub mod text;
pub mod transcript;
