//! Echo mode (RFC 862): every byte a connection sends comes back on it, unchanged and in order,
//! until the client closes or the server stops.
//!
//! Owns the echo connection task, which is its socket's only reader and only writer. Memory is
//! bounded by construction: one buffer per connection, and nothing more is read until that buffer
//! has been written back, so a client that sends without reading is held back by TCP flow control
//! (its own send window fills), never by our memory. It must not interpret the bytes.

use std::io;
use std::net::Shutdown;

use crate::rt::Socket;
use futures::{AsyncWriteExt, FutureExt};

use crate::stop::Stop;

/// Bytes one echo connection holds at most.
pub const ECHO_BUFFER: usize = 16 * 1024;

/// Echoes until end of stream, an error, or the stop; returns the bytes echoed.
pub(crate) async fn echo_loop(stream: Socket, stop: Stop) -> io::Result<u64> {
    let mut buf = vec![0u8; ECHO_BUFFER];
    let mut echoed = 0u64;
    let mut turns = 0u32;
    let mut output = &stream;
    let mut drained = false;
    // One stop future for the connection's life, not a new one per read and write.
    let stopped = stop.wait().fuse();
    futures::pin_mut!(stopped);
    loop {
        let n = futures::select_biased! {
            () = stopped => break,
            n = futures::future::poll_fn(|cx| stream.poll_read_when_ready(cx, &mut buf, &mut drained)).fuse() => n?,
        };
        if n == 0 {
            break;
        }
        futures::select_biased! {
            () = stopped => break,
            written = output.write_all(&buf[..n]).fuse() => written?,
        }
        echoed += n as u64;
        // Every 64 round trips, let other connections run: a fast peer's reads and writes can
        // all be ready at once, and would otherwise hold the thread.
        turns += 1;
        if turns.is_multiple_of(64) {
            crate::rt::yield_now().await;
        }
    }
    let _ = stream.get_ref().shutdown(Shutdown::Write);
    Ok(echoed)
}
