//! The quiz fairness trial with modified clients: sessions in reaction order between an honest
//! player and one that is farther away or cheats, each scenario in a room of its own on one
//! server, counting how often the server names the subject first.
//!
//! The scenarios are the ways a player can try to win without reacting sooner: a far network
//! (honest, and it should win when it is quicker), held `Pong`s, an `Answer` every few
//! milliseconds, answers timed to a predicted `Go` (with and without a host who opens the
//! rounds), and a player that controls its own network stack and holds back its acknowledgments
//! and `Pong`s, or everything but its `Answer` (over the framed wire and a WebSocket). The far
//! player's connection is made in the far namespace of a [`DelayedLink`], so its delay is in the
//! packets, where the server's kernel sees it, and so are the cheaters' held packets.
//!
//! It speaks the protocol as any client would, from the frames alone; it knows nothing of the
//! server's internals.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;

use super::common::Common;
use super::common::{Ended, Errors};
use super::link::{DelayedLink, Hold};
use super::report::*;
use super::ws::Conn;
use crate::client::Link;
use crate::protocol::{Frame, RoundOutcome, Standing, PROTOCOL_VERSION};
use crate::rt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// How a player plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Play {
    /// Presses its reaction time after each `Go` it sees.
    Honest,
    /// Honest, but holds every `Pong` this long: its round trip looks longer than it is.
    HoldPongs(Duration),
    /// Sends `Answer` this often, go or no go.
    Spam(Duration),
    /// Learns how long after a round's last `Ping` its `Go` comes (the mean over all earlier
    /// rounds) and answers at that prediction plus its reaction time, without waiting for `Go`.
    /// Skips a round it was told it is locked out of.
    Predict,
}

/// One player of a scenario.
#[derive(Debug, Clone)]
pub struct Player {
    pub name: &'static str,
    pub play: Play,
    pub reaction: Duration,
    /// Connects from the far side of the delayed link.
    pub far: bool,
    /// Controls its own network stack (far players only): holds back these packets.
    pub hold: Option<Hold>,
    /// Plays over a WebSocket, as a browser does.
    pub websocket: bool,
}

/// Two players, one of them the subject whose firsts are counted, and what a fair server gives
/// it.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub about: String,
    pub players: [Player; 2],
    pub subject: &'static str,
    /// The share of rounds the subject should be first in: at least, and at most.
    pub fair_share: (f64, f64),
    /// A host (of protocol 5: races) opens each round once the last one's result is in.
    pub hosted: bool,
}

/// A player who presses `reaction_ms` after each `Go` it sees.
pub fn honest(name: &'static str, reaction_ms: u64) -> Player {
    Player {
        name,
        play: Play::Honest,
        reaction: Duration::from_millis(reaction_ms),
        far: false,
        hold: None,
        websocket: false,
    }
}

/// A far player that reacts `reaction_ms` after each `Go` and holds back `hold`.
fn stack_cheat(name: &'static str, reaction_ms: u64, hold: Hold, websocket: bool) -> Player {
    Player {
        far: true,
        hold: Some(hold),
        websocket,
        ..honest(name, reaction_ms)
    }
}

impl Scenario {
    /// `subject` against an honest player of 150 ms, first in a share of rounds within `fair`.
    pub fn against_honest(
        name: &'static str,
        about: impl Into<String>,
        subject: Player,
        fair: (f64, f64),
    ) -> Scenario {
        Scenario {
            name,
            about: about.into(),
            subject: subject.name,
            players: [subject, honest("Honest", 150)],
            fair_share: fair,
            hosted: false,
        }
    }
}

/// Every scenario; `far` needs a [`DelayedLink`] of `delay` each way.
pub fn scenarios(delay: Duration) -> Vec<Scenario> {
    let delay_ms = delay.as_millis();
    let far = Player {
        far: true,
        ..honest("Far", 145)
    };
    let holder = Player {
        play: Play::HoldPongs(Duration::from_millis(80)),
        ..honest("Holder", 200)
    };
    let spammer = Player {
        play: Play::Spam(Duration::from_millis(3)),
        ..honest("Spammer", 0)
    };
    let predictor = Player {
        play: Play::Predict,
        ..honest("Predictor", 110)
    };
    vec![
        Scenario {
            name: "far",
            about: format!(
                "honest Far, {delay_ms} ms further away each way (packet-level), reacts in 145 ms \
                 against Near's 150 ms"
            ),
            subject: "Far",
            players: [far, honest("Near", 150)],
            fair_share: (0.99, 1.0),
            hosted: false,
        },
        Scenario::against_honest(
            "pong-holder",
            "holds every Pong 80 ms and reacts in 200 ms, against an honest 150 ms",
            holder,
            (0.0, 0.0),
        ),
        Scenario::against_honest(
            "spammer",
            "sends Answer every 3 ms, go or no go, against an honest 150 ms",
            spammer,
            (0.0, 0.0),
        ),
        Scenario::against_honest(
            "predictor",
            "answers at the predicted go + 110 ms (fitted on every earlier round), against an \
             honest 150 ms",
            predictor.clone(),
            (0.0, 0.05),
        ),
        Scenario {
            hosted: true,
            ..Scenario::against_honest(
                "hosted-predictor",
                "a host opens each round; answers at the predicted go + 110 ms (fitted on every \
                 earlier round), against an honest 150 ms",
                predictor,
                (0.0, 0.05),
            )
        },
        Scenario::against_honest(
            "ack-holder",
            format!(
                "{delay_ms} ms away each way; holds its own pure ACKs and Pongs 80 ms more, \
                 reacts in 190 ms, against an honest 150 ms"
            ),
            stack_cheat(
                "AckHolder",
                190,
                Hold::AcksAndPongs(Duration::from_millis(80)),
                false,
            ),
            (0.0, 0.05),
        ),
        Scenario::against_honest(
            "all-holder",
            format!(
                "{delay_ms} ms away each way; holds every packet but its Answer 80 ms more, \
                 reacts in 190 ms, against an honest 150 ms"
            ),
            stack_cheat(
                "AllHolder",
                190,
                Hold::AllButAnswer(Duration::from_millis(80)),
                false,
            ),
            (0.0, 0.05),
        ),
        Scenario::against_honest(
            "all-holder-ws",
            format!(
                "the same over a WebSocket ({delay_ms} ms away, holds all but its Answer 80 ms, \
                 reacts in 190 ms)"
            ),
            stack_cheat(
                "WsHolder",
                190,
                Hold::AllButAnswer(Duration::from_millis(80)),
                true,
            ),
            (0.0, 0.05),
        ),
        Scenario::against_honest(
            "all-holder-400",
            format!(
                "{delay_ms} ms away each way; holds every packet but its Answer 400 ms more, \
                 reacts in 520 ms, against an honest 150 ms"
            ),
            stack_cheat(
                "SlowHolder",
                520,
                Hold::AllButAnswer(Duration::from_millis(400)),
                false,
            ),
            (0.0, 0.05),
        ),
    ]
}

/// What one scenario came to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub about: String,
    pub rounds: u64,
    /// Rounds whose result named the subject first with a valid answer.
    pub subject_first: u64,
    /// The subject's standing in each round, counted.
    pub subject_standings: BTreeMap<String, u64>,
    /// The round trip the server used for the subject: its least and greatest, microseconds, and
    /// the sources it came from.
    pub subject_rtt_us: (u64, u64),
    pub subject_rtt_sources: BTreeMap<String, u64>,
    pub fair_share: (f64, f64),
    pub errors: Errors,
}

impl ScenarioReport {
    /// Counts one round's result for `subject`.
    fn count(&mut self, outcome: &RoundOutcome, subject: &str) {
        self.rounds += 1;
        let first = outcome.order.first();
        if first.is_some_and(|p| p.name == subject && p.standing == Standing::Answered) {
            self.subject_first += 1;
        }
        let Some(me) = outcome.order.iter().find(|p| p.name == subject) else {
            return;
        };
        *self
            .subject_standings
            .entry(me.standing.describe().to_owned())
            .or_default() += 1;
        *self
            .subject_rtt_sources
            .entry(format!("{:?}", me.rtt_source).to_lowercase())
            .or_default() += 1;
        if let Some(rtt) = me.rtt_micros {
            self.subject_rtt_us.0 = self.subject_rtt_us.0.min(rtt);
            self.subject_rtt_us.1 = self.subject_rtt_us.1.max(rtt);
        }
    }

    /// The subject was first in a share of rounds a fair server gives it.
    pub fn fair(&self) -> bool {
        let share = self.subject_first as f64 / self.rounds.max(1) as f64;
        self.rounds > 0
            && self.errors.is_empty()
            && share >= self.fair_share.0
            && share <= self.fair_share.1
    }
}

/// Where the players connect from.
pub enum Net<'a> {
    /// Everyone on this machine's loopback (no far player).
    Loopback,
    /// Near players in the link's server namespace, far ones across it.
    Link(&'a DelayedLink),
}

impl Net<'_> {
    async fn connect(&self, addr: SocketAddr, player: &Player) -> Result<Conn, String> {
        let stream = match (self, player.hold) {
            (Net::Loopback, _) if player.far => {
                return Err("a far player needs the delayed link".into())
            }
            (Net::Loopback, _) => std::net::TcpStream::connect(addr),
            (Net::Link(link), Some(hold)) => link.connect_far_holding(addr, hold),
            (Net::Link(link), None) if player.far => link.connect_far(addr),
            (Net::Link(link), None) => link.connect_near(addr),
        }
        .map_err(text)?;
        if player.websocket {
            return Conn::websocket(stream, &addr.to_string())
                .await
                .map_err(|e| format!("websocket: {e}"));
        }
        Link::from_std(stream).map(Conn::Framed).map_err(text)
    }
}

fn text(e: std::io::Error) -> String {
    format!("connect: {e}")
}

/// The host key of the trial's server.
const HOST_KEY: &str = "benchhost-00000000";

/// What to run in the quiz trial.
#[derive(Debug, Clone)]
pub struct QuizPlan {
    /// Rounds of each scenario's session.
    pub rounds: u64,
    /// The far player's extra delay, each way.
    pub delay: Duration,
    /// Scenarios by name; all if empty.
    pub scenarios: Vec<String>,
    /// The `arrival-server` to start, and options for it beyond the trial's own.
    pub server: std::path::PathBuf,
    pub server_args: Vec<String>,
}

/// Starts a server (in the server namespace of a delayed link, if a scenario has a far player)
/// with sessions of `plan.rounds` rounds in reaction order, plays the chosen scenarios at once,
/// stops the server. `progress` counts rounds.
pub async fn trial(
    plan: &QuizPlan,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<Vec<ScenarioReport>, String> {
    let chosen: Vec<Scenario> = scenarios(plan.delay)
        .into_iter()
        .filter(|s| plan.scenarios.is_empty() || plan.scenarios.iter().any(|n| n == s.name))
        .collect();
    if let Some(unknown) = plan
        .scenarios
        .iter()
        .find(|n| !chosen.iter().any(|s| s.name == n.as_str()))
    {
        let known: Vec<&str> = scenarios(plan.delay).iter().map(|s| s.name).collect();
        return Err(format!(
            "no scenario `{unknown}` (there are {})",
            known.join(", ")
        ));
    }
    let far = chosen.iter().any(|s| s.players.iter().any(|p| p.far));
    let websocket = chosen.iter().any(|s| s.players.iter().any(|p| p.websocket));
    let link = match far {
        true => Some(
            DelayedLink::create(plan.delay)
                .map_err(|e| format!("the far scenario needs a packet-level delayed link: {e}"))?,
        ),
        false => None,
    };
    let host = match link {
        Some(_) => super::link::SERVER_IP.to_string(),
        None => "127.0.0.1".to_owned(),
    };
    let mut command = match &link {
        Some(link) => link.server_command(&plan.server),
        None => std::process::Command::new(&plan.server),
    };
    let rounds = plan.rounds.to_string();
    command.args([
        "--addr",
        &format!("{host}:0"),
        "--rounds",
        "0",
        "--quiet",
        "--order",
        "reaction",
        "--session-rounds",
        &rounds,
        // Pings spread over 0.2 s before the random wait: rounds come quicker than a quiz
        // host's, with the same unpredictable go.
        "--session-pause",
        "0.2",
        "--answer-timeout",
        "2",
        "--max-per-address",
        "0",
        "--host-key",
        HOST_KEY,
        "--web",
        if websocket { "on" } else { "off" },
    ]);
    command.args(&plan.server_args);
    let server = super::common::SpawnedServer::spawn(command)
        .map_err(|e| format!("cannot start {}: {e}", plan.server.display()))?;
    let addr: SocketAddr = server
        .addr
        .parse()
        .map_err(|e| format!("the server's address {}: {e}", server.addr))?;
    let net = match &link {
        Some(link) => Net::Link(link),
        None => Net::Loopback,
    };
    let reports = run(addr, &net, &chosen, plan.rounds, progress).await;
    server.stop();
    Ok(reports)
}

/// Plays every scenario at once against the server at `addr`, which must run sessions of the
/// rounds wanted, in reaction order, for two parties. `progress` is told of each round.
pub async fn run(
    addr: SocketAddr,
    net: &Net<'_>,
    scenarios: &[Scenario],
    rounds: u64,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Vec<ScenarioReport> {
    let runs = scenarios.iter().map(|s| {
        let progress = std::sync::Arc::clone(&progress);
        async move { play_scenario(addr, net, s, rounds, &progress).await }
    });
    futures::future::join_all(runs).await
}

async fn play_scenario(
    addr: SocketAddr,
    net: &Net<'_>,
    scenario: &Scenario,
    rounds: u64,
    progress: &std::sync::atomic::AtomicU64,
) -> ScenarioReport {
    let mut report = ScenarioReport {
        scenario: scenario.name.into(),
        about: scenario.about.clone(),
        fair_share: scenario.fair_share,
        subject_rtt_us: (u64::MAX, 0),
        ..ScenarioReport::default()
    };
    let room = format!("quiz-{}-{}", scenario.name, std::process::id());
    let (tx, mut results) = mpsc::channel::<RoundOutcome>(16);
    let mut players = Vec::new();
    // The host first, where there is one: the session then waits for its word.
    let host = match scenario.hosted {
        true => match net.connect(addr, &honest("Host", 0)).await {
            Ok(conn) => Some(host(conn, room.clone(), rounds)),
            Err(e) => {
                report.errors.insert(format!("Host: {e}"), 1);
                return report;
            }
        },
        false => None,
    };
    // One after the other, so both are in the session before it starts.
    for player in &scenario.players {
        let link = match net.connect(addr, player).await {
            Ok(link) => link,
            Err(e) => {
                report.errors.insert(format!("{}: {e}", player.name), 1);
                return report;
            }
        };
        let results = (player.name == scenario.subject).then(|| tx.clone());
        let player = player.clone();
        let room = room.clone();
        players.push(async move { (player.name, play(link, room, &player, results).await) });
    }
    drop(tx);
    let collect = async {
        while let Some(outcome) = results.next().await {
            progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            report.count(&outcome, scenario.subject);
        }
    };
    let hosting = async {
        match host {
            Some(host) => host.await,
            None => Ok(()),
        }
    };
    let (ended, (), hosted) = futures::join!(futures::future::join_all(players), collect, hosting);
    if let Err(e) = hosted {
        *report.errors.entry(format!("Host: {e}")).or_default() += 1;
    }
    for (name, result) in ended {
        if let Err(e) = result {
            *report.errors.entry(format!("{name}: {e}")).or_default() += 1;
        }
    }
    if report.subject_rtt_us.0 == u64::MAX {
        report.subject_rtt_us.0 = 0;
    }
    report
}

/// A host of protocol 5 (so the session plays races): opens a round whenever the last one is
/// over and both players are in, and ends the session after `rounds`.
async fn host(mut conn: Conn, room: String, rounds: u64) -> Result<(), String> {
    let hello = Frame::Host {
        version: 5,
        room: Some(room),
        key: HOST_KEY.into(),
    };
    conn.send(&hello).await.map_err(write_error)?;
    let (mut open, mut played) = (false, 0);
    loop {
        let frame = match rt::timeout(SILENCE, conn.recv()).await {
            None => return Err(format!("nothing from the server for {SILENCE:?}")),
            Some(frame) => frame?,
        };
        match frame {
            None => return Err("closed by the server".into()),
            Some(Frame::Roster(r)) if !open && r.players.len() >= 2 && !r.open => {
                open = true;
                conn.send(&Frame::Open).await.map_err(write_error)?;
            }
            Some(Frame::Outcome(_)) => {
                open = false;
                played += 1;
                if played >= rounds {
                    conn.send(&Frame::Finish).await.map_err(write_error)?;
                }
            }
            Some(Frame::Over { .. }) => return Ok(()),
            Some(Frame::Error { kind, message }) => {
                return Err(format!("server: {kind}: {message}"))
            }
            Some(_) => {}
        }
    }
}

/// The longest a player waits for the server before it gives up.
const SILENCE: Duration = Duration::from_secs(30);

/// What woke a player.
enum Wake {
    Frame(Result<Option<Frame>, String>),
    Due,
    Silence,
}

/// Plays one session as `player` to its end, sending each result to `results`.
/// One scripted player's state in a session, as its [`Play`] needs it.
struct Bot<'a> {
    link: Conn,
    player: &'a Player,
    results: Option<mpsc::Sender<RoundOutcome>>,
    /// Pongs held back: (when to send, seq).
    held: VecDeque<(Instant, u32)>,
    answer_at: Option<Instant>,
    spam_at: Option<Instant>,
    /// The predictor's state: the last ping seen, how long after it each Go came, the last
    /// round begun, and the round it was told it is locked out of.
    last_ping: Option<Instant>,
    go_after_ping: Vec<Duration>,
    round: u64,
    locked: Option<u64>,
    /// A round is open (its `Go` seen, its result not yet): pings now measure the answer's
    /// path, and say nothing of the next `Go`.
    open: bool,
}

fn write_error(e: std::io::Error) -> String {
    format!("write: {e}")
}

async fn play(
    mut link: Conn,
    room: String,
    player: &Player,
    results: Option<mpsc::Sender<RoundOutcome>>,
) -> Result<(), String> {
    let join = Frame::Join {
        version: PROTOCOL_VERSION,
        room: Some(room),
        name: player.name.into(),
    };
    link.send(&join).await.map_err(write_error)?;
    let mut bot = Bot {
        link,
        player,
        results,
        held: VecDeque::new(),
        answer_at: None,
        spam_at: match player.play {
            Play::Spam(every) => Some(Instant::now() + every),
            _ => None,
        },
        last_ping: None,
        go_after_ping: Vec::new(),
        round: 0,
        locked: None,
        open: false,
    };
    loop {
        let due = [
            bot.held.front().map(|&(t, _)| t),
            bot.answer_at,
            bot.spam_at,
        ]
        .into_iter()
        .flatten()
        .min();
        let timer = async {
            match due {
                Some(t) => rt::sleep(t.saturating_duration_since(Instant::now())).await,
                None => futures::future::pending().await,
            }
        };
        let wake = futures::select_biased! {
            frame = bot.link.recv().fuse() => Wake::Frame(frame.map_err(|e| format!("read: {e}"))),
            () = timer.fuse() => Wake::Due,
            () = rt::sleep(SILENCE).fuse() => Wake::Silence,
        };
        let now = Instant::now();
        match wake {
            Wake::Silence => return Err(format!("nothing from the server for {SILENCE:?}")),
            Wake::Due => bot.due(now).await?,
            Wake::Frame(frame) => {
                let Some(frame) = frame? else {
                    return Err("closed by the server".into());
                };
                if bot.frame(frame, now).await? {
                    return Ok(());
                }
            }
        }
    }
}

impl Bot<'_> {
    /// Sends what is due at `now`: held pongs, a timed answer, the spammer's next press.
    async fn due(&mut self, now: Instant) -> Result<(), String> {
        while self.held.front().is_some_and(|&(t, _)| t <= now) {
            if let Some((_, seq)) = self.held.pop_front() {
                self.link
                    .send(&Frame::Pong { seq })
                    .await
                    .map_err(write_error)?;
            }
        }
        if self.answer_at.is_some_and(|t| t <= now) {
            self.answer_at = None;
            self.link.send(&Frame::Answer).await.map_err(write_error)?;
        }
        if let (Some(t), Play::Spam(every)) = (self.spam_at, self.player.play) {
            if t <= now {
                self.spam_at = Some(t + every);
                self.link.send(&Frame::Answer).await.map_err(write_error)?;
            }
        }
        Ok(())
    }

    /// Handles a frame that arrived at `now`; true once the session is over.
    async fn frame(&mut self, frame: Frame, now: Instant) -> Result<bool, String> {
        match frame {
            Frame::Welcome { .. }
            | Frame::Buzzes(_)
            | Frame::Roster(_)
            | Frame::Lineup(_)
            | Frame::Rules { .. }
            | Frame::Seated { .. } => {}
            Frame::Ping { seq } => self.ping(seq, now).await?,
            Frame::Go { round } => self.go(round, now),
            Frame::Early { round } => self.locked = Some(round),
            Frame::Outcome(outcome) => {
                self.open = false;
                if let Some(tx) = self.results.as_mut() {
                    let _ = tx.send(*outcome).await;
                }
            }
            Frame::SessionOver { .. } | Frame::Over { .. } => return Ok(true),
            Frame::Error { kind, message } => return Err(format!("server: {kind}: {message}")),
            other => return Err(format!("unexpected {}", other.kind_name())),
        }
        Ok(false)
    }

    async fn ping(&mut self, seq: u32, now: Instant) -> Result<(), String> {
        if !self.open {
            self.last_ping = Some(now);
        }
        match self.player.play {
            Play::HoldPongs(hold) => self.held.push_back((now + hold, seq)),
            _ => self
                .link
                .send(&Frame::Pong { seq })
                .await
                .map_err(write_error)?,
        }
        let next = self.round + 1;
        if self.player.play == Play::Predict
            && !self.open
            && !self.go_after_ping.is_empty()
            && self.locked != Some(next)
        {
            let mean =
                self.go_after_ping.iter().sum::<Duration>() / self.go_after_ping.len() as u32;
            self.answer_at = Some(now + mean + self.player.reaction);
        }
        Ok(())
    }

    fn go(&mut self, round: u64, now: Instant) {
        self.round = round;
        self.open = true;
        match self.player.play {
            Play::Predict => self.go_after_ping.extend(self.last_ping.map(|p| now - p)),
            Play::Spam(_) => {}
            _ => self.answer_at = Some(now + self.player.reaction),
        }
    }
}

#[derive(Serialize)]
pub(super) struct QuizResult {
    mode: &'static str,
    rounds: u64,
    delay_ms: u64,
    scenarios: Vec<ScenarioReport>,
}

/// The quiz trial: its own server, every scenario at once, one line each.
/// The quiz bench's report as a table on stdout.
fn print_table(result: &QuizResult) {
    let rounds = result.rounds;
    println!(
        "quiz, reaction order, {rounds} rounds a scenario; first = named first with a valid answer"
    );
    for r in &result.scenarios {
        let counts = |pairs: &BTreeMap<String, u64>| -> String {
            let items: Vec<String> = pairs.iter().map(|(s, n)| format!("{s} {n}")).collect();
            items.join(", ")
        };
        println!(
            "  {:<12} first in {:>3} of {:<3} [a fair share is {:.0}-{:.0}%: {}]  {}",
            r.scenario,
            r.subject_first,
            r.rounds,
            100.0 * r.fair_share.0,
            100.0 * r.fair_share.1,
            if r.fair() { "held" } else { "NOT HELD" },
            r.about
        );
        println!(
            "  {:<12} its standings: {}; round trip used {:.1}-{:.1} ms ({})",
            "",
            counts(&r.subject_standings),
            r.subject_rtt_us.0 as f64 / 1000.0,
            r.subject_rtt_us.1 as f64 / 1000.0,
            counts(&r.subject_rtt_sources)
        );
        if !r.errors.is_empty() {
            println!("  {:<12} errors: {}", "", errors_text(&r.errors));
        }
    }
}

pub(super) async fn run_quiz(
    json: bool,
    rounds: u64,
    delay_ms: u64,
    scenarios: Vec<String>,
) -> Ended {
    let server = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("arrival-server"),
        Err(e) => return Ended::CannotRun(format!("cannot find arrival-server: {e}")),
    };
    let plan = QuizPlan {
        rounds,
        delay: Duration::from_millis(delay_ms),
        scenarios,
        server,
        server_args: Vec::new(),
    };
    let chosen = if plan.scenarios.is_empty() {
        self::scenarios(plan.delay).len() as u64
    } else {
        plan.scenarios.len() as u64
    };
    let counter = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("rounds", Arc::clone(&counter), Some(rounds * chosen), None);
    let reports = trial(&plan, counter).await;
    progress.finish().await;
    let reports = match reports {
        Ok(reports) => reports,
        Err(e) => return Ended::CannotRun(e),
    };
    let fair = reports.iter().all(|r| r.fair());
    let result = QuizResult {
        mode: "quiz",
        rounds,
        delay_ms,
        scenarios: reports,
    };
    if json {
        print_json(&result);
    } else {
        print_table(&result);
    }
    if fair {
        Ended::AllDone
    } else {
        Ended::SomeFailed
    }
}

// `arrival-bench quiz`'s options. Not a doc comment: structopt would show it as the mode's
// description.
#[derive(Debug, structopt::StructOpt)]
pub struct Args {
    /// Rounds of each scenario
    #[structopt(short = "n", long, default_value = "100")]
    pub rounds: u64,
    /// How much further away the far player is, each way, in milliseconds
    #[structopt(long, default_value = "40")]
    pub delay_ms: u64,
    /// Scenarios to play (far, pong-holder, spammer, predictor, hosted-predictor, ack-holder,
    /// all-holder, all-holder-ws, all-holder-400) [default: all]
    #[structopt(long, use_delimiter = true)]
    pub scenarios: Vec<String>,
    #[structopt(flatten)]
    pub common: Common,
}
