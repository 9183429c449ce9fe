//! Measurements for `arrival-bench`: real rounds under load, idle connections held, fairness
//! trials, quiz sessions, the quiz with modified clients ([`quiz`], over the packet-level delay
//! of [`link`]), echo, and a process's resource use read from `/proc`.
//!
//! Everything here speaks the wire protocol through [`protocol`], like any client; it owns no
//! server state and knows nothing of the server's internals. It measures and returns figures
//! (latencies in an HDR histogram: fixed memory for any run length); formatting them is the
//! binary's job. Only completed work is counted: a round whose parties did not all get their
//! acknowledgment is an error, never throughput. A refusal that no retry can fix (nothing
//! listening, the server runs no more rounds, another protocol version) stops every driver: see
//! [`Fatal`].

pub mod link;
pub mod quiz;

use std::collections::BTreeMap;
use std::io;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::Link;
use crate::rt::{self as task};
use futures::io::AsyncWriteExt;
use futures::stream::{self, StreamExt};

use crate::protocol::{self, Frame, PROTOCOL_VERSION};

/// The end of a fairness gap that is timed by spinning rather than sleeping.
const SPIN: Duration = Duration::from_micros(150);

/// Bound on any single wait of a benchmark client; a round exceeding it counts as an error.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors counted by kind, for the report.
pub type Errors = BTreeMap<String, u64>;

/// The first error that makes going on pointless, shared by every driver of a run; once set,
/// drivers stop starting work and the binary exits with its "cannot run" status.
#[derive(Clone, Default)]
pub struct Fatal(Arc<OnceLock<String>>);

impl Fatal {
    /// Records `error` if it is fatal; returns whether it was.
    pub fn check(&self, error: &str) -> bool {
        let fatal = error.starts_with("connect:")
            || error == "server: round full"
            || error == "server: version mismatch";
        if fatal {
            let _ = self.0.set(error.to_owned());
        }
        fatal
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// Latencies in microseconds, in fixed memory whatever the run's length.
#[derive(Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // Three significant digits, auto-resizing: a few tens of KiB for any range we meet.
        Latencies(Histogram::new(3).expect("3 significant digits is a valid precision"))
    }
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        // `record` grows the histogram to fit (`saturating_record` would clamp at its current
        // top); an hour is far beyond any wait the bench allows.
        let us = u64::try_from(d.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 3_600_000_000);
        let _ = self.0.record(us);
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Both auto-resize, so adding cannot fail for range; if it ever did, keep what we have.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The figures a report prints; all zero with no samples.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.0;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            samples: h.len(),
            mean: h.mean().round() as u64,
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// A latency distribution, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub mean: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

/// One protocol client connection as the benchmark drives it.
struct Peer {
    link: Link,
}

impl Peer {
    async fn connect(addr: &str, room: Option<String>) -> Result<Peer, String> {
        let link = Link::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        log::debug!("connected to {addr}");
        let mut peer = Peer { link };
        peer.send(&Frame::Hello {
            version: PROTOCOL_VERSION,
            room,
        })
        .await?;
        match peer.recv().await? {
            Frame::Welcome { .. } => Ok(peer),
            other => Err(format!(
                "protocol: {} instead of Welcome",
                other.kind_name()
            )),
        }
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let bytes = protocol::encode(frame).map_err(|e| format!("encode: {e}"))?;
        self.send_bytes(&bytes).await
    }

    async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.link
            .send_bytes(bytes)
            .await
            .map_err(|e| format!("write: {}", e.kind()))
    }

    /// The next frame; an `Error` frame or EOF becomes an error named by its kind. Unbounded:
    /// callers bound whole rounds, which costs one timer per round instead of one per frame.
    async fn recv(&mut self) -> Result<Frame, String> {
        match self.link.recv().await {
            Ok(Some(Frame::Error { kind, .. })) => Err(format!("server: {kind}")),
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err("closed by server".into()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    async fn connected(&mut self) -> Result<String, String> {
        match self.recv().await? {
            Frame::Connected { label, .. } => Ok(label),
            other => Err(format!(
                "protocol: {} instead of Connected",
                other.kind_name()
            )),
        }
    }

    async fn ack(&mut self) -> Result<Vec<protocol::Arrival>, String> {
        match self.recv().await? {
            Frame::Ack { order, .. } => Ok(order),
            other => Err(format!("protocol: {} instead of Ack", other.kind_name())),
        }
    }
}

/// One party of one round, start to finish.
async fn party(addr: &str, room: String, name: String) -> Result<usize, String> {
    let mut peer = Peer::connect(addr, Some(room)).await?;
    peer.connected().await?;
    peer.send(&Frame::Message { name }).await?;
    let order = peer.ack().await?;
    Ok(order.len())
}

/// What to run in rounds mode.
#[derive(Debug, Clone)]
pub struct RoundsPlan {
    pub concurrency: usize,
    pub parties: usize,
    /// Stop starting rounds after this long...
    pub duration: Option<Duration>,
    /// ...or after this many rounds in all.
    pub rounds: Option<u64>,
}

/// Figures from rounds mode. Only completed rounds (every party acknowledged) count.
#[derive(Default)]
pub struct RoundsReport {
    pub rounds: u64,
    /// Connections of completed rounds.
    pub connections: u64,
    pub elapsed: Duration,
    /// Round latencies: first connect to last acknowledgment.
    pub latencies: Latencies,
    pub errors: Errors,
}

impl RoundsReport {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Runs `plan.concurrency` independent drivers, each playing complete rounds of `plan.parties`
/// parties back to back, every round in a room of its own so its parties meet each other.
/// `progress` counts finished rounds as they happen; a [`Fatal`] error stops every driver.
pub async fn rounds(
    addr: &str,
    plan: &RoundsPlan,
    progress: Arc<AtomicU64>,
    fatal: Fatal,
) -> RoundsReport {
    let started = Instant::now();
    let deadline = plan.duration.map(|d| started + d);
    let budget = Arc::new(AtomicU64::new(0));
    log::info!(
        "rounds: {} drivers of {} parties each",
        plan.concurrency,
        plan.parties
    );
    let drivers = (0..plan.concurrency).map(|driver| {
        let (addr, plan) = (addr.to_owned(), plan.clone());
        let (budget, progress, fatal) = (Arc::clone(&budget), Arc::clone(&progress), fatal.clone());
        task::spawn(async move {
            let mut report = RoundsReport::default();
            for seq in 0u64.. {
                if deadline.is_some_and(|d| Instant::now() >= d) || fatal.get().is_some() {
                    break;
                }
                if let Some(n) = plan.rounds {
                    if budget.fetch_add(1, Ordering::Relaxed) >= n {
                        break;
                    }
                }
                let room = format!("b{driver}-{seq}");
                let begin = Instant::now();
                let parties = (0..plan.parties)
                    .map(|i| party(&addr, room.clone(), format!("P{i}")))
                    .collect::<Vec<_>>();
                let outcome =
                    match task::timeout(IO_TIMEOUT, futures::future::join_all(parties)).await {
                        Some(outcome) => outcome,
                        None => vec![Err("timeout".to_owned())],
                    };
                let latency = begin.elapsed();
                let mut failed = false;
                for r in outcome {
                    let error = match r {
                        Ok(n) if n == plan.parties => continue,
                        Ok(n) => format!("ack with {n} entries"),
                        Err(kind) => kind,
                    };
                    failed = true;
                    fatal.check(&error);
                    *report.errors.entry(error).or_default() += 1;
                }
                if !failed {
                    report.rounds += 1;
                    report.connections += plan.parties as u64;
                    report.latencies.record(latency);
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }
            report
        })
    });
    let mut total = RoundsReport::default();
    for report in futures::future::join_all(drivers).await {
        total.rounds += report.rounds;
        total.connections += report.connections;
        total.latencies.merge(&report.latencies);
        for (k, v) in report.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Connections that completed their handshake and wait, each alone in its own room, for partners
/// that never come. Dropping it closes them.
pub struct IdleConnections {
    pub held: Vec<Link>,
    pub errors: Errors,
}

/// Opens `count` idle connections, at most `parallel` connects in flight at a time; `progress`
/// counts those held. A [`Fatal`] error stops opening more.
pub async fn open_idle(
    addr: &str,
    count: usize,
    parallel: usize,
    progress: Arc<AtomicU64>,
    fatal: Fatal,
) -> IdleConnections {
    let results = stream::iter(0..count)
        .take_while(|_| futures::future::ready(fatal.get().is_none()))
        .map(|i| {
            let addr = addr.to_owned();
            let (progress, fatal) = (Arc::clone(&progress), fatal.clone());
            async move {
                let held = match task::timeout(
                    IO_TIMEOUT,
                    Peer::connect(&addr, Some(format!("idle-{i}"))),
                )
                .await
                {
                    Some(r) => r.map(|peer| peer.link),
                    None => Err("timeout".to_owned()),
                };
                match &held {
                    Ok(_) => {
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        fatal.check(e);
                    }
                }
                held
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut idle = IdleConnections {
        held: Vec::with_capacity(count),
        errors: Errors::new(),
    };
    for r in results {
        match r {
            Ok(stream) => idle.held.push(stream),
            Err(kind) => *idle.errors.entry(kind).or_default() += 1,
        }
    }
    idle
}

/// Figures from fairness trials at one gap.
#[derive(Default)]
pub struct FairnessReport {
    /// The gap asked for.
    pub gap: Duration,
    pub trials: usize,
    pub correct: usize,
    /// The gap actually produced: from the end of the first send to the end of the second (on
    /// loopback a send ends once the data is in the server's socket).
    pub achieved: Latencies,
    /// The server's own measure of the gap (`after_micros` of the second arrival).
    pub server_gaps: Latencies,
    pub errors: Errors,
}

/// `trials` rounds of two parties whose messages leave `gap` apart, the first sender alternating
/// between the two labels. A trial is correct when the server's order names the true first sender.
/// `progress` counts finished trials.
pub async fn fairness(
    addr: &str,
    gap: Duration,
    trials: usize,
    progress: Arc<AtomicU64>,
    fatal: Fatal,
) -> FairnessReport {
    let mut report = FairnessReport {
        gap,
        ..FairnessReport::default()
    };
    for t in 0..trials {
        if fatal.get().is_some() {
            break;
        }
        let trial = task::timeout(IO_TIMEOUT, fairness_trial(addr, gap, t)).await;
        match trial.unwrap_or_else(|| Err("timeout".to_owned())) {
            Ok(outcome) => {
                report.trials += 1;
                report.correct += usize::from(outcome.correct);
                report.achieved.record(outcome.achieved);
                report
                    .server_gaps
                    .record(Duration::from_micros(outcome.server_gap_us));
            }
            Err(kind) => {
                fatal.check(&kind);
                *report.errors.entry(kind).or_default() += 1;
            }
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    report
}

struct TrialOutcome {
    correct: bool,
    achieved: Duration,
    server_gap_us: u64,
}

async fn fairness_trial(addr: &str, gap: Duration, trial: usize) -> Result<TrialOutcome, String> {
    let room = format!("fair-{}-{trial}", gap.as_nanos());
    let (a, b) = futures::join!(
        Peer::connect(addr, Some(room.clone())),
        Peer::connect(addr, Some(room))
    );
    let (mut a, mut b) = (a?, b?);
    let (la, lb) = futures::join!(a.connected(), b.connected());
    let (la, lb) = (la?, lb?);
    let (first, second, first_label) = if trial.is_multiple_of(2) {
        (&mut a, &mut b, la)
    } else {
        (&mut b, &mut a, lb)
    };
    let m1 = protocol::encode(&Frame::Message {
        name: "first".into(),
    })
    .map_err(|e| e.to_string())?;
    let m2 = protocol::encode(&Frame::Message {
        name: "second".into(),
    })
    .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    first.send_bytes(&m1).await?;
    let sent_first = Instant::now();
    // Sleep through most of a long gap and spin only the end: a timer alone is too coarse for
    // these gaps, and a long spin would take a core the server needs, on a two-core machine,
    // to read the first message while we wait to send the second.
    if gap > SPIN {
        task::sleep(gap - SPIN).await;
    }
    while t0.elapsed() < gap {
        std::hint::spin_loop();
    }
    second.send_bytes(&m2).await?;
    let achieved = sent_first.elapsed();
    let (oa, ob) = futures::join!(first.ack(), second.ack());
    let (order, _) = (oa?, ob?);
    Ok(TrialOutcome {
        correct: order.first().is_some_and(|a| a.label == first_label),
        achieved,
        server_gap_us: order.get(1).map_or(0, |a| a.after_micros),
    })
}

/// A process's resource use, from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// User plus system CPU time, in seconds.
    pub cpu_secs: f64,
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM).
    pub peak_rss_kib: u64,
}

/// Reads a process's CPU time and memory; `None` if it is gone or this is not Linux.
pub fn proc_stats(pid: u32) -> Option<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some(ProcStats {
        cpu_secs: ticks as f64 / hz,
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
    })
}

/// An `arrival-server` started by the benchmark: its address and pid. Its output lines after
/// the first are copied to our stderr, prefixed `server: `, so they never mix with the results.
pub struct SpawnedServer {
    child: Child,
    pub addr: String,
    drain: std::thread::JoinHandle<()>,
}

impl SpawnedServer {
    /// Starts `program` with `args` (which must include `--addr ...:0` or similar) and waits for its
    /// `listening on` line.
    pub fn start(program: &std::path::Path, args: &[String]) -> io::Result<SpawnedServer> {
        let mut command = Command::new(program);
        command.args(args);
        SpawnedServer::spawn(command)
    }

    /// Starts `command`, an `arrival-server` run however it must be (in a network namespace,
    /// say), and waits for its `listening on` line.
    pub fn spawn(mut command: Command) -> io::Result<SpawnedServer> {
        use std::io::BufRead;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut lines = io::BufReader::new(stdout).lines();
        let first = lines
            .next()
            .transpose()?
            .ok_or_else(|| io::Error::other("the server exited before listening"))?;
        let addr = first
            .rsplit(' ')
            .next()
            .filter(|_| first.contains("listening on"))
            .ok_or_else(|| io::Error::other(format!("unexpected first line: {first}")))?
            .to_owned();
        // Drained so the server never blocks on a full pipe.
        let drain = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("server: {line}");
            }
        });
        Ok(SpawnedServer { child, addr, drain })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it with SIGINT and waits until it and its output are done.
    pub fn stop(mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.child.wait();
        let _ = self.drain.join();
    }
}

/// What to run in echo mode.
#[derive(Debug, Clone)]
pub struct EchoPlan {
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    pub duration: Duration,
}

/// Figures from echo mode.
#[derive(Default)]
pub struct EchoReport {
    /// Messages that came back whole and unchanged.
    pub messages: u64,
    pub elapsed: Duration,
    /// Round-trip latencies.
    pub latencies: Latencies,
    pub errors: Errors,
}

/// `plan.connections` connections, each with one message in flight: write `size` bytes, read
/// them back, check them, repeat until the duration is up.
pub async fn echo(
    addr: &str,
    plan: &EchoPlan,
    progress: Arc<AtomicU64>,
    fatal: Fatal,
) -> EchoReport {
    use futures::io::AsyncReadExt;
    let started = Instant::now();
    let deadline = started + plan.duration;
    let workers = (0..plan.connections).map(|c| {
        let addr = addr.to_owned();
        let size = plan.size;
        let (progress, fatal) = (Arc::clone(&progress), fatal.clone());
        task::spawn(async move {
            let mut report = EchoReport::default();
            let stream = match crate::rt::connect(&addr).await {
                Ok(s) => s,
                Err(e) => {
                    let error = format!("connect: {e}");
                    fatal.check(&error);
                    report.errors.insert(error, 1);
                    return report;
                }
            };
            let _ = stream.set_nodelay(true);
            let message: Vec<u8> = (0..size).map(|i| (i + c) as u8).collect();
            let mut back = vec![0u8; size];
            let (mut r, mut w) = (&stream, &stream);
            while Instant::now() < deadline && fatal.get().is_none() {
                let begin = Instant::now();
                let round_trip = async {
                    w.write_all(&message).await?;
                    r.read_exact(&mut back).await
                };
                let error = match task::timeout(IO_TIMEOUT, round_trip).await {
                    Some(Ok(())) if back == message => {
                        report.messages += 1;
                        report.latencies.record(begin.elapsed());
                        progress.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Some(Ok(())) => "bytes differ".to_owned(),
                    Some(Err(e)) => format!("io: {e}"),
                    None => "timeout".to_owned(),
                };
                *report.errors.entry(error).or_default() += 1;
                break;
            }
            report
        })
    });
    let mut total = EchoReport::default();
    for report in futures::future::join_all(workers).await {
        total.messages += report.messages;
        total.latencies.merge(&report.latencies);
        for (k, v) in report.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// A user-space relay that holds every byte for `delay` in each direction: a party behind it is
/// `delay` further away each way (its round trip is longer by twice that), but the server's
/// kernel sees the relay, a loopback away. It is a TCP-terminating proxy, the case where a
/// server must take round trips from `Ping`/`Pong` (`--rtt-source ping`); for delay the kernel
/// sees, see [`link::DelayedLink`]. Serves connections
/// accepted on `listener` by relaying each to `target`, until the returned handle is dropped with
/// the process (it is for benchmarks and tests).
pub fn delay_proxy(
    listener: std::net::TcpListener,
    target: String,
    delay: Duration,
) -> io::Result<task::JoinHandle<()>> {
    let listener = crate::rt::listener(listener)?;
    Ok(task::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let target = target.clone();
            task::spawn(async move {
                let Ok(outbound) = crate::rt::connect(&target).await else {
                    return;
                };
                let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                futures::join!(
                    delayed_pump(inbound.clone(), outbound.clone(), delay),
                    delayed_pump(outbound, inbound, delay)
                );
            });
        }
    }))
}

/// Copies `from` to `to`, each chunk written `delay` after it was read; the end of `from` becomes
/// a half-close of `to` once everything before it is written.
async fn delayed_pump(from: crate::rt::TcpStream, to: crate::rt::TcpStream, delay: Duration) {
    use futures::io::AsyncReadExt;
    use futures::SinkExt;
    // Bounded: a peer that sends faster than the other end reads is held back by TCP.
    let (mut tx, mut rx) = futures::channel::mpsc::channel::<(Instant, Vec<u8>)>(256);
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut input = &from;
        while let Ok(n) = input.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .await
                    .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        let mut output = &to;
        while let Some((due, bytes)) = rx.next().await {
            task::sleep(due.saturating_duration_since(Instant::now())).await;
            if output.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    };
    futures::join!(reader, writer);
}

/// A scripted session party: pongs at once, answers every `Go` after `reaction`, forwards each
/// result to `results`, ends with the session.
async fn quiz_party(
    addr: String,
    room: String,
    name: String,
    reaction: Duration,
    mut results: Option<futures::channel::mpsc::Sender<protocol::RoundOutcome>>,
    progress: Arc<AtomicU64>,
) -> Result<(), String> {
    use futures::SinkExt;
    let mut link = Link::connect(&addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let join = Frame::Join {
        version: PROTOCOL_VERSION,
        room: Some(room),
        name,
    };
    let sent = |e: io::Error| format!("write: {}", e.kind());
    link.send(&join).await.map_err(sent)?;
    loop {
        let frame = match task::timeout(IO_TIMEOUT, link.recv()).await {
            None => return Err("timeout".into()),
            Some(Ok(Some(frame))) => frame,
            Some(Ok(None)) => return Err("closed by server".into()),
            Some(Err(e)) => return Err(format!("read: {e}")),
        };
        match frame {
            Frame::Welcome { .. } => {}
            Frame::Ping { seq } => link.send(&Frame::Pong { seq }).await.map_err(sent)?,
            Frame::Go { .. } => {
                if !reaction.is_zero() {
                    task::sleep(reaction).await;
                }
                link.send(&Frame::Answer).await.map_err(sent)?;
            }
            Frame::Outcome(r) => {
                if let Some(tx) = results.as_mut() {
                    progress.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(*r).await;
                }
            }
            Frame::Early { .. } => {}
            Frame::SessionOver { .. } => return Ok(()),
            Frame::Error { kind, .. } => return Err(format!("server: {kind}")),
            other => return Err(format!("protocol: unexpected {}", other.kind_name())),
        }
    }
}

/// What to run in sessions mode.
#[derive(Debug, Clone)]
pub struct SessionsPlan {
    /// Sessions at once.
    pub sessions: usize,
    /// Parties in each.
    pub parties: usize,
}

/// Figures from sessions mode.
#[derive(Default)]
pub struct SessionsReport {
    /// Rounds every party of a session got the result of.
    pub rounds: u64,
    pub elapsed: Duration,
    pub errors: Errors,
}

/// `plan.sessions` sessions of `plan.parties` parties each, every party answering at once,
/// until the server ends the sessions (its `--session-rounds`). `progress` counts rounds.
pub async fn sessions(
    addr: &str,
    plan: &SessionsPlan,
    progress: Arc<AtomicU64>,
    fatal: Fatal,
) -> SessionsReport {
    let started = Instant::now();
    let mut parties = Vec::new();
    for s in 0..plan.sessions {
        let room = format!("sessions-{}-{s}", std::process::id());
        for p in 0..plan.parties {
            let (addr, room) = (addr.to_owned(), room.clone());
            // The first party of each session counts its rounds.
            let counter = if p == 0 {
                Arc::clone(&progress)
            } else {
                Arc::default()
            };
            let (tx, mut rx) = futures::channel::mpsc::channel(16);
            task::spawn(async move { while rx.next().await.is_some() {} });
            let tx = (p == 0).then_some(tx);
            parties.push(task::spawn(quiz_party(
                addr,
                room,
                format!("P{}", p + 1),
                Duration::ZERO,
                tx,
                counter,
            )));
        }
    }
    let mut report = SessionsReport::default();
    for party in parties {
        if let Err(e) = party.await {
            fatal.check(&e);
            *report.errors.entry(e).or_default() += 1;
        }
    }
    report.rounds = progress.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_keep_their_distribution_when_merged() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        for us in 1..=1000u64 {
            a.record(Duration::from_micros(us));
            b.record(Duration::from_micros(us * 1000));
        }
        let mut total = Latencies::default();
        total.merge(&a);
        total.merge(&b);
        let s = total.summary();
        assert_eq!(s.samples, 2000);
        assert_eq!(s.min, 1);
        // Three significant digits: within 0.1% of the true values.
        assert!((999..=1001).contains(&s.p50), "{s:?}");
        assert!((979_000..=981_000).contains(&s.p99), "{s:?}");
        assert!((999_000..=1_001_000).contains(&s.max), "{s:?}");
        assert!(s.p90 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.p99_9);
        assert_eq!(Latencies::default().summary(), LatencySummary::default());
    }
}
