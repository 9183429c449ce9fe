//! The server's live counters, readable while and after it runs, and the per-address count of
//! held connections (admission control, not game state).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Live counters, shared read-only with whoever embeds the server.
#[derive(Debug, Default)]
pub struct Stats {
    live: AtomicUsize,
    pub(crate) accepted: AtomicU64,
    pub(crate) refused_busy: AtomicU64,
    /// Connections held per client address: admission control, not game state. Touched once
    /// when a connection is admitted and once when it ends; entries at zero are removed, so it
    /// never holds more than `max_connections` entries.
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Rounds whose coordinator is running.
    pub(crate) rounds_live: AtomicUsize,
    /// Rounds still filling, and sessions, in the lobby's tables.
    pub(crate) rooms_filling: AtomicUsize,
    /// The server drains: it starts no round or session, and stops once its last one ends.
    pub(crate) draining: std::sync::atomic::AtomicBool,
}

impl Stats {
    /// Connection tasks currently alive (reader and writer both count as one connection).
    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
    pub fn refused_busy(&self) -> u64 {
        self.refused_busy.load(Ordering::SeqCst)
    }
    /// Whether the server is draining (see [`Drain`](super::Drain)).
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

impl Stats {
    /// Takes a place for a connection from `ip`, unless that address holds `limit` already
    /// (0: no limit).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<LiveGuard> {
        let mut table = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let held = table.entry(ip).or_default();
        if limit != 0 && *held >= limit {
            if *held == 0 {
                table.remove(&ip);
            }
            return None;
        }
        *held += 1;
        self.live.fetch_add(1, Ordering::SeqCst);
        Some(LiveGuard(Arc::clone(self), ip))
    }

    /// Connections `ip` holds now.
    pub(crate) fn held(&self, ip: IpAddr) -> usize {
        let table = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        table.get(&ip).copied().unwrap_or(0)
    }

    /// Rounds whose coordinator task is running.
    pub fn rounds_live(&self) -> usize {
        self.rounds_live.load(Ordering::SeqCst)
    }

    /// Rounds still filling in the lobby, and quiz sessions running (an ended session stays in
    /// the lobby's table until its next sweep).
    pub fn rooms_filling(&self) -> usize {
        self.rooms_filling.load(Ordering::SeqCst)
    }

    /// Addresses currently holding connections.
    pub fn addresses(&self) -> usize {
        self.per_address.lock().map_or(0, |t| t.len())
    }
}

/// Gives a connection's places back however its task ends.
pub(crate) struct LiveGuard(Arc<Stats>, IpAddr);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        let mut table = self.0.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = table.get_mut(&self.1) {
            *held -= 1;
            if *held == 0 {
                table.remove(&self.1);
            }
        }
    }
}
