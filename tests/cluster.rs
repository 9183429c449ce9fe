//! arrival behind HAProxy, with `deploy/haproxy.cfg` as shipped: instances of `arrival-server
//! --proxy-protocol` on loopback ports, HAProxy in front hashing on the room. Every test is
//! `#[ignore]`d: `make cluster-test` installs HAProxy if it is missing and runs them, with their
//! figures. Without HAProxy each says so and returns.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use arrival::client::{self, Link, NameSource};
use arrival::protocol::{ErrorKind, Frame, PROTOCOL_VERSION};
use arrival::rt;
use arrival::transcript::Transcript;
use common::Proc;

/// Instances and the balancer in front of them; all stopped on drop.
struct Cluster {
    instances: Vec<(Proc, String)>,
    haproxy: Proc,
    front: String,
    _config: tempfile_path::Dir,
}

/// A temporary directory removed on drop (the config HAProxy reads).
mod tempfile_path {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn haproxy_missing() -> bool {
    let missing = std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_err();
    if missing {
        eprintln!("skipped: HAProxy is not installed (make cluster-test installs it)");
    }
    missing
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// `n` instances (with `extra` arguments each) behind HAProxy; returns once a client is
    /// welcomed through it.
    fn start(n: usize, extra: &[&str]) -> Cluster {
        let mut args = vec!["--rounds", "0", "--proxy-protocol", "127.0.0.1"];
        args.extend_from_slice(extra);
        let instances: Vec<(Proc, String)> = (0..n).map(|_| common::server(&args)).collect();
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy.cfg"))
                .unwrap();
        // The shipped config, with as many servers as instances.
        let config: String = shipped
            .lines()
            .filter(|l| {
                let server = l.trim_start().strip_prefix("server a");
                server.is_none_or(|rest| {
                    rest.chars()
                        .next()
                        .and_then(|c| c.to_digit(10))
                        .is_some_and(|k| (k as usize) <= n)
                })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let dir = std::env::temp_dir().join(format!(
            "arrival-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let front = format!("127.0.0.1:{}", free_port());
        let env: Vec<(String, String)> =
            std::iter::once(("ARRIVAL_FRONT".to_owned(), front.clone()))
                .chain(
                    instances
                        .iter()
                        .enumerate()
                        .map(|(i, (_, addr))| (format!("ARRIVAL_{}", i + 1), addr.clone())),
                )
                .collect();
        let haproxy =
            Proc::spawn_with("haproxy", "haproxy", &["-f", path.to_str().unwrap()], |c| {
                c.envs(env);
            });
        let cluster = Cluster {
            instances,
            haproxy,
            front,
            _config: tempfile_path::Dir(dir),
        };
        // Ready once a connection in a room is welcomed through it (whatever the parties).
        let until = Instant::now() + common::GUARD;
        loop {
            let welcomed = rt::block_on(async {
                let mut link = Link::connect(&cluster.front).await.ok()?;
                let hello = Frame::Hello {
                    version: PROTOCOL_VERSION,
                    room: Some("ready".into()),
                };
                link.send(&hello).await.ok()?;
                rt::timeout(Duration::from_secs(1), link.recv()).await
            });
            if matches!(welcomed, Some(Ok(Some(Frame::Welcome { .. })))) {
                break;
            }
            assert!(
                Instant::now() < until,
                "the cluster never welcomed a client"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// Stops everything; returns each instance's transcript.
    fn stop(self) -> (Vec<Vec<String>>, String) {
        let transcripts = self
            .instances
            .into_iter()
            .map(|(p, _)| {
                p.signal("TERM");
                p.finish().stdout
            })
            .collect();
        self.haproxy.signal("TERM");
        let haproxy = self.haproxy.finish().stderr;
        (transcripts, haproxy)
    }
}

/// One client of a two-party round in `room` (anonymous if `None`), through `front`.
async fn round(front: String, room: Option<String>, name: String) -> Result<(), String> {
    let config = client::Config {
        addr: front,
        room,
        rejoins: 0,
        ..client::Config::default()
    };
    client::run(&config, NameSource::Given(name), &Transcript::Silent)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A seated party's round from its `Connected` on: its message, then the verdict; or why not, in
/// one line.
async fn play_on(mut link: Link, name: String) -> Result<(), String> {
    loop {
        match link.recv().await {
            Ok(Some(Frame::Connected { .. })) => {
                let message = Frame::Message { name: name.clone() };
                link.send(&message).await.map_err(|e| e.to_string())?;
            }
            Ok(Some(Frame::Ack { .. })) => return Ok(()),
            Ok(Some(Frame::Error { message, .. })) => return Err(message),
            Ok(Some(_)) => {}
            Ok(None) => return Err("the server closed the connection".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// One player of a one-round quiz session in `room`, through `front`.
async fn quiz(front: String, room: String, name: String) -> Result<(), String> {
    let mut link = Link::connect(&front).await.map_err(|e| e.to_string())?;
    let join = Frame::Join {
        version: PROTOCOL_VERSION,
        room: Some(room),
        name,
    };
    link.send(&join).await.map_err(|e| e.to_string())?;
    loop {
        match link.recv().await.map_err(|e| e.to_string())? {
            // A pong may cross the server's last word: what it said is read next.
            Some(Frame::Ping { seq }) => {
                let _ = link.send(&Frame::Pong { seq }).await;
            }
            Some(Frame::Go { .. }) => link.send(&Frame::Answer).await.map_err(|e| e.to_string())?,
            Some(Frame::SessionOver { .. } | Frame::Over { .. }) => return Ok(()),
            Some(Frame::Error { message, .. }) => return Err(message),
            Some(_) => {}
            None => return Err("closed".into()),
        }
    }
}

/// Which instances played each room, from their transcripts (`Round N [room]: ...`,
/// `Session [room] ...`).
fn rooms_by_instance(transcripts: &[Vec<String>]) -> BTreeMap<String, BTreeSet<usize>> {
    let mut rooms: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (i, lines) in transcripts.iter().enumerate() {
        for line in lines {
            if let (Some(a), Some(b)) = (line.find('['), line.find(']')) {
                if a < b {
                    rooms
                        .entry(line[a + 1..b].to_owned())
                        .or_default()
                        .insert(i);
                }
            }
        }
    }
    rooms
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn every_room_meets_on_one_instance_and_rooms_spread() {
    if haproxy_missing() {
        return;
    }
    let cluster = Cluster::start(
        3,
        &[
            "--max-per-address",
            "0",
            "--max-connections",
            "4096",
            "--session-rounds",
            "1",
            "--session-pause",
            "0.1",
            "--go-jitter",
            "0",
            "--parties",
            "2",
        ],
    );
    let front = cluster.front.clone();
    let started = Instant::now();
    let outcomes: Vec<Result<(), String>> = rt::block_on(async {
        let mut tasks = Vec::new();
        for r in 0..150 {
            for p in 0..2 {
                let room = Some(format!("round-{r}"));
                tasks.push(rt::spawn(round(front.clone(), room, format!("R{r}p{p}"))));
            }
        }
        for s in 0..150 {
            for p in 0..3 {
                let room = format!("quiz-{s}");
                tasks.push(rt::spawn(quiz(front.clone(), room, format!("Q{s}p{p}"))));
            }
        }
        for a in 0..600 {
            tasks.push(rt::spawn(round(front.clone(), None, format!("A{a}"))));
        }
        futures::future::join_all(tasks).await
    });
    let elapsed = started.elapsed();
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    let (transcripts, _) = cluster.stop();
    let rooms = rooms_by_instance(&transcripts);
    let named: Vec<(&String, &BTreeSet<usize>)> = rooms
        .iter()
        .filter(|(r, _)| r.starts_with("round-") || r.starts_with("quiz-"))
        .collect();
    let mut per_instance = [0usize; 3];
    for (_, instances) in &named {
        for &i in instances.iter() {
            per_instance[i] += 1;
        }
    }
    let anonymous: Vec<usize> = transcripts
        .iter()
        .map(|lines| {
            lines
                .iter()
                .filter(|l| l.contains(" Round ") && !l.contains('['))
                .count()
        })
        .collect();
    println!(
        "{} clients in {:.1} s: {} failed; 300 named rooms over the instances {:?}; anonymous \
         rounds per instance {:?}",
        outcomes.len(),
        elapsed.as_secs_f64(),
        failed.len(),
        per_instance,
        anonymous
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(named.len(), 300, "every named room played");
    for (room, instances) in &named {
        assert_eq!(instances.len(), 1, "{room} met on {instances:?}");
    }
    for n in per_instance {
        assert!(
            (50..=150).contains(&n),
            "within ±50% of 100: {per_instance:?}"
        );
    }
    assert_eq!(anonymous.iter().sum::<usize>(), 300);
    assert_eq!(
        anonymous.iter().filter(|&&n| n > 0).count(),
        1,
        "{anonymous:?}"
    );
}

/// A connection from `source` (a loopback address of its own) through the balancer, in `room`.
fn from(source: [u8; 4], front: &str, room: &str) -> Link {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    let front: SocketAddr = front.parse().unwrap();
    socket.connect(&front.into()).unwrap();
    let stream: TcpStream = socket.into();
    let mut link = Link::from_std(stream).unwrap();
    rt::block_on(link.send(&Frame::Hello {
        version: PROTOCOL_VERSION,
        room: Some(room.into()),
    }))
    .unwrap();
    link
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn the_per_address_limit_counts_real_client_addresses() {
    if haproxy_missing() {
        return;
    }
    let cluster = Cluster::start(3, &["--max-per-address", "2", "--parties", "9"]);
    let front = cluster.front.clone();
    let welcome = |link: &mut Link| rt::block_on(link.recv()).unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut link = from([127, 0, 0, 2], &front, "limit");
        assert!(matches!(welcome(&mut link), Some(Frame::Welcome { .. })));
        held.push(link);
    }
    let mut third = from([127, 0, 0, 2], &front, "limit");
    match welcome(&mut third) {
        Some(Frame::Error { kind, message }) => {
            assert_eq!(kind, ErrorKind::Busy);
            assert!(message.contains("already holds 2"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let mut other = from([127, 0, 0, 3], &front, "limit");
    assert!(matches!(welcome(&mut other), Some(Frame::Welcome { .. })));
    println!("127.0.0.2 held 2 and was refused a third; 127.0.0.3 was let in, all through HAProxy");
    drop(held);
    let _ = cluster.stop();
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn a_dead_instance_fails_only_its_rooms_which_then_play_elsewhere() {
    if haproxy_missing() {
        return;
    }
    let mut cluster = Cluster::start(3, &["--max-per-address", "0"]);
    let front = cluster.front.clone();
    // First parties of 30 rooms, each seated (welcomed) and waiting for its partner.
    let seated: Vec<(usize, Link)> = (0..30)
        .map(|r| {
            rt::block_on(async {
                let mut link = Link::connect(&front).await.unwrap();
                let hello = Frame::Hello {
                    version: PROTOCOL_VERSION,
                    room: Some(format!("kill-{r}")),
                };
                link.send(&hello).await.unwrap();
                let welcome = link.recv().await.unwrap();
                assert!(
                    matches!(welcome, Some(Frame::Welcome { .. })),
                    "{welcome:?}"
                );
                (r, link)
            })
        })
        .collect();
    let waiting: Vec<_> = seated
        .into_iter()
        .map(|(r, link)| rt::spawn(async move { (r, play_on(link, format!("First{r}")).await) }))
        .collect();
    let (victim, _) = cluster.instances.remove(0);
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &victim.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let down = cluster
        .haproxy
        .wait_for_stderr("a1 marked down", |l| l.contains("a1 is DOWN"));
    let marked_down = killed.elapsed();
    drop(down);
    let _ = victim.finish();
    // Second parties for every room; a new pair for each room whose first party was lost.
    let second: Vec<_> = (0..30)
        .map(|r| {
            let front = front.clone();
            rt::spawn(async move {
                let room = Some(format!("kill-{r}"));
                round(front, room, format!("Second{r}")).await
            })
        })
        .collect();
    let firsts = rt::block_on(futures::future::join_all(waiting));
    let lost: Vec<usize> = firsts
        .iter()
        .filter(|(_, o)| o.is_err())
        .map(|(r, _)| *r)
        .collect();
    for (_, outcome) in &firsts {
        if let Err(e) = outcome {
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
    // The rooms that lost their first party: a new one joins each, and they play.
    let replays: Vec<_> = lost
        .iter()
        .map(|&r| {
            let front = front.clone();
            rt::spawn(async move {
                let room = Some(format!("kill-{r}"));
                round(front, room, format!("Again{r}")).await
            })
        })
        .collect();
    let seconds = rt::block_on(futures::future::join_all(second));
    let replays = rt::block_on(futures::future::join_all(replays));
    println!(
        "killed one of 3 instances: HAProxy marked it down after {:.1} s; {} of 30 rooms lost \
         their waiting party (one line each); all 30 rooms then played on the live instances",
        marked_down.as_secs_f64(),
        lost.len()
    );
    assert!(!lost.is_empty() && lost.len() < 30, "{lost:?}");
    assert!(seconds.iter().all(Result::is_ok), "{seconds:?}");
    assert!(replays.iter().all(Result::is_ok), "{replays:?}");
    assert!(marked_down < Duration::from_secs(5), "{marked_down:?}");
    let _ = cluster.stop();
}

/// `arrival-bench` with `args`, its JSON report.
fn bench(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = Proc::spawn("bench", common::BENCH, &all).finish();
    assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
    serde_json::from_str(out.stdout.last().expect("a report")).unwrap()
}

/// The smallest gap (µs) at which every trial named the true first sender.
fn smallest_fair_gap(report: &serde_json::Value) -> Option<u64> {
    report["results"]
        .as_array()?
        .iter()
        .filter(|r| r["correct"] == r["trials"])
        .filter_map(|r| r["gap_us"].as_u64())
        .min()
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn fairness_through_the_balancer_against_direct() {
    if haproxy_missing() {
        return;
    }
    let gaps = "1000,100,50,20,10";
    let direct = bench(&["fairness", "--spawn-server", "-t", "1000", "--gaps", gaps]);
    let cluster = Cluster::start(3, &["--max-per-address", "0"]);
    let front = cluster.front.clone();
    let through = bench(&["fairness", "--addr", &front, "-t", "1000", "--gaps", gaps]);
    let _ = cluster.stop();
    println!(
        "fairness, 1000 trials a gap ({gaps} µs): every trial right down to {:?} µs direct, {:?} \
         µs through HAProxy",
        smallest_fair_gap(&direct),
        smallest_fair_gap(&through)
    );
    println!("direct: {direct}");
    println!("through HAProxy: {through}");
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn throughput_with_one_two_and_three_instances() {
    if haproxy_missing() {
        return;
    }
    let mut figures = Vec::new();
    for n in 1..=3 {
        let cluster = Cluster::start(n, &["--max-per-address", "0", "--quiet"]);
        let front = cluster.front.clone();
        let report = bench(&["rounds", "--addr", &front, "-c", "64", "-d", "5s"]);
        let _ = cluster.stop();
        let rate = report["rounds_per_s"].as_f64().unwrap_or(0.0);
        assert_eq!(report["errors"], serde_json::json!({}), "{report}");
        figures.push((n, rate));
    }
    let direct = bench(&["rounds", "--spawn-server", "-c", "64", "-d", "5s"]);
    println!(
        "rounds/s, concurrency 64, on this 2-core machine: direct {:.0}; through HAProxy with \
         {}",
        direct["rounds_per_s"].as_f64().unwrap_or(0.0),
        figures
            .iter()
            .map(|(n, r)| format!("{n} instance(s) {r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Browsers through the balancer: a room's WebSocket players (the room in the address, as the
/// pages give it) meet its terminal players on one instance.
#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn browsers_meet_their_rooms_terminal_players() {
    if haproxy_missing() {
        return;
    }
    let cluster = Cluster::start(3, &["--web", "on"]);
    let rooms: Vec<String> = (0..12).map(|i| format!("mixed-{i}")).collect();
    let mut met = 0;
    for room in &rooms {
        let mut web = common::ws::RawWs::connect_to(&cluster.front, &format!("/ws?room={room}"));
        web.send(&Frame::Join {
            version: PROTOCOL_VERSION,
            room: Some(room.clone()),
            name: "Web".into(),
        });
        assert!(matches!(web.recv(), Some(Frame::Welcome { .. })));
        let mut tcp = common::Raw::connect(&cluster.front);
        tcp.send(&Frame::Join {
            version: PROTOCOL_VERSION,
            room: Some(room.clone()),
            name: "Tcp".into(),
        });
        assert!(matches!(tcp.recv(), Some(Frame::Welcome { .. })));
        // The terminal player's own roster (a protocol-6 lineup) lists the browser: the same
        // session.
        loop {
            match tcp.recv() {
                Some(Frame::Lineup(r))
                    if r.change == arrival::protocol::Change::Joined { name: "Tcp".into() } =>
                {
                    let names: Vec<&str> = r.players.iter().map(|p| p.name.as_str()).collect();
                    assert_eq!(names, ["Web", "Tcp"], "room {room}");
                    met += 1;
                    break;
                }
                Some(_) => {}
                None => panic!("room {room}: closed"),
            }
        }
    }
    assert_eq!(met, rooms.len());
    // And the pages load through it.
    let page = common::ws::http(
        &cluster.front,
        b"GET /?room=quiz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(page.status, 200);
    println!("browsers and terminal players through HAProxy: {met} of 12 rooms met");
    cluster.stop();
}
