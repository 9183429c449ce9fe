//! Measurements for `arrival-bench`: real rounds under load, idle connections held, fairness
//! trials, quiz sessions, the quiz with modified clients ([`quiz`], over the packet-level delay
//! of [`link`]), echo, and a process's resource use read from `/proc`.
//!
//! One file per mode, each with its options (`Args`, which the binary parses), its driver and its
//! report: [`rounds`](mod@rounds), [`idle`], [`echo`](mod@echo), [`fairness`](mod@fairness),
//! [`quiz`], [`sessions`](mod@sessions). `run` starts a server if asked and dispatches a
//! [`Job`]; `report` holds what every report shares (progress on stderr, resource use, tables
//! and JSON on stdout). This file holds what the drivers share.
//!
//! Everything here speaks the wire protocol through [`protocol`](crate::protocol), like any client; it owns no
//! server state and knows nothing of the server's internals. Latencies are kept in an HDR
//! histogram (fixed memory for any run length). Only completed work is counted: a round whose
//! parties did not all get their acknowledgment is an error, never throughput. A refusal that no
//! retry can fix (nothing listening, the server runs no more rounds, another protocol version)
//! stops every driver: see [`Fatal`].

mod common;
pub mod echo;
pub mod fairness;
pub mod idle;
pub mod link;
pub mod quiz;
mod report;
pub mod room;
pub mod rounds;
mod run;
pub mod sessions;
pub mod ws;

pub use common::Common;
pub use common::{
    delay_proxy, proc_stats, Ended, Errors, Fatal, Latencies, LatencySummary, ProcStats,
    SpawnedServer,
};
pub use echo::{echo, EchoPlan, EchoReport};
pub use fairness::{fairness, FairnessReport};
pub use idle::{open_idle, IdleConnections};
pub use rounds::{rounds, RoundsPlan, RoundsReport};
pub use run::{run, Job};
pub use sessions::{sessions, SessionsPlan, SessionsReport};
