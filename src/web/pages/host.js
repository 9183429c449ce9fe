// The host page: open rounds, see every result, end the session. Protocol and shared helpers
// in arrival.js.
"use strict";
const A = Arrival;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = params.has("room") ? (params.get("room") || null) : "quiz";
const hashKey = new URLSearchParams(location.hash.slice(1)).get("key");
$("title").textContent = "arrival host · room " + (room || "(anonymous)");

let ws = null, roster = null, open = false, over = false, rounds = 0;
// How the session ranks answers (its Rules), and the running countdown's stop.
let ranking = "arrival", stopCountdown = null;
// A round the host opened is getting ready (round trips being measured), not open yet.
let readying = 0;

function setStatus(text, detail) { $("status").textContent = text; $("detail").textContent = detail || ""; }
function stopTicker() { if (stopCountdown) { stopCountdown(); stopCountdown = null; } }
function refreshButtons() {
  const enough = roster && roster.players.length >= roster.needed;
  $("open").disabled = over || open || readying || !enough;
  $("open").textContent = "Open round " + (rounds + 1);
  $("finish").disabled = over || !ws;
}
function showIdle() {
  if (over || open || !roster) return;
  if (readying) { setStatus("Round " + readying + ": get ready", "Measuring round trips…"); return; }
  if (roster.players.length < roster.needed) setStatus("Waiting for players", A.headCount(roster) + " are here.");
  else setStatus("Ready: open round " + (rounds + 1), A.headCount(roster) + ". Open the buzzers when the question has been read.");
}

function onFrame(f) {
  switch (f.type) {
    case "Welcome": setStatus("Hosting", "Players join at " + location.origin + "/?room=" + encodeURIComponent(room || "")); break;
    case "Rules": ranking = f.ranking; break;
    case "Roster": {
      roster = f;
      // A round that was getting ready does not open without enough players.
      if (f.players.length < f.needed) readying = 0;
      rounds = f.round;
      $("count").textContent = "Players: " + A.headCount(f);
      A.fillTable($("roster"), f.players.map((p) => [
        p.name + (f.open && p.fromRound > f.round ? " (from round " + p.fromRound + ")" : ""),
        A.rttText(p), p.points + (p.points === 1 ? " point" : " points")]));
      if (f.change.kind === "ready") { readying = f.change.round; showIdle(); }
      else { A.log($("events"), A.changeText(f.change, f)); showIdle(); }
      break;
    }
    case "Go": {
      open = true; rounds = f.round; readying = 0;
      setStatus("Round " + f.round + " open", "Players are answering.");
      stopTicker();
      stopCountdown = A.countdown($("countdown"), roster ? roster.answerMicros : 10e6);
      break;
    }
    case "Outcome":
      open = false; stopTicker(); rounds = f.round; readying = 0;
      $("result-title").textContent = "Round " + f.round;
      A.fillTable($("result-rows"), A.resultRows(f, ranking));
      A.fillTable($("scores"), A.scoreRows(f.scores));
      $("result-text").textContent = f.text;
      setStatus("Round " + f.round + " result", "Open round " + (f.round + 1) + " when the next question has been read.");
      break;
    case "Over":
      over = true; open = false; stopTicker();
      setStatus("Session over", f.rounds === 0 ? "Over before its first round: " + f.why + "."
        : "After " + f.rounds + (f.rounds === 1 ? " round" : " rounds") + ": " + f.why + ".");
      if (f.rounds > 0) A.fillTable($("scores"), A.scoreRows(f.scores));
      break;
    case "Error":
      over = true;
      setStatus("Refused", f.message);
      if (f.kind === "Forbidden") { key = null; $("key-box").hidden = false; }
      break;
  }
  refreshButtons();
}

function onClose(code, reason) {
  stopTicker();
  if (!over) { over = true; setStatus("Disconnected", reason || "The connection closed (code " + code + ")."); }
  ws = null;
  refreshButtons();
  $("again").hidden = !key;
}

let key = null;
function start(k) {
  key = k;
  over = false; open = false; roster = null; rounds = 0;
  $("again").hidden = true;
  $("key-box").hidden = true;
  ws = A.connect(room, A.encode.host(room, k), onFrame, onClose);
  refreshButtons();
}

$("open").addEventListener("click", () => { if (ws && !open) { ws.send(A.encode.open()); $("open").disabled = true; } });
$("finish").addEventListener("click", () => { if (ws) ws.send(A.encode.finish()); });
// A new session in the same room (after the last one ended, or the connection was lost).
$("again").addEventListener("click", () => { if (key) start(key); });
$("key-form").addEventListener("submit", (e) => { e.preventDefault(); const k = $("key").value.trim(); if (k) start(k); });
if (hashKey) start(hashKey); else { $("key-box").hidden = false; setStatus("Host key needed", "Open the host link the server printed, or type its key."); }
