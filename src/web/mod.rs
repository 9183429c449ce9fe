//! Browsers on the server's own port: the player and host pages over HTTP, and players and
//! hosts over WebSocket.
//!
//! A connection reaches this module when its first bytes are an HTTP request rather than a
//! frame's length prefix (`wire::framed` says so; the connection actor lends it the socket and
//! the bytes read so far). It is still that connection's task, holding its places in the
//! server's limits: a browser counts against `max_connections` and `max_per_address` like any
//! client, and every wait here is bounded by the deadlines it is given.
//!
//! - [`http`]: reads one request head (bounded in size and time) and answers it: a page, the
//!   QR code of the players' link (`/qr.svg`), a status with a reason, or, for `/ws`, the
//!   WebSocket upgrade. One request per connection
//!   (`Connection: close`), so every page load is one connection, under the same limits.
//!   After an upgrade the connection actor plays on over the WebSocket wire
//!   ([`wire::websocket`](crate::wire::websocket)): each binary message carries one protocol
//!   frame, so a browser plays through the same connection actor, lobby and session as
//!   `arrival-client --stay`, ordered by the kernel's receive time of the bytes that carried its
//!   answer.
//! - The links the server prints for players and the host, and the host key.
//! - `pages/`: the HTML, CSS and script, embedded in the binary; they load nothing from
//!   anywhere but this server.
//!
//! This module must not decide anything about rounds or sessions, nor know the server that
//! lends it connections; it writes only from the connection's own task.

pub mod http;

use std::net::SocketAddr;

/// A fresh host key: 32 hex digits (128 bits) from the operating system's random source, or the
/// error where it has none (a key guessed from the clock would be no key).
pub fn random_key() -> Result<String, getrandom::Error> {
    Ok(format!(
        "{:016x}{:016x}",
        getrandom::u64()?,
        getrandom::u64()?
    ))
}

/// The address players can reach the server at: the bound one, or, for a server bound to every
/// interface, this machine's address on the network its default route leads to (no packet is
/// sent to find it), else loopback.
pub fn reachable(bound: SocketAddr) -> SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let probe = match bound {
        SocketAddr::V4(_) => std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:9").map(|()| s)),
        SocketAddr::V6(_) => std::net::UdpSocket::bind("[::]:0")
            .and_then(|s| s.connect("[2001:db8::1]:9").map(|()| s)),
    };
    let ip = probe
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(match bound {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    SocketAddr::new(ip, bound.port())
}

/// The player and host links for a server bound to `bound` (over https if `tls`), or reached at
/// `public` (a URL without a trailing slash), for `room`. The host link carries `key` only if given: a screen's
/// link, never a log's (the page takes the key out of its address bar at once). With `qr`, a QR
/// code of the player link drawn in text below them.
pub fn links(
    bound: SocketAddr,
    tls: bool,
    public: Option<&str>,
    room: &str,
    key: Option<&str>,
    qr: bool,
) -> Vec<String> {
    let scheme = if tls { "https" } else { "http" };
    let base = public.map_or_else(|| format!("{scheme}://{}", reachable(bound)), str::to_owned);
    let room = encode_query(room);
    let player = format!("{base}/?room={room}");
    let host = match key {
        Some(key) => {
            format!("The host opens {base}/host?room={room}#key={key} (keep it to yourself)")
        }
        None => format!("The host opens {base}/host?room={room} and types the host key"),
    };
    let mut lines = vec![format!("Players open {player}"), host];
    if qr {
        if let Ok(code) = qrcode::QrCode::new(player.as_bytes()) {
            let drawn = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .build();
            lines.extend(drawn.lines().map(str::to_owned));
        }
    }
    lines
}

/// `room` as a URL query value: letters, digits and `-._~` as they are, every other byte
/// percent-encoded.
fn encode_query(room: &str) -> String {
    room.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod script_tests;
