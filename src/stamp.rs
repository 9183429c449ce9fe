//! When a message arrived, as the kernel saw it.
//!
//! Owns [`StampedStream`], the read half of a server connection. It reads with `recvmsg` and
//! `SO_TIMESTAMPNS`, so each read also yields the instant the kernel received the data. Arrival
//! order is decided on that instant, not on when a task got round to reading: two messages that
//! arrive 50 µs apart are ordered correctly even if the server was busy for a millisecond and
//! read both at once.
//!
//! Timestamping is switched on for the listening socket ([`enable`]) before it listens: accepted
//! connections inherit it (one accepted earlier never does), and it keeps Linux's global
//! receive-timestamping on for the server's lifetime. Switching that on is deferred work in the
//! kernel, so the server waits until a probe packet comes back stamped
//! ([`until_active`], which waits without blocking the executor) before it serves.
//!
//! To wait for data, the reader asks the reactor for readability (which takes no byte), then
//! reads everything with one `recvmsg`, stamped. So no byte is ever read without its timestamp,
//! and a read that follows one that drained the socket goes straight to the wait.
//!
//! It also reads the kernel's own measurement of the connection's round trip
//! ([`StampedStream::min_rtt`], `TCP_INFO`'s `tcpi_min_rtt`): taken from the peer kernel's
//! ACKs, it is a figure the peer's application cannot inflate, which the quiz uses to bound
//! what a client says of its round trip.
//!
//! It must not interpret bytes (that is `protocol`'s job). Where the kernel gives no timestamp
//! (the option refused, or switched off by `server::Config::kernel_timestamps`),
//! [`StampedStream::arrival`] is `None` and callers fall back to the time of reading. The
//! `recvmsg` code is Linux's and is compiled only there; elsewhere a plain reader with no stamps
//! takes its place and [`enable`] says it is unsupported.

#[cfg(target_os = "linux")]
pub use linux::{enable, set, until_active, StampedStream};
#[cfg(not(target_os = "linux"))]
pub use other::{enable, set, until_active, StampedStream};

#[cfg(not(target_os = "linux"))]
mod other {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Instant;

    use crate::rt::Socket;
    use futures::io::AsyncRead;

    /// Without kernel timestamps: a plain reader whose arrival is always unknown.
    pub struct StampedStream {
        stream: Socket,
    }

    impl StampedStream {
        pub(crate) fn new(stream: Socket) -> StampedStream {
            StampedStream { stream }
        }

        pub fn arrival(&self) -> Option<Instant> {
            None
        }

        pub fn min_rtt(&self) -> Option<std::time::Duration> {
            None
        }
    }

    pub async fn until_active(_limit: std::time::Duration) -> bool {
        false
    }

    pub fn set<S>(_socket: &S, _on: bool) -> io::Result<()> {
        enable(_socket)
    }

    pub fn enable<S>(_socket: &S) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel receive timestamps are implemented for Linux only",
        ))
    }

    impl AsyncRead for StampedStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let socket = self.stream.clone();
            let mut raw =
                |cx: &mut Context<'_>, buf: &mut [u8]| Pin::new(&mut &socket).poll_read(cx, buf);
            match self.stream.tls() {
                Some(session) => crate::rt::tls_poll_read(session, cx, buf, raw),
                None => raw(cx, buf),
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::AsRawFd;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use crate::rt::Socket;
    use futures::io::AsyncRead;

    /// A TCP stream whose reads remember the kernel's receive time of the data they returned.
    pub struct StampedStream {
        stream: Socket,
        stamp: Option<SystemTime>,
        /// The last read took everything there was, or found nothing: the next one most likely
        /// finds nothing, so it waits for readiness first instead of failing a `recvmsg`.
        drained: bool,
    }

    impl StampedStream {
        /// Wraps `stream`, which was accepted from a listener with timestamps [enabled](enable).
        pub(crate) fn new(stream: Socket) -> StampedStream {
            StampedStream {
                stream,
                stamp: None,
                drained: false,
            }
        }

        /// The kernel's minimum round trip for this connection over its recent window
        /// (`TCP_INFO`'s `tcpi_min_rtt`, Linux 4.6 and later); `None` if it has none.
        pub fn min_rtt(&self) -> Option<Duration> {
            min_rtt(self.stream.as_raw_fd())
        }

        /// When the kernel received the data of the last read, on `Instant`'s clock; `None` if
        /// unknown.
        pub fn arrival(&self) -> Option<Instant> {
            let stamp = self.stamp?;
            let (now, wall) = (Instant::now(), SystemTime::now());
            // A stamp from the future means the wall clock was stepped; do not trust it.
            now.checked_sub(wall.duration_since(stamp).ok()?)
        }
    }

    /// Asks the kernel to timestamp what `socket` receives; on a listener, connections accepted
    /// from it inherit the setting.
    pub fn enable(socket: &impl AsRawFd) -> io::Result<()> {
        set(socket, true)
    }

    /// Switches receive timestamps on or off for `socket`.
    pub fn set(socket: &impl AsRawFd, on: bool) -> io::Result<()> {
        let on = libc::c_int::from(on);
        // SAFETY: a valid descriptor, and a pointer and size describing a live c_int.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits (at most `limit`) until the kernel really stamps received data. Linux switches receive
    /// timestamping on for the whole system through deferred work, so the first packets after
    /// [`enable`] can arrive unstamped; a round whose first message were stamped and whose second
    /// fell back to the time of reading would be ordered unfairly. The probe is a datagram sent to
    /// ourselves on loopback. Returns whether stamping is on.
    pub async fn until_active(limit: Duration) -> bool {
        let Ok(socket) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        if enable(&socket).is_err() {
            return false;
        }
        let Ok(addr) = socket.local_addr() else {
            return false;
        };
        let until = Instant::now() + limit;
        let mut buf = [0u8; 1];
        loop {
            if socket.send_to(b"p", addr).is_ok() {
                // Loopback delivers the datagram before send_to returns.
                if let Ok((_, Some(_))) = recv_stamped(socket.as_raw_fd(), &mut buf) {
                    return true;
                }
            }
            if Instant::now() >= until {
                return false;
            }
            crate::rt::sleep(Duration::from_millis(1)).await;
        }
    }

    /// `tcpi_min_rtt` of the connection `fd`, read from the kernel's `struct tcp_info` by offset:
    /// the layout is the kernel's ABI (fields are only ever appended), and the `libc` crate
    /// declares the field only for recent glibc builds.
    pub(crate) fn min_rtt(fd: libc::c_int) -> Option<Duration> {
        // Offset of `tcpi_min_rtt` (microseconds) in `struct tcp_info`, Linux 4.6 and later.
        const MIN_RTT_AT: usize = 148;
        let mut info = [0u8; 256];
        let mut len = info.len() as libc::socklen_t;
        // SAFETY: `info` is a live buffer of `len` bytes; the kernel writes at most `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc != 0 || (len as usize) < MIN_RTT_AT + 4 {
            return None;
        }
        let mut field = [0u8; 4];
        field.copy_from_slice(&info[MIN_RTT_AT..MIN_RTT_AT + 4]);
        // The kernel keeps `~0` until it has a sample.
        match u32::from_ne_bytes(field) {
            0 | u32::MAX => None,
            micros => Some(Duration::from_micros(u64::from(micros))),
        }
    }

    /// One non-blocking `recvmsg`: the bytes read and, if the kernel attached one, their timestamp.
    fn recv_stamped(fd: libc::c_int, buf: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for one timespec control message, aligned as cmsghdr requires.
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain data; all-zero is a valid empty value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: msg points at a live iovec over `buf` and at `control`, both outliving the call.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut stamp = None;
        // SAFETY: the CMSG_* walk stays within msg_controllen as set by the kernel; CMSG_DATA of an
        // SCM_TIMESTAMPNS message holds a timespec, read unaligned to be safe.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    if let (Ok(secs), Ok(nanos)) =
                        (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec))
                    {
                        stamp = Some(UNIX_EPOCH + Duration::new(secs, nanos));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok((n as usize, stamp))
    }

    impl AsyncRead for StampedStream {
        /// What arrived, stamped; decrypted first on a TLS connection (see `tls`), stamped with
        /// the arrival of the records that carried it.
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = &mut *self;
            match this.stream.tls() {
                Some(_) => {
                    let socket = this.stream.clone();
                    let session = socket.tls().expect("a TLS socket");
                    crate::rt::tls_poll_read(session, cx, buf, |cx, raw| {
                        this.poll_read_raw(cx, raw)
                    })
                }
                None => this.poll_read_raw(cx, buf),
            }
        }
    }

    impl StampedStream {
        /// The socket's own bytes, stamped.
        fn poll_read_raw(
            &mut self,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let this = self;
            let fd = this.stream.as_raw_fd();
            loop {
                if !this.drained {
                    match recv_stamped(fd, buf) {
                        Ok((n, stamp)) => {
                            if n > 0 {
                                this.stamp = stamp;
                            }
                            this.drained = n < buf.len();
                            return Poll::Ready(Ok(n));
                        }
                        // Until the reactor says otherwise, polls (the task is woken by
                        // other things too) go straight to the wait, not to a failing read.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => this.drained = true,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                // Nothing to read: wait for readability, then read everything at once, stamped.
                // Readiness is kept by the reactor across polls (and cancelled reads).
                match this.stream.poll_readable(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => this.drained = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                }
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::rt::{self, block_on, TcpStream};
    use futures::{AsyncReadExt, AsyncWriteExt};
    use std::time::{Duration, Instant};

    /// The stamp is when the data arrived, not when it was read: data that sat unread for a
    /// while is stamped before the read began.
    #[test]
    fn arrival_is_when_the_kernel_received_not_when_we_read() {
        block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            enable(&listener).unwrap();
            let addr = listener.local_addr().unwrap();
            let listener = rt::Listener::new(listener).unwrap();
            // Linux turns receive timestamping on through deferred work; probe until it is on.
            let mut probes = 0;
            let (mut sender, mut stamped) = loop {
                let mut sender = TcpStream::connect(addr).await.unwrap();
                let (accepted, _) = listener.accept().await.unwrap();
                let mut stamped = StampedStream::new(accepted);
                sender.write_all(b"p").await.unwrap();
                stamped.read_exact(&mut [0u8; 1]).await.unwrap();
                if stamped.arrival().is_some() {
                    break (sender, stamped);
                }
                probes += 1;
                assert!(probes < 1000, "the kernel never stamped a packet");
                rt::sleep(Duration::from_millis(1)).await;
            };

            let before_send = Instant::now();
            sender.write_all(b"first").await.unwrap();
            // Let the data sit unread: that delay is what the stamp must not include.
            rt::sleep(Duration::from_millis(30)).await;
            let read_started = Instant::now();
            let mut buf = [0u8; 16];
            let n = stamped.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"first");
            let arrival = stamped.arrival().expect("Linux stamps TCP data");
            assert!(arrival >= before_send - Duration::from_millis(1));
            assert!(arrival < read_started, "stamped at read time, not arrival");

            // A read that had to wait is stamped too (the readiness path).
            let reader = rt::spawn(async move {
                let mut buf = [0u8; 16];
                let n = stamped.read(&mut buf).await.unwrap();
                (buf[..n].to_vec(), stamped.arrival())
            });
            sender.write_all(b"second").await.unwrap();
            let (data, arrival) = reader.await;
            assert_eq!(data, b"second");
            assert!(arrival.is_some());
        })
    }

    /// The fallback path: a socket accepted from a listener without timestamps reads normally and
    /// reports no arrival, so callers use the time of reading.
    #[test]
    fn without_timestamps_arrival_is_unknown() {
        block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let listener = rt::Listener::new(listener).unwrap();
            let mut sender = TcpStream::connect(addr).await.unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            let mut stamped = StampedStream::new(accepted);
            sender.write_all(b"data").await.unwrap();
            let mut buf = [0u8; 4];
            stamped.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"data");
            assert_eq!(stamped.arrival(), None);
        })
    }
}
