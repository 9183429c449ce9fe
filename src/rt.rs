//! The async runtime, and the only module that names it.
//!
//! Owns every use of async-std: spawning and joining tasks, blocking on a future, timers,
//! sockets, standard input and the executor's thread count. Everything else goes through these
//! names, so moving to another runtime (smol, say) is a change to this file alone. Public
//! signatures elsewhere take `std::net` types; the runtime's types stay inside the crate.
//!
//! It must not know about rounds, frames or wires.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;

/// A connected TCP socket on the runtime's reactor. Cheap to clone: clones share the socket.
pub(crate) type TcpStream = async_std::net::TcpStream;
/// A listening socket on the runtime's reactor.
pub(crate) type TcpListener = async_std::net::TcpListener;

/// A spawned task; awaiting it yields its output. Dropping it detaches the task (it runs on).
pub struct JoinHandle<T>(async_std::task::JoinHandle<T>);

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Runs `future` as a task of its own.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    JoinHandle(async_std::task::spawn(future))
}

/// Runs `future` to completion on the current thread (binaries' `main`, tests).
pub fn block_on<F: Future>(future: F) -> F::Output {
    async_std::task::block_on(future)
}

/// Resolves after `duration`.
pub async fn sleep(duration: Duration) {
    async_std::task::sleep(duration).await
}

/// Lets the executor run other tasks before this one goes on: for loops whose every await may
/// be ready at once (a peer that streams as fast as we read), which would otherwise hold a thread
/// and starve the rest (and, with one executor thread, the timers that bound them).
pub async fn yield_now() {
    async_std::task::yield_now().await
}

/// `future`'s output, or `None` if `limit` passed first.
pub async fn timeout<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    async_std::future::timeout(limit, future).await.ok()
}

/// Wraps a bound `std` listener for the reactor.
pub(crate) fn listener(listener: std::net::TcpListener) -> io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from(listener))
}

/// Connects to `addr` (`host:port`, resolved by the runtime).
pub(crate) async fn connect(addr: &str) -> io::Result<TcpStream> {
    TcpStream::connect(addr).await
}

/// Standard input, one line at a time (without its line ending).
pub(crate) fn stdin_lines() -> impl Stream<Item = io::Result<String>> + Unpin + Send {
    use async_std::io::prelude::BufReadExt;
    async_std::io::BufReader::new(async_std::io::stdin()).lines()
}

/// Sets the number of executor threads; must run before the runtime's first use. Without it the
/// runtime uses one per core.
pub fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads.filter(|&n| n > 0) {
        // Read once by async-std when its runtime starts; nothing else is running yet.
        std::env::set_var("ASYNC_STD_THREAD_COUNT", n.to_string());
    }
}

/// Wraps a connected `std` stream for the reactor.
#[cfg(test)]
pub(crate) fn stream(stream: std::net::TcpStream) -> io::Result<TcpStream> {
    stream.set_nonblocking(true)?;
    Ok(TcpStream::from(stream))
}

/// Awaits `fut` within `limit`; `None` if the limit passed. The timer is armed only if `fut`
/// does not complete on its first poll, as small writes and reads of buffered data do: a timer
/// costs the reactor a registration, and this runs several times per connection.
pub(crate) async fn bounded<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    futures::pin_mut!(fut);
    if let Poll::Ready(out) = futures::poll!(fut.as_mut()) {
        return Some(out);
    }
    timeout(limit, fut).await
}
