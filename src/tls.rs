//! TLS on the server's own port: the pages over `https`, the WebSocket over `wss`, the framed
//! protocol over TLS, beside plain connections on the same port.
//!
//! Owns the TLS layer of a server connection, driven by hand over the connection's own socket
//! (rustls, no TLS runtime of its own): [`load`] reads the certificate and key (PEM),
//! `accept` tells a TLS client from a plain one by its first byte (a TLS record of type
//! handshake, `0x16`, is no frame's length prefix nor a request's first letter) and shakes hands,
//! and from then on the socket decrypts what the timestamping reader reads and encrypts what it
//! writes (`rt::Socket`, which owns socket I/O). The reads still go through the timestamping
//! reader, so a message over TLS is ordered by the
//! kernel's receive time of the record that carried it, and the kernel's round trip is the
//! connection's own: nothing between the player and the server but its network.
//!
//! It must not interpret what it carries (the wires do), and it writes only from the calls of the
//! connection's one writer: a reader that needs something sent (a key update) leaves it for the
//! next write.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::{ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::rt::{self, Socket};

/// A TLS record of type handshake: the first byte of every TLS client's first message.
const HANDSHAKE_RECORD: u8 = 0x16;

/// The certificates in the PEM file at `path`.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The cryptography TLS is done with, on either side. ring rather than aws-lc-rs: no cmake or
/// clang to build, and it links statically for make dist. The cost: no post-quantum key exchange.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS configuration from a certificate chain and its private key, both PEM files.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = certificates(cert).map_err(|e| format!("--tls-cert {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert and --tls-key do not make a server identity: {e}"))?;
    Ok(Arc::new(config))
}

/// A connection as [`accept`] found it.
pub(crate) enum Accepted {
    /// It shook hands: the socket encrypts and decrypts from now on.
    Tls(Socket),
    /// Its first byte is no TLS record (or it sent none in time): as it came, nothing read.
    Plain(Socket),
}

/// Whether the client on `socket` speaks TLS, from its first byte; if so, its handshake. Both
/// by `deadline`, the connection's one handshake deadline.
pub(crate) async fn accept(
    socket: Socket,
    config: Arc<ServerConfig>,
    deadline: Instant,
) -> Result<Accepted, String> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let mut first = [0u8; 1];
    match rt::timeout(left(), socket.peek(&mut first)).await {
        Some(Ok(1)) if first[0] == HANDSHAKE_RECORD => {}
        // Plain, closed or silent: the plain path says what it says to those.
        _ => return Ok(Accepted::Plain(socket)),
    }
    let mut session = ServerConnection::new(config).map_err(|e| format!("TLS: {e}"))?;
    match rt::timeout(left(), handshake(&socket, &mut session)).await {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
        None => return Err("no TLS handshake in time".into()),
    }
    socket
        .with_tls(Box::new(Mutex::new(session)))
        .map(Accepted::Tls)
        .map_err(|_| "the connection was shared during its TLS handshake".to_owned())
}

async fn write_all(socket: &Socket, bytes: &[u8]) -> io::Result<()> {
    use futures::AsyncWriteExt;
    let mut out = socket;
    out.write_all(bytes).await?;
    out.flush().await
}

/// Shakes hands over the plain socket: rustls's records out, the client's in.
async fn handshake(socket: &Socket, session: &mut ServerConnection) -> io::Result<()> {
    use futures::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while session.wants_write() {
            let mut out = Vec::new();
            session.write_tls(&mut out)?;
            write_all(socket, &out).await?;
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
                let _ = write_all(socket, &out).await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
}
