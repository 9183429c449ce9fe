//! `arrival-client`: parse arguments, run one exchange or a quiz session, turn the outcome into
//! an exit status and a one-line message. What the arguments mean is `arrival::client::args`;
//! every behaviour is in the library (`arrival::client`).

use std::io::IsTerminal;
use std::process::exit;

use arrival::cli::{flush_logging, init_logging, parse_args};
use arrival::client::{self, ClientArgs, Plan};
use arrival::server::Wire;
use arrival::transcript::Transcript;

fn main() {
    let args: ClientArgs = parse_args();
    init_logging(args.verbose);
    let plan = match args.plan(std::io::stdin().is_terminal()) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("arrival-client: {e}");
            exit(2);
        }
    };
    let transcript = Transcript::Stdout;
    let code = arrival::rt::block_on(async {
        match plan {
            Plan::Session { config, name, team } => {
                status(client::session::run(&config, name, team, &transcript).await)
            }
            Plan::Exchange {
                config,
                wire: Wire::Framed,
                source,
                ..
            } => status(client::run(&config, source, &transcript).await),
            Plan::Exchange {
                config,
                wire: Wire::Text,
                label,
                source,
            } => status(client::text::run(&config, label, source, &transcript).await),
        }
    });
    flush_logging();
    exit(code);
}

fn status<T>(result: Result<T, client::Error>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("arrival-client: {e}");
            e.exit_code()
        }
    }
}
