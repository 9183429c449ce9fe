//! How a server connection ends: its last write and its close.
//!
//! Owns the close policy for every wire and every kind of connection (a refusal, a page, a
//! finished player): write the last bytes (bounded in time), half-close, then close at once if
//! the peer has nothing unread on the wire (FIN, no RST); otherwise read and discard until it
//! closes or [`LINGER`] passes, because closing a socket with unread input sends RST, which can
//! destroy our last words before the peer reads them. A patient close (a stopping server, a
//! refusal, an HTTP answer) waits up to `LINGER` for the peer to close even if it is silent, so
//! it can read why. Nothing here can be extended by the peer: a peer that streams bytes into a
//! closing connection is cut off at `LINGER`.
//!
//! It must not decide what to say: callers bring their bytes, rendered by their wire.

use std::future::Future;
use std::io;
use std::time::Duration;

use futures::AsyncWriteExt;

use crate::rt::{self, Socket};
use crate::stamp::StampedStream;

/// The longest a closing connection reads (and discards) before it closes regardless.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// Writes all of `bytes` and flushes.
pub(crate) async fn write_all(mut out: &Socket, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes).await?;
    out.flush().await
}

/// The read side of a closing connection: what it can throw away, and how much it has.
pub(crate) trait Discard {
    /// Reads and throws away everything until end of stream or an error; cancel-safe.
    fn discard(&mut self) -> impl Future<Output = ()> + Send;

    /// Bytes thrown away so far by [`discard`](Self::discard).
    fn discarded(&self) -> u64;
}

/// A bare read half (an HTTP connection's) as a [`Discard`].
pub(crate) struct Unread<'a> {
    pub(crate) input: &'a mut StampedStream,
    pub(crate) discarded: u64,
}

impl Discard for Unread<'_> {
    async fn discard(&mut self) {
        discard_until_eof(self.input, &mut self.discarded).await;
    }

    fn discarded(&self) -> u64 {
        self.discarded
    }
}

/// Reads and throws away everything from `input` until end of stream or an error, counting it in
/// `discarded`; cancel-safe. For readers that have no discard of their own.
pub(crate) async fn discard_until_eof(input: &mut StampedStream, discarded: &mut u64) {
    use futures::AsyncReadExt;
    let mut chunk = [0u8; 512];
    while let Ok(n) = input.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        *discarded += n as u64;
        // A peer streaming as fast as we read must not hold the thread.
        rt::yield_now().await;
    }
}

/// Before closing a connection whose last bytes are written: see the module docs. With
/// `patient`, wait for the peer to close even if it is silent.
pub(crate) async fn linger(input: &mut impl Discard, patient: bool) {
    let ended = {
        let mut discard = Box::pin(input.discard());
        match futures::poll!(discard.as_mut()) {
            std::task::Poll::Ready(_) => true,
            std::task::Poll::Pending if patient => {
                rt::timeout(LINGER, discard).await;
                true
            }
            std::task::Poll::Pending => false,
        }
    };
    if !ended && input.discarded() > 0 {
        // The peer still had bytes on their way: read them off until it closes, or LINGER.
        rt::timeout(LINGER, input.discard()).await;
    }
}

/// The one way a connection closes: writes `last` (within `write_timeout`), half-closes, and
/// lingers as the module docs say.
pub(crate) async fn close_with(
    out: &Socket,
    input: &mut impl Discard,
    last: &[u8],
    write_timeout: Duration,
    patient: bool,
) {
    if !last.is_empty() {
        let _ = rt::bounded(write_timeout, write_all(out, last)).await;
    }
    let _ = out.get_ref().shutdown(std::net::Shutdown::Write);
    linger(input, patient).await;
}
