//! The accept loop's door: what happens to a connection the loop has accepted. It starts the
//! connection's task (or the echo's), or refuses it in its wire's words when the server is at a
//! limit, and answers a balancer's health check. It holds no table: the limits' counts are in
//! [`Stats`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures::channel::mpsc;
use futures::FutureExt;

use super::config::{Config, Mode};
use super::connection::{serve_connection, Connection, Ctx};
use super::echo;
use super::stats::Stats;
use crate::close::{close_with, LINGER};
use crate::protocol::ErrorKind;
use crate::round::{ConnId, Outbound};
use crate::rt::{self, Socket};
use crate::stamp::StampedStream;
use crate::web::http;
use crate::wire::framed::Framed;
use crate::wire::text::Text;
use crate::wire::{Inbound, Wire, WireKind};

/// What the door needs: the connections' shared context, the counters, and the drain every
/// connection task holds a sender of (when all are dropped, every connection is done).
pub(crate) struct Door {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) drain: mpsc::Sender<Infallible>,
}

impl Door {
    fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// Starts a connection task, or refuses the connection when the server is at its limit.
    /// `accepted`: when the accept loop took it, where its handshake deadline starts.
    pub(crate) fn admit(&self, stream: Socket, peer: SocketAddr, id: ConnId, accepted: Instant) {
        let _ = stream.get_ref().set_nodelay(true);
        let config = self.config();
        let live = if self.stats.live_connections() >= config.max_connections {
            Err(format!(
                "the server is at its limit of {} connections; try again later",
                config.max_connections
            ))
        } else {
            self.stats
                .admit(peer.ip(), config.max_per_address)
                .ok_or_else(|| {
                    format!(
                        "this address already holds {} connections, the most the server allows \
                         one address; try again later",
                        config.max_per_address
                    )
                })
        };
        let live = match live {
            Ok(live) => live,
            Err(message) => return self.refuse_busy(stream, peer, message),
        };
        let ctx = Arc::clone(&self.ctx);
        let timeout = ctx.config.frame_timeout;
        let deadline = accepted + ctx.config.handshake_timeout;
        // The task's future is the connection's own, built before the spawn, with the guards
        // riding along in `map` (dropped when it ends, the live count before the drain sender):
        // an async block around it would hold its arguments a second time, and one task for all
        // three kinds of connection would be as big as the largest (a text connection's).
        let held = (live, self.drain.clone());
        match (ctx.config.mode, ctx.config.wire) {
            (Mode::Echo, _) => {
                let echo = echo::echo_loop(stream, ctx.stop.clone());
                rt::spawn(echo.map(move |echoed| {
                    drop(held);
                    match echoed {
                        Ok(bytes) => log::debug!("{peer}: echoed {bytes} bytes"),
                        Err(e) => log::info!("{peer}: echo ended: {e}"),
                    }
                }))
            }
            (Mode::Arbiter, WireKind::Framed) if ctx.config.tls.is_some() => {
                rt::spawn(serve_tls(stream, peer, id, ctx, deadline, held))
            }
            (Mode::Arbiter, WireKind::Framed) => {
                let conn = framed(stream, peer, id, ctx, deadline);
                rt::spawn(serve_connection(conn, move || drop(held)))
            }
            (Mode::Arbiter, WireKind::Text) => {
                let wire = Text::new(StampedStream::new(stream.clone()), timeout);
                let conn = Connection::new(stream, wire, peer, id, ctx, deadline);
                rt::spawn(serve_connection(conn, move || drop(held)))
            }
        };
    }

    /// Answers a connection the server will not hold `Busy`, in its wire's words, and closes it.
    pub(crate) fn refuse_busy(&self, stream: Socket, peer: SocketAddr, message: String) {
        let config = self.config();
        self.stats.refused_busy.fetch_add(1, Ordering::SeqCst);
        log::warn!("{peer}: refused: {message}");
        let (timeout, input) = (config.frame_timeout, StampedStream::new(stream.clone()));
        let drain = self.drain.clone();
        match config.wire {
            // A browser is refused in HTTP: its first bytes say which it is (a framed client's
            // `Hello` comes at once, so it waits a round trip for its refusal, not the bound).
            WireKind::Framed if config.web => rt::spawn(async move {
                let _drain = drain;
                let mut wire = Framed::new(input, timeout).with_web(true);
                match rt::timeout(LINGER, wire.next()).await {
                    Some(Inbound::Web) => {
                        if let Some((mut input, _)) = wire.into_web() {
                            let refusal = http::busy(&message);
                            http::refuse(&stream, &mut input, &refusal, timeout).await;
                        }
                    }
                    // A browser's connection opened ahead of need: a refusal written into it
                    // would be read as the answer to its next request.
                    None if wire.heard_nothing() => {
                        close_with(&stream, &mut wire, &[], timeout, false).await;
                    }
                    _ => refuse(stream, wire, busy(message), timeout).await,
                }
            }),
            WireKind::Framed => rt::spawn(async move {
                let _drain = drain;
                refuse(stream, Framed::new(input, timeout), busy(message), timeout).await
            }),
            WireKind::Text => rt::spawn(async move {
                let _drain = drain;
                refuse(stream, Text::new(input, timeout), busy(message), timeout).await
            }),
        };
    }

    /// Answers a balancer's health check with `Welcome` and closes: a check that reads it knows
    /// the server accepts, reads headers and answers, not only that the kernel takes
    /// connections. It joins nothing and prints nothing.
    pub(crate) fn answer_health_check(&self, stream: Socket) {
        let timeout = self.config().frame_timeout;
        let input = StampedStream::new(stream.clone());
        let drain = self.drain.clone();
        rt::spawn(async move {
            let _drain = drain;
            let wire = Framed::new(input, timeout);
            refuse(stream, wire, Outbound::Admitted, timeout).await
        });
    }
}

/// A framed connection (a browser's, if its first bytes are a request).
fn framed(
    stream: Socket,
    peer: SocketAddr,
    id: ConnId,
    ctx: Arc<Ctx>,
    deadline: Instant,
) -> Connection<Framed> {
    let wire = Framed::new(StampedStream::new(stream.clone()), ctx.config.frame_timeout)
        .with_kernel_rtt(ctx.config.players_kernel_rtt())
        .with_web(ctx.config.web);
    Connection::new(stream, wire, peer, id, ctx, deadline)
}

/// A connection to a server with TLS: its handshake first if it opens one (within its handshake
/// deadline), then served like any framed connection, over TLS or not. `held` (its places in the
/// limits) is given back when it ends.
async fn serve_tls(
    stream: Socket,
    peer: SocketAddr,
    id: ConnId,
    ctx: Arc<Ctx>,
    deadline: Instant,
    held: impl Send + 'static,
) {
    let Some(config) = ctx.config.tls.clone() else {
        return;
    };
    let stream = match crate::tls::accept(stream, config, deadline).await {
        Ok(crate::tls::Accepted::Tls(stream)) => {
            log::debug!("{peer}: TLS");
            stream
        }
        Ok(crate::tls::Accepted::Plain(stream)) => stream,
        Err(why) => {
            log::info!("{peer}: {why}");
            return;
        }
    };
    let conn = framed(stream, peer, id, ctx, deadline);
    serve_connection(conn, move || drop(held)).await;
}

fn busy(message: String) -> Outbound {
    Outbound::ended(ErrorKind::Busy, message)
}

/// Says `event` the way `wire` would, and closes patiently: a real client has sent its `Hello`
/// by now, and leaving it unread would turn the close into a reset that can destroy the refusal.
async fn refuse<W: Wire>(
    out: Socket,
    mut wire: W,
    event: Outbound,
    write_timeout: std::time::Duration,
) {
    let mut bytes = Vec::new();
    wire.render(&event, &mut bytes);
    wire.farewell(&mut bytes);
    close_with(&out, &mut wire, &bytes, write_timeout, true).await;
}

/// The refusal `config`'s wire says to a connection the server cannot take, as bytes.
pub(crate) fn busy_bytes(config: &Config, why: &str) -> Vec<u8> {
    let message = format!("{why}; try again later");
    match config.wire {
        WireKind::Framed => {
            crate::protocol::encode(&crate::protocol::Frame::error(ErrorKind::Busy, message))
                .unwrap_or_default()
        }
        WireKind::Text => format!("error: {message}\n").into_bytes(),
    }
}
