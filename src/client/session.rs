//! The quiz client (`arrival-client --stay`): joins a room's session (protocol 2) and plays its
//! rounds until the session is over.
//!
//! Owns the client side of a session: it answers every `Ping` at once (the server measures our
//! round trip with them), announces each `Go`, sends `Answer` when the user presses Enter (one
//! line of standard input per round; lines typed early answer the next round at once), and
//! prints each round's result and the final scores. When standard input ends the client stays
//! and stops answering. Everything the server sends is escaped before it reaches a terminal.

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};

use super::{connect, end_prompt, expect, reader_loop, send, unexpected, Config, Error, Incoming};
use crate::names;
use crate::protocol::{Frame, FrameReader, Score};
use crate::round::session::scores_text;
use crate::rt::{self, TcpStream};
use crate::transcript::Transcript;

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
        version: 2,
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
        eprintln!("Waiting for the next round...");
    }
    let mut lines = rt::stdin_lines();
    let mut stdin_open = true;
    // The round we have been told to answer and have not yet.
    let mut pending: Option<u64> = None;
    loop {
        let typed = if pending.is_some() && stdin_open {
            lines.next().fuse()
        } else {
            futures::future::Fuse::terminated()
        };
        futures::pin_mut!(typed);
        futures::select_biased! {
            frame = incoming.next() => match frame {
                Some(Ok(Frame::Ping { seq })) => send(stream, Frame::Pong { seq }).await?,
                Some(Ok(Frame::Go { round })) => {
                    transcript.line(format!("Round {round}: go!"));
                    if prompt {
                        eprint!("Press Enter to answer: ");
                    }
                    pending = Some(round);
                }
                Some(Ok(Frame::Result(r))) => {
                    if pending.take().is_some() {
                        end_prompt(prompt);
                    }
                    transcript.line(names::printable(&r.text));
                    let scores: Vec<String> =
                        r.scores.iter().map(|s| format!("{} {}", s.name, s.points)).collect();
                    transcript.line(names::printable(&format!("Scores: {}", scores.join(", "))));
                }
                Some(Ok(Frame::SessionOver { scores })) => {
                    transcript.line(names::printable(&scores_text(&scores)));
                    return Ok(scores);
                }
                Some(Ok(Frame::Error { kind, message })) => {
                    end_prompt(prompt && pending.is_some());
                    return Err(Error::Refused { kind, message });
                }
                Some(Ok(other)) => return Err(unexpected(&other, "a session frame")),
                Some(Err(why)) => return Err(Error::Lost(why)),
                None => return Err(Error::Lost("the server closed the connection".into())),
            },
            line = typed => match line {
                Some(Ok(_)) => {
                    send(stream, Frame::Answer).await?;
                    pending = None;
                }
                // End of input: stay for the results, answer no more.
                _ => stdin_open = false,
            },
        }
    }
}
