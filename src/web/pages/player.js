// The player page: take a seat in a room (with a team, if the game has teams), press the buzzer,
// see the buzzes and each round's result. The seat's secret stays in this browser's storage for
// the room, so a reload or a reopened tab takes the seat, and its points, back. Protocol and
// shared helpers in arrival.js.
"use strict";
const A = Arrival;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$("room").value = params.has("room") ? params.get("room") : "quiz";
$("name").value = params.get("name") || localStorage.getItem("arrival-name") || "";
$("team").value = params.get("team") || localStorage.getItem("arrival-team") || "";

let ws = null, me = "", roster = null, buzzer = "closed", round = 0, locked = 0, over = false;
// How the session ranks answers (its Rules), and the running countdown's stop.
let ranking = "arrival", stopCountdown = null;
// A round is getting ready (its round trips are being measured) and has not opened yet.
let readying = 0;
// This question's buzz queue, as last seen, and whether this player was up in it.
let queue = null, wasUp = false;
// When this player last pressed: a tap right after its own answer is the same tap.
let pressedAt = -1e9;
const TAP_GRACE_MS = 500;

// The seat this browser holds in a room: { name, team, secret }.
const seatKey = (room) => "arrival-seat:" + room;
function heldSeat(room) {
  try { return JSON.parse(localStorage.getItem(seatKey(room)) || "null"); } catch (e) { return null; }
}

function setStatus(text, detail) { $("status").textContent = text; $("detail").textContent = detail || ""; }
function setBuzzer(state, label) { $("buzzer").dataset.state = state; $("buzzer").textContent = label; }
function stopTicker() { if (stopCountdown) { stopCountdown(); stopCountdown = null; } }

function waitingWords() {
  if (!roster) return ["Joined", ""];
  const mine = roster.players.find((p) => p.name === me);
  if (roster.open && mine && mine.fromRound > roster.round) {
    return ["Round " + roster.round + " is under way", "You play from round " + mine.fromRound + "."];
  }
  if (locked > roster.round) {
    return ["Locked out of round " + locked, "You pressed before GO; you are back in the round after."];
  }
  if (A.here(roster).length < roster.needed) {
    return ["Waiting for players", A.headCount(roster) + " are here."];
  }
  if (roster.hosted) return ["Waiting for the host", "The host opens the next round."];
  return ["Next round soon", "Get ready."];
}
function showWaiting() {
  if (buzzer === "open" || buzzer === "taken" || buzzer === "locked" || over) return;
  if (readying) { setStatus("Get ready", "Round " + readying + ": measuring round trips…"); return; }
  const [status, detail] = waitingWords();
  setStatus(status, detail);
  if (locked > (roster ? roster.round : 0)) setBuzzer("out", "Locked out");
  else setBuzzer("wait", "Wait");
}

function showRoster(r) {
  roster = r;
  // A round that was getting ready does not open without enough players.
  if (A.here(r).length < r.needed) readying = 0;
  $("count").textContent = "In the room: " + A.headCount(r);
  A.fillTable($("roster"), r.players.map((p) => [
    p.name + (p.name === me ? " (you)" : "") + (p.here === false ? " · away" : "")
      + (r.open && p.fromRound > r.round ? " · next round" : ""),
    p.team || "",
    "round trip " + A.rttText(p)]));
  const change = r.change;
  if (change.kind === "newGame") { locked = 0; clearLastRound(); $("scores-box").hidden = true; }
  if (change.kind === "ready") {
    if (!over) {
      readying = change.round;
      setStatus("Get ready", "Round " + change.round + ": measuring round trips…");
      setBuzzer("wait", "Get ready");
      clearLastRound();
    }
    return;
  }
  A.log($("events"), A.changeText(change, r));
  showWaiting();
}

// A new round: the last one's result and verdict make way (the scores stay).
function clearLastRound() {
  $("result").hidden = true;
  $("queue-box").hidden = true;
  $("you").textContent = "";
}

// The buzz queue of the open question: every buzz as it lands, who is up, the judgements.
function showBuzzes(q) {
  queue = q;
  $("queue-box").hidden = false;
  A.fillTable($("queue"), q.buzzes.map((b, i) => [
    (i + 1) + ". " + b.name + (b.name === me ? " (you)" : "") + (b.team ? " · " + b.team : ""),
    A.gap(b, i) + (b.judgement === "waiting" ? (q.up === b.name ? " · up" : "") : " · " + b.judgement)]));
  const mine = q.buzzes.find((b) => b.name === me);
  const up = q.up === me;
  if (up && !wasUp) A.beep(false);
  wasUp = up;
  if (mine && mine.judgement === "correct") { setStatus("Correct!", (mine.points ? "+" + mine.points + " points. " : "") + "Well done."); setBuzzer("taken", "Correct"); return; }
  if (mine && mine.judgement === "wrong") { setStatus("Wrong", "You are locked out of this question" + (mine.points ? " (" + mine.points + " points)." : ".")); setBuzzer("out", "Locked out"); return; }
  if (q.locked.includes(me)) {
    buzzer = "locked";
    setStatus("Locked out", "Your team answered wrongly: you are out of this question.");
    setBuzzer("out", "Locked out");
    return;
  }
  if (up) { setStatus("You're up!", "Answer now, out loud."); setBuzzer("go", "Answer!"); return; }
  if (mine) {
    const place = q.buzzes.indexOf(mine) + 1;
    setStatus(q.up ? q.up + " is up" : "Buzzed " + ordinal(place), place === 1 ? "You were first." : "You buzzed " + ordinal(place) + ", " + A.gap(mine, place - 1) + " behind.");
  } else if (q.up && buzzer === "open") {
    setStatus(q.up + " is up", "You can still buzz if they are wrong.");
  }
}
function ordinal(n) { return n + (n % 10 === 1 && n % 100 !== 11 ? "st" : n % 10 === 2 && n % 100 !== 12 ? "nd" : n % 10 === 3 && n % 100 !== 13 ? "rd" : "th"); }

function showResult(f) {
  stopTicker();
  readying = 0;
  buzzer = "closed";
  queue = null; wasUp = false;
  $("result").hidden = false;
  $("scores-box").hidden = false;
  $("result-title").textContent = "Round " + f.round;
  A.fillTable($("result-rows"), A.resultRows(f, ranking));
  A.fillTable($("scores"), A.scoreRows(f.scores));
  const mine = f.order.find((p) => p.name === me);
  let you = "";
  if (mine) {
    switch (mine.standing) {
      case "answered": you = f.order[0] === mine && !roster?.buzz ? "You were first: " + A.figure(mine, ranking) + ". One point!" : "You answered in " + A.figure(mine, ranking) + "."; break;
      case "correct": you = "Correct: " + A.figure(mine, ranking) + "."; break;
      case "wrong": you = "Wrong: " + A.figure(mine, ranking) + "."; break;
      case "false start": you = "False start: " + A.figure(mine, ranking) + " is quicker than anyone reacts. No point."; break;
      case "too early": you = "Too early: you pressed before GO and were out of this round."; break;
      case "locked out": you = "Locked out of this round."; break;
      case "no answer": you = "You did not answer."; break;
      default: you = "";
    }
  }
  $("you").textContent = you;
  $("result-text").textContent = f.text;
  setStatus("Round " + f.round + " result", roster && roster.hosted ? "Waiting for the host to open the next round." : "The next round opens soon.");
  setBuzzer("wait", "Wait");
  if (locked > f.round) showWaiting();
}

function onFrame(f) {
  switch (f.type) {
    case "Welcome":
      setStatus("Joined", "Room " + ($("room").value || "(anonymous)") + " as " + me + ".");
      break;
    case "Rules": ranking = f.ranking; break;
    case "Seated": {
      const room = $("room").value.trim();
      localStorage.setItem(seatKey(room), JSON.stringify({ name: me, team: $("team").value.trim(), secret: f.secret }));
      break;
    }
    case "Roster": showRoster(f); break;
    case "Go": {
      round = f.round;
      readying = 0;
      queue = null; wasUp = false;
      if (locked === round) { buzzer = "locked"; setStatus("Round " + round + ": GO", "You are locked out of this round."); setBuzzer("out", "Locked out"); break; }
      buzzer = "open";
      clearLastRound();
      setBuzzer("go", "GO!");
      setStatus("GO! Press now", "");
      stopTicker();
      // In buzz mode the host ends the question; there is no clock to race.
      if (!(roster && roster.buzz)) stopCountdown = A.countdown($("countdown"), roster ? roster.answerMicros : 10e6);
      break;
    }
    case "Buzzes": showBuzzes(f); break;
    case "Early":
      locked = f.round;
      setStatus("Locked out of round " + f.round, "You pressed before GO; you are back in the round after.");
      setBuzzer("out", "Locked out");
      break;
    case "Outcome": showResult(f); break;
    case "Over": {
      over = true;
      stopTicker();
      buzzer = "closed";
      // The seat ends with the session.
      localStorage.removeItem(seatKey($("room").value.trim()));
      setStatus("Session over", "Session over " + A.overText(f));
      setBuzzer("wait", "Over");
      if (f.rounds > 0) { $("scores-box").hidden = false; A.fillTable($("scores"), A.scoreRows(f.scores)); }
      break;
    }
    case "Error":
      over = true;
      stopTicker();
      setStatus("Refused", f.message);
      setBuzzer("out", "Closed");
      if (f.kind === "Forbidden") localStorage.removeItem(seatKey($("room").value.trim()));
      if (!roster) { $("join-error").textContent = f.message; $("join").hidden = false; $("play").hidden = true; }
      break;
  }
}

function onClose(code, reason) {
  stopTicker();
  if (!over) {
    over = true;
    setStatus("Disconnected", reason || "The connection to the server closed (code " + code + ").");
    setBuzzer("out", "Disconnected");
  }
  ws = null;
  $("again").hidden = false;
}

// Back to the form, name and room kept, for the next session or after a lost connection.
$("again").addEventListener("click", () => {
  $("again").hidden = true;
  $("play").hidden = true;
  $("join").hidden = false;
  $("result").hidden = true;
  $("queue-box").hidden = true;
  $("scores-box").hidden = true;
  $("you").textContent = "";
  $("events").replaceChildren();
  $("join-button").focus();
});

function press() {
  if (!ws || ws.readyState !== WebSocket.OPEN || over) return;
  const now = performance.now();
  switch (buzzer) {
    case "open":
      ws.send(A.encode.answer());
      pressedAt = now;
      buzzer = "taken";
      setBuzzer("taken", "Buzzed");
      setStatus("Buzzed", "Waiting for the others…");
      break;
    case "closed":
      // A second tap of the same press (the round closed on this player's own answer): nothing.
      if (now - pressedAt < TAP_GRACE_MS) return;
      // Sent, not hidden: the server's rules decide what an early press costs.
      ws.send(A.encode.answer());
      setStatus("Pressed before GO!", "That locks you out of the next round.");
      setBuzzer("out", "Too early");
      break;
    default: break;  // answered, or locked out: a press would change nothing, or cost the next round
  }
}

$("buzzer").addEventListener("click", press);
document.addEventListener("keydown", (e) => {
  if ($("play").hidden || e.repeat || e.target.tagName === "INPUT") return;
  if (e.key === " " || e.key === "Enter") { e.preventDefault(); press(); }
});

function join() {
  me = $("name").value.trim();
  const room = $("room").value.trim();
  const team = $("team").value.trim();
  if (!me) return;
  localStorage.setItem("arrival-name", me);
  localStorage.setItem("arrival-team", team);
  const held = heldSeat(room);
  const secret = held && held.name === me ? held.secret : null;
  $("join-error").textContent = "";
  $("join").hidden = true;
  $("play").hidden = false;
  over = false; roster = null; buzzer = "closed"; locked = 0; queue = null;
  setStatus("Connecting…", "");
  ws = A.connect(room, A.encode.seat(room === "" ? null : room, me, team === "" ? null : team, secret), onFrame, onClose);
  $("buzzer").focus();
}

$("join-form").addEventListener("submit", (e) => { e.preventDefault(); join(); });
// A seat this browser holds in the room: take it back at once (a reload, a reopened tab).
{
  const held = heldSeat($("room").value.trim());
  if (held && held.name) {
    $("name").value = held.name;
    $("team").value = held.team || "";
    join();
  }
}
