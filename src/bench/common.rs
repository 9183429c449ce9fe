//! What the bench's drivers share: how a run ended, its errors, latency histograms, a round's
//! party, a process's resource use, a spawned server, and the delay proxy.
use std::collections::BTreeMap;
use std::io;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::Link;
use crate::rt::{self as task};
use futures::io::AsyncWriteExt;
use futures::stream::StreamExt;

use crate::protocol::{self, Frame, PROTOCOL_VERSION};

// Options every mode takes, before or after the mode's name (`arrival-bench --json rounds` and
// `arrival-bench rounds --json` are the same: the mode is moved first). Not a doc comment:
// structopt would make it the description of every mode that flattens these in.
#[derive(Debug, Default, structopt::StructOpt)]
pub struct Common {
    /// Server to drive [default: 127.0.0.1:12000] (ignored with --spawn-server)
    #[structopt(long)]
    pub addr: Option<String>,
    /// Start an arrival-server (found next to this binary) on a free port, and stop it afterwards
    #[structopt(long)]
    pub spawn_server: bool,
    /// Executor threads of the spawned server [default: the server's own, 1]
    #[structopt(long)]
    pub server_threads: Option<usize>,
    /// Pid of the server, to report its CPU time and memory (known already with --spawn-server)
    #[structopt(long)]
    pub server_pid: Option<u32>,
    /// Print one JSON object instead of a table
    #[structopt(long)]
    pub json: bool,
    /// Executor threads of the bench itself [default: one per core]
    #[structopt(long)]
    pub threads: Option<usize>,
    /// Log diagnostics to stderr, with timestamps: -v warnings, -vv info, -vvv debug
    #[structopt(short, long, parse(from_occurrences))]
    pub verbose: u8,
    /// Speak TLS to the server (its --tls-cert, or a balancer's), trusting the certificates in
    /// this PEM file (rounds, fairness, idle)
    #[structopt(long, parse(from_os_str))]
    pub tls_ca: Option<std::path::PathBuf>,
}

/// The TLS client configuration of `--tls-ca`, set once before the first connection: every
/// protocol connection of the run speaks TLS with it.
static TLS: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();

/// Makes every protocol connection of this run speak TLS, trusting `ca`.
pub(super) fn use_tls(ca: &std::path::Path) -> Result<(), String> {
    let config = crate::client::secure::client_config(ca)?;
    let _ = TLS.set(config);
    Ok(())
}

/// The end of a fairness gap that is timed by spinning rather than sleeping.
pub(super) const SPIN: Duration = Duration::from_micros(150);

/// Bound on any single wait of a benchmark client; a round exceeding it counts as an error.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How a run ended, for the binary to turn into its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every unit of work completed.
    AllDone,
    /// The run finished, but some work failed (counted under its errors).
    SomeFailed,
    /// The run could not go on: the server refused or was not there (a [`Fatal`] error).
    Fatal,
    /// The run could not start, or could not go on, for the reason given.
    CannotRun(String),
}

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
pub(super) struct Peer {
    pub(super) link: Link,
}

impl Peer {
    pub(super) async fn connect(addr: &str, room: Option<String>) -> Result<Peer, String> {
        let link = match TLS.get() {
            Some(tls) => Link::connect_tls(addr, tls.clone()).await,
            None => Link::connect(addr).await,
        }
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

    pub(super) async fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let bytes = protocol::encode(frame).map_err(|e| format!("encode: {e}"))?;
        self.send_bytes(&bytes).await
    }

    pub(super) async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.link
            .send_bytes(bytes)
            .await
            .map_err(|e| format!("write: {}", e.kind()))
    }

    /// The next frame; an `Error` frame or EOF becomes an error named by its kind. Unbounded:
    /// callers bound whole rounds, which costs one timer per round instead of one per frame.
    pub(super) async fn recv(&mut self) -> Result<Frame, String> {
        match self.link.recv().await {
            Ok(Some(Frame::Error { kind, .. })) => Err(format!("server: {kind}")),
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err("closed by server".into()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    pub(super) async fn connected(&mut self) -> Result<String, String> {
        match self.recv().await? {
            Frame::Connected { label, .. } => Ok(label),
            other => Err(format!(
                "protocol: {} instead of Connected",
                other.kind_name()
            )),
        }
    }

    pub(super) async fn ack(&mut self) -> Result<Vec<protocol::Arrival>, String> {
        match self.recv().await? {
            Frame::Ack { order, .. } => Ok(order),
            other => Err(format!("protocol: {} instead of Ack", other.kind_name())),
        }
    }
}

/// One party of one round, start to finish.
pub(super) async fn party(addr: &str, room: String, name: String) -> Result<usize, String> {
    let mut peer = Peer::connect(addr, Some(room)).await?;
    peer.connected().await?;
    peer.send(&Frame::Message { name }).await?;
    let order = peer.ack().await?;
    Ok(order.len())
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
    /// Its latest transcript lines.
    pub lines: ServerLines,
}

/// A spawned server's latest lines on the figures only it knows (at most [`ServerLines::KEPT`]).
#[derive(Clone, Default)]
pub struct ServerLines(std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

impl ServerLines {
    const KEPT: usize = 1024;

    /// Keeps `line` if it is one the bench reads (a big room's `Go`).
    fn push(&self, line: String) {
        if !line.contains(" Go written to ") {
            return;
        }
        if let Ok(mut lines) = self.0.lock() {
            if lines.len() == Self::KEPT {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    /// What a big room's session said of each question's `Go`: first to last written, in ms.
    pub fn go_spreads(&self) -> Vec<f64> {
        let Ok(lines) = self.0.lock() else {
            return Vec::new();
        };
        lines
            .iter()
            .filter_map(|l| {
                let (_, rest) = l.split_once("players over ")?;
                rest.split_once(" ms, first to last")?.0.parse().ok()
            })
            .collect()
    }
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
        let kept = ServerLines::default();
        let keep = kept.clone();
        let drain = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("server: {line}");
                keep.push(line);
            }
        });
        Ok(SpawnedServer {
            child,
            addr,
            drain,
            lines: kept,
        })
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

/// A user-space relay that holds every byte for `delay` in each direction: a party behind it is
/// `delay` further away each way (its round trip is longer by twice that), but the server's
/// kernel sees the relay, a loopback away. It is a TCP-terminating proxy, the case where a
/// server must take round trips from `Ping`/`Pong` (`--rtt-source ping`); for delay the kernel
/// sees, see [`DelayedLink`](super::link::DelayedLink). Serves connections
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
