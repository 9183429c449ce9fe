//! `arrival-client`: parse arguments, run one exchange, turn the outcome into an exit status and a
//! one-line message. All behaviour lives in the library (`arrival::client`).

use std::io::IsTerminal;
use std::process::exit;
use std::time::Duration;

use arrival::cli::{flush_logging, init_logging, parse_args, parse_seconds};
use arrival::client::{self, Config, NameSource};
use arrival::server::Wire;
use arrival::transcript::Transcript;
use structopt::StructOpt;

#[derive(Debug, StructOpt)]
#[structopt(
    name = "arrival-client",
    about = "Connects to an arrival server, sends one name, prints whose message arrived first.",
    after_help = "Durations take units (5s, 250ms, 2m) or bare seconds, at most one day. Exit \
                  statuses: 0 got the acknowledgment (or the session's final scores); 1 the server \
                  refused or aborted; 2 usage or an invalid name; 3 cannot connect, connection \
                  lost, or the server broke the protocol; 4 standard input ended before a name."
)]
struct Opt {
    /// Server address
    #[structopt(long, default_value = "127.0.0.1:12000")]
    addr: String,
    /// The name to send; without it, one line is read from standard input once connected
    #[structopt(long)]
    name: Option<String>,
    /// Play in this room (parties naming the same room play together)
    #[structopt(long)]
    room: Option<String>,
    /// `framed` (arrival's protocol, PROTOCOL.md) or `text` (the assignment's raw text, for its
    /// servers)
    #[structopt(long, default_value = "framed")]
    wire: Wire,
    /// Text wire: play as this label without waiting for a greeting (for servers that expect
    /// the client to speak first)
    #[structopt(long)]
    label: Option<String>,
    /// Quiz: join the room's session and stay for its rounds (needs --name); press Enter to
    /// answer each round
    #[structopt(long)]
    stay: bool,
    /// Seconds to wait for the server's acknowledgment once our message is sent (it may be
    /// waiting for another party to type); 0 never gives up
    #[structopt(long, default_value = "120", parse(try_from_str = parse_seconds))]
    reply_timeout: Duration,
    /// Rounds to join again, by itself, when another party aborts ours (leaves before sending,
    /// or sends nothing in time); 0 never
    #[structopt(long, default_value = "3")]
    rejoins: u32,
    /// Seconds to wait for the connection and for the round to start (framed: the handshake;
    /// text: the greeting)
    #[structopt(long, default_value = "10", parse(try_from_str = parse_seconds))]
    connect_timeout: Duration,
    /// Log diagnostics to stderr, with timestamps: -v warnings, -vv info, -vvv debug
    #[structopt(short, long, parse(from_occurrences))]
    verbose: u8,
}

fn main() {
    let opt: Opt = parse_args();
    init_logging(opt.verbose);
    if opt.label.is_some() && opt.wire != Wire::Text {
        eprintln!("arrival-client: --label is for the text wire (--wire text); the framed protocol assigns labels");
        exit(2);
    }
    if let Some(Err(e)) = opt.label.as_deref().map(arrival::names::validate) {
        eprintln!("arrival-client: the label {e}");
        exit(2);
    }
    let interactive = std::io::stdin().is_terminal();
    let config = Config {
        addr: opt.addr,
        room: opt.room,
        connect_timeout: opt.connect_timeout,
        interactive,
        rejoins: opt.rejoins,
        reply_timeout: Some(opt.reply_timeout).filter(|t| !t.is_zero()),
    };
    let source = match opt.name {
        Some(name) => NameSource::Given(name),
        None => NameSource::Stdin {
            prompt: interactive,
        },
    };
    let transcript = Transcript::Stdout;
    if opt.stay {
        let name = match source {
            NameSource::Given(name) => Some(name),
            NameSource::Stdin { .. } => None,
        };
        let code = match (opt.wire, name) {
            (Wire::Text, _) => {
                eprintln!("arrival-client: --stay needs the framed wire (sessions are protocol 2)");
                2
            }
            (_, None) => {
                eprintln!(
                    "arrival-client: --stay needs --name (the name to play the session under)"
                );
                2
            }
            (Wire::Framed, Some(name)) => status(arrival::rt::block_on(
                arrival::client::session::run(&config, name, &transcript),
            )),
        };
        flush_logging();
        exit(code);
    }
    let result = arrival::rt::block_on(async {
        match opt.wire {
            Wire::Framed => client::run(&config, source, &transcript).await,
            Wire::Text => arrival::client::text::run(&config, opt.label, source, &transcript).await,
        }
    });
    let code = status(result);
    flush_logging();
    exit(code);
}

/// The exit status for an outcome; an error is also said, in one line.
fn status<T>(result: Result<T, client::Error>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("arrival-client: {e}");
            e.exit_code()
        }
    }
}
