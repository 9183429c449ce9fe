//! The quiz client (`arrival-client --stay`): joins a room's session (protocol 3) and plays its
//! rounds until the session is over.
//!
//! Owns the client side of a session: it answers every `Ping` at once (the server measures our
//! round trip with them), announces each `Go`, sends `Answer` when the user presses Enter, and
//! prints each round's result, what it means for this player, and the final scores. A press
//! before "go!" is shown is sent as the early buzz it is, and the client says so: the server
//! locks the player out of the next round (holding Enter never wins). A second press in a round
//! already answered is not sent. When standard input ends the client stays and stops answering.
//! Everything the server sends is escaped before it reaches a terminal.

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};

use super::{connect, end_prompt, expect, reader_loop, send, unexpected, Config, Error, Incoming};
use crate::names;
use crate::protocol::{Frame, FrameReader, Placing, RttSource, Score, Standing, PROTOCOL_VERSION};
use crate::round::session::scores_text;
use crate::rt::{self, TcpStream};
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
                    transcript.line(format!("Round {round}: go!"));
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
            format!("round trip {}, checked by the kernel", ms(r as i64))
        }
        (Some(r), _) => format!("round trip {}, from pings", ms(r as i64)),
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
    }
}
