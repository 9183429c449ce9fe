//! The quiz client (`arrival-client --stay`): joins a room's session (protocol 4) and plays its
//! rounds until the session is over.
//!
//! Owns the client side of a session: it answers every `Ping` at once (the server measures our
//! round trip with them), says who is in the room and who joins and leaves (from the server's
//! `Roster`), announces each `Go` with the time there is to answer, sends `Answer` when the user
//! presses Enter, and prints each round's result, what it means for this player, and, at the
//! end, why the session ended and the final scores. A press
//! before "go!" is shown is sent as the early buzz it is, and the client says so: the server
//! locks the player out of the next round (holding Enter never wins). A second press in a round
//! already answered is not sent. When standard input ends the client stays and stops answering.
//! Everything the server sends is escaped before it reaches a terminal.

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};

use super::{connect, end_prompt, expect, reader_loop, send, unexpected, Config, Error, Incoming};
use crate::names;
use crate::protocol::{
    Change, Frame, FrameReader, Placing, Roster, RttSource, Score, Standing, PROTOCOL_VERSION,
};
use crate::rt::{self, TcpStream};
use crate::session::{over_text, scores_text};
use crate::transcript::Transcript;

/// Where the player is in the current round, as far as its presses go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buzzer {
    /// No round open for us: a press is an early buzz.
    Closed,
    /// "go!" was shown for this round: a press answers it.
    Open(u64),
    /// This round is answered: a press is not sent.
    Answered(u64),
    /// Locked out of this round: a press would only lock us out of the next one, so it is not
    /// sent.
    Locked(u64),
}

/// Plays a session as `name` in `config.room`; returns the final scores.
pub async fn run(
    config: &Config,
    name: String,
    transcript: &Transcript,
) -> Result<Vec<Score>, Error> {
    names::validate(&name).map_err(Error::InvalidName)?;
    let stream = connect(config).await?;
    let _ = stream.set_nodelay(true);
    let (tx, mut incoming) = mpsc::channel(16);
    let reader = rt::spawn(reader_loop(FrameReader::new(stream.clone()), tx));
    let result = play(config, name, transcript, &stream, &mut incoming).await;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(incoming);
    reader.await;
    result
}

async fn play(
    config: &Config,
    name: String,
    transcript: &Transcript,
    stream: &TcpStream,
    incoming: &mut Incoming,
) -> Result<Vec<Score>, Error> {
    let join = Frame::Join {
        version: PROTOCOL_VERSION,
        room: config.room.clone(),
        name: name.clone(),
    };
    send(stream, join).await?;
    match rt::timeout(config.connect_timeout, expect(incoming)).await {
        None => return Err(Error::Lost("the server did not answer the Join".into())),
        Some(Ok(Frame::Welcome { .. })) => {}
        Some(Ok(other)) => return Err(unexpected(&other, "Welcome")),
        Some(Err(e)) => return Err(e),
    }
    let room = config.room.as_deref().unwrap_or("(anonymous)");
    transcript.line(format!("Joined the quiz in room {room} as {name}"));
    let prompt = config.interactive;
    if prompt {
        eprintln!("Waiting for the next round... (press Enter only after \"go!\")");
    }
    let mut lines = rt::stdin_lines();
    let mut stdin_open = true;
    let mut buzzer = Buzzer::Closed;
    // The round the server said we are locked out of.
    let mut locked: Option<u64> = None;
    // The time each round gives to answer, and our round trip, as the last roster said.
    let mut answer_micros: Option<u64> = None;
    let mut rtt_shown = false;
    loop {
        let typed = if stdin_open {
            lines.next().fuse()
        } else {
            futures::future::Fuse::terminated()
        };
        futures::pin_mut!(typed);
        futures::select_biased! {
            frame = incoming.next() => match frame {
                Some(Ok(Frame::Ping { seq })) => send(stream, Frame::Pong { seq }).await?,
                Some(Ok(Frame::Go { round })) if locked == Some(round) => {
                    transcript.line(format!("Round {round}: go! (you are locked out of it)"));
                    buzzer = Buzzer::Locked(round);
                }
                Some(Ok(Frame::Go { round })) => {
                    match answer_micros {
                        Some(us) => transcript.line(format!(
                            "Round {round}: go! ({} s to answer)",
                            seconds(us)
                        )),
                        None => transcript.line(format!("Round {round}: go!")),
                    }
                    if prompt {
                        eprint!("Press Enter to answer: ");
                    }
                    buzzer = Buzzer::Open(round);
                }
                Some(Ok(Frame::Early { round })) => {
                    transcript.line(format!("Too early: locked out of round {round}"));
                    locked = Some(round);
                }
                Some(Ok(Frame::Outcome(r))) => {
                    end_prompt(prompt && matches!(buzzer, Buzzer::Open(_)));
                    buzzer = Buzzer::Closed;
                    transcript.line(names::printable(&r.text));
                    if let Some(me) = r.order.iter().find(|p| p.name == name) {
                        transcript.line(names::printable(&standing_line(r.round, me)));
                    }
                    transcript.line(names::printable(&scores_line(&r.scores)));
                }
                // A version-2 server: the result without standings.
                Some(Ok(Frame::Result(r))) => {
                    end_prompt(prompt && matches!(buzzer, Buzzer::Open(_)));
                    buzzer = Buzzer::Closed;
                    transcript.line(names::printable(&r.text));
                    transcript.line(names::printable(&scores_line(&r.scores)));
                }
                Some(Ok(Frame::Roster(roster))) => {
                    answer_micros = Some(roster.answer_micros);
                    for line in roster_lines(&roster, &name, &mut rtt_shown) {
                        transcript.line(names::printable(&line));
                    }
                }
                Some(Ok(Frame::Over { why, rounds, scores })) => {
                    end_prompt(prompt && matches!(buzzer, Buzzer::Open(_)));
                    transcript.line(names::printable(&over_text(why, rounds, &scores)));
                    return Ok(scores);
                }
                Some(Ok(Frame::SessionOver { scores })) => {
                    transcript.line(names::printable(&scores_text(&scores)));
                    return Ok(scores);
                }
                Some(Ok(Frame::Error { kind, message })) => {
                    end_prompt(prompt && matches!(buzzer, Buzzer::Open(_)));
                    return Err(Error::Refused { kind, message });
                }
                Some(Ok(other)) => return Err(unexpected(&other, "a session frame")),
                Some(Err(why)) => return Err(Error::Lost(why)),
                None => return Err(Error::Lost("the server closed the connection".into())),
            },
            line = typed => match line {
                Some(Ok(_)) => match buzzer {
                    Buzzer::Open(round) => {
                        send(stream, Frame::Answer).await?;
                        buzzer = Buzzer::Answered(round);
                    }
                    Buzzer::Closed => {
                        // Sent, not hidden: the server's rules, not this client, decide what an
                        // early press costs, and a modified client could not hide it anyway.
                        send(stream, Frame::Answer).await?;
                        transcript.line("Pressed before go!");
                    }
                    Buzzer::Answered(round) => {
                        log::info!("a second press in round {round}, not sent");
                    }
                    Buzzer::Locked(round) => {
                        transcript.line(format!("Locked out of round {round}: press not sent"));
                    }
                },
                // End of input: stay for the results, answer no more.
                _ => stdin_open = false,
            },
        }
    }
}

/// `Scores: Ann 2, Ben 1`.
fn scores_line(scores: &[Score]) -> String {
    let scores: Vec<String> = scores
        .iter()
        .map(|s| format!("{} {}", s.name, s.points))
        .collect();
    format!("Scores: {}", scores.join(", "))
}

/// What a round's result means for this player, in plain words.
fn standing_line(round: u64, me: &Placing) -> String {
    let ms = |us: i64| format!("{:.1} ms", us as f64 / 1000.0);
    let rtt = match (me.rtt_micros, me.rtt_source) {
        (Some(r), RttSource::Kernel) => {
            format!("round trip {}, checked by the kernel", rtt_ms(r))
        }
        (Some(r), _) => format!("round trip {}, from pings", rtt_ms(r)),
        (None, _) => "no round trip measured yet".to_owned(),
    };
    let reaction = me
        .reaction_micros
        .map(ms)
        .or(me.after_go_micros.map(|a| ms(a as i64)));
    match me.standing {
        Standing::Answered => format!("You: answered in {} ({rtt})", reaction.unwrap_or_default()),
        Standing::FalseStart => format!(
            "You: false start in round {round}: {} is quicker than anyone reacts ({rtt}); no point",
            reaction.unwrap_or_default()
        ),
        Standing::Early => format!("You: too early: locked out of round {round}"),
        Standing::LockedOut => {
            format!("You: locked out of round {round} for pressing during the round before")
        }
        Standing::NoAnswer => format!("You: you did not answer round {round} in time"),
        Standing::Left => format!("You: left during round {round}"),
    }
}

/// A round trip in milliseconds: loopback and LAN ones are tens of microseconds, so two
/// decimals below 1 ms.
fn rtt_ms(micros: u64) -> String {
    let ms = micros as f64 / 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// `10` or `2.5`: seconds, as a time to answer is said.
fn seconds(micros: u64) -> String {
    let s = micros as f64 / 1e6;
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// `2 of 3 needed players`, or `4 players` once there are enough.
fn head_count(roster: &Roster) -> String {
    let (n, needed) = (roster.players.len(), roster.needed as usize);
    match (n < needed, n) {
        (true, _) => format!("{n} of {needed} needed players"),
        (false, 1) => "1 player".to_owned(),
        (false, n) => format!("{n} players"),
    }
}

/// What a roster tells this player, in lines: who joined or left, who is in the room when it
/// joins, when it plays from, its round trip the first time it is known.
fn roster_lines(roster: &Roster, me: &str, rtt_shown: &mut bool) -> Vec<String> {
    let mut lines = Vec::new();
    match &roster.change {
        Change::Joined { name } if name == me => {
            let names: Vec<&str> = roster.players.iter().map(|p| p.name.as_str()).collect();
            lines.push(format!(
                "In the room: {} ({})",
                names.join(", "),
                head_count(roster)
            ));
            if roster.hosted {
                lines.push("A host opens each round.".to_owned());
            }
            let from = roster.players.iter().find(|p| p.name == me);
            if let Some(from) = from.filter(|_| roster.open).map(|p| p.from_round) {
                lines.push(format!(
                    "Round {} is under way: you play from round {from}",
                    roster.round
                ));
            }
        }
        Change::Joined { name } => lines.push(format!("{name} joined ({})", head_count(roster))),
        Change::Left { name, round: 0 } => {
            lines.push(format!("{name} left ({})", head_count(roster)))
        }
        Change::Left { name, round } => lines.push(format!(
            "{name} left during round {round} ({})",
            head_count(roster)
        )),
        Change::HostJoined => lines.push("The host is here: the host opens each round.".into()),
        Change::HostLeft => lines.push("The host left: rounds wait for the host.".into()),
        Change::Ready { round } => {
            lines.push(format!("Round {round}: get ready (measuring round trips)"))
        }
        Change::Update => {}
    }
    if !*rtt_shown {
        let mine = roster.players.iter().find(|p| p.name == me);
        if let Some((us, source)) = mine.and_then(|p| Some((p.rtt_micros?, p.rtt_source))) {
            let how = match source {
                RttSource::Kernel => "checked by the kernel",
                _ => "from pings",
            };
            lines.push(format!("Your round trip: {} ({how})", rtt_ms(us)));
            *rtt_shown = true;
        }
    }
    lines
}
