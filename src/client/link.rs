//! [`Link`]: the one framed connection type, for the client, the bench and the tests.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWriteExt};

use super::secure::TlsStream;
use crate::protocol::{self, Frame, FrameReader, ReadError};
use crate::rt::{self, TcpStream};

/// One framed connection to a server: its writer and its frame reader.
pub struct Link {
    out: Stream,
    frames: FrameReader<Stream>,
}

/// The bytes of a link: TCP's own, or TLS's over it.
#[derive(Clone)]
enum Stream {
    Plain(TcpStream),
    Tls(TlsStream),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.tcp(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls).poll_read(cx, buf),
        }
    }
}

impl Link {
    /// Connects to `addr` (`host:port`) with `TCP_NODELAY` and speaks TLS over it, trusting what
    /// `config` trusts (see [`secure`](super::secure)).
    pub async fn connect_tls(addr: &str, config: Arc<rustls::ClientConfig>) -> io::Result<Link> {
        let stream = rt::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tls = Stream::Tls(TlsStream::connect(stream, config, host).await?);
        Ok(Link {
            frames: FrameReader::new(tls.clone()),
            out: tls,
        })
    }

    /// Connects to `addr` (`host:port`) with `TCP_NODELAY`.
    pub async fn connect(addr: &str) -> io::Result<Link> {
        let stream = rt::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(Link {
            frames: FrameReader::new(Stream::Plain(stream.clone())),
            out: Stream::Plain(stream),
        })
    }

    /// Wraps a connected `std` stream, one made in another network namespace, say; sets
    /// `TCP_NODELAY`.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<Link> {
        let stream = rt::stream(stream)?;
        let _ = stream.set_nodelay(true);
        Ok(Link {
            frames: FrameReader::new(Stream::Plain(stream.clone())),
            out: Stream::Plain(stream),
        })
    }

    /// Writes `bytes` as they are (for saying what no well-behaved client would).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.out {
            Stream::Plain(tcp) => {
                tcp.write_all(bytes).await?;
                tcp.flush().await
            }
            Stream::Tls(tls) => tls.send(bytes).await,
        }
    }

    /// Writes one frame.
    pub async fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.send_bytes(&protocol::encode(frame)?).await
    }

    /// The next frame; `Ok(None)` at a clean end of stream.
    pub async fn recv(&mut self) -> Result<Option<Frame>, ReadError> {
        self.frames.read_frame().await
    }

    /// Half-closes: the server sees the end of our stream, and can still write to us.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.out.tcp().shutdown(std::net::Shutdown::Write)
    }

    /// The raw socket descriptor, for tests that set socket options.
    #[cfg(unix)]
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self.out.tcp())
    }
}
