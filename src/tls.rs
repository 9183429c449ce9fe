//! TLS on the server's own port: the pages over `https`, the WebSocket over `wss`, the framed
//! protocol over TLS, beside plain connections on the same port.
//!
//! Owns the TLS layer of a server connection, driven by hand over the connection's own socket
//! (rustls, no TLS runtime of its own): [`load`] reads the certificate and key (PEM),
//! [`accept`] tells a TLS client from a plain one by its first byte (a TLS record of type
//! handshake, `0x16`, is no frame's length prefix nor a request's first letter) and shakes hands,
//! and [`poll_read`] / [`poll_write`] decrypt what the socket reads and encrypt what it writes.
//! The reads still go through the timestamping reader, so a message over TLS is ordered by the
//! kernel's receive time of the record that carried it, and the kernel's round trip is the
//! connection's own: nothing between the player and the server but its network.
//!
//! It must not interpret what it carries (the wires do), and it writes only from the calls of the
//! connection's one writer: a reader that needs something sent (a key update) leaves it for the
//! next write.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::rt::{self, Socket};

/// A TLS record of type handshake: the first byte of every TLS client's first message.
const HANDSHAKE_RECORD: u8 = 0x16;

/// The TLS state of one connection, shared by its reader and its writer.
pub(crate) type Session = Mutex<ServerConnection>;

/// The server's TLS configuration from a certificate chain and its private key, both PEM files.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    // ring rather than aws-lc-rs: no cmake or clang to build, and it links statically for
    // make dist. The cost: no post-quantum key exchange offered.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert and --tls-key do not make a server identity: {e}"))?;
    Ok(Arc::new(config))
}

fn lock(session: &Session) -> MutexGuard<'_, ServerConnection> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection as [`accept`] found it.
pub(crate) enum Accepted {
    /// It shook hands: the socket encrypts and decrypts from now on.
    Tls(Socket),
    /// Its first byte is no TLS record (or it sent none in time): as it came, nothing read.
    Plain(Socket),
}

/// Whether the client on `socket` speaks TLS, from its first byte (waiting at most `limit` for
/// it); if so, its handshake (within `limit` too).
pub(crate) async fn accept(
    socket: Socket,
    config: Arc<ServerConfig>,
    limit: Duration,
) -> Result<Accepted, String> {
    let mut first = [0u8; 1];
    match rt::timeout(limit, socket.peek(&mut first)).await {
        Some(Ok(1)) if first[0] == HANDSHAKE_RECORD => {}
        // Plain, closed or silent: the plain path says what it says to those.
        _ => return Ok(Accepted::Plain(socket)),
    }
    let mut session = ServerConnection::new(config).map_err(|e| format!("TLS: {e}"))?;
    match rt::timeout(limit, handshake(&socket, &mut session)).await {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
        None => return Err("no TLS handshake in time".into()),
    }
    socket
        .with_tls(Box::new(Mutex::new(session)))
        .map(Accepted::Tls)
        .map_err(|_| "the connection was shared during its TLS handshake".to_owned())
}

/// Shakes hands over the plain socket: rustls's records out, the client's in.
async fn handshake(socket: &Socket, session: &mut ServerConnection) -> io::Result<()> {
    use futures::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while session.wants_write() {
            let mut out = Vec::new();
            session.write_tls(&mut out)?;
            crate::close::write_all(socket, &out).await?;
        }
        if !session.is_handshaking() {
            return Ok(());
        }
        let n = (&mut &*socket).read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut records = &buf[..n];
        while !records.is_empty() {
            session.read_tls(&mut records)?;
            if let Err(e) = session.process_new_packets() {
                // The alert that says why, then the error.
                let mut out = Vec::new();
                let _ = session.write_tls(&mut out);
                let _ = crate::close::write_all(socket, &out).await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
}

/// Reads plaintext into `buf`: what the session holds already, else records read by `read_raw`
/// (the timestamping reader's read of the socket). 0 at the end of the stream, with or without
/// the client's `close_notify` (browsers often leave it out).
pub(crate) fn poll_read(
    session: &Session,
    cx: &mut Context<'_>,
    buf: &mut [u8],
    mut read_raw: impl FnMut(&mut Context<'_>, &mut [u8]) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<usize>> {
    loop {
        match lock(session).reader().read(buf) {
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
struct Raw<'a>(&'a std::net::TcpStream);

impl Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&mut &*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the session's records to the socket until none is left.
pub(crate) fn poll_flush(
    session: &Session,
    socket: &async_io::Async<std::net::TcpStream>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    loop {
        let written = {
            let mut session = lock(session);
            if !session.wants_write() {
                return Poll::Ready(Ok(()));
            }
            session.write_tls(&mut Raw(socket.get_ref()))
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
pub(crate) fn poll_write(
    session: &Session,
    socket: &async_io::Async<std::net::TcpStream>,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    match poll_flush(session, socket, cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
        Poll::Pending => return Poll::Pending,
    }
    let n = lock(session).writer().write(buf)?;
    if let Poll::Ready(Err(e)) = poll_flush(session, socket, cx) {
        return Poll::Ready(Err(e));
    }
    Poll::Ready(Ok(n))
}
