//! The assignment's raw-text wire on a server connection, for its own programs, students'
//! clients and `nc`.
//!
//! There is no framing and no handshake: a connection is placed in a round at once; once the
//! round is full the server writes `Client X connected` (no newline, as the assignment's server
//! did); the client's message is its next text; the acknowledgment follows in the assignment's
//! exact words and the server closes. Errors are one line, `error: <reason>`.
//!
//! A message ends at the first of: a newline (LF or CRLF, not part of the message), 1024 bytes
//! ([`TEXT_MAX`], cut back so that no UTF-8 character is split), the end of the client's stream,
//! or [`QUIET`] with no more bytes (for clients that send one write with no newline). A UTF-8
//! character split across writes waits for its end. The message's arrival is the kernel receive
//! time of its last byte, so the quiet gap never affects the order. `Client X: Alice`,
//! `client x: Alice` and `X: Alice` (any case; the label must be this connection's) are all the
//! name `Alice`; a prefix naming another label of the round is refused, never relabelled.
//!
//! It must not decide who may send when: the connection actor and the round do.

use std::time::{Duration, Instant};

use futures::AsyncReadExt;

use super::codec::{Inbound, Wire};
use crate::close::Discard;
use crate::protocol::ErrorKind;
use crate::round::Outbound;
use crate::stamp::StampedStream;
use crate::{names, rt};

/// The most one text message may be: the assignment's `recv(1024)`.
pub const TEXT_MAX: usize = 1024;

/// With bytes waiting and no newline, this long without more ends the message.
pub const QUIET: Duration = Duration::from_millis(200);

/// A text connection's read half.
pub(crate) struct Text {
    input: StampedStream,
    /// Bytes of the message being received; never more than `TEXT_MAX` plus one read.
    buf: Vec<u8>,
    /// When the last bytes arrived (their kernel stamp, or read time).
    last_at: Option<Instant>,
    /// When the quiet gap after the last bytes ends.
    quiet_until: Option<Instant>,
    /// When a message that has started must be complete (a character split for good, say).
    stall_until: Option<Instant>,
    frame_timeout: Duration,
    /// End of stream seen; what is buffered is the last message.
    eof: bool,
    label: Option<String>,
    labels: Vec<String>,
    /// Bytes thrown away while closing.
    discarded: u64,
}

impl Text {
    pub(crate) fn new(input: StampedStream, frame_timeout: Duration) -> Text {
        Text {
            input,
            buf: Vec::new(),
            last_at: None,
            quiet_until: None,
            stall_until: None,
            frame_timeout,
            eof: false,
            label: None,
            labels: Vec::new(),
            discarded: 0,
        }
    }

    /// A complete message at the front of the buffer, if there is one: its bytes, taken out.
    fn take_message(&mut self, quiet_over: bool) -> Option<Vec<u8>> {
        if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Some(line);
        }
        if self.buf.len() >= TEXT_MAX {
            // Cut at a character boundary: back off over continuation bytes (at most 3).
            let mut cut = TEXT_MAX;
            while cut > TEXT_MAX - 4 && self.buf.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
                cut -= 1;
            }
            return Some(self.buf.drain(..cut).collect());
        }
        let whole = !ends_inside_a_character(&self.buf);
        if !self.buf.is_empty() && (self.eof || (quiet_over && whole)) {
            return Some(std::mem::take(&mut self.buf));
        }
        None
    }

    fn message(&mut self, bytes: &[u8]) -> Inbound {
        let at = self.last_at.unwrap_or_else(Instant::now);

        if self.buf.is_empty() {
            self.quiet_until = None;
            self.stall_until = None;
        } else {
            // What follows the message is a message of its own, already on its way.
            self.stall_until = Some(Instant::now() + self.frame_timeout);
            self.quiet_until = Some(Instant::now() + QUIET);
        }
        if bytes.first() == Some(&0) {
            // A length prefix: an arrival client speaking frames.
            return Inbound::Bad {
                kind: ErrorKind::Protocol,
                message: "got binary data, not text: this server speaks the assignment's text \
                          wire (--wire text); arrival's framed clients need a server without it"
                    .into(),
            };
        }
        match parse_message(bytes, self.label.as_deref(), &self.labels) {
            Ok(name) => Inbound::Message { name, at },
            Err((kind, message)) => Inbound::Bad { kind, message },
        }
    }
}

/// Whether `bytes` end part-way through a UTF-8 character.
fn ends_inside_a_character(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => false,
        Err(e) => e.error_len().is_none(),
    }
}

/// Turns one text message into a name. The optional prefix `Client X:` / `X:` (any case) must
/// name this connection's label among `labels`; it is stripped.
pub fn parse_message(
    bytes: &[u8],
    label: Option<&str>,
    labels: &[String],
) -> Result<String, (ErrorKind, String)> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| (ErrorKind::InvalidName, "message is not UTF-8".to_owned()))?;
    let text = text.trim_end_matches(['\r', '\n']);
    let mut name = text;
    for candidate in labels {
        let Some(rest) = strip_label_prefix(text, candidate) else {
            continue;
        };
        if label.is_some_and(|own| own != candidate) {
            let own = label.unwrap_or_default();
            return Err((
                ErrorKind::Protocol,
                format!(
                    "this connection plays as {own}, but the message is labelled {candidate}: \
                     send `Client {own}: <name>` or just the name"
                ),
            ));
        }
        name = rest;
        break;
    }
    names::validate(name).map_err(|e| (ErrorKind::InvalidName, format!("name {e}")))?;
    Ok(name.to_owned())
}

/// `rest` if `text` starts with `Client <label>:` or `<label>:` (ASCII case ignored) followed by
/// optional spaces.
fn strip_label_prefix<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let starts = |t: &'a str, p: &str| -> Option<&'a str> {
        let head = t.get(..p.len())?;
        head.eq_ignore_ascii_case(p).then(|| &t[p.len()..])
    };
    let after_client = starts(text, "client ").unwrap_or(text);
    let rest = starts(after_client, label)?;
    let rest = rest.strip_prefix(':')?;
    Some(rest.trim_start_matches(' '))
}

impl Wire for Text {
    const HANDSHAKE: bool = false;

    async fn next(&mut self) -> Inbound {
        loop {
            let quiet_over = self.quiet_until.is_some_and(|t| Instant::now() >= t);
            // No name is that long: say what happened, not how long the cut-off "name" was.
            let endless = self.buf.len() >= TEXT_MAX && !self.buf[..TEXT_MAX].contains(&b'\n');
            if endless && self.buf.first() != Some(&0) {
                return Inbound::Bad {
                    kind: ErrorKind::InvalidName,
                    message: format!(
                        "no newline within {TEXT_MAX} bytes: a message is one line, a name of at \
                         most {} characters",
                        crate::names::MAX_NAME_CHARS
                    ),
                };
            }
            if let Some(bytes) = self.take_message(quiet_over) {
                return self.message(&bytes);
            }
            if self.eof {
                return Inbound::Closed;
            }
            let mut chunk = [0u8; 512];
            let read = self.input.read(&mut chunk);
            // Waiting for the first byte of a message is the caller's to bound; once bytes are
            // waiting, the quiet gap (or, inside a character, the stall bound) limits the wait.
            let limit = if self.buf.is_empty() {
                None
            } else if ends_inside_a_character(&self.buf) {
                self.stall_until
            } else {
                self.quiet_until
            };
            let n = match limit {
                None => read.await,
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    match rt::timeout(left, read).await {
                        Some(r) => r,
                        None if ends_inside_a_character(&self.buf) => {
                            return Inbound::Bad {
                                kind: ErrorKind::Timeout,
                                message: format!(
                                    "the message stopped inside a UTF-8 character for {} ms",
                                    self.frame_timeout.as_millis()
                                ),
                            }
                        }
                        None => {
                            // The quiet gap passed: the buffered bytes are the message.
                            self.quiet_until = Some(Instant::now());
                            continue;
                        }
                    }
                }
            };
            match n {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    if self.buf.is_empty() {
                        self.stall_until = Some(Instant::now() + self.frame_timeout);
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.last_at = Some(self.input.arrival().unwrap_or_else(Instant::now));
                    self.quiet_until = Some(Instant::now() + QUIET);
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Inbound::Failed("reset the connection".into())
                }
                Err(e) => return Inbound::Failed(format!("connection failed: {e}")),
            }
        }
    }

    fn render(&mut self, event: &Outbound, out: &mut Vec<u8>) {
        // A sentence says the whole room already: a reader's window changes nothing here.
        match event.shared() {
            // Text has no handshake to answer.
            Outbound::Admitted => {}
            Outbound::Started { label, .. } => {
                out.extend_from_slice(format!("Client {label} connected").as_bytes())
            }
            Outbound::Verdict { text, .. } => out.extend_from_slice(text.as_bytes()),
            Outbound::ChatOpen => out.extend_from_slice(b"\nThe chat is open: Bye ends it\n"),
            Outbound::Relayed { from, line } => {
                out.extend_from_slice(format!("{from}: {line}\n").as_bytes())
            }
            Outbound::ChatOver { message } => {
                out.extend_from_slice(format!("{message}\n").as_bytes())
            }
            Outbound::Ended { message, .. } => {
                out.extend_from_slice(format!("error: {message}\n").as_bytes())
            }
            // Sessions are framed only (a text connection never joins one); said plainly all
            // the same, so no event is ever silently lost.
            Outbound::Ping { .. } => {}
            Outbound::Go { round, .. } => {
                out.extend_from_slice(format!("Round {round}: go!\n").as_bytes())
            }
            Outbound::Early { round } => out
                .extend_from_slice(format!("Too early: locked out of round {round}\n").as_bytes()),
            Outbound::RoundResult(r) => out.extend_from_slice(format!("{}\n", r.text).as_bytes()),
            // `shared` is never itself cut.
            Outbound::Cut { .. }
            | Outbound::Roster { .. }
            | Outbound::Rules(_)
            | Outbound::Seated { .. }
            | Outbound::Buzzes(_) => {}
            Outbound::SessionOver {
                why,
                rounds,
                scores,
            } => out.extend_from_slice(
                format!("{}\n", crate::session::over_text(*why, *rounds, scores)).as_bytes(),
            ),
        }
    }

    fn started(&mut self, label: &str, labels: &[String]) {
        self.label = Some(label.to_owned());
        self.labels = labels.to_vec();
    }
}

impl Discard for Text {
    async fn discard(&mut self) {
        self.buf = Vec::new();
        crate::close::discard_until_eof(&mut self.input, &mut self.discarded).await;
    }

    fn discarded(&self) -> u64 {
        self.discarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["X".into(), "Y".into()]
    }

    fn parse(bytes: &[u8]) -> Result<String, (ErrorKind, String)> {
        parse_message(bytes, Some("X"), &labels())
    }

    #[test]
    fn prefixes_naming_this_connection_are_stripped_in_any_case() {
        for m in [
            &b"Client X: Alice"[..],
            b"client x: Alice",
            b"CLIENT X:Alice",
            b"X: Alice",
            b"x:Alice",
            b"Alice",
            b"Alice\r\n",
        ] {
            assert_eq!(
                parse(m),
                Ok("Alice".into()),
                "{:?}",
                String::from_utf8_lossy(m)
            );
        }
        assert_eq!(parse("Client X: Zoë".as_bytes()), Ok("Zoë".into()));
    }

    #[test]
    fn a_prefix_naming_another_label_is_refused() {
        for m in [&b"Client Y: Bob"[..], b"y: Bob"] {
            let (kind, message) = parse(m).unwrap_err();
            assert_eq!(kind, ErrorKind::Protocol);
            assert!(message.contains("plays as X"), "{message}");
        }
    }

    #[test]
    fn bad_messages_are_refused() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\xff\xfe").is_err());
        assert!(parse(b"Al\x1bice").is_err());
        assert!(parse(b"Client X: ").is_err());
    }

    #[test]
    fn messages_are_cut_at_a_newline_and_at_the_limit_on_a_character_boundary() {
        let mut t = Text {
            buf: b"Ali".to_vec(),
            ..Text::new_detached()
        };
        assert_eq!(
            t.take_message(false),
            None,
            "no newline yet, quiet gap not over"
        );
        t.buf.extend_from_slice(b"ce\nBo");
        assert_eq!(t.take_message(false).as_deref(), Some(&b"Alice"[..]));
        assert_eq!(t.buf, b"Bo");
        // A quiet gap ends a message, but not inside a character.
        t.buf = "Zo\u{eb}".as_bytes()[..3].to_vec();
        assert_eq!(t.take_message(true), None);
        t.buf.push("\u{eb}".as_bytes()[1]);
        assert_eq!(t.take_message(true).as_deref(), Some("Zo\u{eb}".as_bytes()));
        // 1023 ASCII bytes then a 2-byte character: the cut falls before it.
        t.buf = [&[b'a'; 1023][..], "é".as_bytes()].concat();
        let first = t.take_message(false).unwrap();
        assert_eq!(first.len(), 1023);
        assert_eq!(t.buf, "é".as_bytes());
    }

    #[test]
    fn events_render_as_the_assignments_text() {
        let mut t = Text::new_detached();
        let mut render = |e: Outbound| {
            let mut out = Vec::new();
            t.render(&e, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            render(Outbound::Started {
                round: 1,
                label: "X".into(),
                events: futures::channel::mpsc::channel(1).0,
            }),
            "Client X connected"
        );
        assert_eq!(render(Outbound::Admitted), "");
        assert_eq!(
            render(Outbound::Verdict {
                text: "X: Alice received before Y: Bob".into(),
                order: Vec::new().into(),
                last: true,
                delivered: None
            }),
            "X: Alice received before Y: Bob"
        );
        assert_eq!(
            render(Outbound::ended(ErrorKind::PartyLeft, "round aborted")),
            "error: round aborted\n"
        );
    }

    impl Text {
        /// A text wire over a socket nobody uses, for tests of its buffer logic.
        fn new_detached() -> Text {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            std::mem::forget(client);
            let (accepted, _) = listener.accept().unwrap();
            let stream = rt::block_on(async { rt::Socket::from_std(accepted) }).unwrap();
            Text::new(StampedStream::new(stream), Duration::from_secs(10))
        }
    }
}
