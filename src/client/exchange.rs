//! The framed client's one exchange: handshake, barrier, the name, the verdict, and the chat
//! that may follow; and the rejoins after a round another party aborted.

use std::io;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};

use super::shared::{
    end_prompt, expect, reader_loop, send, start, take_name, unexpected, Config, Error, Incoming,
    NameSource, Verdict,
};
use super::text;
use crate::names;
use crate::protocol::{Arrival, ErrorKind, Frame, FrameReader, PROTOCOL_VERSION};
use crate::rt::{self, TcpStream};
use crate::transcript::Transcript;

/// Plays one exchange: prints `Client X connected`, `Client X: <name>` and the verdict to
/// `transcript`, and returns the verdict. If another party aborts the round (leaves before
/// sending, or sends nothing in time), it joins a new round, up to `config.rejoins` times, saying
/// so once the server has a place for it; where none is to be had (a one-shot server that has
/// ended, say), the abort stands.
pub async fn run(
    config: &Config,
    source: NameSource,
    transcript: &Transcript,
) -> Result<Verdict, Error> {
    let mut source = source;
    let mut attempt = Attempt::default();
    let mut result = once(config, source.clone(), transcript, &mut attempt, None).await;
    for n in 1..=config.rejoins {
        let Err(Error::Refused { kind, message }) = &result else {
            break;
        };
        let victim =
            *kind == ErrorKind::PartyLeft || (*kind == ErrorKind::RoundTimeout && attempt.sent);
        if !victim {
            break;
        }
        // The name typed for the first round plays the next.
        if let Some(name) = attempt.name.take() {
            source = NameSource::Given(name);
        }
        let notice = format!(
            "{}; playing in a new round (rejoin {n} of {})",
            names::printable(message),
            config.rejoins
        );
        let mut again = Attempt::default();
        let next = once(config, source.clone(), transcript, &mut again, Some(notice)).await;
        if next.is_err() && !again.welcomed {
            break;
        }
        (result, attempt) = (next, again);
    }
    result
}

/// What one attempt got as far as.
#[derive(Debug, Default)]
struct Attempt {
    /// The server had a place for us.
    welcomed: bool,
    /// The name we played under, once we had one.
    name: Option<String>,
    /// Our message went out.
    sent: bool,
}

/// One connection, one round: [`run`] without the rejoins. `notice` is said once welcomed.
async fn once(
    config: &Config,
    source: NameSource,
    transcript: &Transcript,
    attempt: &mut Attempt,
    notice: Option<String>,
) -> Result<Verdict, Error> {
    let stream = start(config, &source).await?;
    let _ = stream.set_nodelay(true);
    let (tx, mut incoming) = mpsc::channel(4);
    let reader = rt::spawn(reader_loop(FrameReader::new(stream.clone()), tx));
    let result = exchange(
        config,
        source,
        transcript,
        &stream,
        &mut incoming,
        attempt,
        notice,
    )
    .await;
    // Ending the socket ends the reader; waiting for it means no task outlives the call.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(incoming);
    reader.await;
    result
}

/// One exchange in progress on a connection.
struct Exchange<'a> {
    config: &'a Config,
    transcript: &'a Transcript,
    stream: &'a TcpStream,
    incoming: &'a mut Incoming,
    attempt: &'a mut Attempt,
}

async fn exchange(
    config: &Config,
    source: NameSource,
    transcript: &Transcript,
    stream: &TcpStream,
    incoming: &mut Incoming,
    attempt: &mut Attempt,
    notice: Option<String>,
) -> Result<Verdict, Error> {
    let mut exchange = Exchange {
        config,
        transcript,
        stream,
        incoming,
        attempt,
    };
    exchange.handshake(notice).await?;
    let (round, label) = exchange.barrier().await?;
    // One line reader for the whole run: lines piped in after the name belong to the chat.
    let mut lines = rt::stdin_lines();
    let name = exchange.message(source, &label, &mut lines).await?;
    let verdict = exchange.verdict(round, label, name).await?;
    // The server now either closes (the exchange is complete) or opens a chat.
    if let Some(Some(Ok(Frame::ChatOpen))) =
        rt::timeout(config.connect_timeout, exchange.incoming.next()).await
    {
        transcript.line("The chat is open: type lines to send them; Bye ends it for everyone.");
        let speakers = Speakers::of(&verdict.order);
        chat(stream, exchange.incoming, &mut lines, transcript, &speakers).await?;
    }
    Ok(verdict)
}

impl Exchange<'_> {
    /// `Hello`, and the server's `Welcome`; says `notice` once welcomed.
    async fn handshake(&mut self, notice: Option<String>) -> Result<(), Error> {
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            room: self.config.room.clone(),
        };
        send(self.stream, hello).await?;
        let welcome = rt::timeout(self.config.connect_timeout, expect(self.incoming)).await;
        match welcome {
            None => Err(Error::Lost(
                "the server did not answer the handshake".into(),
            )),
            Some(Ok(Frame::Welcome { version })) => {
                log::info!("welcomed by a server speaking protocol version {version}");
                self.attempt.welcomed = true;
                if let Some(notice) = notice {
                    self.transcript.line(notice);
                }
                if self.config.interactive {
                    eprintln!("Waiting for the other parties to connect...");
                }
                Ok(())
            }
            Some(Ok(other)) => Err(unexpected(&other, "Welcome")),
            Some(Err(e)) => Err(e),
        }
    }

    /// Waits for every party: the round and this client's label.
    async fn barrier(&mut self) -> Result<(u64, String), Error> {
        let (round, label) = match expect(self.incoming).await? {
            Frame::Connected { round, label } => (round, label),
            other => return Err(unexpected(&other, "Connected")),
        };
        let label = names::printable(&label).into_owned();
        log::info!("round {round}: playing as {label}");
        self.transcript.line(format!("Client {label} connected"));
        Ok((round, label))
    }

    /// Obtains the name and sends it.
    async fn message(
        &mut self,
        source: NameSource,
        label: &str,
        lines: &mut StdinLines,
    ) -> Result<String, Error> {
        let name = match source {
            NameSource::Given(name) => name,
            NameSource::Stdin { prompt } => read_name(label, prompt, self.incoming, lines).await?,
        };
        self.attempt.name = Some(name.clone());
        send(self.stream, Frame::Message { name: name.clone() }).await?;
        self.attempt.sent = true;
        self.transcript.line(format!("Client {label}: {name}"));
        Ok(name)
    }

    /// Waits for the acknowledgment and prints it.
    async fn verdict(&mut self, round: u64, label: String, name: String) -> Result<Verdict, Error> {
        let reply = match self.config.reply_timeout {
            Some(limit) => rt::timeout(limit, expect(self.incoming))
                .await
                .unwrap_or_else(|| Err(text::no_reply(limit))),
            None => expect(self.incoming).await,
        };
        match reply? {
            Frame::Ack { text, order } => {
                let text = names::printable(&text).into_owned();
                self.transcript.line(&text);
                Ok(Verdict {
                    round,
                    label,
                    name,
                    text,
                    order,
                })
            }
            other => Err(unexpected(&other, "Ack")),
        }
    }
}

type StdinLines = dyn futures::Stream<Item = io::Result<String>> + Unpin + Send;

/// Who speaks in a chat: the verdict pairs each label with the name its party sent.
struct Speakers(Vec<Arrival>);

impl Speakers {
    fn of(order: &[Arrival]) -> Speakers {
        Speakers(order.to_vec())
    }

    /// `Bob`, or `Bob (Y)` where two parties share the name; the label if it is unknown.
    fn name(&self, label: &str) -> String {
        match self.0.iter().find(|a| a.label == label) {
            Some(a) if self.0.iter().filter(|b| b.name == a.name).count() > 1 => {
                format!("{} ({label})", a.name)
            }
            Some(a) => a.name.clone(),
            None => label.to_owned(),
        }
    }
}

/// Full duplex until the server ends the chat: typed lines go out, relayed lines are printed as
/// `Bob: <line>`, by the name each party sent. End of input counts as `Bye`.
async fn chat(
    stream: &TcpStream,
    incoming: &mut Incoming,
    lines: &mut StdinLines,
    transcript: &Transcript,
    speakers: &Speakers,
) -> Result<(), Error> {
    let mut typing = true;
    loop {
        let next_line = if typing {
            lines.next().fuse()
        } else {
            futures::future::Fuse::terminated()
        };
        futures::pin_mut!(next_line);
        futures::select_biased! {
            frame = incoming.next() => match frame {
                Some(Ok(Frame::Relayed { from, line })) => transcript.line(format!(
                    "{}: {}",
                    names::printable(&speakers.name(&from)),
                    names::printable(&line)
                )),
                Some(Ok(Frame::ChatOver { message })) => {
                    transcript.line(names::printable(&message));
                    return Ok(());
                }
                Some(Ok(Frame::Error { kind, message })) => return Err(Error::Refused { kind, message }),
                Some(Ok(other)) => return Err(unexpected(&other, "a chat frame")),
                Some(Err(why)) => return Err(Error::Lost(why)),
                None => return Err(Error::Lost("the server closed the connection".into())),
            },
            line = next_line => {
                let line = match line {
                    Some(Ok(line)) => line,
                    // End of input (or unreadable input) says goodbye for the user.
                    _ => "Bye".to_owned(),
                };
                if line.trim() == "Bye" {
                    typing = false;
                }
                send(stream, Frame::Chat { line }).await?;
            }
        }
    }
}

/// Reads one name from stdin while watching the socket: if the server ends the round first
/// (a partner left, the server stops), that is reported without waiting for the user.
async fn read_name(
    label: &str,
    prompt: bool,
    incoming: &mut Incoming,
    lines: &mut StdinLines,
) -> Result<String, Error> {
    loop {
        if prompt {
            eprint!("Name for Client {label}: ");
        }
        let line = futures::select_biased! {
            frame = expect(incoming).fuse() => {
                end_prompt(prompt);
                return Err(match frame {
                    Ok(other) => unexpected(&other, "nothing"),
                    Err(e) => e,
                });
            }
            line = lines.next().fuse() => line,
        };
        if let Some(name) = take_name(line, prompt)? {
            return Ok(name);
        }
    }
}
