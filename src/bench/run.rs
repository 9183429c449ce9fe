//! One run of the bench: what to drive (a [`Job`]) with which [`Options`], a server started for
//! it if asked, and how it ended. The binary parses the command line into these; everything
//! else is here.

use std::time::Duration;

use super::common::*;
use super::report::Run;
use super::{echo, fairness, idle, quiz, room, rounds, sessions};

/// What to measure.
#[derive(Debug, Clone)]
pub enum Job {
    Rounds(rounds::RoundsPlan),
    Idle {
        connections: usize,
        idle_window: Duration,
    },
    Echo(echo::EchoPlan),
    Fairness {
        gaps: Vec<u64>,
        trials: usize,
    },
    Quiz {
        rounds: u64,
        delay_ms: u64,
        scenarios: Vec<String>,
    },
    Sessions {
        plan: sessions::SessionsPlan,
        rounds: u64,
    },
    Room(room::RoomPlan),
}

impl Job {
    /// Connections the run holds at once, here and in a spawned server.
    fn connections(&self) -> u64 {
        (match self {
            Job::Rounds(plan) => plan.concurrency * plan.parties,
            Job::Idle { connections, .. } => *connections,
            Job::Echo(plan) => plan.connections,
            Job::Fairness { .. } => 2,
            Job::Quiz { .. } => 8,
            Job::Sessions { plan, .. } => plan.sessions * plan.parties,
            Job::Room(plan) => plan.players + 1,
        }) as u64
    }
}

impl echo::Args {
    /// The options every mode takes, and what to measure.
    pub fn into_job(self) -> (Common, Job) {
        let plan = echo::EchoPlan {
            connections: self.connections,
            size: self.size,
            duration: self.duration,
        };
        (self.common, Job::Echo(plan))
    }
}

impl fairness::Args {
    /// The options every mode takes, and what to measure.
    pub fn into_job(self) -> (Common, Job) {
        let job = Job::Fairness {
            gaps: self.gaps,
            trials: self.trials,
        };
        (self.common, job)
    }
}

impl idle::Args {
    /// The options every mode takes, and what to measure.
    pub fn into_job(self) -> (Common, Job) {
        let job = Job::Idle {
            connections: self.connections,
            idle_window: self.idle_window,
        };
        (self.common, job)
    }
}

impl quiz::Args {
    /// The options every mode takes, and what to measure.
    pub fn into_job(self) -> (Common, Job) {
        let job = Job::Quiz {
            rounds: self.rounds,
            delay_ms: self.delay_ms,
            scenarios: self.scenarios,
        };
        (self.common, job)
    }
}

impl rounds::Args {
    /// The options every mode takes, and what to measure.
    pub fn into_job(self) -> (Common, Job) {
        let plan = rounds::RoundsPlan {
            concurrency: self.concurrency,
            parties: self.parties,
            duration: self.rounds.is_none().then_some(self.duration),
            rounds: self.rounds,
        };
        (self.common, Job::Rounds(plan))
    }
}

impl room::Args {
    /// The options every mode takes, and what to measure.
    pub fn into_job(self) -> (Common, Job) {
        let plan = room::RoomPlan {
            players: self.players,
            wire: self.wire,
            rounds: self.rounds,
            per_source: self.per_source,
            parallel: self.parallel,
        };
        (self.common, Job::Room(plan))
    }
}

impl sessions::Args {
    /// The options every mode takes, and what to measure.
    pub fn into_job(self) -> (Common, Job) {
        let plan = sessions::SessionsPlan {
            sessions: self.sessions,
            parties: self.parties,
        };
        (
            self.common,
            Job::Sessions {
                plan,
                rounds: self.rounds,
            },
        )
    }
}

/// Runs `job`, starting a server first if `options` ask for one; prints the report.
/// What a run needs before its first connection: TLS if asked for, and descriptors for `needed`
/// connections (a warning if the system gives fewer).
fn prepare(options: &Common, needed: u64) -> Result<(), String> {
    if let Some(ca) = &options.tls_ca {
        super::common::use_tls(ca)?;
    }
    // Each connection is a descriptor, here and in a spawned server; the margin covers the rest.
    match crate::cli::raise_open_files(needed + 1024) {
        Ok(limit) if limit < needed + 16 => eprintln!(
            "arrival-bench: warning: the open-file limit is {limit}, too low for the {needed} \
             connections asked for; expect `Too many open files` errors"
        ),
        _ => {}
    }
    Ok(())
}

pub async fn run(options: &Common, job: Job) -> Ended {
    let needed = job.connections();
    if let Err(message) = prepare(options, needed) {
        return Ended::CannotRun(message);
    }
    // The quiz trial starts its own, where its far player can reach it.
    let server = if options.spawn_server && !matches!(job, Job::Quiz { .. }) {
        match spawn_server(options, &job, needed) {
            Ok(s) => Some(s),
            Err(message) => return Ended::CannotRun(message),
        }
    } else {
        None
    };
    let addr = server.as_ref().map_or_else(
        || {
            options
                .addr
                .clone()
                .unwrap_or_else(|| "127.0.0.1:12000".into())
        },
        |s| s.addr.clone(),
    );
    log::info!(
        "driving {addr}{}; {needed} connections at once",
        if server.is_some() { " (spawned)" } else { "" }
    );
    let run = Run {
        addr,
        server_pid: server
            .as_ref()
            .map(SpawnedServer::pid)
            .or(options.server_pid),
        json: options.json,
        fatal: Fatal::default(),
    };
    let ended = match job {
        Job::Rounds(plan) => rounds::run_rounds(&run, &plan).await,
        Job::Idle {
            connections,
            idle_window,
        } => idle::run_idle(&run, connections, idle_window).await,
        Job::Fairness { gaps, trials } => fairness::run_fairness(&run, &gaps, trials).await,
        Job::Quiz {
            rounds,
            delay_ms,
            scenarios,
        } => quiz::run_quiz(run.json, rounds, delay_ms, scenarios).await,
        Job::Sessions { plan, rounds } => sessions::run_sessions(&run, &plan, rounds).await,
        Job::Room(plan) => {
            let lines = server.as_ref().map(|s| &s.lines);
            room::run_room(&run, &plan, lines).await
        }
        Job::Echo(plan) => echo::run_echo(&run, &plan).await,
    };
    if let Some(server) = server {
        server.stop();
    }
    if let Some(error) = run.fatal.get() {
        if error.contains("Connection refused") {
            return Ended::CannotRun(format!(
                "no server is running at {}; start one (arrival-server --rounds 0), or let the \
                 bench start its own with --spawn-server",
                run.addr
            ));
        }
        return Ended::CannotRun(format!(
            "the server at {} refused to go on ({error}); is it running, and in service mode \
             (--rounds 0)?",
            run.addr
        ));
    }
    ended
}

/// Starts an `arrival-server` next to the running binary, set up for `job`.
fn spawn_server(options: &Common, job: &Job, needed: u64) -> Result<SpawnedServer, String> {
    let program = std::env::current_exe()
        .map_err(|e| format!("cannot find arrival-server: {e}"))?
        .with_file_name("arrival-server");
    // --quiet: one line per round would be thousands of lines a second. A room has a few, and
    // says how long its Go took to write.
    let mut args: Vec<String> = ["--addr", "127.0.0.1:0", "--rounds", "0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if !matches!(job, Job::Room(_)) {
        args.push("--quiet".into());
    }
    args.extend(["--max-connections".into(), (needed + 1024).to_string()]);
    // Every bench connection comes from one address, but a room's come from many and keep
    // the server's own limit.
    if !matches!(job, Job::Room(_)) {
        args.extend(["--max-per-address".into(), "0".into()]);
    }
    if let Some(t) = options.server_threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    match job {
        Job::Rounds(plan) => args.extend(["--parties".into(), plan.parties.to_string()]),
        Job::Echo(_) => args.extend(["--mode".into(), "echo".into()]),
        Job::Idle { .. } => args.extend(["--round-timeout".into(), "3600".into()]),
        Job::Fairness { .. } | Job::Quiz { .. } => {}
        Job::Room(_) => args.extend(["--host-key".into(), room::HOST_KEY.into()]),
        Job::Sessions { plan, rounds } => {
            let session = [
                "--session-rounds",
                &rounds.to_string(),
                "--session-pause",
                "0",
                // Throughput of the session machinery, not of a quiz host's pauses.
                "--go-jitter",
                "0",
            ]
            .map(str::to_owned);
            args.extend(session);
            args.extend(["--parties".into(), plan.parties.to_string()]);
        }
    }
    SpawnedServer::start(&program, &args)
        .map_err(|e| format!("cannot start {}: {e}", program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::echo::EchoPlan;
    use crate::bench::rounds::RoundsPlan;
    use structopt::StructOpt;

    fn rounds(args: &[&str]) -> (Common, Job) {
        let all = std::iter::once("rounds").chain(args.iter().copied());
        rounds::Args::from_iter_safe(all)
            .unwrap_or_else(|e| panic!("{args:?}: {}", e.message))
            .into_job()
    }

    #[test]
    fn common_options_go_anywhere_among_the_modes_own() {
        for args in [
            &["--json", "--spawn-server", "-c", "8"][..],
            &["-c", "8", "--json", "--spawn-server"][..],
        ] {
            let (common, job) = rounds(args);
            assert!(common.json && common.spawn_server, "{args:?}");
            assert!(
                matches!(job, Job::Rounds(RoundsPlan { concurrency: 8, .. })),
                "{args:?}"
            );
        }
    }

    #[test]
    fn durations_take_units_and_c_means_connections_everywhere() {
        let (_, job) = rounds(&["-d", "5s", "-c", "2"]);
        assert!(matches!(
            job,
            Job::Rounds(RoundsPlan { duration: Some(d), concurrency: 2, .. }) if d == Duration::from_secs(5)
        ));
        let echo = echo::Args::from_iter_safe(["echo", "-d", "250ms", "-c", "3"]).unwrap();
        assert!(matches!(
            echo.into_job().1,
            Job::Echo(EchoPlan { duration, connections: 3, .. }) if duration == Duration::from_millis(250)
        ));
        let idle = idle::Args::from_iter_safe(["idle", "-c", "7", "--idle-window", "2"]).unwrap();
        assert!(matches!(
            idle.into_job().1,
            Job::Idle { connections: 7, idle_window } if idle_window == Duration::from_secs(2)
        ));
        assert!(rounds::Args::from_iter_safe(["rounds", "-d", "five"]).is_err());
    }
}
