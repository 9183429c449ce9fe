//! The session's task: one loop over its events and its timer, in phases (gather the players
//! and the host's word, measure round trips, the wait before `Go`, the open round, its result).
//! Each phase is a method; the state and its rules are `state`'s.

use std::time::Instant;

use futures::channel::mpsc;
use futures::future::{Fuse, FutureExt};
use futures::StreamExt;

use super::buzz::{csv_rows, CSV_HEADER};
use super::config::{SessionConfig, HOSTED_MEASURE_EVERY};
use super::event::{SessionEvent, SessionReport};
use super::state::{HostAsk, Session};
use super::text::{listed, over_text, result_text};
use super::view;
use crate::protocol::{Change, OverReason, RoundOutcome};
use crate::round::{Outbound, Style};
use crate::rt;
use crate::stop::{Stop, Stopped};
use crate::transcript::Transcript;

/// What woke the session.
enum Wake {
    Event(Option<SessionEvent>),
    Timer,
    Stop,
}

/// Why a phase could not go on: the session ends, for this reason.
type Ended = OverReason;

pub(crate) struct Actor {
    session: Session,
    events: mpsc::Receiver<SessionEvent>,
    stopped: Fuse<Stopped>,
    stop: Stop,
    transcript: Transcript,
    /// The record's header is on the transcript.
    recorded: bool,
    /// Wakes since the task last let others run.
    in_a_row: usize,
}

/// Events the session handles before it lets the executor run other tasks.
const EVENTS_PER_TURN: usize = 64;

impl Actor {
    pub(crate) fn new(
        config: SessionConfig,
        events: mpsc::Receiver<SessionEvent>,
        stop: &Stop,
        transcript: Transcript,
    ) -> Actor {
        Actor {
            session: Session::new(config),
            events,
            stopped: stop.wait().fuse(),
            stop: stop.clone(),
            transcript,
            recorded: false,
            in_a_row: 0,
        }
    }

    /// Runs rounds until the session ends; every party and host is told why, with the scores.
    pub(crate) async fn run(mut self) -> SessionReport {
        let why = loop {
            if let Err(why) = self.play_round().await {
                break why;
            }
        };
        self.end(why)
    }

    /// A line on the transcript, named after the session's room.
    fn say(&self, line: &str) {
        let room = self.session.config.room.as_deref().unwrap_or("-");
        match self.session.config.style {
            Style::Assignment => self.transcript.line(format!("Session [{room}] {line}")),
            Style::Summary => self.transcript.stamped(format!("Session [{room}] {line}")),
            Style::Quiet => {}
        }
    }

    /// Waits for the next event, the timer at `until` (if any), or the stop.
    /// A big room's coalesced updates go out as they fall due, whatever the phase. After
    /// [`EVENTS_PER_TURN`] events in a row the task lets the executor run others: a big room's
    /// events come faster than one task handles them, and the connections that write what it
    /// sends run on the same threads.
    async fn wake(&mut self, until: Option<Instant>) -> Wake {
        self.in_a_row += 1;
        if self.in_a_row >= EVENTS_PER_TURN {
            self.in_a_row = 0;
            rt::yield_now().await;
        }
        // An event already queued is taken without arming a timer: a big room's bursts (every
        // connection's `GoWritten`, its pongs) would otherwise register and drop one per event.
        let next = [until, self.session.due()].into_iter().flatten().min();
        if next.is_none_or(|t| t > Instant::now()) && !self.stop.is_stopped() {
            match self.events.try_recv() {
                Ok(event) => return Wake::Event(Some(event)),
                Err(mpsc::TryRecvError::Closed) => return Wake::Event(None),
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
        loop {
            let due = self.session.due();
            let timer = async move {
                match [until, due].into_iter().flatten().min() {
                    Some(t) => rt::sleep(t.saturating_duration_since(Instant::now())).await,
                    None => futures::future::pending().await,
                }
            };
            let wake = futures::select_biased! {
                () = &mut self.stopped => Wake::Stop,
                e = self.events.next() => Wake::Event(e),
                () = timer.fuse() => Wake::Timer,
            };
            let now = Instant::now();
            if !matches!(wake, Wake::Timer) || until.is_some_and(|t| t <= now) {
                return wake;
            }
            self.session.flush(now);
        }
    }

    /// Handles events until `until`.
    async fn wait_until(&mut self, until: Instant) -> Result<(), Ended> {
        loop {
            match self.wake(Some(until)).await {
                Wake::Event(Some(e)) => self.session.handle(e),
                Wake::Timer => return Ok(()),
                Wake::Event(None) | Wake::Stop => return Err(OverReason::ServerStopping),
            }
        }
    }

    /// One round, from gathering its players to sending its result.
    async fn play_round(&mut self) -> Result<(), Ended> {
        self.gather().await?;
        self.measure().await?;
        if !self.session.enough() {
            // Someone left while round trips were measured: gather again.
            return Ok(());
        }
        let go = Instant::now();
        let round = self.session.open_round(go);
        self.session.everyone(|| Outbound::Go { round, sent: go });
        self.answers(go + self.session.config.answer_timeout)
            .await?;
        self.result(round, go);
        self.next_round(round)
    }

    /// Waits for enough players and, in a hosted session, the host's word. Meanwhile a hosted
    /// session keeps its players' round trips fresh for the host to see.
    async fn gather(&mut self) -> Result<(), Ended> {
        let mut measure: Option<Instant> = None;
        loop {
            let s = &self.session;
            if s.ask == HostAsk::Finish {
                return Err(OverReason::HostEnded);
            }
            if s.deserted() {
                return Err(OverReason::TooFewPlayers);
            }
            if s.enough() && (!s.hosted || s.ask == HostAsk::Open) {
                break;
            }
            if !(s.enough() && s.hosted) {
                measure = None;
            } else if measure.is_none() {
                measure = Some(Instant::now());
            }
            match self.wake(measure).await {
                Wake::Event(Some(e)) => self.session.handle(e),
                Wake::Timer => {
                    // The last batch's figures, then the next batch.
                    self.session.tell_roster(Change::Update);
                    self.session.ping_all();
                    measure = Some(Instant::now() + HOSTED_MEASURE_EVERY);
                }
                Wake::Event(None) | Wake::Stop => return Err(OverReason::ServerStopping),
            }
        }
        self.session.ask = HostAsk::Nothing;
        Ok(())
    }

    /// Measures round trips, then, unless a host decides when, waits a time nobody can predict.
    async fn measure(&mut self) -> Result<(), Ended> {
        let round = self.session.round + 1;
        self.session.tell_roster(Change::Ready { round });
        for _ in 0..self.session.config.pings {
            self.session.ping_all();
            self.wait_until(Instant::now() + self.session.config.ping_every)
                .await?;
        }
        self.session.tell_roster(Change::Update);
        let jitter = if self.session.hosted {
            self.session.config.hosted_jitter.draw()
        } else {
            self.session.config.go_jitter.draw()
        };
        self.wait_until(Instant::now() + jitter).await?;
        if self.session.ask == HostAsk::Finish {
            return Err(OverReason::HostEnded);
        }
        Ok(())
    }

    /// Takes answers until the round is over, `until` (in a race), or the host ends the
    /// session. In buzz mode the host's judgements end it, and the timer names the next buzz up
    /// once it has settled.
    async fn answers(&mut self, until: Instant) -> Result<(), Ended> {
        // The players still to answer are pinged all along (see `ANSWER_PING_EVERY`).
        let mut pinged = Instant::now();
        if self.session.small() {
            self.session.ping_waiting();
        }
        while !self.session.round_over() && self.session.ask != HostAsk::Finish {
            let buzzing = self.session.buzzing();
            let deadline = if buzzing {
                self.session.settles_at()
            } else {
                Some(until)
            };
            let ping = self.session.next_answer_ping(pinged);
            let wake = [deadline, ping].into_iter().flatten().min();
            match self.wake(wake).await {
                Wake::Event(Some(e)) => self.session.handle(e),
                Wake::Timer if ping.is_some_and(|p| p <= Instant::now()) => {
                    pinged = Instant::now();
                    self.session.ping_waiting();
                    if buzzing {
                        self.session.settle(pinged);
                    }
                }
                Wake::Timer if buzzing => self.session.settle(Instant::now()),
                Wake::Timer if deadline.is_some_and(|d| d <= Instant::now()) => break,
                Wake::Timer => {}
                Wake::Event(None) | Wake::Stop => return Err(OverReason::ServerStopping),
            }
        }
        Ok(())
    }

    /// Ranks round `round`, whose `Go` went at `go`, and tells those who played it and the hosts.
    /// A question in buzz mode goes on the record: its buzzes as CSV on the transcript.
    fn result(&mut self, round: u64, go: Instant) {
        let queue = self.session.close_buzz();
        let flags = self.session.flags();
        let order = self.session.result(go, queue.as_ref());
        let scores = self.session.scores();
        let mut text = result_text(round, &order, self.session.config.order);
        if !flags.is_empty() {
            text.push_str(&format!("; for the host to check: {}", listed(flags, ", ")));
        }
        self.say(&text);
        if !self.session.small() {
            // A big room's operator sees how long its Go took to reach every socket.
            let (written, spread) = self.session.gos_written();
            self.say(&format!(
                "round {round}: Go written to {written} players over {:.1} ms, first to last",
                spread.as_secs_f64() * 1e3
            ));
        }
        if let Some(queue) = &queue {
            // The record is what the host saw: in a big room, the top of the queue.
            if self.session.small() {
                self.record(queue);
            } else {
                self.record(&queue.cut(view::host_cut()));
            }
        }
        self.session.send_result(RoundOutcome {
            round,
            text,
            order,
            scores,
        });
        self.session.close_round(Instant::now());
    }

    /// The question's buzzes on the transcript, as the host's CSV has them.
    fn record(&mut self, queue: &crate::protocol::BuzzQueue) {
        if !self.recorded {
            self.recorded = true;
            self.say(&format!("record {CSV_HEADER}"));
        }
        let session = &self.session;
        for row in csv_rows(session.game(), queue, |name| session.points_of(name)) {
            self.say(&format!("record {row}"));
        }
    }

    /// Whether the session goes on after round `round`.
    fn next_round(&self, round: u64) -> Result<(), Ended> {
        let s = &self.session;
        if s.ask == HostAsk::Finish {
            return Err(OverReason::HostEnded);
        }
        if !s.hosted && round >= s.config.rounds {
            return Err(OverReason::LastRound);
        }
        if !s.hosted && !s.enough() {
            return Err(OverReason::TooFewPlayers);
        }
        Ok(())
    }

    /// Tells everyone the session is over, why, and the final scores.
    fn end(mut self, why: OverReason) -> SessionReport {
        let rounds = self.session.played;
        let scores = self.session.scores();
        // `Session [quiz] over after ...`: the transcript names the session already.
        let over = over_text(why, rounds, &scores);
        self.say(over.trim_start_matches("Session "));
        self.session.send_over(why, rounds, &scores);
        SessionReport {
            room: self.session.config.room.clone(),
            rounds,
            scores,
        }
    }
}
