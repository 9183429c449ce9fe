//! The binaries fit their ecosystem. Diagnostics never reach the transcript and can
//! neither panic nor wedge a round; one stop signal sent to a process and its group is one
//! request; the bench refuses to report throughput from a server that is not there, and takes its
//! options where wrk and hey users put them.

mod common;

use std::os::unix::process::CommandExt;

use common::{client, server, Proc, BENCH, SERVER};

/// A line of the one-shot transcript: what `arrival-server` prints, and nothing else.
fn is_transcript(line: &str) -> bool {
    line.starts_with("arrival-server listening on ")
        || line.starts_with("Client X connected from ")
        || line.starts_with("Client Y connected from ")
        || line == "Client X: Alice"
        || line == "Client Y: Bob"
        || line == "Sent acknowledgment to both X and Y"
}

fn play(addr: &str) -> (common::Finished, common::Finished) {
    let x = client("X", addr, &["--name", "Alice"]);
    let y = client("Y", addr, &["--name", "Bob"]);
    let (x, y) = (x.finish(), y.finish());
    assert_eq!((x.code, y.code), (Some(0), Some(0)), "{x:?} {y:?}");
    assert_eq!(x.stdout.last(), y.stdout.last());
    (x, y)
}

#[test]
fn with_vv_stdout_is_exactly_the_transcript_and_stderr_has_the_diagnostics() {
    let (mut srv, addr) = server(&["-vv"]);
    srv.wait_for_stderr("a diagnostic", |l| l.contains("INFO"));
    let x = client("X", &addr, &["--name", "Alice", "-vv"]);
    srv.wait_for("X", |l| l.starts_with("Client X connected from"));
    let y = client("Y", &addr, &["--name", "Bob"]);
    let (x, y) = (x.finish(), y.finish());
    assert_eq!((x.code, y.code), (Some(0), Some(0)), "{x:?} {y:?}");
    let srv = srv.finish();
    assert_eq!(srv.code, Some(0), "{srv:?}");
    assert_eq!(srv.stdout.len(), 6, "{:?}", srv.stdout);
    for line in &srv.stdout {
        assert!(
            is_transcript(line),
            "not a transcript line on stdout: {line:?}"
        );
    }
    assert!(srv.stderr.contains(" INFO "), "{}", srv.stderr);
    assert!(
        srv.stderr.contains("all parties connected"),
        "{}",
        srv.stderr
    );
    // Diagnostics carry a timestamp: `[2026-11-25T21:40:01.123Z INFO  arrival::...] ...`.
    let first = srv.stderr.lines().find(|l| l.contains(" INFO ")).unwrap();
    let time = first.trim_start_matches('[').split(' ').next().unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{first}");
    // The client's -vv works too, on stderr only.
    assert_eq!(x.stdout.len(), 3, "{:?}", x.stdout);
    assert!(x.stderr.contains("playing as X"), "{}", x.stderr);
}

#[test]
fn with_vv_and_stdout_closed_early_both_clients_get_their_verdicts() {
    let (mut child, addr, stdout) = common::server_with_pipes(&["-vv"]);
    // As `arrival-server -vv | head -1` does: the reader goes away after one line.
    drop(stdout);
    let stderr = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    play(&addr);
    let status = child.wait().unwrap();
    let errs = errs.join().unwrap();
    assert_eq!(status.code(), Some(0), "{errs}");
    assert!(!errs.contains("panicked"), "{errs}");
}

#[test]
fn term_to_the_process_and_its_group_at_once_is_one_graceful_stop() {
    for _ in 0..5 {
        let mut srv = Proc::spawn_with(
            "server",
            SERVER,
            &["--addr", "127.0.0.1:0", "--rounds", "0"],
            |c| {
                c.process_group(0);
            },
        );
        let first = srv.next_line();
        let addr = first.rsplit(' ').next().unwrap().to_owned();
        play(&addr);
        srv.wait_for("the round's line", |l| l.contains("Round 1: "));
        let pid = srv.pid() as libc::pid_t;
        // What GNU timeout and supervisors do: the process, and its group, at once.
        // SAFETY: plain kill(2) calls on our own child and its process group.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
            libc::kill(-pid, libc::SIGTERM);
        }
        let out = srv.finish();
        out.assert_ended_with("Summary: 1 round completed, 0 aborted, 2 connections served");
        assert!(!out.stderr.contains("second signal"), "{}", out.stderr);
    }
}

#[test]
fn quiet_service_mode_prints_only_the_summary() {
    let (srv, addr) = server(&["--rounds", "2", "--quiet"]);
    play(&addr);
    play(&addr);
    let out = srv.finish();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout[1..],
        ["Summary: 2 rounds completed, 0 aborted, 4 connections served"]
    );
}

#[test]
fn the_bench_help_says_what_the_program_and_each_mode_do() {
    let top = Proc::spawn("bench", BENCH, &["--help"]).finish();
    assert_eq!(top.code, Some(0), "{top:?}");
    assert_eq!(
        top.stdout.get(1).map(String::as_str),
        Some(
            "Load generator for arrival-server: throughput, latency, idle memory, fairness, echo."
        )
    );
    for (mode, about) in [
        ("rounds", "Complete rounds, C at a time"),
        ("idle", "Hold C connections that wait for partners"),
        ("echo", "Echo: C connections, S-byte messages"),
        ("fairness", "Two parties send G microseconds apart"),
        ("sessions", "Quiz sessions: C sessions of P parties"),
    ] {
        let out = Proc::spawn("bench", BENCH, &[mode, "--help"]).finish();
        assert_eq!(out.code, Some(0), "{mode}: {out:?}");
        let said = out.stdout.get(1).map_or("", String::as_str);
        assert!(said.starts_with(about), "{mode}: {said:?}");
    }
}

#[test]
fn the_bench_stops_with_an_error_against_a_closed_port() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    for mode in [
        &["rounds", "-d", "5s"][..],
        &["echo", "-d", "5s"],
        &["idle", "-c", "10", "--idle-window", "0"],
    ] {
        let mut args = mode.to_vec();
        args.extend(["--addr", &addr]);
        let out = Proc::spawn("bench", BENCH, &args).finish();
        assert_eq!(out.code, Some(3), "{mode:?}: {out:?}");
        assert!(
            out.stdout.is_empty(),
            "no figures from a failed run: {out:?}"
        );
        let last = out.stderr.lines().last().unwrap_or_default();
        assert_eq!(
            last,
            format!(
                "arrival-bench: no server is running at {addr}; start one (arrival-server \
                 --rounds 0), or let the bench start its own with --spawn-server"
            ),
            "{mode:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn the_bench_takes_its_options_after_the_mode_and_writes_json() {
    let out = Proc::spawn(
        "bench",
        BENCH,
        &["rounds", "-c", "2", "-n", "20", "--spawn-server", "--json"],
    )
    .finish();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.len(), 1, "only the result on stdout: {out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout[0]).unwrap();
    assert_eq!(json["mode"], "rounds");
    assert_eq!(json["rounds"], 20);
    assert_eq!(json["connections"], 40);
    assert_eq!(json["latency_us"]["samples"], 20);
    assert!(
        json["latency_us"]["p95"].as_u64().unwrap() >= json["latency_us"]["min"].as_u64().unwrap()
    );
    assert_eq!(json["errors"], serde_json::json!({}));
    assert!(json["server"]["cpu_seconds"].is_number());
    // The spawned server's lines went to stderr.
    assert!(
        out.stderr.contains("server: Summary: 20 rounds completed"),
        "{}",
        out.stderr
    );
}

/// A reader that stops reading stdout (a paused pager, a pipe nobody drains) must not stall the
/// server: rounds go on, lines beyond what can wait are dropped and counted, and the count is
/// said once stdout moves again.
#[test]
fn a_stdout_nobody_reads_does_not_stall_the_rounds() {
    let (mut child, addr, stdout) = common::server_with_pipes(&["--rounds", "0"]);
    let stderr = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    // A service line is about 100 bytes: 2,500 rounds are far more than a pipe holds (64 KiB)
    // plus the lines the server queues (1,024). Written synchronously, they stalled it.
    let args = ["rounds", "-n", "2500", "-c", "8", "--addr", &addr];
    let bench = Proc::spawn("bench", BENCH, &args).finish();
    assert_eq!(bench.code, Some(0), "{bench:?}");
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let lines: Vec<String> = std::io::BufRead::lines(stdout)
        .map(Result::unwrap)
        .collect();
    let status = child.wait().unwrap();
    let errs = errs.join().unwrap();
    assert_eq!(status.code(), Some(0), "{errs}");
    let dropped: Vec<&String> = lines
        .iter()
        .filter(|l| l.ends_with("transcript lines dropped: stdout was not being read)"))
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    let rounds = lines.iter().filter(|l| l.contains(" Round ")).count();
    assert!(
        rounds > 1000 && rounds < 2500,
        "{rounds} round lines: some written, some dropped"
    );
    assert!(
        lines.last().is_some_and(|l| l.starts_with("Summary")),
        "{:?}",
        lines.last()
    );
}

/// Every usage error is one line on stderr, `<program>: ...`, with no colour codes in a pipe, and
/// exit status 2.
#[test]
fn usage_errors_are_one_plain_line() {
    for (bin, args) in [
        (common::SERVER, &["--rounds", "-1"][..]),
        (common::SERVER, &["--parties", "3", "--labels", "A,B"][..]),
        (common::CLIENT, &["--bogus"][..]),
        (common::BENCH, &["rounds", "--duraton", "5"][..]),
    ] {
        let out = common::Proc::spawn("bin", bin, args).finish();
        let program = bin.rsplit('/').next().unwrap();
        assert_eq!(out.code, Some(2), "{program} {args:?}");
        assert_eq!(
            out.stderr.lines().count(),
            1,
            "{program} {args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.starts_with(&format!("{program}: ")),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains('\u{1b}'), "{}", out.stderr);
        assert!(
            out.stderr.trim_end().ends_with("; see --help"),
            "{}",
            out.stderr
        );
    }
}

/// The bench's options may come before its mode.
#[test]
fn the_bench_takes_options_before_its_mode() {
    let args = ["-n", "20", "-c", "2", "--spawn-server", "rounds"];
    let out = common::Proc::spawn("bench", common::BENCH, &args).finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}
