//! Sessions mode: quiz sessions held open, every party answering at once, and their report.

use super::common::*;
use super::report::*;
use crate::client::Link;
use crate::protocol;
use crate::protocol::Frame;
use crate::protocol::PROTOCOL_VERSION;
use crate::rt::{self as task};
use futures::stream::StreamExt;
use serde::Serialize;
use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

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
            Frame::SessionOver { .. } | Frame::Over { .. } => return Ok(()),
            Frame::Roster(_) | Frame::Lineup(_) | Frame::Rules { .. } | Frame::Seated { .. } => {}
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

#[derive(Serialize)]
pub(super) struct SessionsResult {
    mode: &'static str,
    addr: String,
    sessions: usize,
    parties: usize,
    seconds: f64,
    rounds: u64,
    rounds_per_s: f64,
    server: Option<ProcUse>,
    bench: Option<ProcUse>,
    errors: Errors,
}

pub(super) async fn run_sessions(run: &Run, plan: &SessionsPlan, rounds: u64) -> Ended {
    let total = rounds * plan.sessions as u64;
    let measured = measure(run, "rounds", Some(total), None, |counter| {
        sessions(&run.addr, plan, counter, run.fatal.clone())
    })
    .await;
    let Some((report, server, own)) = measured else {
        return Ended::Fatal;
    };
    let secs = report.elapsed.as_secs_f64();
    let result = SessionsResult {
        mode: "sessions",
        addr: run.addr.clone(),
        sessions: plan.sessions,
        parties: plan.parties,
        seconds: secs,
        rounds: report.rounds,
        rounds_per_s: report.rounds as f64 / secs,
        server,
        bench: own,
        errors: report.errors,
    };
    if run.json {
        print_json(&result);
    } else {
        let r = &result;
        println!(
            "sessions: {} sessions of {} parties held open, every party answering at once, {secs:.2} s",
            r.sessions, r.parties
        );
        println!(
            "  rounds            {:>10}   ({:.0}/s)",
            r.rounds, r.rounds_per_s
        );
        println!("  errors            {}", errors_text(&r.errors));
        print_usage(r.server, r.bench, "");
    }
    status(&result.errors)
}

// `arrival-bench sessions`'s options. Not a doc comment: structopt would show it as the mode's
// description.
#[derive(Debug, structopt::StructOpt)]
pub struct Args {
    /// Sessions at once
    #[structopt(short = "c", long, default_value = "8")]
    pub sessions: usize,
    /// Parties in each session
    #[structopt(short, long, default_value = "3")]
    pub parties: usize,
    /// Rounds per session (given to a spawned server)
    #[structopt(short = "n", long, default_value = "100")]
    pub rounds: u64,
    #[structopt(flatten)]
    pub common: Common,
}
