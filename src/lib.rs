//! `arrival`: decide, fairly and provably, whose message reached the server first.
//!
//! # Map
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`rt`] | the async runtime (async-std, and async-io for readiness): tasks, timers, sockets, stdin | know about rounds, frames or wires |
//! | [`protocol`] | the wire protocol, versions 1 to 4: frames, their bytes, the length prefix | know about rounds, labels or names |
//! | [`wire`] | how a server connection speaks: [`wire::framed`] and [`wire::text`] read inbound events and render outbound ones | write to sockets or decide round rules |
//! | [`web`] | browsers on the framed port: one HTTP request answered ([`web::http`]: a page, a status, or the upgrade), then [`web::socket`], the WebSocket wire (one protocol frame per binary message); the embedded pages | decide round rules, or write from any task but the connection's |
//! | [`round`] | one round: its state machine (held by the lobby while it fills, [`round::Filling`]), the coordinator actor that runs it from the barrier, the verdict, its English, the chat; and [`session`], the quiz session (many rounds, scores, reaction order, the rules against modified clients) | touch sockets, bytes or clocks |
//! | [`server`] | the listener and accept loop, the lobby, the connection actor, closing, echo, leavers' cooldowns, the PROXY header of a balancer | interpret bytes or round rules |
//! | [`client`] | the clients: [`client::Link`] (the one framed connection type, for the client, the bench and the tests), the framed exchange, [`client::text`], [`client::session`] | — |
//! | [`stamp`] | kernel receive timestamps (Linux), which decide arrival order, and the kernel's round trip of a connection | interpret bytes |
//! | [`names`] | what a name may be | — |
//! | [`stop`], [`transcript`], [`cli`] | the stop broadcast; where user-facing lines go; what the binaries share | — |
//! | [`bench`](mod@bench) | the measurements behind `arrival-bench`, one file per mode; the packet-level delayed link between network namespaces | know server internals |
//!
//! The binaries in `src/bin/` parse arguments, set up logging and signals, call the library and
//! turn the result into an exit status; no behaviour lives there.
//!
//! # Invariants that cross modules
//!
//! - **One task per socket on the server.** A connection's actor (`server::connection`) is the
//!   only reader and the only writer of its socket; the echo actor likewise.
//! - **Acyclic, bounded channels.** connection → lobby (join; a departure before the barrier)
//!   and connection → round (from the barrier on); lobby and round → connection's outbox, never
//!   waiting on it; each round's report → accept loop. Every channel is bounded, every wait for
//!   another task is bounded in time, and shutdown is a [`stop::Stop`] broadcast plus dropped
//!   senders: `run` returns only after every task has ended.
//! - **Rounds and sessions speak domain events** ([`round::Outbound`]); wires alone turn them
//!   into bytes, and inbound bytes into [`wire`] events. The framed, text and WebSocket wires
//!   share one connection actor. Protocol versions 1 to 4 share it too: a client never sees a
//!   frame of a later version than its own.
//! - **Order is by arrival instant only** (kernel receive time where the platform gives it),
//!   never by connection order, label or event order.
//! - **Only [`rt`] names the runtime**; public signatures take `std` types.
//! - **stdout is the transcript** ([`transcript`]); diagnostics go through `log` to stderr.

pub mod bench;
pub mod cli;
pub mod client;
mod close;
pub mod names;
pub mod protocol;
pub mod round;
pub mod rt;
pub mod server;
pub mod service;
pub mod session;
pub mod stamp;
pub mod stop;
pub mod transcript;
pub mod web;
pub mod wire;
