//! The quiz client (`arrival-client --stay`): takes a seat in a room's session (protocol 6) and
//! plays its rounds until the session is over.
//!
//! Owns the client side of a session: it answers every `Ping` at once (the server measures our
//! round trip with them), says who is in the room and who joins and leaves (from the server's
//! `Roster`), announces each `Go` with the time there is to answer, sends `Answer` when the user
//! presses Enter, and prints each round's result, what it means for this player, and, at the
//! end, why the session ended and the final scores. A press
//! before "go!" is shown is sent as the early buzz it is, and the client says so: the server
//! locks the player out of the next round (holding Enter never wins). A second press in a round
//! already answered is not sent. When standard input ends the client stays and stops answering.
//! In buzz mode it says each buzz as it lands, who is up, and the host's judgements. It keeps
//! the seat's secret in memory: a lost connection is joined again with it, and the seat and its
//! points come back.
//! Everything the server sends is escaped before it reaches a terminal.

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};

use super::shared::{
    connect, end_prompt, expect, reader_loop, send, unexpected, Config, Error, Incoming,
};
use crate::names;
use crate::protocol::{
    BuzzQueue, Change, Frame, FrameReader, Judgement, Placing, Roster, RttSource, Score, Standing,
    PROTOCOL_VERSION,
};
use crate::rt::{self, TcpStream};
use crate::session::{over_text, scores_text};
use crate::transcript::Transcript;

/// Where the player is in the current round, as far as its presses go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buzzer {
    /// No round open for us: a press is an early buzz.
    Closed,
    /// "go!" was shown for this round: a press answers it.
    Open(u64),
    /// This round is answered: a press is not sent.
    Answered(u64),
    /// Locked out of this round: a press would only lock us out of the next one, so it is not
    /// sent.
    Locked(u64),
}

/// Times a lost connection is joined again with the seat's secret before the client gives up.
const REJOINS: u32 = 3;

/// Plays a session as `name` (in `team`) in `config.room`; returns the final scores.
pub async fn run(
    config: &Config,
    name: String,
    team: Option<String>,
    transcript: &Transcript,
) -> Result<Vec<Score>, Error> {
    names::validate_seat(&name).map_err(Error::InvalidName)?;
    if let Some(team) = &team {
        names::validate_team(team).map_err(Error::InvalidName)?;
    }
    let mut seat = Seat {
        name,
        team,
        secret: None,
    };
    let mut rejoins = 0;
    loop {
        match attempt(config, &mut seat, transcript).await {
            Err(Error::Lost(why)) if seat.secret.is_some() && rejoins < REJOINS => {
                rejoins += 1;
                transcript.line(format!(
                    "Connection lost ({}); taking the seat back",
                    names::printable(&why)
                ));
            }
            other => return other,
        }
    }
}

/// The seat this client plays in, and its secret once the server gave it.
struct Seat {
    name: String,
    team: Option<String>,
    secret: Option<String>,
}

/// One connection's play.
async fn attempt(
    config: &Config,
    seat: &mut Seat,
    transcript: &Transcript,
) -> Result<Vec<Score>, Error> {
    let stream = connect(config).await?;
    let _ = stream.set_nodelay(true);
    let (tx, mut incoming) = mpsc::channel(16);
    let reader = rt::spawn(reader_loop(FrameReader::new(stream.clone()), tx));
    let result = play(config, seat, transcript, &stream, &mut incoming).await;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(incoming);
    reader.await;
    result
}

/// A player's side of a session in progress.
struct Player<'a> {
    config: &'a Config,
    seat: &'a mut Seat,
    name: String,
    transcript: &'a Transcript,
    stream: &'a TcpStream,
    /// At a terminal: prompts go to stderr.
    prompt: bool,
    buzzer: Buzzer,
    /// The round the server said we are locked out of.
    locked: Option<u64>,
    /// The time each round gives to answer, as the last roster said.
    answer_micros: Option<u64>,
    /// Our round trip has been shown.
    rtt_shown: bool,
    /// What was said of the open question's buzzes: how many, who was up, the judgements.
    heard: (usize, Option<String>, Vec<Judgement>),
}

async fn play(
    config: &Config,
    seat: &mut Seat,
    transcript: &Transcript,
    stream: &TcpStream,
    incoming: &mut Incoming,
) -> Result<Vec<Score>, Error> {
    let name = seat.name.clone();
    let mut player = Player {
        config,
        seat,
        name,
        transcript,
        stream,
        prompt: config.interactive,
        buzzer: Buzzer::Closed,
        locked: None,
        answer_micros: None,
        rtt_shown: false,
        heard: (0, None, Vec::new()),
    };
    player.join(incoming).await?;
    let mut lines = rt::stdin_lines();
    let mut stdin_open = true;
    loop {
        let typed = if stdin_open {
            lines.next().fuse()
        } else {
            futures::future::Fuse::terminated()
        };
        futures::pin_mut!(typed);
        futures::select_biased! {
            frame = incoming.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(why)) => return Err(Error::Lost(why)),
                    None => return Err(Error::Lost("the server closed the connection".into())),
                };
                if let Some(scores) = player.frame(frame).await? {
                    return Ok(scores);
                }
            }
            line = typed => match line {
                Some(Ok(_)) => player.press().await?,
                // End of input: stay for the results, answer no more.
                _ => stdin_open = false,
            },
        }
    }
}

impl Player<'_> {
    /// `Seat`, and the server's `Welcome`.
    async fn join(&mut self, incoming: &mut Incoming) -> Result<(), Error> {
        let join = Frame::Seat {
            version: PROTOCOL_VERSION,
            room: self.config.room.clone(),
            name: self.name.clone(),
            team: self.seat.team.clone(),
            secret: self.seat.secret.clone(),
        };
        send(self.stream, join).await?;
        match rt::timeout(self.config.connect_timeout, expect(incoming)).await {
            None => return Err(Error::Lost("the server did not answer the Join".into())),
            Some(Ok(Frame::Welcome { .. })) => {}
            Some(Ok(other)) => return Err(unexpected(&other, "Welcome")),
            Some(Err(e)) => return Err(e),
        }
        let room = self.config.room.as_deref().unwrap_or("(anonymous)");
        let joined = format!("Joined the quiz in room {room} as {}", self.name);
        self.transcript.line(joined);
        if self.prompt {
            eprintln!("Waiting for the next round... (press Enter only after \"go!\")");
        }
        Ok(())
    }

    fn say(&self, line: &str) {
        self.transcript.line(names::printable(line));
    }

    /// Ends an open prompt's line before anything else is said.
    fn end_prompt(&self) {
        end_prompt(self.prompt && matches!(self.buzzer, Buzzer::Open(_)));
    }

    /// Handles one frame from the server; the final scores once the session is over.
    async fn frame(&mut self, frame: Frame) -> Result<Option<Vec<Score>>, Error> {
        match frame {
            Frame::Ping { seq } => {
                // A round's last pings may cross the server's last word: a pong it can no
                // longer take is no error, and what it said is read next.
                if let Err(e) = send(self.stream, Frame::Pong { seq }).await {
                    log::info!("a pong was not sent: {e}");
                }
            }
            // The result's sentence already says how it ranked.
            Frame::Rules { ranking } => log::info!("the session ranks by {ranking:?}"),
            Frame::Go { round } => self.go(round),
            Frame::Early { round } => {
                self.say(&format!("Too early: locked out of round {round}"));
                self.locked = Some(round);
            }
            Frame::Outcome(r) => {
                self.end_prompt();
                self.buzzer = Buzzer::Closed;
                self.heard = (0, None, Vec::new());
                self.say(&r.text);
                if let Some(me) = r.order.iter().find(|p| p.name == self.name) {
                    self.say(&standing_line(r.round, me));
                }
                self.say(&scores_line(&r.scores));
            }
            // A version-2 server: the result without standings.
            Frame::Result(r) => {
                self.end_prompt();
                self.buzzer = Buzzer::Closed;
                self.say(&r.text);
                self.say(&scores_line(&r.scores));
            }
            Frame::Roster(roster) => self.roster(&roster),
            Frame::Lineup(lineup) => {
                let line = match &lineup.change {
                    Change::NewGame { game } => Some(format!("Game {game}: scores start again")),
                    Change::Kicked { name } => Some(format!("The host removed {name}")),
                    Change::Back { name } if name != &self.name => Some(format!("{name} is back")),
                    Change::Away { name, .. } => Some(format!("{name} is away (the seat is held)")),
                    _ => None,
                };
                match line {
                    Some(line) => self.say(&line),
                    None => self.roster(&lineup.to_roster()),
                }
            }
            Frame::Seated { secret } => self.seat.secret = Some(secret),
            Frame::Buzzes(queue) => self.buzzes(&queue),
            Frame::Over {
                why,
                rounds,
                scores,
            } => {
                self.end_prompt();
                self.say(&over_text(why, rounds, &scores));
                return Ok(Some(scores));
            }
            Frame::SessionOver { scores } => {
                self.say(&scores_text(&scores));
                return Ok(Some(scores));
            }
            Frame::Error { kind, message } => {
                self.end_prompt();
                return Err(Error::Refused { kind, message });
            }
            other => return Err(unexpected(&other, "a session frame")),
        }
        Ok(None)
    }

    fn roster(&mut self, roster: &Roster) {
        self.answer_micros = Some(roster.answer_micros);
        for line in roster_lines(roster, &self.name, &mut self.rtt_shown) {
            self.say(&line);
        }
    }

    /// Says what is new in an open question's buzz queue: each buzz as it lands, who is up,
    /// each judgement.
    fn buzzes(&mut self, queue: &BuzzQueue) {
        let (said, up, judged) = std::mem::take(&mut self.heard);
        let fresh = queue.buzzes.len() > said;
        if fresh || up != queue.up {
            self.end_prompt();
        }
        for (i, b) in queue.buzzes.iter().enumerate().skip(said) {
            let gap = if i == 0 {
                "first".to_owned()
            } else {
                format!("+{}", rtt_ms(b.gap_micros))
            };
            let me = if b.name == self.name { " (you)" } else { "" };
            self.say(&format!("Buzz {}: {}{me} ({gap})", i + 1, b.name));
        }
        for (i, b) in queue.buzzes.iter().enumerate() {
            let before = judged.get(i).copied().unwrap_or(Judgement::Waiting);
            if b.judgement != before && matches!(b.judgement, Judgement::Correct | Judgement::Wrong)
            {
                let points = match b.points {
                    0 => String::new(),
                    p if p > 0 => format!(", +{p}"),
                    p => format!(", {p}"),
                };
                self.say(&format!("{}: {}{points}", b.name, b.judgement.describe()));
            }
        }
        if queue.up != up {
            match &queue.up {
                Some(name) if name == &self.name => self.say("You are up: answer now!"),
                Some(name) => self.say(&format!("{name} is up")),
                None => {}
            }
        }
        if queue.locked.iter().any(|n| n == &self.name) && !matches!(self.buzzer, Buzzer::Locked(_))
        {
            self.say("Locked out of this question");
            if let Buzzer::Open(round) = self.buzzer {
                self.buzzer = Buzzer::Locked(round);
            }
        }
        self.heard = (
            queue.buzzes.len(),
            queue.up.clone(),
            queue.buzzes.iter().map(|b| b.judgement).collect(),
        );
        if !queue.open {
            self.heard = (0, None, Vec::new());
        }
    }

    /// Round `round` opens.
    fn go(&mut self, round: u64) {
        self.heard = (0, None, Vec::new());
        if self.locked == Some(round) {
            self.say(&format!("Round {round}: go! (you are locked out of it)"));
            self.buzzer = Buzzer::Locked(round);
            return;
        }
        match self.answer_micros {
            Some(us) => self.say(&format!("Round {round}: go! ({} s to answer)", seconds(us))),
            None => self.say(&format!("Round {round}: go!")),
        }
        if self.prompt {
            eprint!("Press Enter to answer: ");
        }
        self.buzzer = Buzzer::Open(round);
    }

    /// The user pressed Enter.
    async fn press(&mut self) -> Result<(), Error> {
        match self.buzzer {
            Buzzer::Open(round) => {
                send(self.stream, Frame::Answer).await?;
                self.buzzer = Buzzer::Answered(round);
            }
            Buzzer::Closed => {
                // Sent, not hidden: the server's rules, not this client, decide what an early
                // press costs, and a modified client could not hide it anyway.
                send(self.stream, Frame::Answer).await?;
                self.say("Pressed before go!");
            }
            Buzzer::Answered(round) => log::info!("a second press in round {round}, not sent"),
            Buzzer::Locked(round) => {
                self.say(&format!("Locked out of round {round}: press not sent"));
            }
        }
        Ok(())
    }
}

/// `Scores: Ann 2, Ben 1`.
fn scores_line(scores: &[Score]) -> String {
    let scores: Vec<String> = scores
        .iter()
        .map(|s| format!("{} {}", s.name, s.points))
        .collect();
    format!("Scores: {}", scores.join(", "))
}

/// What a round's result means for this player, in plain words.
fn standing_line(round: u64, me: &Placing) -> String {
    let ms = |us: i64| format!("{:.1} ms", us as f64 / 1000.0);
    let rtt = match (me.rtt_micros, me.rtt_source) {
        (Some(r), RttSource::Kernel) => {
            format!("round trip {}, checked by the kernel", rtt_ms(r))
        }
        (Some(r), _) => format!("round trip {}, from pings", rtt_ms(r)),
        (None, _) => "no round trip measured yet".to_owned(),
    };
    let reaction = me
        .reaction_micros
        .map(ms)
        .or(me.after_go_micros.map(|a| ms(a as i64)));
    match me.standing {
        Standing::Answered => format!("You: answered in {} ({rtt})", reaction.unwrap_or_default()),
        Standing::FalseStart => format!(
            "You: false start in round {round}: {} is quicker than anyone reacts ({rtt}); no point",
            reaction.unwrap_or_default()
        ),
        Standing::Early => format!("You: too early: locked out of round {round}"),
        Standing::LockedOut => {
            format!("You: locked out of round {round} for pressing during the round before")
        }
        Standing::NoAnswer => format!("You: you did not answer round {round} in time"),
        Standing::Left => format!("You: left during round {round}"),
        Standing::Correct => format!(
            "You: correct in round {round}, buzzed in {} ({rtt})",
            reaction.unwrap_or_default()
        ),
        Standing::Wrong => format!(
            "You: wrong in round {round}, buzzed in {} ({rtt})",
            reaction.unwrap_or_default()
        ),
    }
}

/// A round trip in milliseconds: loopback and LAN ones are tens of microseconds, so two
/// decimals below 1 ms.
fn rtt_ms(micros: u64) -> String {
    let ms = micros as f64 / 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// `10` or `2.5`: seconds, as a time to answer is said.
fn seconds(micros: u64) -> String {
    let s = micros as f64 / 1e6;
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// `2 of 3 needed players`, or `4 players` once there are enough.
fn head_count(roster: &Roster) -> String {
    let (n, needed) = (roster.players.len(), roster.needed as usize);
    match (n < needed, n) {
        (true, _) => format!("{n} of {needed} needed players"),
        (false, 1) => "1 player".to_owned(),
        (false, n) => format!("{n} players"),
    }
}

/// What a roster tells this player, in lines: who joined or left, who is in the room when it
/// joins, when it plays from, its round trip the first time it is known.
fn roster_lines(roster: &Roster, me: &str, rtt_shown: &mut bool) -> Vec<String> {
    let mut lines = Vec::new();
    match &roster.change {
        Change::Joined { name } if name == me => {
            let names: Vec<&str> = roster.players.iter().map(|p| p.name.as_str()).collect();
            lines.push(format!(
                "In the room: {} ({})",
                names.join(", "),
                head_count(roster)
            ));
            if roster.hosted {
                lines.push("A host opens each round.".to_owned());
            }
            let from = roster.players.iter().find(|p| p.name == me);
            if let Some(from) = from.filter(|_| roster.open).map(|p| p.from_round) {
                lines.push(format!(
                    "Round {} is under way: you play from round {from}",
                    roster.round
                ));
            }
        }
        Change::Joined { name } => lines.push(format!("{name} joined ({})", head_count(roster))),
        Change::Left { name, round: 0 } => {
            lines.push(format!("{name} left ({})", head_count(roster)))
        }
        Change::Left { name, round } => lines.push(format!(
            "{name} left during round {round} ({})",
            head_count(roster)
        )),
        Change::HostJoined => lines.push("The host is here: the host opens each round.".into()),
        Change::HostLeft => lines.push("The host left: rounds wait for the host.".into()),
        Change::Ready { round } => {
            lines.push(format!("Round {round}: get ready (measuring round trips)"))
        }
        Change::Update
        | Change::NewGame { .. }
        | Change::Kicked { .. }
        | Change::Back { .. }
        | Change::Away { .. } => {}
    }
    if !*rtt_shown {
        let mine = roster.players.iter().find(|p| p.name == me);
        if let Some((us, source)) = mine.and_then(|p| Some((p.rtt_micros?, p.rtt_source))) {
            let how = match source {
                RttSource::Kernel => "checked by the kernel",
                _ => "from pings",
            };
            lines.push(format!("Your round trip: {} ({how})", rtt_ms(us)));
            *rtt_shown = true;
        }
    }
    lines
}
