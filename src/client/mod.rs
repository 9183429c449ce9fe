//! The client side of one exchange, on either wire.
//!
//! Owns the client's conversation: connect, handshake, wait for the barrier, obtain the name,
//! send it, print the verdict. [`Link`] is the one framed connection type, shared by this
//! client, `arrival-bench` and the tests. The framed client's socket has one reader actor
//! (forwarding frames into a channel) and one writer, this module's main task; while it waits
//! for the user to type a name it watches the socket at the same time, so a partner leaving is
//! reported at the prompt. [`text`] is the client of the assignment's raw text.
//!
//! Everything the server sends is escaped before it reaches a terminal (see
//! [`names::printable`](crate::names::printable)): a hostile server cannot drive ours.

pub mod args;
mod exchange;
mod link;
pub mod secure;
pub mod session;
mod shared;
pub mod text;

pub use args::{ClientArgs, Plan};
pub use exchange::run;
pub use link::Link;
pub use shared::{Config, Error, NameSource, Verdict};
