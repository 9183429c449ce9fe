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

/// Instances and the balancer nodes in front of them; all stopped on drop.
struct Cluster {
    /// Each instance (`None` while it is down) and its address.
    instances: Vec<(Option<Proc>, String)>,
    /// Each instance's agent port, and the arguments it was started with (to start it again).
    agents: Vec<u16>,
    args: Vec<String>,
    /// The first node, and any others; each node's front address and runtime API socket.
    haproxy: Proc,
    nodes: Vec<Proc>,
    front: String,
    fronts: Vec<String>,
    sockets: Vec<std::path::PathBuf>,
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

/// Starts an instance on `addr` (a free port if it ends in `:0`) answering agent checks on
/// `agent`, with `args`; returns it and its address.
fn instance(addr: &str, agent: u16, args: &[String]) -> (Proc, String) {
    let agent = format!("127.0.0.1:{agent}");
    let mut all: Vec<&str> = vec![
        "--rounds",
        "0",
        "--proxy-protocol",
        "127.0.0.1",
        "--agent-addr",
        &agent,
        "--addr",
        addr,
        "--web",
        "on",
        "--host-key",
        "cluster-tests-host-key",
    ];
    all.extend(args.iter().map(String::as_str));
    let mut proc = Proc::spawn("instance", common::SERVER, &all);
    let first = proc.next_line();
    let bound = first
        .strip_prefix("arrival-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    proc.next_line(); // the players' link
    proc.next_line(); // the host's link
    (proc, bound)
}

impl Cluster {
    /// `n` instances (with `extra` arguments each) behind one HAProxy node; returns once a
    /// client is welcomed through it.
    fn start(n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_nodes(n, extra, 1, &[])
    }

    /// As [`start`](Self::start), behind `nodes` balancer nodes (1 or 2) sharing their tables,
    /// with `env` besides the addresses in the balancers' environment.
    fn start_nodes(n: usize, extra: &[&str], nodes: usize, env: &[(&str, &str)]) -> Cluster {
        Cluster::start_edited(n, extra, nodes, env, |line| line.to_owned())
    }

    /// As [`start_nodes`](Self::start_nodes), each line of the shipped config passed through
    /// `edit` first.
    fn start_edited(
        n: usize,
        extra: &[&str],
        nodes: usize,
        env: &[(&str, &str)],
        edit: impl Fn(&str) -> String,
    ) -> Cluster {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let agents: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let instances: Vec<(Option<Proc>, String)> = agents
            .iter()
            .map(|&agent| {
                let (proc, addr) = instance("127.0.0.1:0", agent, &args);
                (Some(proc), addr)
            })
            .collect();
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
            .map(|l| format!("{}\n", edit(l)))
            .collect();
        let config_has_tls = config.contains(" ssl crt ");
        let dir = std::env::temp_dir().join(format!(
            "arrival-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let peers = [free_port(), free_port()];
        let env_extra = env;
        let mut procs = Vec::new();
        let (mut fronts, mut sockets) = (Vec::new(), Vec::new());
        for node in 1..=nodes {
            let front = format!("127.0.0.1:{}", free_port());
            let socket = dir.join(format!("lb{node}.sock"));
            let mut env: Vec<(String, String)> = vec![
                ("ARRIVAL_FRONT".into(), front.clone()),
                ("ARRIVAL_STATS".into(), socket.to_str().unwrap().into()),
                ("ARRIVAL_LOG".into(), "stdout".into()),
                // Every client here comes from loopback: the balancer's per-address limit has
                // a test of its own.
                ("ARRIVAL_MAX_PER_ADDRESS".into(), "100000".into()),
                ("ARRIVAL_NODE_1".into(), format!("127.0.0.1:{}", peers[0])),
                ("ARRIVAL_NODE_2".into(), format!("127.0.0.1:{}", peers[1])),
            ];
            env.extend(
                env_extra
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            for (i, (_, addr)) in instances.iter().enumerate() {
                env.push((format!("ARRIVAL_{}", i + 1), addr.clone()));
                env.push((format!("ARRIVAL_AGENT_{}", i + 1), agents[i].to_string()));
            }
            let name = format!("lb{node}");
            let args = ["-f", path.to_str().unwrap(), "-L", &name];
            procs.push(Proc::spawn_with(&name, "haproxy", &args, |c| {
                c.envs(env);
            }));
            fronts.push(front);
            sockets.push(socket);
        }
        let haproxy = procs.remove(0);
        let cluster = Cluster {
            instances,
            agents,
            args,
            haproxy,
            nodes: procs,
            front: fronts[0].clone(),
            fronts,
            sockets,
            _config: tempfile_path::Dir(dir),
        };
        // A front that ends TLS is waited for by its test, which has the certificate.
        if !config_has_tls {
            for front in &cluster.fronts {
                cluster.wait_welcomed(front, None);
            }
        }
        // Every node sees every instance up: a node that still counts one down hashes rooms
        // over the others, and two nodes would send a new room's parties apart.
        for node in 0..cluster.fronts.len() {
            for i in 1..=n {
                cluster.wait_server(node, &format!("a{i}"), "up", |f| f[5] == "2");
            }
        }
        cluster
    }

    /// Returns once a connection in a room is welcomed through `front` (whatever the parties).
    fn wait_welcomed(&self, front: &str, tls: Option<&std::sync::Arc<rustls::ClientConfig>>) {
        let until = Instant::now() + common::GUARD;
        loop {
            let welcomed = rt::block_on(async {
                let mut link = match tls {
                    Some(tls) => Link::connect_tls(front, tls.clone()).await.ok()?,
                    None => Link::connect(front).await.ok()?,
                };
                let hello = Frame::Hello {
                    version: PROTOCOL_VERSION,
                    room: Some("ready".into()),
                };
                link.send(&hello).await.ok()?;
                rt::timeout(Duration::from_secs(1), link.recv()).await
            });
            if matches!(welcomed, Some(Ok(Some(Frame::Welcome { .. })))) {
                return;
            }
            assert!(
                Instant::now() < until,
                "the cluster never welcomed a client"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A command to node `node`'s runtime API (0: the first); its answer.
    fn runtime(&self, node: usize, command: &str) -> String {
        use std::io::{Read, Write};
        let mut api = std::os::unix::net::UnixStream::connect(&self.sockets[node]).unwrap();
        api.set_read_timeout(Some(common::GUARD)).unwrap();
        api.write_all(format!("{command}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        api.read_to_string(&mut answer).unwrap();
        answer
    }

    /// Waits until node `node` sees server `server` (`a1`...) in `state` (HAProxy's
    /// `show servers state` operational state: 0 down, 2 up; admin state 0 ready, 8 drain).
    fn wait_server(&self, node: usize, server: &str, what: &str, check: impl Fn(&[&str]) -> bool) {
        let until = Instant::now() + common::GUARD;
        loop {
            // A node just started may not have made its socket yet.
            if !self.sockets[node].exists() {
                assert!(Instant::now() < until, "node {node} has no runtime socket");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let state = self.runtime(node, "show servers state arrival");
            let found = state.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(3) == Some(&server)).then(|| check(&f))
            });
            if found == Some(true) {
                return;
            }
            assert!(Instant::now() < until, "{server} never {what}: {state}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Instance `i`, running.
    fn instance(&mut self, i: usize) -> &mut Proc {
        self.instances[i].0.as_mut().expect("the instance runs")
    }

    /// Kills instance `i` (SIGKILL), as a crash would.
    fn kill(&mut self, i: usize) {
        let victim = self.instances[i].0.take().expect("the instance runs");
        let status = std::process::Command::new("kill")
            .args(["-KILL", &victim.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = victim.finish();
    }

    /// Starts instance `i` again, on the address it had.
    fn restart(&mut self, i: usize) {
        let addr = self.instances[i].1.clone();
        let (fresh, bound) = instance(&addr, self.agents[i], &self.args);
        assert_eq!(bound, addr);
        self.instances[i].0 = Some(fresh);
    }

    /// Stops everything; returns each instance's transcript.
    fn stop(self) -> (Vec<Vec<String>>, String) {
        let transcripts = self
            .instances
            .into_iter()
            .map(|(p, _)| match p {
                Some(p) => {
                    p.signal("TERM");
                    p.finish().stdout
                }
                None => Vec::new(),
            })
            .collect();
        for node in self.nodes {
            node.signal("TERM");
            let _ = node.finish();
        }
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
    let victim = cluster.instances[0].0.take().unwrap();
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
    let cluster = Cluster::start(3, &[]);
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

/// A framed connection straight to `addr` from `source`, opening with `bytes`.
fn raw_from(source: [u8; 4], addr: &str, bytes: &[u8]) -> TcpStream {
    use std::io::Write;
    let mut s = common::connect_from(source, addr);
    s.set_read_timeout(Some(common::GUARD)).unwrap();
    let _ = s.write_all(bytes);
    s
}

/// Everything `s` receives until the peer closes.
fn rest_of(mut s: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut got);
    got
}

fn hello_bytes(room: &str) -> Vec<u8> {
    arrival::protocol::encode(&Frame::Hello {
        version: PROTOCOL_VERSION,
        room: Some(room.into()),
    })
    .unwrap()
}

/// A first party waiting in `room`, seated through `front`: its link, once welcomed.
fn waiting_in(front: &str, room: &str) -> Result<Link, String> {
    rt::block_on(async {
        let mut link = Link::connect(front).await.map_err(|e| e.to_string())?;
        link.send(&Frame::Hello {
            version: PROTOCOL_VERSION,
            room: Some(room.into()),
        })
        .await
        .map_err(|e| e.to_string())?;
        match link.recv().await {
            Ok(Some(Frame::Welcome { .. })) => Ok(link),
            Ok(Some(Frame::Error { message, .. })) => Err(message),
            other => Err(format!("{other:?}")),
        }
    })
}

/// The instance (0-based) node 0's room table sends `room` to, if it has an entry.
fn stuck_to(cluster: &Cluster, room: &str) -> Option<usize> {
    let table = cluster.runtime(0, "show table arrival");
    let key = format!("key={room} ");
    table.lines().find(|l| l.contains(&key)).and_then(|l| {
        let id = l.split("server_id=").nth(1)?.split_whitespace().next()?;
        id.parse::<usize>().ok().map(|id| id - 1)
    })
}

/// Each waiting first party of `waiting` (its room, its link) plays on, and a second party of
/// its room joins through `front`: every outcome, firsts then seconds.
fn meet(waiting: Vec<(String, Link)>, front: &str) -> Vec<Result<(), String>> {
    let rooms: Vec<String> = waiting.iter().map(|(room, _)| room.clone()).collect();
    rt::block_on(async {
        let firsts: Vec<_> = waiting
            .into_iter()
            .map(|(room, link)| {
                rt::spawn(async move { play_on(link, format!("First-{room}")).await })
            })
            .collect();
        let seconds: Vec<_> = rooms
            .iter()
            .map(|room| rt::spawn(round(front.to_owned(), Some(room.clone()), "Second".into())))
            .collect();
        let mut all = futures::future::join_all(firsts).await;
        all.extend(futures::future::join_all(seconds).await);
        all
    })
}

/// Twenty new rooms named `prefix-N` through `front`: each welcomed (held until the end of the
/// caller's check) and on instance `on`. A full or draining instance would have refused one.
fn new_rooms_all_on(cluster: &Cluster, front: &str, prefix: &str, on: usize) -> Vec<Link> {
    let fresh: Vec<Result<Link, String>> = (0..20)
        .map(|r| waiting_in(front, &format!("{prefix}-{r}")))
        .collect();
    let refused: Vec<&String> = fresh.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert!((0..20).all(|r| stuck_to(cluster, &format!("{prefix}-{r}")) == Some(on)));
    fresh.into_iter().map(Result::unwrap).collect()
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn a_forged_header_straight_to_an_instance_is_refused() {
    if haproxy_missing() {
        return;
    }
    let mut cluster = Cluster::start(2, &["--max-per-address", "2", "-v"]);
    let instance = cluster.instances[0].1.clone();
    // One socket claiming other addresses, past the balancer: not a byte is read, none answered.
    for claimed in 1..=10u8 {
        use ppp::v2::{Builder, Command, IPv4, Protocol, Version};
        let addresses = IPv4::new([10, 0, 0, claimed], [127, 0, 0, 1], 4000, 12000);
        let mut bytes =
            Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses)
                .build()
                .unwrap();
        bytes.extend(hello_bytes("forged"));
        let answer = rest_of(raw_from([127, 0, 0, 2], &instance, &bytes));
        assert!(answer.is_empty(), "answered {answer:?}");
    }
    let refused = cluster
        .instance(0)
        .wait_for_stderr("the refusal's log line", |l| {
            l.contains("127.0.0.2") && l.contains("refused: not a trusted proxy")
        });
    // Through the balancer, the same address plays.
    let link = waiting_in(&cluster.front, "forged");
    assert!(link.is_ok(), "{:?}", link.err());
    println!("10 forged headers straight to an instance: none answered; logged: {refused}");
    let _ = cluster.stop();
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn a_full_instance_stays_up_and_gets_no_new_room() {
    if haproxy_missing() {
        return;
    }
    let cluster = Cluster::start(2, &["--max-connections", "30", "--max-per-address", "0"]);
    let front = cluster.front.clone();
    // Rooms until instance a1 holds its 30 connections (its agent says so).
    let agent = |i: usize| {
        let s = TcpStream::connect(("127.0.0.1", cluster.agents[i])).unwrap();
        s.set_read_timeout(Some(common::GUARD)).unwrap();
        String::from_utf8(rest_of(s)).unwrap()
    };
    let mut held = Vec::new();
    for r in 0.. {
        if agent(0) == "ready up 0%\n" {
            break;
        }
        assert!(r < 200, "a1 never filled");
        let room = format!("full-{r}");
        // Kept only on a1: a2 must keep room for the new rooms.
        if let Ok(link) = waiting_in(&front, &room) {
            if stuck_to(&cluster, &room) == Some(0) {
                held.push(link);
            }
        }
    }
    cluster.wait_server(0, "a1", "weighed 0", |f| f[7] == "0");
    // Two more checks a second apart: full, it is still up.
    std::thread::sleep(Duration::from_millis(2500));
    cluster.wait_server(0, "a1", "up", |f| f[5] == "2");
    // Twenty new rooms: every one welcomed, so none went to the full instance (which would
    // have refused it, Busy).
    let _fresh = new_rooms_all_on(&cluster, &front, "fresh", 1);
    println!(
        "a1 full ({} rooms held, agent 'ready up 0%'): still UP; 20 new rooms all went to a2",
        held.len()
    );
    drop(held);
    let _ = cluster.stop();
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn a_first_frame_later_than_the_deadline_is_refused_not_placed_at_random() {
    if haproxy_missing() {
        return;
    }
    let cluster = Cluster::start_nodes(
        3,
        &["--handshake-timeout", "2"],
        1,
        &[("ARRIVAL_HANDSHAKE", "2s")],
    );
    let late: Vec<_> = (0..12)
        .map(|r| {
            let front = cluster.front.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut s = TcpStream::connect(&front).unwrap();
                s.set_read_timeout(Some(common::GUARD)).unwrap();
                // Past the balancer's deadline: the client's own pacing.
                std::thread::sleep(Duration::from_millis(2500));
                let _ = s.write_all(&hello_bytes(&format!("late-{r}")));
                rest_of(s)
            })
        })
        .collect();
    let answers: Vec<Vec<u8>> = late.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().all(Vec::is_empty), "{answers:?}");
    let (transcripts, _) = cluster.stop();
    assert!(
        transcripts.iter().flatten().all(|l| !l.contains("late-")),
        "a late client reached an instance"
    );
    println!("12 clients naming their room after the 2 s deadline: all refused by the balancer, none placed");
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn a_returning_instance_takes_back_no_running_room() {
    if haproxy_missing() {
        return;
    }
    let mut cluster = Cluster::start(2, &["--max-per-address", "0"]);
    let front = cluster.front.clone();
    let rooms: Vec<String> = (0..20).map(|r| format!("stay-{r}")).collect();
    // Rooms the first instance held, for rooms played after it died and came back.
    let on_a1: Vec<&String> = rooms
        .iter()
        .filter(|room| {
            let _ = waiting_in(&front, room);
            stuck_to(&cluster, room) == Some(0)
        })
        .collect();
    assert!(!on_a1.is_empty());
    cluster.kill(0);
    cluster.wait_server(0, "a1", "down", |f| f[5] == "0");
    // Its rooms start again elsewhere: a first party each, waiting.
    let waiting: Vec<(String, Link)> = on_a1
        .iter()
        .map(|room| (room.to_string(), waiting_in(&front, room).unwrap()))
        .collect();
    assert!(on_a1.iter().all(|room| stuck_to(&cluster, room) == Some(1)));
    // The instance returns, on its address.
    cluster.restart(0);
    cluster.wait_server(0, "a1", "up", |f| f[5] == "2");
    // Each room's second party meets its first: the room stayed where it was running.
    let outcomes = meet(waiting, &front);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    println!(
        "{} rooms restarted on a2 while a1 was down: after a1 came back, every one still met on a2",
        on_a1.len()
    );
    let _ = cluster.stop();
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn a_drained_instance_finishes_its_rooms_takes_no_new_one_and_exits() {
    if haproxy_missing() {
        return;
    }
    let mut cluster = Cluster::start(2, &["--max-per-address", "0"]);
    let front = cluster.front.clone();
    // First parties of rooms, until a few wait on a1.
    let mut on_a1 = Vec::new();
    for r in 0..40 {
        let room = format!("drain-{r}");
        let link = waiting_in(&front, &room).unwrap();
        if stuck_to(&cluster, &room) == Some(0) {
            on_a1.push((room, link));
        }
    }
    assert!(on_a1.len() >= 3, "{}", on_a1.len());
    // The upgrade's first step: SIGUSR1 to a1, and HAProxy sees it drain through its agent.
    cluster.instance(0).signal("USR1");
    cluster.wait_server(0, "a1", "drained", |f| {
        f[6].parse::<u32>().is_ok_and(|admin| admin & 8 != 0)
    });
    // New rooms: every one welcomed on a2 (a1 would refuse it, Busy, draining).
    let fresh = new_rooms_all_on(&cluster, &front, "after", 1);
    // a1's rooms are finished there: their second parties still reach it.
    let finished = on_a1.len();
    let outcomes = meet(on_a1, &front);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // Then it exits by itself, 0.
    let drained = cluster.instances[0].0.take().unwrap().finish();
    assert_eq!(drained.code, Some(0), "{drained:?}");
    assert!(
        drained.stderr.contains("SIGUSR1, draining"),
        "{}",
        drained.stderr
    );
    println!(
        "a1 drained (SIGUSR1): its {finished} waiting rooms finished there, 20 new rooms went to a2, then it exited 0"
    );
    drop(fresh);
    let _ = cluster.stop();
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn an_address_over_its_limit_across_instances_is_refused_at_the_balancer() {
    if haproxy_missing() {
        return;
    }
    let cluster = Cluster::start_nodes(
        3,
        &["--max-per-address", "2"],
        1,
        &[("ARRIVAL_MAX_PER_ADDRESS", "3")],
    );
    let front = cluster.front.clone();
    // One room on each instance (learnt with another address's connections).
    let mut rooms: BTreeMap<usize, String> = BTreeMap::new();
    for r in 0..100 {
        let room = format!("spread-{r}");
        drop(waiting_in(&front, &room));
        if let Some(i) = stuck_to(&cluster, &room) {
            rooms.entry(i).or_insert(room);
        }
        if rooms.len() == 3 {
            break;
        }
    }
    assert_eq!(rooms.len(), 3, "{rooms:?}");
    // One connection from 127.0.0.2 on each: no instance's own limit (2) is reached.
    let mut held = Vec::new();
    for room in rooms.values() {
        let mut link = from([127, 0, 0, 2], &front, room);
        assert!(matches!(
            rt::block_on(link.recv()),
            Ok(Some(Frame::Welcome { .. }))
        ));
        held.push(link);
    }
    // The fourth from the address: refused by the balancer, whatever its room.
    // Reset at once: the Hello may not even be written.
    let fourth = raw_from([127, 0, 0, 2], &front, &hello_bytes(&rooms[&0]));
    assert!(rest_of(fourth).is_empty(), "a fourth connection was let in");
    let mut other = from([127, 0, 0, 3], &front, "spread-9");
    assert!(matches!(
        rt::block_on(other.recv()),
        Ok(Some(Frame::Welcome { .. }))
    ));
    println!(
        "127.0.0.2 held 3 connections, one on each instance (each allowing it 2), and was \
         refused a fourth at the balancer (ARRIVAL_MAX_PER_ADDRESS 3); 127.0.0.3 was let in"
    );
    drop(held);
    let _ = cluster.stop();
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn two_balancer_nodes_route_a_room_alike() {
    if haproxy_missing() {
        return;
    }
    let mut cluster = Cluster::start_nodes(3, &["--max-per-address", "0"], 2, &[]);
    let (lb1, lb2) = (cluster.fronts[0].clone(), cluster.fronts[1].clone());
    // Each room's first party through one node, its second through the other.
    let rooms: Vec<String> = (0..30).map(|r| format!("nodes-{r}")).collect();
    let played = |rooms: &[String]| -> Vec<Result<(), String>> {
        rt::block_on(async {
            let mut tasks = Vec::new();
            for room in rooms {
                tasks.push(rt::spawn(round(
                    lb1.clone(),
                    Some(room.clone()),
                    "ViaOne".into(),
                )));
                tasks.push(rt::spawn(round(
                    lb2.clone(),
                    Some(room.clone()),
                    "ViaTwo".into(),
                )));
            }
            futures::future::join_all(tasks).await
        })
    };
    let outcomes = played(&rooms);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // After an instance dies and its rooms move, both nodes still agree: the table is shared.
    let moved: Vec<String> = rooms
        .iter()
        .filter(|room| stuck_to(&cluster, room) == Some(0))
        .cloned()
        .collect();
    cluster.kill(0);
    cluster.wait_server(0, "a1", "down", |f| f[5] == "0");
    cluster.wait_server(1, "a1", "down", |f| f[5] == "0");
    let first: Vec<(String, Link)> = moved
        .iter()
        .map(|room| (room.clone(), waiting_in(&lb1, room).unwrap()))
        .collect();
    cluster.restart(0);
    cluster.wait_server(1, "a1", "up", |f| f[5] == "2");
    let outcomes = meet(first, &lb2);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    println!(
        "30 rooms, each party through a different node: all met; {} rooms moved while an \
         instance was down, and after it came back both nodes still sent them to where they moved",
        moved.len()
    );
    let _ = cluster.stop();
}

#[test]
#[ignore = "needs HAProxy: make cluster-test"]
fn throughput_with_tls_on_arrival_and_at_the_balancer() {
    if haproxy_missing() {
        return;
    }
    // A certificate for 127.0.0.1, made here: arrival's own TLS, HAProxy's, and what the bench
    // trusts.
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("arrival-cluster-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = tempfile_path::Dir(dir.clone());
    let (cert, key, both) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("both.pem"),
    );
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    std::fs::write(&both, made.cert.pem() + &made.key_pair.serialize_pem()).unwrap();
    let (cert, key, both) = (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
        both.to_str().unwrap().to_owned(),
    );
    let rounds = |addr: &str, tls: bool| {
        let mut args = vec!["rounds", "--addr", addr, "-c", "64", "-d", "5s"];
        if tls {
            args.extend(["--tls-ca", cert.as_str()]);
        }
        let report = bench(&args);
        assert_eq!(report["errors"], serde_json::json!({}), "{report}");
        report["rounds_per_s"].as_f64().unwrap_or(0.0)
    };
    let plain_args = ["--rounds", "0", "--quiet", "--max-per-address", "0"];
    let (direct_plain, direct_tls) = {
        let mut args = plain_args.to_vec();
        args.extend(["--tls-cert", cert.as_str(), "--tls-key", key.as_str()]);
        let (srv, addr) = common::server(&args);
        let figures = (rounds(&addr, false), rounds(&addr, true));
        srv.signal("TERM");
        let _ = srv.finish();
        figures
    };
    let cluster = Cluster::start(1, &["--max-per-address", "0", "--quiet"]);
    let balancer_plain = rounds(&cluster.front.clone(), false);
    let _ = cluster.stop();
    let cluster = Cluster::start_edited(1, &["--max-per-address", "0", "--quiet"], 1, &[], |l| {
        if l.trim_start().starts_with("bind ") {
            format!("{l} ssl crt {both}")
        } else {
            l.to_owned()
        }
    });
    let trust = arrival::client::secure::client_config(std::path::Path::new(&cert)).unwrap();
    cluster.wait_welcomed(&cluster.front, Some(&trust));
    let balancer_tls = rounds(&cluster.front.clone(), true);
    let _ = cluster.stop();
    println!(
        "rounds/s, concurrency 64, one run on this 2-core machine: direct {direct_plain:.0}, \
         direct over arrival's TLS {direct_tls:.0}; through HAProxy (one instance) \
         {balancer_plain:.0}, with TLS ended at HAProxy {balancer_tls:.0}"
    );
    assert!(direct_tls > 0.0 && balancer_tls > 0.0);
}
