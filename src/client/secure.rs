//! TLS for a framed client (`arrival-bench --tls-ca`): a TCP stream whose bytes are TLS records,
//! read through one rustls client session that the link's reader and its writer share.
//!
//! It owns the client's session and its handshake; it must not interpret frames (the link's
//! reader does) and it verifies the server against the CA it is given, nothing else.

use std::io::{self, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use crate::rt::TcpStream;

/// A client configuration that trusts the certificates in the PEM file `ca`, and them only.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::tls::certificates(ca)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client's TLS stream; clones share the socket and the session.
#[derive(Clone)]
pub(crate) struct TlsStream {
    tcp: TcpStream,
    session: Arc<Mutex<ClientConnection>>,
}

impl TlsStream {
    /// Shakes hands with the server at `name` (`addr`'s host) on `tcp`.
    pub(crate) async fn connect(
        mut tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: &str,
    ) -> io::Result<TlsStream> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut session = ClientConnection::new(config, name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut buf = vec![0u8; 16 * 1024];
        while session.is_handshaking() {
            while session.wants_write() {
                let mut out = Vec::new();
                session.write_tls(&mut out)?;
                tcp.write_all(&out).await?;
            }
            if !session.is_handshaking() {
                break;
            }
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut records = &buf[..n];
            while !records.is_empty() {
                session.read_tls(&mut records)?;
                session
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
        }
        let stream = TlsStream {
            tcp,
            session: Arc::new(Mutex::new(session)),
        };
        // Anything the handshake left to say (the client's Finished, in TLS 1.3).
        stream.clone().send(&[]).await?;
        Ok(stream)
    }

    /// Encrypts and writes `bytes`, and whatever the session still has to say.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let records = {
            let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
            session.writer().write_all(bytes)?;
            let mut records = Vec::new();
            while session.wants_write() {
                session.write_tls(&mut records)?;
            }
            records
        };
        self.tcp.write_all(&records).await?;
        self.tcp.flush().await
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let tcp = &mut this.tcp;
        crate::rt::tls_poll_read(&this.session, cx, buf, |cx, raw| {
            Pin::new(&mut *tcp).poll_read(cx, raw)
        })
    }
}
