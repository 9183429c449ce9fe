//! How a server connection speaks: arrival's framed protocol ([`framed`]), the assignment's raw
//! text ([`text`]), or a browser's WebSocket ([`websocket`], one protocol frame per binary
//! message).
//!
//! A wire is a small codec: it reads the next `Inbound` event from its half of the socket
//! (how a handshake looks, how a message is delimited, which prefixes it strips) and renders the
//! round's [`Outbound`](crate::round::Outbound) events as bytes. The connection actor (`server::connection`) knows
//! nothing of bytes; the round knows nothing of wires. Each wire's `next` is cancel-safe: the
//! actor races it against its outbox and the stop signal.
//!
//! It must not decide anything about rounds (who may send when is the round's and the
//! connection's business), and must not write to the socket: rendering only fills a buffer.
//! What every wire shares (the events, the trait) is in `codec`.

mod codec;
pub mod framed;
pub mod text;
pub mod websocket;

pub use codec::WireKind;
pub(crate) use codec::{Inbound, JoinRequest, Wire};
