//! `arrival-server`: parse arguments, set up logging and signals, bind, run, turn the outcome into
//! an exit status. Every decision lives in the library (`arrival::service`, `arrival::server`).

use std::process::exit;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use arrival::cli::{flush_logging, init_logging, parse_args, raise_open_files};
use arrival::server;
use arrival::service::{signal_name, ServerArgs, Service, EXIT_CANNOT_START, EXIT_USAGE};
use arrival::transcript::Transcript;
use futures::channel::oneshot;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

/// The signal that stopped us, if any: 0 until one arrives.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// A repeat of the first signal within this window is the same request: `timeout`, shells and
/// supervisors signal both the process and its process group, so one stop can arrive twice.
const REPEAT_WINDOW: Duration = Duration::from_millis(200);

/// A future that resolves on the first SIGINT/SIGTERM; a further signal (other than a repeat of
/// the first within [`REPEAT_WINDOW`]) exits at once.
fn shutdown_on_signals(
    stop_is_normal: bool,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let (tx, rx) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut first: Option<(i32, Instant)> = None;
        for signal in signals.forever() {
            match first {
                None => {
                    first = Some((signal, Instant::now()));
                    SIGNAL.store(signal, Ordering::SeqCst);
                    eprintln!(
                        "arrival-server: {}, shutting down (send it again to exit at once)",
                        signal_name(signal)
                    );
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                Some((s, at)) if s == signal && at.elapsed() < REPEAT_WINDOW => {
                    log::info!(
                        "{} again within {REPEAT_WINDOW:?}: the same request",
                        signal_name(signal)
                    );
                }
                Some(_) => {
                    eprintln!("arrival-server: second signal, exiting now");
                    arrival::transcript::flush_queued(Duration::from_millis(200));
                    flush_logging();
                    // The status the graceful stop would have given: 0 where stopping is the
                    // normal end (--rounds 0, echo), 128 + the first signal otherwise.
                    let first = SIGNAL.load(Ordering::SeqCst);
                    exit(if stop_is_normal { 0 } else { 128 + first });
                }
            }
        }
    });
    Ok(async move {
        let _ = rx.await;
    })
}

/// The players' and the host's links, on the transcript. A drawn key is known only from the
/// host link: shown on a terminal, never written to a log or a file standing in for one.
fn print_links(service: &Service, addr: std::net::SocketAddr, transcript: &Transcript) {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let key = (service.host_key_drawn && terminal).then_some(&*service.host_key);
    if service.host_key_drawn && !terminal {
        eprintln!(
            "arrival-server: the host key was drawn at random and there is no terminal to show \
             it on: nobody can host; give one with --host-key-file or ARRIVAL_HOST_KEY"
        );
    }
    let public = service.public_url.as_ref().map(|u| u.base());
    let tls = service.config.tls.is_some();
    let links = arrival::web::links(addr, tls, public, &service.web_room, key, terminal);
    links.into_iter().for_each(|line| transcript.line(line));
}

/// Drains `server` on SIGUSR1: no new rooms, the running ones finish, then it stops (see
/// [`server::Drain`]); the upgrade procedure in deploy/README.md.
fn drain_on_signal(drain: server::Drain) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGUSR1])?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            eprintln!("arrival-server: SIGUSR1, draining: no new rooms; exits when the last ends");
            drain.start();
        }
    });
    Ok(())
}

fn main() {
    let args: ServerArgs = parse_args();
    // Through a writer thread: a reader that stops reading stdout must not stall the rounds.
    let service = match args.service(Transcript::StdoutQueued) {
        Ok(service) => service,
        Err(e) => {
            eprintln!("arrival-server: {e}");
            exit(EXIT_USAGE);
        }
    };
    arrival::rt::set_threads(Some(service.threads));
    init_logging(service.verbose);
    let transcript = service.config.transcript.clone();
    // On the executor, not the main thread: the accept loop then shares a thread with the
    // connections it starts instead of waking another one for each.
    let (code, last_line) = arrival::rt::block_on(arrival::rt::spawn(serve(service)));
    // Every round is over, so the summary may wait a little for room behind a slow stdout: here,
    // on the main thread, not on the executor.
    if let Some(line) = last_line {
        transcript.last_line(line, Duration::from_secs(1));
    }
    // The transcript's last lines, unless stdout is stuck (then they are lost, not waited for).
    arrival::transcript::flush_queued(Duration::from_secs(1));
    flush_logging();
    exit(code);
}

/// Descriptors the server keeps beside its connections (listener, logs, the runtime's own).
const OPEN_FILES_SPARE: u64 = 64;

/// The open-file limit asked for at start-up, when allowed: Linux's default ceiling.
const OPEN_FILES_WANTED: u64 = 1 << 20;

/// Runs the server; its exit status, and the summary line to print last.
async fn serve(service: Service) -> (i32, Option<String>) {
    let config = &service.config;
    // Every held connection is a descriptor: take all the system allows (a room of thousands
    // needs thousands), and say what that holds.
    let want = (config.max_connections as u64 + OPEN_FILES_SPARE).max(OPEN_FILES_WANTED);
    match raise_open_files(want) {
        Ok(got) if got < config.max_connections as u64 + OPEN_FILES_SPARE => log::warn!(
            "open-file limit is {got}: at most {} connections (players) can be held, fewer than \
             --max-connections {}",
            got.saturating_sub(OPEN_FILES_SPARE),
            config.max_connections
        ),
        Ok(got) => log::info!(
            "open-file limit is {got}: room for {} connections (players); --max-connections {}",
            got.saturating_sub(OPEN_FILES_SPARE),
            config.max_connections
        ),
        Err(e) => log::warn!("cannot read the open-file limit: {e}"),
    }
    let listener = match server::bind(&service.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("arrival-server: cannot listen on {}: {e}", service.addr);
            return (EXIT_CANNOT_START, None);
        }
    };
    let shutdown = match shutdown_on_signals(service.stop_is_normal()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("arrival-server: cannot install signal handlers: {e}");
            return (EXIT_CANNOT_START, None);
        }
    };
    // Before the first line: whoever reads it may drain the server at once.
    let mut server = server::Server::new(listener, service.config.clone());
    if let Some(addr) = &service.agent_addr {
        match server::bind(addr) {
            Ok(agent) => server = server.with_agent(agent),
            Err(e) => {
                eprintln!("arrival-server: cannot listen for agent checks on {addr}: {e}");
                return (EXIT_CANNOT_START, None);
            }
        }
    }
    if let Err(e) = drain_on_signal(server.drain()) {
        eprintln!("arrival-server: cannot install signal handlers: {e}");
        return (EXIT_CANNOT_START, None);
    }
    let transcript = config.transcript.clone();
    match server.local_addr() {
        Ok(addr) => {
            transcript.line(format!("arrival-server listening on {addr}"));
            if config.web {
                print_links(&service, addr, &transcript);
            }
        }
        Err(e) => {
            eprintln!("arrival-server: cannot read the bound address: {e}");
            return (EXIT_CANNOT_START, None);
        }
    }
    let summary = match server.run(shutdown).await {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("arrival-server: {e}");
            return (EXIT_CANNOT_START, None);
        }
    };
    let signal = Some(SIGNAL.load(Ordering::SeqCst)).filter(|&s| s != 0);
    let (code, message) = service.exit_status(&summary, signal);
    if let Some(message) = message {
        eprintln!("arrival-server: {message}");
    }
    (code, service.summary_line(&summary))
}
