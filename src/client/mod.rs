//! The client side of one exchange, on either wire.
//!
//! Owns the client's conversation: connect, handshake, wait for the barrier, obtain the name,
//! send it, print the verdict. [`Link`] is the one framed connection type, shared by this
//! client, `arrival-bench` and the tests. The framed client's socket has one reader actor
//! (forwarding frames into a channel) and one writer, this module's main task; while it waits
//! for the user to type a name it watches the socket at the same time, so a partner leaving is
//! reported at the prompt. [`text`] is the client of the assignment's raw text.
//!
//! Everything the server sends is escaped before it reaches a terminal (see
//! [`names::printable`]): a hostile server cannot drive ours.

pub mod session;
pub mod text;

use std::fmt;
use std::io;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{AsyncWriteExt, FutureExt, SinkExt, StreamExt};

use crate::names::{self, NameError};
use crate::protocol::{self, Arrival, ErrorKind, Frame, FrameReader, ReadError, PROTOCOL_VERSION};
use crate::rt::{self, TcpStream};
use crate::transcript::Transcript;

/// One framed connection to a server: its writer and its frame reader.
pub struct Link {
    out: TcpStream,
    frames: FrameReader<TcpStream>,
}

impl Link {
    /// Connects to `addr` (`host:port`) with `TCP_NODELAY`.
    pub async fn connect(addr: &str) -> io::Result<Link> {
        let stream = rt::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(Link {
            frames: FrameReader::new(stream.clone()),
            out: stream,
        })
    }

    /// Wraps a connected `std` stream, one made in another network namespace, say; sets
    /// `TCP_NODELAY`.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<Link> {
        let stream = rt::stream(stream)?;
        let _ = stream.set_nodelay(true);
        Ok(Link {
            frames: FrameReader::new(stream.clone()),
            out: stream,
        })
    }

    /// Writes `bytes` as they are (for saying what no well-behaved client would).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes).await?;
        self.out.flush().await
    }

    /// Writes one frame.
    pub async fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.send_bytes(&protocol::encode(frame)?).await
    }

    /// The next frame; `Ok(None)` at a clean end of stream.
    pub async fn recv(&mut self) -> Result<Option<Frame>, ReadError> {
        self.frames.read_frame().await
    }

    /// Half-closes: the server sees the end of our stream, and can still write to us.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.out.shutdown(std::net::Shutdown::Write)
    }

    /// The raw socket descriptor, for tests that set socket options.
    #[cfg(unix)]
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.out)
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` of the server.
    pub addr: String,
    /// The room to play in; `None` joins the next anonymous round.
    pub room: Option<String>,
    /// Bound on connecting and on the server's answer to our `Hello`.
    pub connect_timeout: Duration,
    /// A person is at the terminal: say on stderr what we are waiting for.
    pub interactive: bool,
    /// The most to wait for the verdict once our message is sent; `None` without a bound.
    pub reply_timeout: Option<Duration>,
    /// Rounds to join again, by itself, when another party aborts ours (leaves before sending,
    /// or sends nothing in time); 0 never.
    pub rejoins: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:12000".into(),
            room: None,
            connect_timeout: Duration::from_secs(10),
            interactive: false,
            reply_timeout: Some(Duration::from_secs(120)),
            rejoins: 3,
        }
    }
}

/// Where the client's name comes from.
#[derive(Debug, Clone)]
pub enum NameSource {
    /// Given up front (`--name`).
    Given(String),
    /// One line of standard input, read once the client is connected. With `prompt`, the user is
    /// asked on stderr and asked again if the name is refused.
    Stdin { prompt: bool },
}

/// A completed exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The server's number for the round played.
    pub round: u64,
    pub label: String,
    pub name: String,
    pub text: String,
    pub order: Vec<Arrival>,
}

/// Why the exchange did not complete. Each maps to one exit status; see [`Error::exit_code`].
#[derive(Debug)]
pub enum Error {
    /// Could not reach the server.
    Connect { addr: String, source: io::Error },
    /// The server ended the exchange with an error frame.
    Refused { kind: ErrorKind, message: String },
    /// The connection broke, or the server said something the protocol does not allow.
    Lost(String),
    /// Standard input ended before a name was read.
    NoName,
    /// The name breaks the naming rules.
    InvalidName(NameError),
}

impl Error {
    /// 1: the server refused or aborted; 2: bad input from the user; 3: connection problem;
    /// 4: no name on standard input.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Refused { .. } => 1,
            Error::InvalidName(_) => 2,
            Error::Connect { .. } | Error::Lost(_) => 3,
            Error::NoName => 4,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Error::Refused { message, .. } => f.write_str(&names::printable(message)),
            Error::Lost(why) => f.write_str(why),
            Error::NoName => f.write_str("standard input ended before a name was given"),
            Error::InvalidName(e) => write!(f, "the name {e}"),
        }
    }
}

impl std::error::Error for Error {}

pub(crate) type Incoming = mpsc::Receiver<Result<Frame, String>>;

/// Forwards the server's frames; the item after the last frame (or instead of it) is `Err` with
/// why the stream ended.
pub(crate) async fn reader_loop(
    mut frames: FrameReader<TcpStream>,
    mut tx: mpsc::Sender<Result<Frame, String>>,
) {
    loop {
        let item = match frames.read_frame().await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err("the server closed the connection".to_owned()),
            Err(ReadError::Text { .. }) => Err("the server answered in text, not arrival's \
                framed protocol: if it speaks the assignment's text wire, use --wire text"
                .to_owned()),
            Err(e) => Err(format!("lost the connection to the server: {e}")),
        };
        // After these, nothing more is read: the server closes.
        let last = matches!(
            item,
            Err(_) | Ok(Frame::Error { .. } | Frame::ChatOver { .. } | Frame::SessionOver { .. })
        );
        if tx.send(item).await.is_err() || last {
            break;
        }
    }
}

/// The next frame from the server; an `Error` frame or a broken stream becomes an `Err`.
pub(crate) async fn expect(incoming: &mut Incoming) -> Result<Frame, Error> {
    match incoming.next().await {
        Some(Ok(Frame::Error { kind, message })) => Err(Error::Refused { kind, message }),
        Some(Ok(frame)) => Ok(frame),
        Some(Err(why)) => Err(Error::Lost(why)),
        None => Err(Error::Lost("the server closed the connection".into())),
    }
}

pub(crate) fn unexpected(frame: &Frame, wanted: &str) -> Error {
    Error::Lost(format!(
        "protocol error: the server sent {} where {wanted} was expected",
        frame.kind_name()
    ))
}

/// Checks a name given up front, before anyone is kept waiting for us, then connects: how both
/// wires' clients begin.
pub(crate) async fn start(config: &Config, source: &NameSource) -> Result<TcpStream, Error> {
    if let NameSource::Given(name) = source {
        names::validate(name).map_err(Error::InvalidName)?;
    }
    connect(config).await
}

/// Connects within the configured time, as both wires do.
pub(crate) async fn connect(config: &Config) -> Result<TcpStream, Error> {
    let failed = |source| Error::Connect {
        addr: config.addr.clone(),
        source,
    };
    match rt::timeout(config.connect_timeout, rt::connect(&config.addr)).await {
        Some(Ok(stream)) => {
            log::info!("connected to {}", config.addr);
            Ok(stream)
        }
        Some(Err(e)) => Err(failed(e)),
        None => Err(failed(io::Error::new(io::ErrorKind::TimedOut, "timed out"))),
    }
}

/// The client's one writer: the exchange's task, never the reader.
pub(crate) async fn send(mut stream: &TcpStream, frame: Frame) -> Result<(), Error> {
    protocol::write_frame(&mut stream, &frame)
        .await
        .map_err(|e| Error::Lost(format!("lost the connection to the server: {e}")))
}

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

async fn exchange(
    config: &Config,
    source: NameSource,
    transcript: &Transcript,
    stream: &TcpStream,
    incoming: &mut Incoming,
    attempt: &mut Attempt,
    notice: Option<String>,
) -> Result<Verdict, Error> {
    send(
        stream,
        Frame::Hello {
            version: PROTOCOL_VERSION,
            room: config.room.clone(),
        },
    )
    .await?;
    match rt::timeout(config.connect_timeout, expect(incoming)).await {
        None => {
            return Err(Error::Lost(
                "the server did not answer the handshake".into(),
            ))
        }
        Some(Ok(Frame::Welcome { version })) => {
            log::info!("welcomed by a server speaking protocol version {version}");
            attempt.welcomed = true;
            if let Some(notice) = notice {
                transcript.line(notice);
            }
            if config.interactive {
                eprintln!("Waiting for the other parties to connect...");
            }
        }
        Some(Ok(other)) => return Err(unexpected(&other, "Welcome")),
        Some(Err(e)) => return Err(e),
    }
    let (round, label) = match expect(incoming).await? {
        Frame::Connected { round, label } => (round, label),
        other => return Err(unexpected(&other, "Connected")),
    };
    let label = names::printable(&label).into_owned();
    log::info!("round {round}: playing as {label}");
    transcript.line(format!("Client {label} connected"));

    // One line reader for the whole run: lines piped in after the name belong to the chat.
    let mut lines = rt::stdin_lines();
    let name = match source {
        NameSource::Given(name) => name,
        NameSource::Stdin { prompt } => read_name(&label, prompt, incoming, &mut lines).await?,
    };
    attempt.name = Some(name.clone());
    send(stream, Frame::Message { name: name.clone() }).await?;
    attempt.sent = true;
    transcript.line(format!("Client {label}: {name}"));

    let reply = match config.reply_timeout {
        Some(limit) => rt::timeout(limit, expect(incoming))
            .await
            .unwrap_or_else(|| Err(text::no_reply(limit))),
        None => expect(incoming).await,
    };
    let verdict = match reply? {
        Frame::Ack { text, order } => {
            let text = names::printable(&text).into_owned();
            transcript.line(&text);
            Verdict {
                round,
                label,
                name,
                text,
                order,
            }
        }
        other => return Err(unexpected(&other, "Ack")),
    };
    // The server now either closes (the exchange is complete) or opens a chat.
    if let Some(Some(Ok(Frame::ChatOpen))) =
        rt::timeout(config.connect_timeout, incoming.next()).await
    {
        transcript.line("The chat is open: type lines to send them; Bye ends it for everyone.");
        let speakers = Speakers::of(&verdict.order);
        chat(stream, incoming, &mut lines, transcript, &speakers).await?;
    }
    Ok(verdict)
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

/// Ends the prompt's line before anything else is said, so a prompt and an error never share one.
pub(crate) fn end_prompt(prompt: bool) {
    if prompt {
        eprintln!();
    }
}

/// One line of standard input as a name, for both wires' clients: `Ok(None)` means the user,
/// at a terminal, was told why the name was refused and should be asked again.
pub(crate) fn take_name(
    line: Option<io::Result<String>>,
    prompt: bool,
) -> Result<Option<String>, Error> {
    let name = match line {
        None => return Err(Error::NoName),
        Some(Err(e)) => return Err(Error::Lost(format!("cannot read standard input: {e}"))),
        Some(Ok(line)) => line.trim().to_owned(),
    };
    match names::validate(&name) {
        Ok(()) => Ok(Some(name)),
        Err(e) if prompt => {
            eprintln!("That name {e}; try another.");
            Ok(None)
        }
        Err(e) => Err(Error::InvalidName(e)),
    }
}
