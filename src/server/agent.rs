//! The balancer's agent check (HAProxy's `agent-check`): on a port of its own, each connection
//! is answered one line that says how much more this instance should take, then closed.
//!
//! | state | line | the balancer then |
//! |---|---|---|
//! | serving | `ready up 100%` | hashes new rooms over it |
//! | full | `ready up 0%` | sends it no new room, only what sticks to it (its rooms' players) |
//! | draining | `drain` | the same, until the instance has finished and stopped |
//!
//! A full instance stays up: its health check is answered as ever (see `listener`), and only
//! its weight says it is full. The weight is all or nothing, not the share still free: a
//! balancer that hashes rooms over weighted instances moves keys whenever a weight changes, and
//! two parties of a new room arriving a moment apart could then be sent to two instances
//! (measured: 2 of 300 rooms at once split while weights followed the load).
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
pub(crate) fn state_line(live: usize, max: usize, draining: bool) -> &'static str {
    match (draining, live >= max) {
        (true, _) => "drain\n",
        (false, true) => "ready up 0%\n",
        (false, false) => "ready up 100%\n",
    }
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
        assert_eq!(state_line(1023, 1024, false), "ready up 100%\n");
        assert_eq!(state_line(1024, 1024, false), "ready up 0%\n");
        assert_eq!(state_line(1100, 1024, false), "ready up 0%\n");
        assert_eq!(state_line(3, 1024, true), "drain\n");
    }
}
