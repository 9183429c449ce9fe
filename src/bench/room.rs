//! Room mode: one quiz session of thousands of players, as a lecture hall or a stadium plays it.
//!
//! A host (protocol 6, so buzz mode) and N players over WebSocket, the framed wire, or both,
//! connecting from several loopback addresses so the server's per-address limit holds. Reports
//! the join storm (seated per second, time to seat each), the server's memory per idle seated
//! player, and for each question: the spread of `Go` (first to last written, as the server
//! says, and first to last received), the time from the first buzz to every screen showing it,
//! the result's delivery to every player after the host's judgement, and the server's CPU per
//! round per player.
//!
//! Owns only the bench's side: it must not know the server's internals beyond its frames and the
//! line its session prints for a big room's `Go`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::stream::{self, StreamExt};
use futures::FutureExt;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::common::*;
use super::report::{errors_text, print_json, status, Progress, Run};
use super::ws::Conn;
use crate::client::Link;
use crate::protocol::{Control, Frame, PROTOCOL_VERSION};
use crate::rt;

/// The host key the bench's server is started with.
pub const HOST_KEY: &str = "benchroomhost0000";

/// The room every player joins.
const ROOM: &str = "hall";

/// The longest any player waits for the server before it gives up.
const SILENCE: Duration = Duration::from_secs(60);

/// How long a question stays open before the host judges: every player's reaction is within it.
const QUESTION: Duration = Duration::from_millis(2500);

/// Players' reactions spread over this range, so buzzes come over a second, not at once.
const REACTIONS: (u64, u64) = (150, 1150);

/// Which wire the players use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    Ws,
    Framed,
    Mixed,
}

impl std::str::FromStr for Wire {
    type Err = String;
    fn from_str(s: &str) -> Result<Wire, String> {
        match s {
            "ws" | "websocket" => Ok(Wire::Ws),
            "framed" => Ok(Wire::Framed),
            "mixed" => Ok(Wire::Mixed),
            _ => Err(format!("{s}: the wires are ws, framed and mixed")),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RoomPlan {
    pub players: usize,
    pub wire: Wire,
    pub rounds: u64,
    /// Players per source address (127.0.0.2, 127.0.0.3, ...).
    pub per_source: usize,
    /// Joins in flight at once during the storm.
    pub parallel: usize,
}

impl RoomPlan {
    /// Whether player `i` plays over a WebSocket.
    fn websocket(&self, i: usize) -> bool {
        match self.wire {
            Wire::Ws => true,
            Wire::Framed => false,
            Wire::Mixed => i.is_multiple_of(2),
        }
    }

    /// Where player `i` connects from.
    fn source(&self, i: usize) -> Ipv4Addr {
        let n = (i / self.per_source.max(1)) as u32 + 2;
        Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + n)
    }
}

// `arrival-bench room`'s options. Not a doc comment: structopt would show it as the mode's
// description.
#[derive(Debug, structopt::StructOpt)]
pub struct Args {
    /// Players in the one session
    #[structopt(short = "n", long, default_value = "2000")]
    pub players: usize,
    /// The players' wire: ws (as browsers play), framed, or mixed (half each)
    #[structopt(long, default_value = "ws")]
    pub wire: Wire,
    /// Questions the host plays
    #[structopt(long, default_value = "3")]
    pub rounds: u64,
    /// Players per source address (127.0.0.2 and on): under the server's --max-per-address
    #[structopt(long, default_value = "200")]
    pub per_source: usize,
    /// Joins in flight at once in the join storm
    #[structopt(long, default_value = "256")]
    pub parallel: usize,
    #[structopt(flatten)]
    pub common: Common,
}

/// What one player saw.
#[derive(Debug, Default)]
struct Seen {
    /// From its connect to its seat.
    join: Duration,
    /// Per question: when its `Go` arrived, when it sent its answer, when it first saw a buzz
    /// on its screen, when its result arrived.
    rounds: Vec<RoundSeen>,
    over: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct RoundSeen {
    go: Option<Instant>,
    answered: Option<Instant>,
    buzz_seen: Option<Instant>,
    result: Option<Instant>,
}

/// Figures of one run.
#[derive(Serialize)]
pub(super) struct RoomResult {
    mode: &'static str,
    addr: String,
    wire: Wire,
    players: usize,
    sources: usize,
    seated: usize,
    refused: Errors,
    join_storm_seconds: f64,
    joins_per_second: f64,
    join_ms: Percentiles,
    server_rss_kib_before: Option<u64>,
    server_rss_kib_seated: Option<u64>,
    bytes_per_idle_player: Option<f64>,
    rounds: Vec<RoundFigures>,
    server_cpu_ms_per_round_per_player: Option<f64>,
    finished: usize,
}

#[derive(Serialize)]
struct RoundFigures {
    round: u64,
    /// First to last `Go` written, as the server's session says.
    go_written_ms: Option<f64>,
    /// First to last `Go` received.
    go_received_ms: f64,
    /// From the first buzz sent to each screen showing a buzz.
    buzz_to_screen_ms: Percentiles,
    /// From the host's judgement to each player's result.
    result_ms: Percentiles,
    results_delivered: usize,
}

/// Milliseconds at p50, p90, p99 and the maximum.
#[derive(Serialize, Default)]
struct Percentiles {
    count: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(samples: impl IntoIterator<Item = Duration>) -> Percentiles {
        let Ok(mut h) = Histogram::<u64>::new(3) else {
            return Percentiles::default();
        };
        for d in samples {
            let _ = h.record(d.as_micros() as u64);
        }
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            max: h.max() as f64 / 1000.0,
        }
    }

    fn text(&self) -> String {
        format!(
            "p50 {:.1} ms, p90 {:.1}, p99 {:.1}, max {:.1} ({} samples)",
            self.p50, self.p90, self.p99, self.max, self.count
        )
    }
}

/// Connects player `i` and takes its seat; the connection and how long the seat took.
async fn join(addr: SocketAddr, plan: &RoomPlan, i: usize) -> Result<(Conn, Duration), String> {
    let started = Instant::now();
    let source = SocketAddr::V4(SocketAddrV4::new(plan.source(i), 0));
    let stream = rt::connect_from(source, addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut conn = if plan.websocket(i) {
        Conn::websocket(stream, &addr.to_string())
            .await
            .map_err(|e| format!("websocket: {e}"))?
    } else {
        Conn::Framed(Link::from_std(stream).map_err(|e| format!("connect: {e}"))?)
    };
    let hello = Frame::Join {
        version: PROTOCOL_VERSION,
        room: Some(ROOM.into()),
        name: format!("p{i}"),
    };
    conn.send(&hello).await.map_err(|e| format!("write: {e}"))?;
    loop {
        match next(&mut conn).await? {
            Frame::Seated { .. } => return Ok((conn, started.elapsed())),
            Frame::Error { kind, message } => return Err(format!("{kind}: {message}")),
            _ => {}
        }
    }
}

/// The next frame, bounded by [`SILENCE`].
async fn next(conn: &mut Conn) -> Result<Frame, String> {
    match rt::timeout(SILENCE, conn.recv()).await {
        None => Err(format!("nothing from the server for {SILENCE:?}")),
        Some(Ok(Some(frame))) => Ok(frame),
        Some(Ok(None)) => Err("closed by the server".into()),
        Some(Err(e)) => Err(e),
    }
}

/// Plays player `i`'s seat to the session's end: pongs, answers each `Go` after its reaction.
async fn play(mut conn: Conn, i: usize, mut seen: Seen, rounds: u64) -> Result<Seen, String> {
    seen.rounds = vec![RoundSeen::default(); rounds as usize];
    let reaction = Duration::from_millis(
        REACTIONS.0 + (i as u64).wrapping_mul(7919) % (REACTIONS.1 - REACTIONS.0),
    );
    let (mut round, mut answer_at): (usize, Option<Instant>) = (0, None);
    loop {
        let timer = async {
            match answer_at {
                Some(t) => rt::sleep(t.saturating_duration_since(Instant::now())).await,
                None => futures::future::pending().await,
            }
        };
        let frame = futures::select_biased! {
            frame = next(&mut conn).fuse() => Some(frame?),
            () = timer.fuse() => None,
        };
        let now = Instant::now();
        let this = seen.rounds.get_mut(round.saturating_sub(1));
        match (frame, this) {
            (None, Some(r)) => {
                answer_at = None;
                conn.send(&Frame::Answer).await.map_err(|e| e.to_string())?;
                r.answered = Some(now);
            }
            (Some(Frame::Ping { seq }), _) => {
                conn.send(&Frame::Pong { seq })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            (Some(Frame::Go { round: r }), _) => {
                round = r as usize;
                if let Some(this) = seen.rounds.get_mut(round.saturating_sub(1)) {
                    this.go = Some(now);
                    answer_at = Some(now + reaction);
                }
            }
            (Some(Frame::Buzzes(q)), Some(r)) if !q.buzzes.is_empty() => {
                r.buzz_seen.get_or_insert(now);
            }
            (Some(Frame::Outcome(_)), Some(r)) => {
                answer_at = None;
                r.result.get_or_insert(now);
            }
            (Some(Frame::Over { .. }), _) => {
                seen.over = true;
                return Ok(seen);
            }
            (Some(Frame::Error { kind, message }), _) => return Err(format!("{kind}: {message}")),
            _ => {}
        }
    }
}

/// The host, as a quiz host does it: in the room before the players, so no question opens by
/// itself; once `start` says the room is seated it opens each question, judges the first buzz
/// correct once every reaction is in, and ends the session. `ready` says it is in the room.
/// Returns when it judged each question.
async fn host(
    addr: SocketAddr,
    rounds: u64,
    ready: oneshot::Sender<()>,
    start: oneshot::Receiver<()>,
) -> Result<Vec<Instant>, String> {
    let link = Link::connect(&addr.to_string())
        .await
        .map_err(|e| format!("host connect: {e}"))?;
    let mut conn = Conn::Framed(link);
    let hello = Frame::Host {
        version: PROTOCOL_VERSION,
        room: Some(ROOM.into()),
        key: HOST_KEY.into(),
    };
    conn.send(&hello).await.map_err(|e| e.to_string())?;
    loop {
        match next(&mut conn).await? {
            Frame::Welcome { .. } => break,
            Frame::Error { kind, message } => return Err(format!("host: {kind}: {message}")),
            _ => {}
        }
    }
    let _ = ready.send(());
    let mut start = start.fuse();
    let (mut seated, mut open, mut up, mut go_at) = (false, false, false, None::<Instant>);
    let mut judged = Vec::new();
    loop {
        let timer = async {
            match go_at {
                Some(go) => {
                    rt::sleep((go + QUESTION).saturating_duration_since(Instant::now())).await
                }
                None => futures::future::pending().await,
            }
        };
        let frame = futures::select_biased! {
            frame = next(&mut conn).fuse() => Some(frame?),
            () = timer.fuse() => None,
            _ = start => {
                seated = true;
                if rounds == 0 {
                    conn.send(&Frame::Finish).await.map_err(|e| e.to_string())?;
                }
                Some(Frame::Answer)
            }
        };
        match frame {
            None => {
                // Judge the question: right if someone is up, else move on.
                go_at = None;
                let control = if up { Control::Correct } else { Control::Next };
                judged.push(Instant::now());
                conn.send(&Frame::Control(control))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(Frame::Go { .. }) => {
                go_at = Some(Instant::now());
                up = false;
            }
            Some(Frame::Buzzes(q)) => up = q.up.is_some(),
            Some(Frame::Outcome(_)) => {
                open = false;
                if judged.len() as u64 >= rounds {
                    conn.send(&Frame::Finish).await.map_err(|e| e.to_string())?;
                }
            }
            Some(Frame::Over { .. }) => return Ok(judged),
            Some(Frame::Error { kind, message }) => return Err(format!("host: {kind}: {message}")),
            _ => {}
        }
        if seated && !open && (judged.len() as u64) < rounds && go_at.is_none() {
            open = true;
            conn.send(&Frame::Open).await.map_err(|e| e.to_string())?;
        }
    }
}

/// Runs the room: the storm, the idle room's memory, the questions.
pub(super) async fn run_room(
    run: &Run,
    plan: &RoomPlan,
    server_lines: Option<&ServerLines>,
) -> Ended {
    let Ok(addr) = run.addr.parse::<SocketAddr>() else {
        return Ended::CannotRun(format!("{}: not an address", run.addr));
    };
    let pid = run.server_pid;
    let before = pid.and_then(proc_stats);
    // The host first, as a quiz host opens the room before the players come.
    let (ready_tx, ready) = oneshot::channel();
    let (start, start_rx) = oneshot::channel();
    let hosting = rt::spawn(host(addr, plan.rounds, ready_tx, start_rx));
    if ready.await.is_err() {
        let why = match hosting.await {
            Err(e) => e,
            Ok(_) => "the host left".into(),
        };
        return Ended::CannotRun(format!("the host could not join: {why}"));
    }
    // The storm: every player joins, `parallel` at a time; each plays on once seated.
    let seated = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(
        "seated",
        Arc::clone(&seated),
        Some(plan.players as u64),
        None,
    );
    let storm = Instant::now();
    let rounds = plan.rounds;
    let joined: Vec<Result<rt::JoinHandle<Result<Seen, String>>, String>> =
        stream::iter(0..plan.players)
            .map(|i| {
                let seated = Arc::clone(&seated);
                async move {
                    let (conn, took) = join(addr, plan, i).await?;
                    seated.fetch_add(1, Ordering::Relaxed);
                    let seen = Seen {
                        join: took,
                        ..Seen::default()
                    };
                    Ok(rt::spawn(play(conn, i, seen, rounds)))
                }
            })
            .buffer_unordered(plan.parallel.max(1))
            .collect()
            .await;
    let storm_took = storm.elapsed();
    progress.finish().await;
    let mut refused = Errors::new();
    let mut playing = Vec::new();
    for j in joined {
        match j {
            Ok(handle) => playing.push(handle),
            Err(e) => *refused.entry(e).or_default() += 1,
        }
    }
    // The seated room at rest: its memory per player.
    rt::sleep(Duration::from_secs(2)).await;
    let at_rest = pid.and_then(proc_stats);
    let per_player = match (before, at_rest) {
        (Some(b), Some(r)) if !playing.is_empty() => {
            Some((r.rss_kib.saturating_sub(b.rss_kib) * 1024) as f64 / playing.len() as f64)
        }
        _ => None,
    };
    // The questions.
    let cpu_before = pid.and_then(proc_stats);
    let _ = start.send(());
    let judged = hosting.await;
    let cpu_after = pid.and_then(proc_stats);
    let mut seen = Vec::new();
    for handle in playing {
        match handle.await {
            Ok(s) => seen.push(s),
            Err(e) => *refused.entry(format!("playing: {e}")).or_default() += 1,
        }
    }
    let judged = match judged {
        Ok(j) => j,
        Err(e) => {
            *refused.entry(e).or_default() += 1;
            Vec::new()
        }
    };
    // The server says each question's line just after its result: it may still be on its way.
    let mut written = Vec::new();
    if let Some(lines) = server_lines {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            written = lines.go_spreads();
            if written.len() as u64 >= rounds || Instant::now() >= until {
                break;
            }
            rt::sleep(Duration::from_millis(50)).await;
        }
    }
    let rounds_figures = (0..rounds as usize)
        .map(|r| round_figures(r, &seen, judged.get(r).copied(), written.get(r).copied()))
        .collect();
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if !seen.is_empty() && rounds > 0 => {
            Some((a.cpu_secs - b.cpu_secs) * 1e3 / rounds as f64 / seen.len() as f64)
        }
        _ => None,
    };
    let joins = Percentiles::of(seen.iter().map(|s| s.join));
    let result = RoomResult {
        mode: "room",
        addr: run.addr.clone(),
        wire: plan.wire,
        players: plan.players,
        sources: plan.players.div_ceil(plan.per_source.max(1)),
        seated: seated.load(Ordering::Relaxed) as usize,
        refused,
        join_storm_seconds: storm_took.as_secs_f64(),
        joins_per_second: seated.load(Ordering::Relaxed) as f64 / storm_took.as_secs_f64(),
        join_ms: joins,
        server_rss_kib_before: before.map(|b| b.rss_kib),
        server_rss_kib_seated: at_rest.map(|r| r.rss_kib),
        bytes_per_idle_player: per_player,
        rounds: rounds_figures,
        server_cpu_ms_per_round_per_player: cpu,
        finished: seen.iter().filter(|s| s.over).count(),
    };
    report(run, &result);
    status(&result.refused)
}

/// Question `r`'s figures from what the players saw.
fn round_figures(
    r: usize,
    seen: &[Seen],
    judged: Option<Instant>,
    written: Option<f64>,
) -> RoundFigures {
    let rounds: Vec<&RoundSeen> = seen.iter().filter_map(|s| s.rounds.get(r)).collect();
    let gos: Vec<Instant> = rounds.iter().filter_map(|s| s.go).collect();
    let go_received = match (gos.iter().min(), gos.iter().max()) {
        (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64() * 1e3,
        _ => 0.0,
    };
    let first_buzz = rounds.iter().filter_map(|s| s.answered).min();
    let buzz = Percentiles::of(
        rounds
            .iter()
            .filter_map(|s| Some(s.buzz_seen?.saturating_duration_since(first_buzz?))),
    );
    let result = Percentiles::of(
        rounds
            .iter()
            .filter_map(|s| Some(s.result?.saturating_duration_since(judged?))),
    );
    RoundFigures {
        round: r as u64 + 1,
        go_written_ms: written,
        go_received_ms: go_received,
        buzz_to_screen_ms: buzz,
        results_delivered: rounds.iter().filter(|s| s.result.is_some()).count(),
        result_ms: result,
    }
}

fn report(run: &Run, r: &RoomResult) {
    if run.json {
        return print_json(r);
    }
    println!(
        "room of {} players ({:?} wire, from {} addresses) against {}",
        r.players, r.wire, r.sources, r.addr
    );
    println!(
        "  join storm        {} seated in {:.2} s ({:.0}/s); join {}",
        r.seated,
        r.join_storm_seconds,
        r.joins_per_second,
        r.join_ms.text()
    );
    if let (Some(b), Some(s), Some(p)) = (
        r.server_rss_kib_before,
        r.server_rss_kib_seated,
        r.bytes_per_idle_player,
    ) {
        println!(
            "  server RSS        {b} KiB before, {s} KiB seated: {p:.0} bytes per idle player"
        );
    }
    for q in &r.rounds {
        let written = q
            .go_written_ms
            .map_or("-".to_owned(), |w| format!("{w:.1} ms"));
        println!(
            "  question {}        Go written over {written}, received over {:.1} ms; results \
             delivered {} of {}",
            q.round, q.go_received_ms, q.results_delivered, r.seated
        );
        println!("    buzz to screen  {}", q.buzz_to_screen_ms.text());
        println!("    result          {}", q.result_ms.text());
    }
    if let Some(cpu) = r.server_cpu_ms_per_round_per_player {
        println!(
            "  server CPU        {:.1} µs per question per player",
            cpu * 1e3
        );
    }
    println!("  finished          {} of {}", r.finished, r.seated);
    println!("  errors            {}", errors_text(&r.refused));
}
