//! What `arrival-client`'s arguments mean: which conversation to have (one exchange on either
//! wire, or a quiz session), with what settings, or the one-line usage error. The binary parses,
//! runs and exits; this decides, with unit tests. It must not connect to anything.

use std::time::Duration;

use structopt::StructOpt;

use super::shared::{Config, NameSource};
use crate::cli::parse_seconds;
use crate::wire::WireKind as Wire;

#[derive(Debug, StructOpt)]
#[structopt(
    name = "arrival-client",
    about = "Connects to an arrival server, sends one name, prints whose message arrived first.",
    after_help = "Durations take units (5s, 250ms, 2m) or bare seconds, at most one day. Exit \
                  statuses: 0 got the acknowledgment (or the session's final scores); 1 the server \
                  refused or aborted; 2 usage or an invalid name; 3 cannot connect, connection \
                  lost, or the server broke the protocol; 4 standard input ended before a name."
)]
pub struct ClientArgs {
    /// Server address
    #[structopt(long, default_value = "127.0.0.1:12000")]
    pub addr: String,
    /// The name to send; without it, one line is read from standard input once connected
    #[structopt(long)]
    pub name: Option<String>,
    /// Play in this room (parties naming the same room play together)
    #[structopt(long)]
    pub room: Option<String>,
    /// `framed` (arrival's protocol, PROTOCOL.md) or `text` (the assignment's raw text, for its
    /// servers)
    #[structopt(long, default_value = "framed")]
    pub wire: Wire,
    /// Text wire: play as this label without waiting for a greeting (for servers that expect
    /// the client to speak first)
    #[structopt(long)]
    pub label: Option<String>,
    /// Quiz: join the room's session and stay for its rounds (needs --name); press Enter to
    /// answer each round
    #[structopt(long)]
    pub stay: bool,
    /// Quiz: play for this team (with --stay); a wrong answer locks the whole team out of the
    /// question
    #[structopt(long)]
    pub team: Option<String>,
    /// Seconds to wait for the server's acknowledgment once our message is sent (it may be
    /// waiting for another party to type); 0 never gives up
    #[structopt(long, default_value = "120", parse(try_from_str = parse_seconds))]
    pub reply_timeout: Duration,
    /// Rounds to join again, by itself, when another party aborts ours (leaves before sending,
    /// or sends nothing in time); 0 never
    #[structopt(long, default_value = "3")]
    pub rejoins: u32,
    /// Seconds to wait for the connection and for the round to start (framed: the handshake;
    /// text: the greeting)
    #[structopt(long, default_value = "10", parse(try_from_str = parse_seconds))]
    pub connect_timeout: Duration,
    /// Log diagnostics to stderr, with timestamps: -v warnings, -vv info, -vvv debug
    #[structopt(short, long, parse(from_occurrences))]
    pub verbose: u8,
}

/// What the client is to do.
#[derive(Debug)]
pub enum Plan {
    /// One exchange on `wire` (the text wire may be given its `label`).
    Exchange {
        config: Config,
        wire: Wire,
        label: Option<String>,
        source: NameSource,
    },
    /// Join the room's quiz session as `name` (in `team`) and stay for its rounds.
    Session {
        config: Config,
        name: String,
        team: Option<String>,
    },
}

impl ClientArgs {
    /// The plan these arguments ask for; `interactive` says whether standard input is a
    /// terminal (then the name is prompted for). A one-line reason where they do not fit.
    pub fn plan(self, interactive: bool) -> Result<Plan, String> {
        if self.label.is_some() && self.wire != Wire::Text {
            return Err(
                "--label is for the text wire (--wire text); the framed protocol \
                        assigns labels"
                    .into(),
            );
        }
        if let Some(Err(e)) = self.label.as_deref().map(crate::names::validate) {
            return Err(format!("the label {e}"));
        }
        let config = Config {
            addr: self.addr,
            room: self.room,
            connect_timeout: self.connect_timeout,
            interactive,
            rejoins: self.rejoins,
            reply_timeout: Some(self.reply_timeout).filter(|t| !t.is_zero()),
        };
        if self.team.is_some() && !self.stay {
            return Err("--team is for the quiz (--stay)".into());
        }
        if !self.stay {
            let source = match self.name {
                Some(name) => NameSource::Given(name),
                None => NameSource::Stdin {
                    prompt: interactive,
                },
            };
            let (wire, label) = (self.wire, self.label);
            return Ok(Plan::Exchange {
                config,
                wire,
                label,
                source,
            });
        }
        match (self.wire, self.name) {
            (Wire::Text, _) => Err("--stay needs the framed wire (sessions are protocol 2)".into()),
            (_, None) => Err("--stay needs --name (the name to play the session under)".into()),
            (Wire::Framed, Some(name)) => Ok(Plan::Session {
                config,
                name,
                team: self.team,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(line: &[&str]) -> Result<Plan, String> {
        let all = std::iter::once("arrival-client").chain(line.iter().copied());
        ClientArgs::from_iter_safe(all).unwrap().plan(false)
    }

    #[test]
    fn the_arguments_choose_the_conversation() {
        assert!(matches!(
            plan(&["--name", "Ann"]),
            Ok(Plan::Exchange {
                wire: Wire::Framed,
                source: NameSource::Given(_),
                ..
            })
        ));
        assert!(matches!(
            plan(&[]),
            Ok(Plan::Exchange {
                source: NameSource::Stdin { prompt: false },
                ..
            })
        ));
        let Ok(Plan::Session { config, name, .. }) =
            plan(&["--stay", "--name", "Ann", "--room", "q"])
        else {
            panic!("a session")
        };
        assert_eq!((name.as_str(), config.room.as_deref()), ("Ann", Some("q")));
        let Ok(Plan::Exchange { config, .. }) = plan(&["--reply-timeout", "0"]) else {
            panic!("an exchange")
        };
        assert_eq!(config.reply_timeout, None, "0 never gives up");
    }

    #[test]
    fn arguments_that_do_not_fit_are_one_line_usage_errors() {
        for (line, error) in [
            (&["--label", "X"][..], "--label is for the text wire"),
            (&["--wire", "text", "--label", "a\u{7}"][..], "the label"),
            (
                &["--stay", "--wire", "text", "--name", "A"][..],
                "--stay needs the framed wire",
            ),
            (&["--stay"][..], "--stay needs --name"),
        ] {
            let e = plan(line).unwrap_err();
            assert!(e.starts_with(error), "{line:?}: {e}");
            assert!(!e.contains('\n'));
        }
    }
}
