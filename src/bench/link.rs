//! A network path with real delay, for fairness trials: two network namespaces of their own,
//! joined by a TUN device in each, with a thread that holds every IP packet `delay` in each
//! direction before passing it on.
//!
//! This is what a far player's network looks like to the server's kernel: the delay is in the
//! packets, so the kernel's own round-trip figure (`TCP_INFO`) sees it, as it would on the
//! internet, which a user-space TCP relay cannot give (the kernel would see the relay, a few
//! microseconds away). The server and its near players live in one namespace (`server`), far
//! players in the other (`far`); sockets are made in either by a short-lived thread that enters
//! the namespace, and keep it for their whole life.
//!
//! Owns: the two namespaces (made with `ip netns add`, removed on drop), the two TUN devices, the
//! pump thread (ended on drop). Needs root, `/dev/net/tun` and iproute2's `ip`:
//! [`DelayedLink::unavailable`] says which is missing, so tests can skip with the reason. The
//! addresses are in 198.18.0.0/15, the range set aside for network benchmarks, and exist only
//! inside the two namespaces: nothing here touches the machine's own network.
//!
//! A far player may also **control its own network stack** ([`Hold`]): the link then holds
//! chosen packets that player sends (its pure acknowledgments and `Pong`s, or everything but its
//! `Answer`) longer, as a packet filter or a TUN device on the player's own machine would. Which
//! packet is which is told from its TCP header and the size and first bytes of its payload, for
//! the framed wire and for a WebSocket alike: that is all the classification knows of frames.
//!
//! It must not know about rounds: it moves IP packets.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The server namespace's address on the link.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The far namespace's address on the link.
pub const FAR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Packets held at once in one direction; beyond it a packet is dropped, as a router's full
/// queue would (TCP retransmits it).
const QUEUE_LIMIT: usize = 4096;

/// Largest IP packet a TUN device hands over (its MTU is far smaller).
const PACKET_MAX: usize = 65_536;

/// Names made unique within the machine: a process may hold several links at once.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// What a far player that controls its own network stack holds back of what it sends, and
/// for how long beyond the link's delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Its pure acknowledgments (the handshake's included) and the segments carrying `Pong`s.
    AcksAndPongs(Duration),
    /// Every packet but the segment carrying its `Answer`.
    AllButAnswer(Duration),
}

/// The cheating players' connections: (local port, what it holds). A handful at most; the pump
/// reads it for each packet from the far side.
type Holds = Arc<std::sync::Mutex<Vec<(u16, Hold)>>>;

/// Two namespaces joined by a delayed link; see the module docs.
pub struct DelayedLink {
    server_ns: String,
    far_ns: String,
    stop: Arc<AtomicBool>,
    pump: Option<JoinHandle<()>>,
    delay: Duration,
    holds: Holds,
}

impl DelayedLink {
    /// Why a link cannot be made here, or `None` if it can.
    pub fn unavailable() -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("needs root (network namespaces and TUN devices)".into());
        }
        if let Err(e) = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
        {
            return Some(format!("cannot open /dev/net/tun: {e}"));
        }
        match Command::new("ip").arg("-V").output() {
            Ok(out) if out.status.success() => None,
            _ => Some("needs iproute2's `ip` command".into()),
        }
    }

    /// Makes the namespaces and devices and starts the pump: every packet between them waits
    /// `delay` each way.
    pub fn create(delay: Duration) -> io::Result<DelayedLink> {
        if let Some(why) = Self::unavailable() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("arrival-{}-{n}", std::process::id());
        let mut link = DelayedLink {
            server_ns: format!("{tag}-server"),
            far_ns: format!("{tag}-far"),
            stop: Arc::new(AtomicBool::new(false)),
            pump: None,
            delay,
            holds: Holds::default(),
        };
        // Dropped on any error below, which removes whatever was made.
        ip(&["netns", "add", &link.server_ns])?;
        ip(&["netns", "add", &link.far_ns])?;
        let server_tun = in_namespace(&link.server_ns, || open_tun("arrival0"))?;
        let far_tun = in_namespace(&link.far_ns, || open_tun("arrival0"))?;
        for (ns, own) in [(&link.server_ns, SERVER_IP), (&link.far_ns, FAR_IP)] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{own}/24"),
                "dev",
                "arrival0",
            ])?;
            ip(&["-n", ns, "link", "set", "arrival0", "up"])?;
        }
        let stop = Arc::clone(&link.stop);
        let holds = Arc::clone(&link.holds);
        link.pump = Some(
            std::thread::Builder::new()
                .name("delayed-link".into())
                .spawn(move || pump(server_tun, far_tun, delay, &holds, &stop))?,
        );
        Ok(link)
    }

    /// The delay each way.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The server namespace's name (for `ip netns exec`).
    pub fn server_namespace(&self) -> &str {
        &self.server_ns
    }

    /// A command that runs `program` in the server namespace.
    pub fn server_command(&self, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.server_ns])
            .arg(program);
        command
    }

    /// A listener bound to `port` (0 for any) on the server namespace's link address.
    pub fn listen(&self, port: u16) -> io::Result<TcpListener> {
        let addr = SocketAddr::from((SERVER_IP, port));
        in_namespace(&self.server_ns, || crate::server::bind(&addr.to_string()))
    }

    /// A connection to `addr` made in the server namespace: a near player, a loopback away.
    pub fn connect_near(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        in_namespace(&self.server_ns, || connect(addr))
    }

    /// A connection to `addr` made in the far namespace: every packet of it is delayed.
    pub fn connect_far(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        in_namespace(&self.far_ns, || connect(addr))
    }

    /// A far connection whose player holds back what `hold` says, from its first packet (the
    /// port is chosen, and the hold set, before the handshake).
    pub fn connect_far_holding(&self, addr: SocketAddr, hold: Hold) -> io::Result<TcpStream> {
        let holds = Arc::clone(&self.holds);
        in_namespace(&self.far_ns, move || {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            socket.bind(&SocketAddr::from((FAR_IP, 0)).into())?;
            let port = socket.local_addr()?.as_socket().map_or(0, |a| a.port());
            holds
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((port, hold));
            socket.connect_timeout(&addr.into(), Duration::from_secs(10))?;
            let stream: TcpStream = socket.into();
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    }
}

impl Drop for DelayedLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(pump) = self.pump.take() {
            let _ = pump.join();
        }
        for ns in [&self.server_ns, &self.far_ns] {
            // Removing a namespace removes the devices and sockets in it.
            let _ = ip(&["netns", "delete", ns]);
        }
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs iproute2's `ip` with `args`; its error output becomes the error.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs `f` on a thread of its own that has entered network namespace `ns`: sockets and devices
/// it makes belong to `ns` for good. The thread ends with `f`, so no thread of the process is
/// left in another namespace.
fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let handle = File::open(&path)?;
                // SAFETY: a valid namespace descriptor; setns affects only this thread.
                if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

/// Opens a new TUN device `name` (IP packets, no extra header) in the calling thread's namespace.
fn open_tun(name: &str) -> io::Result<File> {
    /// `struct ifreq` as TUNSETIFF reads it: the name, then the flags, in 40 bytes.
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _rest: [u8; 22],
    }
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _rest: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: a valid descriptor and a pointer to a live, correctly laid out ifreq.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tun)
}

/// One direction's packets, each with the instant it may go on.
type Queue = VecDeque<(Instant, Vec<u8>)>;

/// Writes `queue`'s packets due by `now` to `out`.
fn send_due(queue: &mut Queue, out: &mut File, now: Instant) {
    while queue.front().is_some_and(|(due, _)| *due <= now) {
        if let Some((_, packet)) = queue.pop_front() {
            // A packet the device refuses is lost, as on any link.
            let _ = out.write(&packet);
        }
    }
}

/// What a packet from the far side is, as a hold tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    PureAck,
    Pong,
    Answer,
    Other,
}

/// The TCP source port of an IPv4 packet and what it carries; `None` for anything else.
fn classify(packet: &[u8]) -> Option<(u16, Segment)> {
    if packet.len() < 20 || packet[0] >> 4 != 4 || packet[9] != 6 {
        return None;
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]])).min(packet.len());
    let tcp = packet.get(ihl..total)?;
    if tcp.len() < 20 {
        return None;
    }
    let port = u16::from_be_bytes([tcp[0], tcp[1]]);
    let offset = usize::from(tcp[12] >> 4) * 4;
    let (flags, payload) = (tcp[13], tcp.get(offset..)?);
    // SYN, FIN and RST are not pure acknowledgments.
    let segment = if payload.is_empty() && flags & 0x07 == 0 {
        Segment::PureAck
    } else if payload == [0, 0, 0, 4, 14, 0, 0, 0]
        || (payload.len() == 14 && payload[..2] == [0x82, 0x88])
    {
        // `Answer` on the framed wire, or in a client's masked WebSocket message of 8 bytes.
        Segment::Answer
    } else if (payload.len() == 12 && payload[..8] == [0, 0, 0, 8, 12, 0, 0, 0])
        || (payload.len() == 18 && payload[..2] == [0x82, 0x8c])
    {
        Segment::Pong
    } else {
        Segment::Other
    };
    Some((port, segment))
}

/// How much longer than the link's delay a packet from the far side is held.
fn held_for(packet: &[u8], holds: &Holds) -> Duration {
    let Some((port, segment)) = classify(packet) else {
        return Duration::ZERO;
    };
    let holds = holds
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match holds.iter().find(|(p, _)| *p == port).map(|&(_, h)| h) {
        Some(Hold::AcksAndPongs(d)) if matches!(segment, Segment::PureAck | Segment::Pong) => d,
        Some(Hold::AllButAnswer(d)) if segment != Segment::Answer => d,
        _ => Duration::ZERO,
    }
}

/// Moves packets between the two devices, each `delay` after it was read, until `stop`; a
/// cheating far player's held packets go on later, by its [`Hold`]. Otherwise the delay is the
/// same for every packet, so each direction is a FIFO and order is kept.
fn pump(mut a: File, mut b: File, delay: Duration, holds: &Holds, stop: &AtomicBool) {
    // Wake when a packet is due, not up to 50 µs later (the default timer slack).
    // SAFETY: prctl with PR_SET_TIMERSLACK takes a plain integer.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1);
    }
    let (mut a_to_b, mut b_to_a): (Queue, Queue) = (VecDeque::new(), VecDeque::new());
    // Far-side packets held longer, in the order they are due.
    let mut held: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut buf = vec![0u8; PACKET_MAX];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        send_due(&mut a_to_b, &mut b, now);
        send_due(&mut b_to_a, &mut a, now);
        while held.first().is_some_and(|(due, _)| *due <= now) {
            let (_, packet) = held.remove(0);
            let _ = a.write(&packet);
        }
        let next_due = [a_to_b.front(), b_to_a.front(), held.first()]
            .into_iter()
            .flatten()
            .map(|(due, _)| due.saturating_duration_since(now))
            .min();
        // Wake for the next packet due, or at least every 50 ms to see `stop`.
        let wait = next_due.unwrap_or(Duration::from_millis(50));
        let timeout = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
        };
        let mut fds = [
            libc::pollfd {
                fd: a.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: b.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a live array of two pollfds; the timeout is a live timespec.
        let ready = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &timeout, std::ptr::null()) };
        if ready <= 0 {
            continue;
        }
        let read_at = Instant::now();
        for (i, (input, queue)) in [(&mut a, &mut a_to_b), (&mut b, &mut b_to_a)]
            .into_iter()
            .enumerate()
        {
            if fds[i].revents & libc::POLLIN == 0 {
                continue;
            }
            match input.read(&mut buf) {
                // From the far side (b): a cheating player's packet may be held longer.
                Ok(n) if n > 0 && i == 1 && !held_for(&buf[..n], holds).is_zero() => {
                    let due = read_at + delay + held_for(&buf[..n], holds);
                    let at = held.partition_point(|(d, _)| *d <= due);
                    if held.len() < QUEUE_LIMIT {
                        held.insert(at, (due, buf[..n].to_vec()));
                    }
                }
                Ok(n) if n > 0 && queue.len() < QUEUE_LIMIT => {
                    queue.push_back((read_at + delay, buf[..n].to_vec()));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("delayed link: {e}");
                    return;
                }
            }
        }
    }
}
