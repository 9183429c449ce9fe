//! The assignment's raw-text wire, for its own programs, students' clients and `nc`.
//!
//! There is no framing: the server writes `Client X connected` as one write once the round is
//! full, takes the bytes of one read (at most [`TEXT_MAX`]) as the client's message, writes the
//! acknowledgment in the assignment's exact text as one write and closes. A message may be
//! `Client X: Alice` or a bare `Alice`; a trailing CR/LF is dropped. Errors are one line,
//! `error: <reason>`.
//!
//! Owns the text connection actors (a reader, and a writer that renders the coordinator's frames
//! as text) and the text client. Rounds, arrival order and failure handling are the coordinator's,
//! exactly as for framed connections: this module only translates. It must not touch frames'
//! bytes; the text it writes has no length prefix by design.

use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::prelude::BufReadExt;
use async_std::io::BufReader;
use async_std::net::TcpStream;
use async_std::task;
use futures::channel::{mpsc, oneshot};
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt, SinkExt, StreamExt};

use crate::client::{Config, Error, NameSource, Verdict};
use crate::coordinator::{ConnId, Event, Outbound, OUTBOX_CAPACITY};
use crate::names;
use crate::protocol::{ErrorKind, Frame};
use crate::server::{bounded, linger, writer_loop, Ctx, Join, Placement};
use crate::stamp::StampedStream;
use crate::transcript::Transcript;

/// The most a text message may be: the assignment's `recv(1024)`.
pub const TEXT_MAX: usize = 1024;

/// How the coordinator's frames read on the text wire; `None` for frames text clients never see.
fn render(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Connected { label, .. } => Some(format!("Client {label} connected")),
        Frame::Ack { text, .. } => Some(text.clone()),
        Frame::Error { message, .. } => Some(format!("error: {message}\n")),
        _ => None,
    }
}

/// Renders queued frames for one write; frames text clients never see render as nothing.
fn render_all(frames: &[Frame]) -> std::io::Result<Vec<u8>> {
    Ok(frames
        .iter()
        .filter_map(render)
        .collect::<String>()
        .into_bytes())
}

/// Answers a connection over the limit with one text line and closes it.
pub(crate) async fn refuse(
    stream: TcpStream,
    message: String,
    write_timeout: Duration,
    _drain: mpsc::Sender<std::convert::Infallible>,
) {
    let line = format!("error: {message}\n");
    let _ = bounded(write_timeout, (&stream).write_all(line.as_bytes())).await;
    let _ = stream.shutdown(Shutdown::Write);
    linger(&mut crate::protocol::FrameReader::new(stream), true).await;
}

/// Turns one read into a name: `Client X: Alice` or `Alice`, trailing CR/LF dropped.
pub fn parse_message(bytes: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "message is not UTF-8".to_owned())?;
    let text = text.trim_end_matches(['\r', '\n']);
    let name = match text
        .strip_prefix("Client ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((_label, name)) => name,
        None => text,
    };
    names::validate(name).map_err(|e| format!("name {e}"))?;
    Ok(name.to_owned())
}

/// A text connection: placed in a round straight away (text has no handshake), then one read is
/// its message.
pub(crate) async fn connection_loop(
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    ctx: Arc<Ctx>,
) {
    let (mut outbox, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
    let (done_tx, done_rx) = oneshot::channel();
    let writer = task::spawn(writer_loop(
        stream.clone(),
        outbox_rx,
        ctx.stop.clone(),
        ctx.config.frame_timeout,
        render_all,
        done_tx,
    ));
    let mut writer_done = done_rx.fuse();
    let mut input = StampedStream::new(stream);

    let (placed, answer) = oneshot::channel();
    let join = Join {
        id,
        peer,
        room: None,
        reply: outbox.clone(),
        placed,
    };
    let mut lobby = ctx.lobby.clone();
    let round = if lobby.send(join).await.is_ok() {
        match answer.await {
            Ok(Ok(Placement { round, .. })) => Some(round),
            Ok(Err((kind, message))) => {
                let _ = outbox.try_send(Outbound::error(kind, message));
                None
            }
            Err(_) => None,
        }
    } else {
        None
    };

    let mut why = None;
    if let Some(mut round) = round.clone() {
        let mut buf = vec![0u8; TEXT_MAX + 1];
        let mut sent = false;
        loop {
            let read = futures::select_biased! {
                _ = &mut writer_done => break,
                n = input.read(&mut buf).fuse() => n,
            };
            let n = match read {
                Ok(0) => {
                    why = Some("closed the connection".to_owned());
                    break;
                }
                Ok(n) => n,
                Err(e) => {
                    why = Some(format!("connection failed: {e}"));
                    break;
                }
            };
            let refusal = if sent {
                Some((
                    ErrorKind::Protocol,
                    "a second message; each party sends exactly one".to_owned(),
                ))
            } else if n > TEXT_MAX {
                Some((
                    ErrorKind::InvalidName,
                    format!("message longer than {TEXT_MAX} bytes"),
                ))
            } else {
                match parse_message(&buf[..n]) {
                    Err(reason) => Some((ErrorKind::InvalidName, reason)),
                    Ok(name) => {
                        let at = input.arrival().unwrap_or_else(Instant::now);
                        let arrived = Event::Arrived {
                            id,
                            name,
                            at,
                            reply: outbox.clone(),
                        };
                        sent = true;
                        if round.send(arrived).await.is_err() {
                            break;
                        }
                        None
                    }
                }
            };
            if let Some((kind, message)) = refusal {
                log::warn!("{peer}: {message}");
                let _ = outbox.try_send(Outbound::error(kind, message.clone()));
                why = Some(message);
                break;
            }
        }
    }
    if let Some(mut round) = round {
        let why = why.unwrap_or_else(|| "was disconnected".to_owned());
        let _ = round.send(Event::Left { id, why }).await;
    }
    drop(outbox);
    let bound = ctx.config.frame_timeout + crate::server::LINGER;
    if !futures::future::FusedFuture::is_terminated(&writer_done)
        && bounded(bound, &mut writer_done).await.is_none()
    {
        log::error!("{peer}: text writer did not finish");
    }
    let mut reader = crate::protocol::FrameReader::new(input);
    linger(&mut reader, ctx.stop.is_stopped()).await;
    writer.await;
}

/// The text client: reads the connected line, sends `Client X: <name>` as one write with no
/// newline, reads the reply until the server closes, and prints all three lines.
pub async fn run_client(
    config: &Config,
    source: NameSource,
    transcript: &Transcript,
) -> Result<Verdict, Error> {
    if let NameSource::Given(name) = &source {
        names::validate(name).map_err(Error::InvalidName)?;
    }
    let stream = crate::client::connect(config).await?;
    let lost = |e: std::io::Error| Error::Lost(format!("lost the connection to the server: {e}"));
    let mut buf = vec![0u8; TEXT_MAX];
    let n = (&stream).read(&mut buf).await.map_err(lost)?;
    if n == 0 {
        return Err(Error::Lost("the server closed the connection".into()));
    }
    let greeting = server_text(&buf[..n])?;
    let label = greeting
        .strip_prefix("Client ")
        .and_then(|rest| rest.strip_suffix(" connected"))
        .unwrap_or("?")
        .to_owned();
    transcript.line(&greeting);

    let name = match source {
        NameSource::Given(name) => name,
        NameSource::Stdin { prompt } => read_name(&stream, &label, prompt).await?,
    };
    let message = format!("Client {label}: {name}");
    (&stream)
        .write_all(message.as_bytes())
        .await
        .map_err(lost)?;
    transcript.line(&message);

    let mut reply = Vec::new();
    (&stream)
        .take(TEXT_MAX as u64 * 4)
        .read_to_end(&mut reply)
        .await
        .map_err(lost)?;
    if reply.is_empty() {
        return Err(Error::Lost("the server closed the connection".into()));
    }
    let text = server_text(&reply)?;
    transcript.line(&text);
    Ok(Verdict {
        round: 0,
        label,
        name,
        text,
        order: Vec::new(),
    })
}

/// What the server sent, as a printable line; an `error: ...` line becomes the error.
fn server_text(bytes: &[u8]) -> Result<String, Error> {
    let text = String::from_utf8_lossy(bytes);
    let text = names::printable(text.trim_end_matches(['\r', '\n'])).into_owned();
    match text.strip_prefix("error: ") {
        Some(reason) => Err(Error::Refused {
            kind: ErrorKind::Protocol,
            message: reason.to_owned(),
        }),
        None => Ok(text),
    }
}

/// One name from stdin; if the server speaks first (an error, or it closes), that wins.
async fn read_name(stream: &TcpStream, label: &str, prompt: bool) -> Result<String, Error> {
    let mut lines = BufReader::new(async_std::io::stdin()).lines();
    let mut peek = [0u8; 256];
    loop {
        if prompt {
            eprint!("Name for Client {label}: ");
        }
        let line = futures::select_biased! {
            n = stream.peek(&mut peek).fuse() => {
                crate::client::end_prompt(prompt);
                return Err(match n {
                    Ok(0) | Err(_) => Error::Lost("the server closed the connection".into()),
                    Ok(n) => server_text(&peek[..n]).err().unwrap_or_else(|| {
                        Error::Lost("the server spoke out of turn".into())
                    }),
                });
            }
            line = lines.next().fuse() => line,
        };
        if let Some(name) = crate::client::take_name(line, prompt)? {
            return Ok(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_with_or_without_the_label() {
        assert_eq!(parse_message(b"Client X: Alice"), Ok("Alice".into()));
        assert_eq!(parse_message(b"Alice\r\n"), Ok("Alice".into()));
        assert_eq!(parse_message(b"Client Y: Zo\xc3\xab\n"), Ok("Zoë".into()));
        assert!(parse_message(b"").is_err());
        assert!(parse_message(b"\n").is_err());
        assert!(parse_message(b"\xff\xfe").is_err());
        assert!(parse_message(b"Al\x1bice").is_err());
    }

    #[test]
    fn frames_render_as_the_assignments_text() {
        let connected = Frame::Connected {
            round: 1,
            label: "X".into(),
        };
        assert_eq!(render(&connected).as_deref(), Some("Client X connected"));
        let ack = Frame::Ack {
            text: "X: Alice received before Y: Bob".into(),
            order: vec![],
        };
        assert_eq!(
            render(&ack).as_deref(),
            Some("X: Alice received before Y: Bob")
        );
        assert_eq!(render(&Frame::Welcome { version: 1 }), None);
    }
}
