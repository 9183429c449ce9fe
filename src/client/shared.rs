//! What both wires' clients share: their settings, the name's source, the verdict, the errors,
//! connecting, and the framed client's reader task and its one writer.

use std::fmt;
use std::io;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};

use crate::names::{self, NameError};
use crate::protocol::{self, Arrival, ErrorKind, Frame, FrameReader, ReadError};
use crate::rt::{self, TcpStream};

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
