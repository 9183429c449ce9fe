//! The balancer's agent check (HAProxy's `agent-check`): on a port of its own, each connection
//! is answered one line that says how much more this instance should take, then closed.
//!
//! | state | line | the balancer then |
//! |---|---|---|
//! | serving | `ready up N%` (N: the share of `max_connections` still free) | weighs the instance by its room |
//! | full | `ready up 0%` | sends it no new room, only what sticks to it (its rooms' players) |
//! | draining | `drain` | the same, until the instance has finished and stopped |
//!
//! A full instance stays up: its health check is answered as ever (see `listener`), and only
//! its weight says it is full.
//!
//! It owns nothing but its listener; it reads the counters in [`Stats`] and must not touch a
//! connection of the server's.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::stats::Stats;
use crate::close::write_all;
use crate::rt::{self, Listener};
use crate::stop::Stop;

/// How long the balancer has to take its line.
const WRITE_BOUND: Duration = Duration::from_secs(2);

/// The line for a server holding `live` of `max` connections, draining or not.
pub(crate) fn state_line(live: usize, max: usize, draining: bool) -> String {
    if draining {
        return "drain\n".to_owned();
    }
    let free = max.saturating_sub(live);
    let percent = (free * 100).checked_div(max).unwrap_or(0);
    format!("ready up {percent}%\n")
}

/// Answers agent checks on `listener` until `stop` fires.
pub(crate) async fn agent_loop(listener: Listener, stats: Arc<Stats>, max: usize, stop: Stop) {
    let stopped = stop.wait().fuse();
    futures::pin_mut!(stopped);
    loop {
        let accepted = futures::select_biased! {
            () = stopped => return,
            accepted = listener.accept().fuse() => accepted,
        };
        let Ok((socket, peer)) = accepted else {
            // Out of descriptors, most likely: the next check comes within a second.
            rt::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let line = state_line(stats.live_connections(), max, stats.draining());
        log::debug!("{peer}: agent check: {}", line.trim_end());
        // Answered inline: a line of a few bytes into an empty socket buffer does not wait.
        let _ = rt::bounded(WRITE_BOUND, write_all(&socket, line.as_bytes())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::state_line;

    #[test]
    fn the_line_weighs_free_room_and_says_drain() {
        assert_eq!(state_line(0, 1024, false), "ready up 100%\n");
        assert_eq!(state_line(768, 1024, false), "ready up 25%\n");
        assert_eq!(state_line(1024, 1024, false), "ready up 0%\n");
        assert_eq!(state_line(1100, 1024, false), "ready up 0%\n");
        assert_eq!(state_line(3, 1024, true), "drain\n");
    }
}
