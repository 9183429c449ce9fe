//! One HTTP request on a browser's connection, answered: a page, a status with its reason, or
//! the WebSocket upgrade.
//!
//! The head is read whole before anything is answered, at most [`MAX_HEAD`] bytes and within
//! the server's handshake timeout; it is parsed by `httparse`. Every answer carries
//! `Connection: close`: the server reads no second request on a connection, so each page load
//! is one connection under the server's limits. What a bad request gets:
//!
//! | request | answer |
//! |---|---|
//! | head not complete within the handshake timeout | `408` |
//! | head over [`MAX_HEAD`] bytes | `431` |
//! | not HTTP | `400` |
//! | a `Host` that is not one of the server's names ([`host_allowed`]) | `421` (`/ws`: `403`) |
//! | another method HTTP defines than `GET` / `HEAD` | `405` |
//! | a method HTTP does not define | `501` |
//! | a path the server has no page for | `404` |
//! | `/ws` without a valid upgrade (headers, key) | `400` |
//! | `/ws` with a WebSocket version other than 13 | `426` |
//! | `/ws` from a page of another origin | `403` |
//!
//! It must not know what a session is; an accepted upgrade hands the connection to
//! the WebSocket wire, [`wire::websocket`](crate::wire::websocket).

use std::net::SocketAddr;
use std::time::Duration;

use futures::AsyncReadExt;

use crate::close::{close_with, write_all, Unread};
use crate::rt::{self, Socket};
use crate::stamp::StampedStream;

/// The most bytes a request head may take: far above what a browser sends (well under 2 KiB
/// for these pages), and what a connection may make the server hold before it is answered.
pub const MAX_HEAD: usize = 8 * 1024;

/// Headers a request may carry.
const MAX_HEADERS: usize = 48;

/// What keeps any page from loading from, or sending to, anywhere but this server.
const SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const PLAYER_PAGE: &str = include_str!("pages/player.html");
const HOST_PAGE: &str = include_str!("pages/host.html");
/// The pages' files: the shared protocol script and stylesheet, and each page's own script.
pub(crate) const SCRIPT: &str = include_str!("pages/arrival.js");
const STYLE: &str = include_str!("pages/arrival.css");
const PLAYER_SCRIPT: &str = include_str!("pages/player.js");
const HOST_SCRIPT: &str = include_str!("pages/host.js");

/// When a browser's request head must be in (the connection's one handshake deadline, which
/// its WebSocket's first frame shares), the time that deadline allowed, and how long a write may
/// take.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub handshake: std::time::Instant,
    pub handshake_timeout: Duration,
    pub frame_timeout: Duration,
    /// The request came over TLS: links it gives (the QR code's) are `https`.
    pub https: bool,
}

/// An answer that ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// Extra header lines, each ending in CRLF.
    extra: String,
    /// HEAD: the headers only.
    head_only: bool,
}

impl Response {
    fn page(content_type: &'static str, body: &str) -> Response {
        Response {
            status: 200,
            content_type,
            body: body.as_bytes().to_vec(),
            extra: format!("Content-Security-Policy: {SECURITY_POLICY}\r\n"),
            head_only: false,
        }
    }

    /// A status with its reason in one line of plain text.
    fn error(status: u16, reason: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{reason}\n").into_bytes(),
            extra: String::new(),
            head_only: false,
        }
    }

    fn with_header(mut self, line: &str) -> Response {
        self.extra.push_str(line);
        self.extra.push_str("\r\n");
        self
    }

    /// The reason line of an error's body.
    pub fn reason(&self) -> String {
        String::from_utf8_lossy(&self.body).trim_end().to_owned()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: \
             no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n{}\
             Connection: close\r\n\r\n",
            self.status,
            status_text(self.status),
            self.content_type,
            self.body.len(),
            self.extra
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        421 => "Misdirected Request",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The refusal a browser gets where a framed client gets `Busy`.
pub fn busy(message: &str) -> Response {
    Response::error(503, message).with_header("Retry-After: 10")
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Answer and close.
    Answer(Response),
    /// Switch to WebSocket: the `101` to send.
    Upgrade(Vec<u8>),
}

/// Why a head could not be read.
enum HeadError {
    TooLarge,
    /// The peer closed (or failed) before its head was complete: nobody to answer.
    Gone,
}

/// Reads until `buf` holds a complete request head; returns its length.
async fn read_head(input: &mut StampedStream, buf: &mut Vec<u8>) -> Result<usize, HeadError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(buf) {
            Ok(httparse::Status::Complete(len)) => return Ok(len),
            // A head that does not parse is answered 400 by `route`, which parses it again.
            Err(_) => return Ok(buf.len()),
            Ok(httparse::Status::Partial) => {}
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let mut chunk = [0u8; 1024];
        let room = (MAX_HEAD - buf.len()).min(chunk.len());
        match input.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether a request's `Host` header names this server: an address (a page served from an
/// address is its own origin, which no other site can take over), `localhost` (which browsers
/// resolve to this machine themselves), or one of the names the operator listed (`names`,
/// lowercase, without ports). Any other name may be an attacker's, rebound to this server's
/// address to let its pages in (DNS rebinding): they are refused. Ports are not compared: a
/// balancer in front may listen on another.
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let host = host.trim();
    if host.starts_with('[') {
        // An IPv6 literal, the only form with brackets.
        return host
            .split_once(']')
            .is_some_and(|(ip, _)| ip[1..].parse::<std::net::Ipv6Addr>().is_ok());
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || names.contains(&name)
}

/// The methods HTTP defines (RFC 9110, and PATCH): one of them other than GET and HEAD is not
/// allowed here (`405`); any other is not a method this server knows (`501`).
const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// What the request in `head` gets, from a server whose names are `names` (see
/// [`host_allowed`]). `Upgrade` only for a valid WebSocket handshake to `/ws`.
pub fn route(head: &[u8], names: &[String], https: bool) -> Route {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Route::Answer(Response::error(400, "the request head is incomplete"))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Route::Answer(Response::error(
                431,
                &format!("more than {MAX_HEADERS} headers"),
            ))
        }
        Err(e) => return Route::Answer(Response::error(400, &format!("not an HTTP request: {e}"))),
    }
    let method = request.method.unwrap_or_default();
    let target = request.path.unwrap_or_default();
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    if let Some(refused) =
        refused_method(method).or_else(|| misdirected(path, header("host"), names))
    {
        return Route::Answer(refused);
    }
    let page = match path {
        "/" | "/index.html" => Some(Response::page("text/html; charset=utf-8", PLAYER_PAGE)),
        "/host" => Some(Response::page("text/html; charset=utf-8", HOST_PAGE)),
        "/arrival.js" => Some(Response::page("text/javascript; charset=utf-8", SCRIPT)),
        "/player.js" => Some(Response::page(
            "text/javascript; charset=utf-8",
            PLAYER_SCRIPT,
        )),
        "/host.js" => Some(Response::page(
            "text/javascript; charset=utf-8",
            HOST_SCRIPT,
        )),
        "/arrival.css" => Some(Response::page("text/css; charset=utf-8", STYLE)),
        "/qr.svg" => Some(join_code(target, header("host").as_deref(), https)),
        "/ws" => None,
        _ => {
            return Route::Answer(Response::error(
                404,
                &format!("no page at {path}: players open /, the host /host"),
            ))
        }
    };
    if let Some(mut page) = page {
        page.head_only = method == "HEAD";
        return Route::Answer(page);
    }
    upgrade(
        method,
        request.version,
        &header("upgrade"),
        &header("connection"),
        &header("sec-websocket-version"),
        &header("sec-websocket-key"),
        &header("origin"),
        &header("host"),
    )
}

/// What a request for a method other than `GET` or `HEAD` gets.
fn refused_method(method: &str) -> Option<Response> {
    if !HTTP_METHODS.contains(&method) {
        return Some(Response::error(
            501,
            &format!("{method} is not an HTTP method this server knows; pages take GET"),
        ));
    }
    (method != "GET" && method != "HEAD").then(|| {
        Response::error(405, &format!("{method} is not served here; pages take GET"))
            .with_header("Allow: GET, HEAD")
    })
}

/// What a request for `path` under a `Host` that is missing or not one of the server's `names`
/// gets (see [`host_allowed`]).
fn misdirected(path: &str, host: Option<String>, names: &[String]) -> Option<Response> {
    let Some(host) = host else {
        return Some(Response::error(400, "the request has no Host header"));
    };
    if host_allowed(&host, names) {
        return None;
    }
    let (status, what) = if path == "/ws" {
        (403, "connection")
    } else {
        (421, "page")
    };
    let reason = format!(
        "this server has no {what} for the name {host:?}; open it by the address or name its \
         operator gave"
    );
    Some(Response::error(status, &reason))
}

/// The QR code of the players' link to the room in `target`'s query (`/qr.svg?room=quiz`), at
/// the host the browser asked for: the projector shows it for phones to scan. The link is
/// built from characters a URL carries as they are, so the code says exactly what the page
/// shows.
fn join_code(target: &str, host: Option<&str>, https: bool) -> Response {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let room = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("room="))
        .unwrap_or("");
    let plain = |s: &str, extra: &[u8]| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b) || extra.contains(&b))
    };
    let Some(host) = host.filter(|h| h.len() <= 255 && plain(h, b":[]")) else {
        return Response::error(
            400,
            "the QR code needs the Host header of a plain host name",
        );
    };
    if room.len() > 200 || !plain(room, b"") {
        return Response::error(400, "the room must be percent-encoded, at most 200 bytes");
    }
    let scheme = if https { "https" } else { "http" };
    let link = format!("{scheme}://{host}/?room={room}");
    match qrcode::QrCode::new(link.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .build();
            Response::page("image/svg+xml", &svg)
        }
        Err(_) => Response::error(400, "the link does not fit a QR code"),
    }
}

/// The WebSocket handshake's checks (RFC 6455, 4.2.1), and the answer.
#[allow(clippy::too_many_arguments)]
fn upgrade(
    method: &str,
    version: Option<u8>,
    upgrade: &Option<String>,
    connection: &Option<String>,
    ws_version: &Option<String>,
    key: &Option<String>,
    origin: &Option<String>,
    host: &Option<String>,
) -> Route {
    let bad = |reason: &str| Route::Answer(Response::error(400, reason));
    if method != "GET" || version != Some(1) {
        return bad("a WebSocket upgrade is a GET in HTTP/1.1");
    }
    let has_token = |value: &Option<String>, token: &str| {
        value
            .as_deref()
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token(upgrade, "websocket") || !has_token(connection, "upgrade") {
        return bad(
            "/ws is the WebSocket endpoint: it needs Upgrade: websocket and Connection: Upgrade",
        );
    }
    if ws_version.as_deref() != Some("13") {
        return Route::Answer(
            Response::error(426, "this server speaks WebSocket version 13")
                .with_header("Sec-WebSocket-Version: 13"),
        );
    }
    // The key is 16 random bytes in base64: 24 characters, the last two `==`.
    let Some(key) = key
        .as_deref()
        .filter(|k| k.len() == 24 && k.ends_with("=="))
    else {
        return bad("Sec-WebSocket-Key is missing or is not 16 bytes in base64");
    };
    if let (Some(origin), Some(host)) = (origin, host) {
        let origin_host = origin.split_once("://").map_or(origin.as_str(), |(_, h)| h);
        if !origin_host.eq_ignore_ascii_case(host) {
            return Route::Answer(Response::error(
                403,
                "a page from another site may not open a connection here",
            ));
        }
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    Route::Upgrade(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes(),
    )
}

/// Reads and answers the request whose first bytes are `head`. For an accepted upgrade, the
/// read half and whatever arrived after the head (the first WebSocket frames, if the browser
/// was quick); `None` when the connection is done.
pub(crate) async fn answer(
    out: &Socket,
    mut input: StampedStream,
    mut head: Vec<u8>,
    peer: SocketAddr,
    config: Deadlines,
    names: &[String],
) -> Option<(StampedStream, Vec<u8>)> {
    let left = config
        .handshake
        .saturating_duration_since(std::time::Instant::now());
    let read = rt::bounded(left, read_head(&mut input, &mut head)).await;
    let mut rest = Vec::new();
    let route = match read {
        None => Route::Answer(Response::error(
            408,
            &format!(
                "the request did not arrive within {} s",
                config.handshake_timeout.as_secs_f64()
            ),
        )),
        Some(Err(HeadError::TooLarge)) => Route::Answer(Response::error(
            431,
            &format!("the request head is over {MAX_HEAD} bytes"),
        )),
        Some(Err(HeadError::Gone)) => {
            log::info!("{peer}: left before its HTTP request was complete");
            return None;
        }
        Some(Ok(len)) => {
            rest = head[len..].to_vec();
            route(&head[..len], names, config.https)
        }
    };
    match route {
        Route::Upgrade(switching) => {
            let written = rt::bounded(config.frame_timeout, write_all(out, &switching)).await;
            if !matches!(written, Some(Ok(()))) {
                log::info!("{peer}: could not be told its WebSocket upgrade");
                return None;
            }
            log::debug!("{peer}: WebSocket");
            // Only what came after the head, in an allocation of its own: the head's buffer
            // would stay with the connection as long as it plays.
            Some((input, rest))
        }
        Route::Answer(response) => {
            if response.status == 200 {
                log::debug!("{peer}: HTTP 200");
            } else {
                log::warn!("{peer}: HTTP {}: {}", response.status, response.reason());
            }
            refuse(out, &mut input, &response, config.frame_timeout).await;
            None
        }
    }
}

/// Answers `response` on a connection whose request has been read, and closes politely.
pub(crate) async fn refuse(
    out: &Socket,
    input: &mut StampedStream,
    response: &Response,
    write_timeout: Duration,
) {
    let mut unread = Unread {
        input,
        discarded: 0,
    };
    close_with(out, &mut unread, &response.to_bytes(), write_timeout, true).await;
}
