//! The text client: one exchange with any server of the assignment's raw-text protocol, ours
//! (`--wire text`) or the ones students wrote.
//!
//! Owns the client side of the text wire, written for real peers rather than for our server
//! alone:
//! - the label comes from any greeting that names it (`Client X connected`,
//!   `From Server: Client X Connected`, any case, with or without a newline); `--label X` is for
//!   servers that never greet (the message is then sent at once). Without a greeting and without
//!   `--label`, the client gives up after the connect timeout, which bounds the whole wait for
//!   the round to start, and suggests `--label`;
//! - text that is neither the greeting nor the acknowledgment (a go-ahead line, another party's
//!   greeting) is skipped;
//! - the acknowledgment is the line containing `received before` (or `recieved before`), printed
//!   as the server sent it, trimmed, without transport noise in front of it (`From Server:`, a
//!   go-ahead glued to it); it is complete at a newline, at the server's close, or after
//!   [`QUIET`] with nothing more; then the client closes without waiting for the server to close
//!   first. The wait for it is bounded by `--reply-timeout`;
//! - a server that answers in binary (a framed arrival server) is named as a wire mismatch.
//!
//! Everything the server sends is escaped before it reaches a terminal.

use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, FutureExt, StreamExt};

use super::shared::{end_prompt, start, take_name, Config, Error, NameSource, Verdict};
use crate::names;
use crate::protocol::ErrorKind;
use crate::rt::{self, TcpStream};
use crate::transcript::Transcript;
pub use crate::wire::text::QUIET;

/// The most the client keeps of what the server sent and it has not used yet.
const KEEP: usize = 16 * 1024;

/// The server's side of the conversation, as text received so far.
struct Incoming {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Incoming {
    /// Reads once more, within `limit` if given; `Ok(false)` if the limit passed first.
    async fn read(&mut self, limit: Option<Duration>) -> Result<bool, Error> {
        let mut chunk = [0u8; 1024];
        let mut input = &self.stream;
        let read = input.read(&mut chunk);
        let n = match limit {
            Some(limit) => match rt::timeout(limit, read).await {
                Some(r) => r,
                None => return Ok(false),
            },
            None => read.await,
        }
        .map_err(|e| Error::Lost(format!("lost the connection to the server: {e}")))?;
        if n == 0 {
            self.eof = true;
        } else {
            if looks_binary(&chunk[..n]) && self.buf.is_empty() {
                return Err(Error::Lost(
                    "the server answered in binary, not the assignment's text: it may be an \
                     arrival server speaking the framed protocol (drop --wire text)"
                        .into(),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if self.buf.len() > KEEP {
                let excess = self.buf.len() - KEEP;
                self.buf.drain(..excess);
            }
        }
        Ok(true)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// An `error: ...` line from the server, if one has arrived.
    fn error(&self) -> Option<Error> {
        let text = self.text();
        let at = text.find("error: ")?;
        let line = text[at + "error: ".len()..]
            .lines()
            .next()
            .unwrap_or_default();
        Some(Error::Refused {
            kind: ErrorKind::Protocol,
            message: names::printable(line.trim_end()).into_owned(),
        })
    }
}

/// NUL or other control bytes that text never has: a length prefix, say.
fn looks_binary(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .take(8)
        .any(|&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t'))
}

/// The label a greeting names, and where the greeting ends: `client <label> connected`, any
/// case, anywhere in `text`.
pub fn find_greeting(text: &str) -> Option<(String, usize)> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("client ") {
        let start = from + at + "client ".len();
        let rest = &text[start..];
        let label: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = &lower[start + label.len()..];
        let gap = after.len() - after.trim_start_matches([' ', '\t']).len();
        if !label.is_empty() && gap > 0 && after[gap..].starts_with("connected") {
            let end = start + label.len() + gap + "connected".len();
            return Some((label, end));
        }
        from = start;
    }
    None
}

/// Where an acknowledgment's sentence begins in its line: at its first label, written `X:`,
/// `X :` or `Client X:` (upper-case letters and digits), even with text glued in front of it
/// (`yesX: Alice ...`, a go-ahead line sent without its newline).
fn sentence_start(line: &str) -> usize {
    let bytes = line.as_bytes();
    let label_colon = |i: usize| {
        let len = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            .count();
        let after = &line[i + len..];
        len > 0 && after.trim_start_matches(' ').starts_with(':')
    };
    (0..bytes.len())
        .find(|&i| {
            let starts_word = i == 0 || !bytes[i - 1].is_ascii_uppercase();
            let client = line[i..]
                .get(..7)
                .is_some_and(|w| w.eq_ignore_ascii_case("client "))
                && label_colon(i + 7);
            client || (bytes[i].is_ascii_uppercase() && starts_word && label_colon(i))
        })
        .unwrap_or(0)
}

/// The acknowledgment in `text`, once it is there, and where its line ends: the line that says
/// `received before` (or `recieved before`, as some servers spell it), trimmed, from its first
/// label on. Only transport noise in front of the sentence goes (`From Server:`, a go-ahead glued
/// to it); the sentence itself is kept as the server sent it.
pub fn find_ack(text: &str) -> Option<(String, usize)> {
    let at = text
        .find("received before")
        .or_else(|| text.find("recieved before"))?;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let mut line = text[line_start..line_end].trim();
    if line
        .get(..12)
        .is_some_and(|p| p.eq_ignore_ascii_case("from server:"))
    {
        line = line[12..].trim_start();
    }
    Some((line[sentence_start(line)..].trim().to_owned(), line_end))
}

/// Plays one exchange on the text wire; see the module docs.
pub async fn run(
    config: &Config,
    label: Option<String>,
    source: NameSource,
    transcript: &Transcript,
) -> Result<Verdict, Error> {
    let stream = start(config, &source).await?;
    let mut incoming = Incoming {
        stream: stream.clone(),
        buf: Vec::new(),
        eof: false,
    };
    let label = match label {
        Some(label) => label,
        None => {
            if config.interactive {
                eprintln!("Waiting for the server's greeting (the round to start)...");
            }
            greeting(config, &mut incoming, transcript).await?
        }
    };

    let name = match source {
        NameSource::Given(name) => name,
        NameSource::Stdin { prompt } => read_name(&label, prompt, &mut incoming).await?,
    };
    let message = format!("Client {label}: {name}");
    (&stream)
        .write_all(message.as_bytes())
        .await
        .map_err(|e| Error::Lost(format!("lost the connection to the server: {e}")))?;
    transcript.line(&message);

    let text = match config.reply_timeout {
        Some(limit) => rt::timeout(limit, acknowledgment(&mut incoming))
            .await
            .unwrap_or_else(|| Err(no_reply(limit))),
        None => acknowledgment(&mut incoming).await,
    }?;
    transcript.line(&text);
    // Done: we close first, whatever the server does next.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(Verdict {
        round: 0,
        label,
        name,
        text,
        order: Vec::new(),
    })
}

/// Waits (within the connect timeout) for a greeting that names our label; prints it.
async fn greeting(
    config: &Config,
    incoming: &mut Incoming,
    transcript: &Transcript,
) -> Result<String, Error> {
    let until = Instant::now() + config.connect_timeout;
    loop {
        let text = incoming.text();
        if let Some((label, end)) = find_greeting(&text) {
            let line_start = text[..end].rfind('\n').map_or(0, |i| i + 1);
            let shown = names::printable(text[line_start..end].trim()).into_owned();
            log::info!("greeted as {label}");
            incoming.buf.drain(..end);
            transcript.line(shown);
            return Ok(label);
        }
        if let Some(e) = incoming.error() {
            return Err(e);
        }
        if incoming.eof {
            return Err(Error::Lost(
                "the server closed the connection before greeting".into(),
            ));
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || !incoming.read(Some(left)).await? {
            return Err(Error::Lost(format!(
                "no greeting naming our label from the server within {} s; if it expects the \
                 client to speak first, give the label with --label X (if it is an arrival \
                 server without --wire text, drop --wire text)",
                config.connect_timeout.as_secs_f64()
            )));
        }
    }
}

/// One name from stdin, while the server's text keeps arriving: an error or a close from the
/// server wins; anything else (a go-ahead) is kept for later.
async fn read_name(label: &str, prompt: bool, incoming: &mut Incoming) -> Result<String, Error> {
    let mut lines = rt::stdin_lines();
    loop {
        if prompt {
            eprint!("Name for Client {label}: ");
        }
        let line = loop {
            if let Some(e) = incoming.error() {
                end_prompt(prompt);
                return Err(e);
            }
            if incoming.eof {
                end_prompt(prompt);
                return Err(Error::Lost("the server closed the connection".into()));
            }
            futures::select_biased! {
                read = incoming.read(None).fuse() => { read?; }
                line = lines.next().fuse() => break line,
            }
        };
        if let Some(name) = take_name(line, prompt)? {
            return Ok(name);
        }
    }
}

/// The error for a server that said nothing within `limit` of our message.
pub(crate) fn no_reply(limit: Duration) -> Error {
    Error::Lost(format!(
        "no acknowledgment from the server within {} s of our message (it may still be waiting \
         for another party; --reply-timeout sets the bound)",
        limit.as_secs_f64()
    ))
}

/// Reads until the acknowledgment is complete; skips everything else.
async fn acknowledgment(incoming: &mut Incoming) -> Result<String, Error> {
    loop {
        let text = incoming.text();
        if let Some((ack, end)) = find_ack(&text) {
            let complete = end < text.len() || incoming.eof;
            if complete || !incoming.read(Some(QUIET)).await? {
                // The rest of it may still come; what we have is whole once QUIET passed.
                let text = incoming.text();
                let (ack, _) = find_ack(&text).unwrap_or((ack, end));
                return Ok(names::printable(&ack).into_owned());
            }
            continue;
        }
        if let Some(e) = incoming.error() {
            return Err(e);
        }
        if incoming.eof {
            return Err(Error::Lost(
                "the server closed the connection before the acknowledgment".into(),
            ));
        }
        incoming.read(None).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_in_every_style_name_the_label() {
        for (text, label) in [
            ("Client X connected", "X"),
            ("From Server: Client X Connected", "X"),
            ("client y connected\n", "y"),
            ("CLIENT Z CONNECTED", "Z"),
            ("hello\nClient P12  connected", "P12"),
        ] {
            assert_eq!(
                find_greeting(text).map(|g| g.0).as_deref(),
                Some(label),
                "{text}"
            );
        }
        assert_eq!(find_greeting("Client X: Alice"), None);
        assert_eq!(find_greeting("Client X conn"), None);
    }

    #[test]
    fn the_acknowledgment_is_found_among_other_text() {
        let ack = |t: &str| find_ack(t).map(|a| a.0);
        assert_eq!(
            ack("X: Alice received before Y: Bob").as_deref(),
            Some("X: Alice received before Y: Bob")
        );
        assert_eq!(
            ack("yesX: Client X: Alice received before Y: Client Y: Bob").as_deref(),
            Some("X: Client X: Alice received before Y: Client Y: Bob")
        );
        assert_eq!(
            ack("go ahead\r\nY: Bob received before X: Alice\r\nbye").as_deref(),
            Some("Y: Bob received before X: Alice")
        );
        assert_eq!(ack("Client Y Connected"), None);
    }

    /// What the assignment's real servers send, each printed as sent.
    #[test]
    fn student_servers_acknowledgments_are_kept_whole() {
        let ack = |t: &str| find_ack(t).map(|a| a.0);
        for (sent, shown) in [
            (
                "From Server: X : Client X: Alice received before Y : Client Y: Bob",
                "X : Client X: Alice received before Y : Client Y: Bob",
            ),
            (
                "Client X: Alice received before Client Y: Bob",
                "Client X: Alice received before Client Y: Bob",
            ),
            (
                "X: Client X: Alice recieved before Y: Client Y: Bob\n",
                "X: Client X: Alice recieved before Y: Client Y: Bob",
            ),
        ] {
            assert_eq!(ack(sent).as_deref(), Some(shown), "{sent}");
        }
    }
}
