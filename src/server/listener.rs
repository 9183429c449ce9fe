//! The listener and the accept loop: binding, accepting, the limits and cooldowns (of leavers and
//! of wrong host keys) applied at the door, the PROXY header of a trusted balancer, the balancer's
//! agent check (a task of its own), the tally of finished rounds and sessions, the drain, and the
//! shutdown that ends every task the server started.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};

use super::agent;
use super::config::Config;
use super::connection::Ctx;
use super::cooldown::{CooldownConfig, Cooldowns, Offence};
use super::door::{busy_bytes, Door};
use super::lobby::{lobby_loop, LOBBY_CAPACITY};
use super::proxy;
use super::spare::{out_of_descriptors, Spare};
use super::stats::Stats;
use super::summary::{Report, Summary};
use crate::round::ConnId;
use crate::rt::{self, Listener, Socket};
use crate::stamp;
use crate::stop::{Stop, StopTrigger};

/// A bound listener with its configuration, ready to [`run`](Server::run).
pub struct Server {
    listener: std::net::TcpListener,
    config: Config,
    stats: Arc<Stats>,
    drain: (mpsc::Sender<()>, mpsc::Receiver<()>),
    /// Where the balancer's agent check is answered (see `agent`).
    agent: Option<std::net::TcpListener>,
}

/// Starts a running server's drain: it starts no new round or session (those joins are told
/// `Busy`, and a balancer's agent check reads `drain`), lets the running ones finish, and then
/// stops as it would at the end of its rounds. An upgrade's first step.
#[derive(Clone)]
pub struct Drain {
    stats: Arc<Stats>,
    wake: mpsc::Sender<()>,
}

impl Drain {
    pub fn start(&self) {
        self.stats.draining.store(true, Ordering::SeqCst);
        // Full: a wake is pending already.
        let _ = self.wake.clone().try_send(());
    }
}

/// Pending connections the kernel queues before `accept`; std's fixed 128 overflows under a burst
/// of connects, and an overflowed SYN costs its client a one-second retry.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds a listener on `addr` (`host:port`; port 0 picks one) with `SO_REUSEADDR`, so a restarted
/// server can bind at once, a deep accept backlog, and kernel receive timestamps switched on
/// before it listens. A listener bound elsewhere gets its timestamps in [`Server::new`]; any
/// connection the kernel accepted on it before that is ordered by read time.
pub fn bind(addr: &str) -> io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(
        io::ErrorKind::InvalidInput,
        "the address resolves to nothing",
    );
    for candidate in addr.to_socket_addrs()? {
        let attempt = (|| {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(candidate),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.bind(&candidate.into())?;
            // Before `listen`: a connection accepted before the option is on never inherits
            // it, and its messages would be ordered by read time against others' kernel time.
            if let Err(e) = stamp::enable(&socket) {
                log::warn!("no kernel receive timestamps, arrival is the time of reading: {e}");
            }
            socket.listen(LISTEN_BACKLOG)?;
            Ok(std::net::TcpListener::from(socket))
        })();
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Runs a server on `listener` until its rounds are done or `shutdown` resolves.
pub async fn run(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<Summary> {
    Server::new(listener, config).run(shutdown).await
}

impl Server {
    pub fn new(listener: std::net::TcpListener, config: Config) -> Server {
        // Whoever bound it, its connections should carry kernel arrival times: accepted sockets
        // inherit the option (see `stamp`). Said once per server when they cannot.
        if !config.kernel_timestamps {
            let _ = stamp::set(&listener, false);
            log::info!("kernel receive timestamps off: arrival is the time of reading");
        } else if let Err(e) = stamp::enable(&listener) {
            log::warn!("no kernel receive timestamps, arrival is the time of reading: {e}");
        }
        Server {
            listener,
            config,
            stats: Arc::default(),
            drain: mpsc::channel(1),
            agent: None,
        }
    }

    /// Answers the balancer's agent check on `listener` while the server runs (see `agent`).
    pub fn with_agent(mut self, listener: std::net::TcpListener) -> Server {
        self.agent = Some(listener);
        self
    }

    /// What starts this server's drain, while it runs.
    pub fn drain(&self) -> Drain {
        Drain {
            stats: Arc::clone(&self.stats),
            wake: self.drain.0.clone(),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Counters that stay readable while, and after, the server runs.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Serves until the configured rounds are done or `shutdown` resolves; returns only after
    /// every task the server started has ended.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<Summary> {
        let Server {
            listener,
            config,
            stats,
            drain: (_, drain_wake),
            agent,
        } = self;
        if config.labels.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a round needs at least one party",
            ));
        }
        log_start(&config, &listener)?;
        let stamping = config.kernel_timestamps && stamp::enable(&listener).is_ok();
        if stamping && !stamp::until_active(Duration::from_secs(1)).await {
            log::warn!(
                "the kernel has not started stamping packets yet; early arrivals are read times"
            );
        }
        let listener = Listener::new(listener)?;
        let (trigger, stop) = Stop::new();
        let agent = match agent {
            Some(listener) => {
                log::info!("answering agent checks on {}", listener.local_addr()?);
                let agent = Listener::new(listener)?;
                let max = config.max_connections;
                Some(rt::spawn(agent::agent_loop(
                    agent,
                    Arc::clone(&stats),
                    max,
                    stop.clone(),
                )))
            }
            None => None,
        };
        let (reports_tx, reports) = mpsc::channel::<Report>(64);
        let (lobby_tx, lobby_rx) = mpsc::channel(LOBBY_CAPACITY);
        let lobby = rt::spawn(lobby_loop(
            lobby_rx,
            config.clone(),
            reports_tx,
            stop.clone(),
            Arc::clone(&stats),
        ));
        let (drain, drained) = mpsc::channel::<Infallible>(1);
        let (wrong_keys_tx, wrong_keys) = mpsc::channel(64);
        let ctx = Arc::new(Ctx {
            config,
            stop,
            lobby: lobby_tx,
            wrong_keys: wrong_keys_tx,
        });
        let (proxied_tx, proxied) = mpsc::channel::<Proxied>(64);
        let acceptor = Acceptor {
            listener,
            cooldowns: Cooldowns::new(ctx.config.cooldown, Offence::AbortedRound),
            key_cooldowns: Cooldowns::new(CooldownConfig::HOST_KEYS, Offence::WrongHostKey),
            door: Door { ctx, stats, drain },
            summary: Summary::default(),
            pending: 0,
            pending_from: std::collections::HashMap::new(),
            proxied_tx,
            next_id: 0,
            spare: Spare::open(),
        };
        let ends = Ends {
            trigger,
            reports,
            proxied,
            wrong_keys,
            drain_wake,
            lobby,
            agent,
            drained,
        };
        Ok(acceptor.run(shutdown, ends).await)
    }
}

fn log_start(config: &Config, listener: &std::net::TcpListener) -> io::Result<()> {
    log::info!(
        "serving {:?} on {}: {} parties a round ({}), {} rounds, at most {} connections",
        config.mode,
        listener.local_addr()?,
        config.labels.len(),
        config.labels.join(","),
        if config.rounds == 0 {
            "unlimited".to_owned()
        } else {
            config.rounds.to_string()
        },
        config.max_connections
    );
    Ok(())
}

/// The accept loop's state: the listener, the door, the cooldowns and the tally.
struct Acceptor {
    listener: Listener,
    door: Door,
    cooldowns: Cooldowns,
    key_cooldowns: Cooldowns,
    summary: Summary,
    /// Connections whose PROXY header is being read, in all and per balancer address, and where
    /// their readers report.
    pending: usize,
    pending_from: std::collections::HashMap<std::net::IpAddr, usize>,
    proxied_tx: mpsc::Sender<Proxied>,
    next_id: ConnId,
    spare: Spare,
}

/// What the accept loop waits on besides the listener, and what ends with it.
struct Ends {
    trigger: StopTrigger,
    reports: mpsc::Receiver<Report>,
    proxied: mpsc::Receiver<Proxied>,
    wrong_keys: mpsc::Receiver<std::net::IpAddr>,
    /// A drain was started.
    drain_wake: mpsc::Receiver<()>,
    lobby: rt::JoinHandle<()>,
    agent: Option<rt::JoinHandle<()>>,
    /// Every connection task holds a sender; when all are dropped, all connections are done.
    drained: mpsc::Receiver<Infallible>,
}

/// Whether the accept loop goes on.
enum Next {
    Continue,
    Stop,
}

impl Acceptor {
    async fn run(mut self, shutdown: impl Future<Output = ()>, mut ends: Ends) -> Summary {
        let shutdown = shutdown.fuse();
        futures::pin_mut!(shutdown);
        loop {
            let next = futures::select_biased! {
                () = shutdown => {
                    self.summary.interrupted = true;
                    Next::Stop
                }
                report = ends.reports.next() => self.on_report(report),
                header = ends.proxied.next() => self.on_header(header),
                ip = ends.wrong_keys.next() => self.on_wrong_key(ip),
                _ = ends.drain_wake.next() => self.on_drain(),
                accepted = self.listener.accept().fuse() => self.on_accept(accepted).await,
            };
            if let Next::Stop = next {
                break;
            }
        }
        self.stop(ends).await
    }

    /// A round or a session ended.
    fn on_report(&mut self, report: Option<Report>) -> Next {
        let Some(report) = report else {
            return Next::Stop;
        };
        self.door.stats.rounds_live.fetch_sub(1, Ordering::SeqCst);
        self.summary.record(&report);
        if let Report::Round(round) = &report {
            self.cooldowns.note_conduct(round, Instant::now());
        }
        let rounds = self.door.ctx.config.rounds;
        if rounds != 0 && self.summary.rounds_played >= rounds {
            return Next::Stop;
        }
        self.drained()
    }

    /// The drain started: nothing new starts; the server stops once nothing runs.
    fn on_drain(&mut self) -> Next {
        log::warn!(
            "draining: no new rooms; stopping once the {} rounds and sessions here end",
            self.door.stats.rounds_live()
        );
        self.drained()
    }

    /// Stops a draining server once its last round or session has ended.
    fn drained(&self) -> Next {
        let stats = &self.door.stats;
        if stats.draining() && stats.rounds_live() == 0 {
            log::warn!("drained: every round and session here has ended");
            return Next::Stop;
        }
        Next::Continue
    }

    /// A connection from `ip` offered a wrong host key.
    fn on_wrong_key(&mut self, ip: Option<std::net::IpAddr>) -> Next {
        let Some(ip) = ip else {
            return Next::Continue;
        };
        let now = Instant::now();
        if let Some(length) = self.key_cooldowns.offence(ip, now) {
            log::warn!(
                "{ip}: offered {} wrong host keys; refused for {} s",
                self.key_cooldowns
                    .refused_at(ip, now)
                    .map_or(0, |r| r.offences),
                length.as_secs_f64()
            );
        }
        Next::Continue
    }

    /// A connection's PROXY header was read (or could not be).
    fn on_header(&mut self, header: Option<Proxied>) -> Next {
        let Some(Proxied {
            stream,
            balancer,
            origin,
            accepted,
        }) = header
        else {
            return Next::Continue;
        };
        self.pending -= 1;
        if let Some(n) = self.pending_from.get_mut(&balancer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.pending_from.remove(&balancer.ip());
            }
        }
        match origin {
            Ok(proxy::Origin::Client(peer)) => self.admit_unless_cooling(stream, peer, accepted),
            Ok(proxy::Origin::Balancer) => {
                log::debug!("{balancer}: the balancer's own connection (a health check)");
                self.door.answer_health_check(stream);
            }
            Err(why) => log::warn!("{balancer}: refused: {why}"),
        }
        Next::Continue
    }

    async fn on_accept(&mut self, accepted: io::Result<(Socket, SocketAddr)>) -> Next {
        match accepted {
            Ok((stream, peer)) => {
                self.summary.connections += 1;
                self.door.stats.accepted.fetch_add(1, Ordering::SeqCst);
                let accepted = Instant::now();
                let proxies = &self.door.ctx.config.proxy_protocol;
                if proxies.iter().any(|n| n.contains(peer.ip())) {
                    self.read_header(stream, peer, accepted);
                } else if !proxies.is_empty() {
                    // Anyone else could claim any address in a header: not a byte is read.
                    log::warn!("{peer}: refused: not a trusted proxy (--proxy-protocol)");
                } else {
                    self.admit_unless_cooling(stream, peer, accepted);
                }
            }
            Err(e) => {
                if out_of_descriptors(&e) {
                    let config = &self.door.ctx.config;
                    let busy = busy_bytes(config, "the server is out of file descriptors");
                    let shed = self.spare.shed(&self.listener, &busy);
                    self.summary.connections += shed;
                    self.door
                        .stats
                        .refused_busy
                        .fetch_add(shed, Ordering::SeqCst);
                } else {
                    self.spare.note(&e);
                }
                // Wait a little instead of spinning on a listener that will fail again at once.
                rt::sleep(Duration::from_millis(20)).await;
            }
        }
        Next::Continue
    }

    /// Starts a short task that reads a connection's PROXY header. A full server still reads a
    /// few ([`HEADER_SPARE`]): the balancer's health check is answered whatever the load (a full
    /// instance is not a dead one), and a client is refused in words once its header says who
    /// it is. A connection waiting for its header counts toward its address's limit.
    fn read_header(&mut self, stream: Socket, peer: SocketAddr, accepted: Instant) {
        let config = &self.door.ctx.config;
        let waiting = self.pending_from.get(&peer.ip()).copied().unwrap_or(0);
        let full = self.door.stats.live_connections() + self.pending
            >= config.max_connections + HEADER_SPARE;
        let per_address = config.max_per_address != 0
            && self.door.stats.held(peer.ip()) + waiting >= config.max_per_address;
        if full || per_address {
            let message = format!(
                "the server is at its limit of {} connections; try again later",
                config.max_connections
            );
            return self.door.refuse_busy(stream, peer, message);
        }
        self.pending += 1;
        *self.pending_from.entry(peer.ip()).or_default() += 1;
        rt::spawn(read_proxy_header(
            stream,
            peer,
            accepted,
            config.handshake_timeout,
            self.door.ctx.stop.clone(),
            self.proxied_tx.clone(),
            self.door.drain.clone(),
        ));
    }

    /// Admits a connection from `peer` (its client's own address, behind a balancer too), unless
    /// that address is cooling down, in which case it is told so.
    fn admit_unless_cooling(&mut self, stream: Socket, peer: SocketAddr, accepted: Instant) {
        let refused = self.cooldowns.refused(peer.ip());
        match refused.or_else(|| self.key_cooldowns.refused(peer.ip())) {
            Some(refusal) => {
                let message = refusal.message(peer.ip());
                self.door.refuse_busy(stream, peer, message)
            }
            None => {
                self.next_id += 1;
                self.door.admit(stream, peer, self.next_id, accepted)
            }
        }
    }

    /// Stops every task the server started, tallying the reports of rounds and sessions still
    /// running, and returns when all have ended.
    async fn stop(self, mut ends: Ends) -> Summary {
        let Acceptor {
            listener,
            door,
            mut summary,
            proxied_tx,
            ..
        } = self;
        drop(listener);
        // Header readers still running find no one to report to, and end.
        drop((ends.proxied, proxied_tx));
        log::info!(
            "stopping: {} connections open",
            door.stats.live_connections()
        );
        ends.trigger.trigger();
        let Door { ctx, stats, drain } = door;
        drop(ctx);
        // Taken while the lobby and the rounds end, not after: the lobby reports every round it
        // holds as it stops, more than the channel has room for. It ends once they all have.
        while let Some(report) = ends.reports.next().await {
            stats.rounds_live.fetch_sub(1, Ordering::SeqCst);
            summary.record(&report);
        }
        ends.lobby.await;
        if let Some(agent) = ends.agent {
            agent.await;
        }
        drop(drain);
        while ends.drained.next().await.is_some() {}
        summary
    }
}

/// Connections whose PROXY header is read beyond `max_connections`: room for the balancers'
/// health checks, and for clients to be refused in words.
const HEADER_SPARE: usize = 64;

/// A connection whose PROXY header was read, for the accept loop to admit (or not).
struct Proxied {
    stream: Socket,
    /// The balancer's end of the connection.
    balancer: SocketAddr,
    origin: Result<proxy::Origin, String>,
    /// When it was accepted: its handshake deadline counts from there, header included.
    accepted: Instant,
}

/// Reads a connection's PROXY header (within the handshake timeout, or until the server stops)
/// and hands it, with what it said, to the accept loop.
async fn read_proxy_header(
    stream: Socket,
    balancer: SocketAddr,
    accepted: Instant,
    limit: Duration,
    stop: Stop,
    mut report: mpsc::Sender<Proxied>,
    _drain: mpsc::Sender<Infallible>,
) {
    let origin = futures::select_biased! {
        () = stop.wait().fuse() => Err("the server is stopping".to_owned()),
        origin = proxy::read_header(&stream, limit).fuse() => origin,
    };
    let _ = report
        .send(Proxied {
            stream,
            balancer,
            origin,
            accepted,
        })
        .await;
}
