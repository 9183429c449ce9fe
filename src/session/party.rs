//! One player of a session as the session sees it: its outbox, its round-trip figures, its
//! points, and where it stands in the open round ([`Play`]). Owned by the session's state;
//! nothing here sends or waits.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::{SessionConfig, FLAG_NOISE, MAX_PENDING_PINGS, TAP_GRACE};
use crate::protocol::{RttSource, Standing};
use crate::round::{ConnId, Outbound, Outbox};

/// Presses within [`TAP_GRACE`] of a player's own answer taken for repeats of it (a double
/// tap, a bouncing key); a further one is a press like any other.
const REPEATS: u8 = 2;

/// Where a party stands in the open round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Play {
    /// Not in the open round (none is open, or it joined after its `Go`).
    Idle,
    /// In the round, and may still answer.
    Waiting,
    /// Answered; the instant its answer arrived.
    Answered(Instant),
    /// In the round but out of it (pressed early, or locked out), shown as this standing.
    Out(Standing),
    /// Left the round before answering: named in its result as having left.
    Left,
}

pub(crate) struct Party {
    pub(crate) id: ConnId,
    pub(crate) name: String,
    /// The team it plays for; empty without teams.
    pub(crate) team: String,
    /// What its name looks like ([`skeleton`](crate::names::skeleton)): no other seat's may
    /// look the same.
    pub(crate) skeleton: String,
    /// What takes the seat back: given to the device that took it, and to nobody else.
    pub(crate) secret: String,
    /// `None` while its player is away (its connection gone): the seat and its points are
    /// held until the player comes back with the secret, or the host frees the seat.
    pub(crate) reply: Option<Outbox>,
    /// Recent round-trip samples in microseconds, newest last (a big room holds thousands of
    /// these windows; a `Duration` each would be four times the memory).
    rtts: VecDeque<u32>,
    /// Pings sent and not yet answered: (seq, when sent).
    pings: Vec<(u32, Instant)>,
    /// The kernel's latest minimum round trip for the connection.
    pub(crate) kernel_rtt: Option<Duration>,
    pub(crate) points: u64,
    pub(crate) play: Play,
    /// The round this party is locked out of, and how it will be shown.
    pub(crate) locked: Option<(u64, Standing)>,
    /// Answers arriving before this are late answers to the last round, not early buzzes.
    pub(crate) late_until: Option<Instant>,
    /// When its last valid answer arrived: a press soon after is the same press.
    pub(crate) answered_at: Option<Instant>,
    /// Presses taken for repeats of that answer.
    repeats: u8,
    /// Its round trip as the session would have used it at the open round's `Go`: an answer
    /// whose own path is much shorter is flagged to the host.
    pub(crate) rtt_at_go: Option<Duration>,
    /// When the open round's `Go` was written to its connection, once its connection says so.
    pub(crate) go: Option<Instant>,
    /// The first round it plays in.
    pub(crate) from_round: u64,
}

impl Party {
    pub(crate) fn new(id: ConnId, name: String, team: String, reply: Outbox, from: u64) -> Party {
        Party {
            id,
            skeleton: crate::names::skeleton(&name),
            name,
            team,
            secret: String::new(),
            reply: Some(reply),
            rtts: VecDeque::new(),
            pings: Vec::new(),
            kernel_rtt: None,
            points: 0,
            play: Play::Idle,
            locked: None,
            late_until: None,
            answered_at: None,
            repeats: 0,
            rtt_at_go: None,
            go: None,
            from_round: from,
        }
    }

    /// Its player is away: the seat is held for it.
    pub(crate) fn gone(&self) -> bool {
        self.reply.is_none()
    }

    /// In the open round: present at its `Go`, and so in its result.
    pub(crate) fn in_round(&self) -> bool {
        self.play != Play::Idle
    }

    /// Sends `event` if its connection is still here; false if it could not take it.
    pub(crate) fn tell(&mut self, event: Outbound) -> bool {
        self.reply
            .as_mut()
            .is_none_or(|r| r.try_send(event).is_ok())
    }

    /// Offers `event`, which may be skipped (a roster): false only if its connection is gone
    /// for good (its outbox closed).
    pub(crate) fn offer(&mut self, event: Outbound) -> bool {
        self.reply.as_mut().is_none_or(|r| offer(r, event))
    }

    /// Its connection left: the seat is held; in the open round it is named as having left,
    /// unless it answered or was out already.
    pub(crate) fn leave(&mut self) {
        self.reply = None;
        if self.play == Play::Waiting {
            self.play = Play::Left;
        }
        self.pings.clear();
    }

    /// Its player is back on connection `id`: the seat and its points are its again, and in an
    /// open round it may answer again if it left before answering.
    pub(crate) fn back(&mut self, id: ConnId, reply: Outbox) {
        self.id = id;
        self.reply = Some(reply);
        self.pings.clear();
        if self.play == Play::Left {
            self.play = Play::Waiting;
        }
    }

    /// The round trip used to compensate this party, and its source. Whatever measured it, it
    /// is at most `max_compensation`: a player that controls its own network stack can make
    /// even the kernel's figure look longer, and gains at most the cap.
    pub(crate) fn rtt(&self, config: &SessionConfig) -> (Option<Duration>, RttSource) {
        let (rtt, source) = self.measured(config);
        (rtt.map(|r| r.min(config.max_compensation)), source)
    }

    /// The round trip as measured, before the cap: the least `Ping`/`Pong` sample, bounded by
    /// the kernel's figure plus the slack where the kernel has one.
    fn measured(&self, config: &SessionConfig) -> (Option<Duration>, RttSource) {
        let pinged = self
            .rtts
            .iter()
            .min()
            .map(|&micros| Duration::from_micros(micros.into()));
        match (self.kernel_rtt, pinged) {
            (Some(kernel), pinged) => {
                let bound = kernel + config.rtt_slack;
                (
                    Some(pinged.map_or(kernel, |p| p.min(bound))),
                    RttSource::Kernel,
                )
            }
            (None, Some(p)) => (Some(p), RttSource::Ping),
            (None, None) => (None, RttSource::None),
        }
    }

    /// Whether this party's measured round trip is over the cap.
    pub(crate) fn capped(&self, config: &SessionConfig) -> bool {
        self.measured(config)
            .0
            .is_some_and(|r| r > config.max_compensation)
    }

    /// Why the host should look at this party's answer, if it should: its round trip went over
    /// the cap, or the kernel's figure at its answer is shorter than the round trip it showed
    /// before `Go` by more than noise (a player delaying its own packets to look farther away).
    pub(crate) fn flag(&self, config: &SessionConfig) -> Option<String> {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        if self.capped(config) {
            return Some(format!(
                "round trip over the {} cap",
                ms(config.max_compensation)
            ));
        }
        let (before, at) = (self.rtt_at_go?, self.kernel_rtt?);
        (before > at + config.rtt_slack + FLAG_NOISE).then(|| {
            format!(
                "round trip {} before go, {} at the answer",
                ms(before),
                ms(at)
            )
        })
    }

    pub(crate) fn note_kernel(&mut self, kernel_rtt: Option<Duration>) {
        if kernel_rtt.is_some() {
            self.kernel_rtt = kernel_rtt;
        }
    }

    /// Offers ping `seq`, sent at `sent`; false only if its connection is gone for good.
    pub(crate) fn offer_ping(&mut self, seq: u32, sent: Instant) -> bool {
        let Some(reply) = self.reply.as_mut() else {
            return true;
        };
        match reply.try_send(Outbound::Ping { seq, sent }) {
            Ok(()) => {
                self.pinged(seq, sent);
                true
            }
            Err(e) => !e.is_disconnected(),
        }
    }

    /// Its pings that await their `Pong`.
    pub(crate) fn pings_in_flight(&self) -> usize {
        self.pings.len()
    }

    /// Ping `seq` went out at `sent`.
    fn pinged(&mut self, seq: u32, sent: Instant) {
        self.pings.push((seq, sent));
        if self.pings.len() > MAX_PENDING_PINGS {
            self.pings.remove(0);
        }
    }

    /// Its `Pong` to ping `seq` arrived at `at`: one more round-trip sample, the newest `window`
    /// kept.
    /// Its connection wrote the ping at `written` where it says so, never before the session
    /// sent it.
    pub(crate) fn ponged(
        &mut self,
        seq: u32,
        at: Instant,
        written: Option<Instant>,
        window: usize,
    ) {
        if let Some(i) = self.pings.iter().position(|&(s, _)| s == seq) {
            let (_, sent) = self.pings.swap_remove(i);
            let sent = written.map_or(sent, |w| w.max(sent));
            let rtt = at.saturating_duration_since(sent).as_micros();
            self.rtts.push_back(u32::try_from(rtt).unwrap_or(u32::MAX));
            while self.rtts.len() > window.max(1) {
                self.rtts.pop_front();
            }
        }
    }

    /// A press at `at` repeats this party's own answer (a double tap, a bounce: at most
    /// [`REPEATS`] presses), or arrives before the party could have seen the last result: either
    /// way, not an early buzz. A player pressing all the time is past the repeats at once.
    pub(crate) fn repeat_or_late(&mut self, at: Instant) -> bool {
        if self.late_until.is_some_and(|late| at < late) {
            return true;
        }
        let repeat = self.answered_at.is_some_and(|a| at < a + TAP_GRACE) && self.repeats < REPEATS;
        self.repeats += u8::from(repeat);
        repeat
    }

    /// Its answer arrived at `at`.
    pub(crate) fn answered(&mut self, at: Instant) {
        self.play = Play::Answered(at);
        self.answered_at = Some(at);
        self.repeats = 0;
    }

    /// Round `round` opens: the party is in it, or out of it if it was locked out of it.
    pub(crate) fn open(&mut self, round: u64, config: &SessionConfig) {
        self.late_until = None;
        self.go = None;
        self.rtt_at_go = self.rtt(config).0;
        self.play = match self.locked {
            _ if self.gone() => Play::Idle,
            Some((r, standing)) if r == round => Play::Out(standing),
            _ => Play::Waiting,
        };
        if self.locked.is_some_and(|(r, _)| r <= round) {
            self.locked = None;
        }
    }
}

/// A seat's secret: 128 bits from the operating system's random source, as hex; `None` where
/// it has none (a guessable secret would be none).
pub(crate) fn fresh_secret() -> Option<String> {
    let (a, b) = (getrandom::u64().ok()?, getrandom::u64().ok()?);
    Some(format!("{a:016x}{b:016x}"))
}

/// Offers `event` to an outbox, which may be full (then it is skipped): false only if the outbox
/// is closed, its connection gone for good.
pub(crate) fn offer(reply: &mut Outbox, event: Outbound) -> bool {
    reply.try_send(event).is_ok() || !reply.is_closed()
}
