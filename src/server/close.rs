//! How a server connection ends: its last write and its close.
//!
//! Owns the close policy for both wires and every kind of connection. After our last bytes we
//! half-close, then close at once if the peer has nothing unread on the wire (FIN, no RST);
//! otherwise we read and discard until it closes or [`LINGER`] passes, because closing a socket
//! with unread input sends RST, which can destroy our last words before the peer reads them. A
//! stopping server waits (at most `LINGER`) for peers to close even if they are silent, so they
//! can read why. Nothing here can be extended by the peer: a peer that streams bytes into a
//! closing connection is cut off at `LINGER`.

use std::io;
use std::time::Duration;

use futures::AsyncWriteExt;

use crate::rt::{self, Socket};
use crate::wire::Wire;

/// The longest a closing connection reads (and discards) before it closes regardless.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// Writes all of `bytes` and flushes.
pub(crate) async fn write_all(mut out: &Socket, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes).await?;
    out.flush().await
}

/// Before closing a connection whose last bytes are written: see the module docs. With
/// `patient`, wait for the peer to close even if it is silent.
pub(crate) async fn linger<W: Wire>(wire: &mut W, patient: bool) {
    let ended = {
        let mut discard = Box::pin(wire.discard());
        match futures::poll!(discard.as_mut()) {
            std::task::Poll::Ready(_) => true,
            std::task::Poll::Pending if patient => {
                rt::timeout(LINGER, discard).await;
                true
            }
            std::task::Poll::Pending => false,
        }
    };
    if !ended && wire.discarded() > 0 {
        // The peer still had bytes on their way: read them off until it closes, or LINGER.
        rt::timeout(LINGER, wire.discard()).await;
    }
}

/// Refuses a connection before any actor is started for it (the server is at its limit): says
/// `event` the way `wire` would, then closes as above.
pub(crate) async fn refuse<W: Wire>(
    out: Socket,
    mut wire: W,
    event: crate::round::Outbound,
    write_timeout: Duration,
) {
    let mut bytes = Vec::new();
    wire.render(&event, &mut bytes);
    wire.farewell(&mut bytes);
    let _ = rt::bounded(write_timeout, write_all(&out, &bytes)).await;
    let _ = out.get_ref().shutdown(std::net::Shutdown::Write);
    // A real client has sent its Hello by now; leaving it unread would turn our close into a
    // reset that can destroy the refusal we just wrote.
    linger(&mut wire, true).await;
}
