//! [`Link`]: the one framed connection type, for the client, the bench and the tests.

use std::io;

use futures::AsyncWriteExt;

use crate::protocol::{self, Frame, FrameReader, ReadError};
use crate::rt::{self, TcpStream};

/// One framed connection to a server: its writer and its frame reader.
pub struct Link {
    out: TcpStream,
    frames: FrameReader<TcpStream>,
}

impl Link {
    /// Connects to `addr` (`host:port`) with `TCP_NODELAY`.
    pub async fn connect(addr: &str) -> io::Result<Link> {
        let stream = rt::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(Link {
            frames: FrameReader::new(stream.clone()),
            out: stream,
        })
    }

    /// Wraps a connected `std` stream, one made in another network namespace, say; sets
    /// `TCP_NODELAY`.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<Link> {
        let stream = rt::stream(stream)?;
        let _ = stream.set_nodelay(true);
        Ok(Link {
            frames: FrameReader::new(stream.clone()),
            out: stream,
        })
    }

    /// Writes `bytes` as they are (for saying what no well-behaved client would).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes).await?;
        self.out.flush().await
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
        self.out.shutdown(std::net::Shutdown::Write)
    }

    /// The raw socket descriptor, for tests that set socket options.
    #[cfg(unix)]
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.out)
    }
}
