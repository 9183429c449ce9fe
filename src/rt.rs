//! The async runtime, and the only module that names it.
//!
//! Owns every use of async-std, and of async-io (the reactor under async-std's sockets, for the
//! readiness API and the timer async-std does not expose): spawning and joining tasks, blocking
//! on a future, timers, sockets (a TLS connection's records included: its session, set up by
//! `tls`, rides with the socket), standard input and the executor's thread count. Everything else
//! goes through these names, so moving to another runtime (smol, say) is a change to this file
//! alone. Public signatures elsewhere take `std::net` types; the runtime's types stay inside the
//! crate.
//!
//! It must not know about rounds, frames or wires.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;

/// A connected TCP socket on the runtime's reactor, for clients. Cheap to clone: clones share
/// the socket.
pub(crate) type TcpStream = async_std::net::TcpStream;
/// A listening socket for [`TcpStream`]s (the bench's relay; tests).
pub(crate) type TcpListener = async_std::net::TcpListener;

/// A server connection on the runtime's reactor (async-io's, which async-std's own sockets sit
/// on). Unlike async-std's stream it can wait for readability without reading, so the
/// timestamping reader (`stamp`) goes straight from readiness to one `recvmsg`. Cheap to clone:
/// clones share the socket, and its TLS session if it has one (see `tls`): then what is written
/// is encrypted, and the timestamping reader decrypts.
#[derive(Clone)]
pub(crate) struct Socket(Arc<SocketInner>);

struct SocketInner {
    io: async_io::Async<std::net::TcpStream>,
    /// Boxed: a plain connection pays a pointer for it, not a session.
    tls: Option<Box<TlsSession>>,
}

impl Socket {
    /// Ready once the reactor has seen the socket readable since this task last got `Pending`.
    /// Readiness can be stale: the read that follows may still find nothing.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.io.poll_readable(cx)
    }

    /// Its TLS session, if it speaks TLS.
    pub(crate) fn tls(&self) -> Option<&TlsSession> {
        self.0.tls.as_deref()
    }

    /// This socket, from now on encrypting and decrypting with `session`; itself back if a clone
    /// of it is still held (a session must be the only one of its connection).
    pub(crate) fn with_tls(self, session: Box<TlsSession>) -> Result<Socket, Socket> {
        match Arc::try_unwrap(self.0) {
            Ok(inner) => Ok(Socket(Arc::new(SocketInner {
                io: inner.io,
                tls: Some(session),
            }))),
            Err(shared) => Err(Socket(shared)),
        }
    }

    /// Reads into `buf` without taking the bytes off the socket.
    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.io.peek(buf).await
    }

    /// Reads into `buf`, trying the socket at once only if the last read did not find it
    /// `drained`: after a short or failed read the next one would most likely fail, so it waits
    /// for readiness first (one `epoll_ctl` instead of a failing `read` and then that).
    pub(crate) fn poll_read_when_ready(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        drained: &mut bool,
    ) -> Poll<io::Result<usize>> {
        use std::io::Read;
        loop {
            if !*drained {
                match (&mut self.0.io.get_ref()).read(buf) {
                    Ok(n) => {
                        *drained = n < buf.len();
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => *drained = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if *drained {
                match self.0.io.poll_readable(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => *drained = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                }
            }
        }
    }

    pub(crate) fn get_ref(&self) -> &std::net::TcpStream {
        self.0.io.get_ref()
    }

    /// Wraps a connected `std` stream; it must already be non-blocking.
    fn from_nonblocking(stream: std::net::TcpStream) -> io::Result<Socket> {
        Ok(Socket(Arc::new(SocketInner {
            io: async_io::Async::new_nonblocking(stream)?,
            tls: None,
        })))
    }

    /// Wraps a connected `std` stream for the reactor.
    #[cfg(test)]
    pub(crate) fn from_std(stream: std::net::TcpStream) -> io::Result<Socket> {
        stream.set_nonblocking(true)?;
        Socket::from_nonblocking(stream)
    }
}

impl std::os::fd::AsRawFd for Socket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.io.as_raw_fd()
    }
}

/// The socket's bytes as they arrive: records, for a TLS socket (its timestamping reader
/// decrypts them).
impl futures::AsyncRead for &Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.0.io).poll_read(cx, buf)
    }
}

impl futures::AsyncWrite for &Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &self.0.tls {
            Some(session) => tls_poll_write(session, &self.0.io, cx, buf),
            None => Pin::new(&mut &self.0.io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.0.tls {
            Some(session) => tls_poll_flush(session, &self.0.io, cx),
            None => Pin::new(&mut &self.0.io).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(session) = &self.0.tls {
            match tls_poll_flush(session, &self.0.io, cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        Pin::new(&mut &self.0.io).poll_close(cx)
    }
}

/// The TLS state of a server connection (see `tls`), shared by its reader and its writer.
pub(crate) type TlsSession = Mutex<rustls::ServerConnection>;

fn lock<C>(session: &Mutex<C>) -> std::sync::MutexGuard<'_, C> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads plaintext into `buf`: what the session holds already, else records read by `read_raw`
/// (the timestamping reader's read of the socket). 0 at the end of the stream, with or without
/// the peer's `close_notify` (browsers often leave it out). A client session reads the same way
/// (`client::secure`).
pub(crate) fn tls_poll_read<C, D>(
    session: &Mutex<C>,
    cx: &mut Context<'_>,
    buf: &mut [u8],
    mut read_raw: impl FnMut(&mut Context<'_>, &mut [u8]) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<usize>>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
{
    loop {
        match std::io::Read::read(&mut lock(session).reader(), buf) {
            Ok(n) => return Poll::Ready(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
            Err(e) => return Poll::Ready(Err(e)),
        }
        let mut raw = [0u8; 4096];
        let n = match read_raw(cx, &mut raw) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        let mut session = lock(session);
        let mut records = &raw[..n];
        while !records.is_empty() {
            session.read_tls(&mut records)?;
            session
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }
}

/// The socket as rustls writes to it: non-blocking, `WouldBlock` when its buffer is full.
struct RawWriter<'a>(&'a std::net::TcpStream);

impl std::io::Write for RawWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::io::Write::write(&mut &*self.0, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the session's records to the socket until none is left.
pub(crate) fn tls_poll_flush(
    session: &TlsSession,
    socket: &async_io::Async<std::net::TcpStream>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    loop {
        let written = {
            let mut session = lock(session);
            if !session.wants_write() {
                return Poll::Ready(Ok(()));
            }
            session.write_tls(&mut RawWriter(socket.get_ref()))
        };
        match written {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match socket.poll_writable(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// Encrypts `buf` and writes what the socket takes; the rest goes with the next write or flush.
/// Waits only while records of earlier writes are still unwritten, so what the session holds
/// stays bounded.
pub(crate) fn tls_poll_write(
    session: &TlsSession,
    socket: &async_io::Async<std::net::TcpStream>,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    match tls_poll_flush(session, socket, cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
        Poll::Pending => return Poll::Pending,
    }
    let n = std::io::Write::write(&mut lock(session).writer(), buf)?;
    if let Poll::Ready(Err(e)) = tls_poll_flush(session, socket, cx) {
        return Poll::Ready(Err(e));
    }
    Poll::Ready(Ok(n))
}

/// A server's listening socket on the runtime's reactor.
pub(crate) struct Listener(async_io::Async<std::net::TcpListener>);

impl Listener {
    pub(crate) fn new(listener: std::net::TcpListener) -> io::Result<Listener> {
        Ok(Listener(async_io::Async::new(listener)?))
    }

    /// The next connection. Accepted non-blocking in the one `accept4` (std's accept and
    /// async-std's take another system call to switch that on, for every connection).
    pub(crate) async fn accept(&self) -> io::Result<(Socket, SocketAddr)> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let fd = self.0.as_raw_fd();
        let (stream, peer) = self
            .0
            .read_with(|_| {
                // SAFETY: accept4 on our listening socket, writing the peer's address into the
                // storage and length socket2 provides; the descriptor it returns is ours.
                let (conn, addr) = unsafe {
                    socket2::SockAddr::try_init(|storage, len| {
                        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
                        match libc::accept4(fd, storage.cast(), len, flags) {
                            -1 => Err(io::Error::last_os_error()),
                            conn => Ok(std::net::TcpStream::from_raw_fd(conn)),
                        }
                    })?
                };
                let peer = addr
                    .as_socket()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP peer"))?;
                Ok((conn, peer))
            })
            .await?;
        Ok((Socket::from_nonblocking(stream)?, peer))
    }
}

impl std::os::fd::AsRawFd for Listener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// A spawned task; awaiting it yields its output. Dropping it detaches the task (it runs on).
pub struct JoinHandle<T>(async_std::task::JoinHandle<T>);

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Connects to `addr` from the local address `source` (a loopback alias, say) without blocking
/// the executor; the connected `std` stream, to wrap as a client connection.
pub async fn connect_from(source: SocketAddr, addr: SocketAddr) -> io::Result<std::net::TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.bind(&source.into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = async_io::Async::new(std::net::TcpStream::from(socket))?;
    stream.writable().await?;
    let stream = stream.into_inner()?;
    match stream.take_error()? {
        Some(e) => Err(e),
        None => Ok(stream),
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

/// Resolves after `duration`. The reactor's own timer, not async-std's `sleep` (which wraps it
/// in a timeout around a pending future): rounds and connections hold one while they wait, and
/// this one is half the size.
pub fn sleep(duration: Duration) -> impl Future<Output = ()> + Send {
    use futures::FutureExt;
    async_io::Timer::after(duration).map(drop)
}

/// A timer that can be re-armed, for an actor that keeps many deadlines in order and waits for
/// the first: one registration with the reactor instead of one per deadline. Pending while
/// disarmed, and again once it has fired, until set.
pub(crate) struct Alarm(async_io::Timer);

impl Alarm {
    pub(crate) fn new() -> Alarm {
        Alarm(async_io::Timer::never())
    }

    pub(crate) fn set_at(&mut self, at: std::time::Instant) {
        self.0.set_at(at);
    }

    pub(crate) fn clear(&mut self) {
        self.0 = async_io::Timer::never();
    }
}

impl Future for Alarm {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
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

/// Wraps a bound `std` listener for the reactor, accepting [`TcpStream`]s.
pub(crate) fn listener(listener: std::net::TcpListener) -> io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from(listener))
}

/// Wraps a connected `std` stream (one made in another network namespace, say).
pub(crate) fn stream(stream: std::net::TcpStream) -> io::Result<TcpStream> {
    stream.set_nonblocking(true)?;
    Ok(TcpStream::from(stream))
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
