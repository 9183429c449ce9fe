// The player page: join a room, press the buzzer, see each round's result. Protocol and
// shared helpers in arrival.js.
"use strict";
const A = Arrival;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$("room").value = params.has("room") ? params.get("room") : "quiz";
$("name").value = params.get("name") || localStorage.getItem("arrival-name") || "";

let ws = null, me = "", roster = null, buzzer = "closed", round = 0, locked = 0, over = false;
// How the session ranks answers (its Rules), and the running countdown's stop.
let ranking = "arrival", stopCountdown = null;
// A round is getting ready (its round trips are being measured) and has not opened yet.
let readying = 0;

function setStatus(text, detail) { $("status").textContent = text; $("detail").textContent = detail || ""; }
function setBuzzer(state, label) { $("buzzer").dataset.state = state; $("buzzer").textContent = label; }
function stopTicker() { if (stopCountdown) { stopCountdown(); stopCountdown = null; } }

function waitingWords() {
  if (!roster) return ["Joined", ""];
  const mine = roster.players.find((p) => p.name === me);
  if (roster.open && mine && mine.fromRound > roster.round) {
    return ["Round " + roster.round + " is under way", "You play from round " + mine.fromRound + "."];
  }
  if (roster.players.length < roster.needed) {
    return ["Waiting for players", A.headCount(roster) + " are here."];
  }
  if (roster.hosted) return ["Waiting for the host", "The host opens the next round."];
  return ["Next round soon", "Get ready."];
}
function showWaiting() {
  if (buzzer === "open" || buzzer === "taken" || over) return;
  if (readying) { setStatus("Get ready", "Round " + readying + ": measuring round trips…"); return; }
  const [status, detail] = waitingWords();
  setStatus(status, detail);
  setBuzzer("wait", "Wait");
}

function showRoster(r) {
  roster = r;
  // A round that was getting ready does not open without enough players.
  if (r.players.length < r.needed) readying = 0;
  $("count").textContent = "In the room: " + A.headCount(r);
  A.fillTable($("roster"), r.players.map((p) => [
    p.name + (p.name === me ? " (you)" : "") + (r.open && p.fromRound > r.round ? " · next round" : ""),
    "round trip " + A.rttText(p)]));
  const change = r.change;
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
  $("you").textContent = "";
}

function showResult(f) {
  stopTicker();
  readying = 0;
  buzzer = "closed";
  $("result").hidden = false;
  $("scores-box").hidden = false;
  $("result-title").textContent = "Round " + f.round;
  A.fillTable($("result-rows"), A.resultRows(f, ranking));
  A.fillTable($("scores"), A.scoreRows(f.scores));
  const mine = f.order.find((p) => p.name === me);
  let you = "";
  if (mine) {
    switch (mine.standing) {
      case "answered": you = f.order[0] === mine ? "You were first: " + A.figure(mine, ranking) + ". One point!" : "You answered in " + A.figure(mine, ranking) + "."; break;
      case "false start": you = "False start: " + A.figure(mine, ranking) + " is quicker than anyone reacts. No point."; break;
      case "too early": you = "Too early: you pressed before GO and were out of this round."; break;
      case "locked out": you = "Locked out of this round for pressing during the last one."; break;
      case "no answer": you = "You did not answer."; break;
      default: you = "";
    }
  }
  $("you").textContent = you;
  $("result-text").textContent = f.text;
  setStatus("Round " + f.round + " result", roster && roster.hosted ? "Waiting for the host to open the next round." : "The next round opens soon.");
  setBuzzer("wait", "Wait");
}

function onFrame(f) {
  switch (f.type) {
    case "Welcome":
      setStatus("Joined", "Room " + ($("room").value || "(anonymous)") + " as " + me + ".");
      break;
    case "Rules": ranking = f.ranking; break;
    case "Roster": showRoster(f); break;
    case "Go": {
      round = f.round;
      readying = 0;
      if (locked === round) { buzzer = "locked"; setStatus("Round " + round + ": GO", "You are locked out of this round."); setBuzzer("out", "Locked out"); break; }
      buzzer = "open";
      clearLastRound();
      setBuzzer("go", "GO!");
      setStatus("GO! Press now", "");
      stopTicker();
      stopCountdown = A.countdown($("countdown"), roster ? roster.answerMicros : 10e6);
      break;
    }
    case "Early":
      locked = f.round;
      setStatus("Too early", "You pressed before GO: locked out of round " + f.round + ".");
      setBuzzer("out", "Locked out");
      break;
    case "Outcome": showResult(f); break;
    case "Over": {
      over = true;
      stopTicker();
      buzzer = "closed";
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
  $("scores-box").hidden = true;
  $("you").textContent = "";
  $("events").replaceChildren();
  $("join-button").focus();
});

function press() {
  if (!ws || ws.readyState !== WebSocket.OPEN || over) return;
  switch (buzzer) {
    case "open":
      ws.send(A.encode.answer());
      buzzer = "taken";
      setBuzzer("taken", "Answer taken");
      setStatus("Answer taken", "Waiting for the others…");
      break;
    case "closed":
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

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  me = $("name").value.trim();
  const room = $("room").value.trim();
  if (!me) return;
  localStorage.setItem("arrival-name", me);
  $("join-error").textContent = "";
  $("join").hidden = true;
  $("play").hidden = false;
  over = false; roster = null; buzzer = "closed";
  setStatus("Connecting…", "");
  ws = A.connect(room, A.encode.join(room === "" ? null : room, me), onFrame, onClose);
  $("buzzer").focus();
});
