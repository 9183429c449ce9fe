//! `arrival`: decide, fairly and provably, whose message reached the server first.
//!
//! # Architecture
//!
//! The one drawing of the house: the actors (boxes) and the bounded channels between them. The
//! graph is acyclic; every arrow that carries a reply is a connection's outbox or a oneshot.
//!
//! ```text
//!                 ┌──────────────────────────── listener (accept loop) ◀──── Report ────┐
//!                 │ spawns, through the door (limits, cooldowns, PROXY header)          │
//!                 ▼                                                                     │
//!   socket ─▶ connection actor ── Join / Left ──▶ lobby ── spawns at the barrier ──▶ round
//!  (framed,   (one per socket,    (before the       │  (rounds filling,           (coordinator:
//!   text, or   its only reader     barrier)         │   sessions by room)          arrival list,
//!   browser)   and writer)                          │ starts, hands out            verdict, chat)
//!     │            │ ▲  ── Arrived / Chat / Left ───┼────────────────────────────▶ round
//!     │            │ │                              ▼                                   │
//!     │            │ │ ── Join (seat) / Pong / ──▶ session (quiz: rounds, scores,       │
//!     │            │ │    Answer / Open / Finish    hosts, the rules) ── Report ────────┘
//!     │            │ └──────────── Outbound (outbox) ◀── lobby, round, session
//!     │            └── an HTTP request: web::http answers it (a page, or the upgrade), and the
//!     │                same task plays on as a connection actor over the WebSocket wire
//!     └── kernel receive timestamps (stamp) on every read
//! ```
//!
//! # Map
//!
//! Modules, from the bottom up: none imports a module above it, and no file imports its parent.
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`rt`] | the async runtime (async-std, and async-io for readiness): tasks, timers, sockets, stdin | know about rounds, frames or wires |
//! | [`protocol`] | the wire protocol, versions 1 to 6: frames, their bytes, the length prefix, [`protocol::Version`] with its capabilities, and a reader's window ([`protocol::Cut`]) onto a big room's lists | know about rounds, labels or names |
//! | [`stamp`] | kernel receive timestamps (Linux), which decide arrival order, and the kernel's round trip of a connection | interpret bytes |
//! | [`names`], [`stop`], [`transcript`], [`cli`] | what a name may be; the stop broadcast; where user-facing lines go; what the binaries share | — |
//! | [`round`] | one round: its events (`round::event`, including the [`round::Outbound`] events every connection is told), its state machine, the filling round and the `Coordinator` actor ([`round::coordinator`]), the verdict, the chat | touch sockets, bytes or clocks |
//! | [`session`] | the quiz session: its settings, a seat (held while its player is away, given back only with its secret), buzz mode's queue and the host's judgements, the state machine and its rules against modified clients, the actor (a method per phase), its sentences, what each screen of a room of thousands is sent | touch sockets, bytes or clocks of arrival |
//! | `close` | the one way a server connection closes: last write, half-close, drain (linger) | decide what to say |
//! | [`wire`] | how a server connection speaks: [`wire::framed`], [`wire::text`] and [`wire::websocket`] read inbound events and render outbound ones | write to sockets or decide round rules |
//! | [`web`] | browsers on the framed port: one HTTP request answered ([`web::http`]: a page, a status, or the upgrade), the embedded pages, the printed links and the host key | know the server, decide round rules |
//! | [`server`] | the listener and accept loop, the door, the lobby, the connection actor, echo, leavers' cooldowns, the PROXY header of a balancer | interpret bytes or round rules |
//! | [`service`] | what `arrival-server`'s arguments mean: a service's defaults, when pages are served, the host key, the exit status | run anything |
//! | [`client`] | the clients: [`client::Link`] (the one framed connection type, for the client, the bench and the tests), the framed exchange, [`client::text`], [`client::session`] | — |
//! | [`bench`](mod@bench) | the measurements behind `arrival-bench`, one file per mode; the packet-level delayed link between network namespaces | know server internals |
//!
//! The binaries in `src/bin/` parse arguments, set up logging and signals, call the library and
//! turn the result into an exit status; no behaviour lives there.
//!
//! # Invariants that cross modules
//!
//! - **One task per socket on the server.** A connection's actor (`server::connection`) is the
//!   only reader and the only writer of its socket; the echo actor likewise.
//! - **Acyclic, bounded channels.** connection → lobby (join; a departure before the barrier),
//!   connection → round (from the barrier on) and connection → session (its seat, then play);
//!   lobby, round and session → connection's outbox, never waiting on it; each round's and
//!   session's report → accept loop. The lobby waits on nobody: it hands a joiner its room's
//!   session, and the connection asks for its seat. Every channel is bounded, every wait for
//!   another task is bounded in time, and shutdown is a [`stop::Stop`] broadcast plus dropped
//!   senders: `run` returns only after every task has ended.
//! - **Rounds and sessions speak domain events** ([`round::Outbound`]); wires alone turn them
//!   into bytes, and inbound bytes into [`wire`] events. The framed, text and WebSocket wires
//!   share one connection actor. Protocol versions 1 to 6 share it too: a client never sees a
//!   frame of a later version than its own. A big room's lists are shared by all and cut per
//!   reader ([`round::Outbound::Cut`]) as they are encoded.
//! - **Order is by arrival instant only** (kernel receive time where the platform gives it),
//!   never by connection order, label or event order; a quiz player's reaction counts from its
//!   own `Go`, as its connection wrote it.
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
pub mod tls;
pub mod transcript;
pub mod web;
pub mod wire;
