// The host page, made for a projector: the join link and its QR code while players join, each
// question's buzzes as they land, the host's judgements (Correct, Wrong, Next question), a
// scoreboard that fits the screen, and the winners at the end. The host also edits scores,
// removes players, starts a new game with the same players and downloads the night as CSV.
// Protocol and shared helpers in arrival.js.
"use strict";
const A = Arrival;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = params.has("room") ? (params.get("room") || null) : "quiz";
// The key leaves the address bar at once (it would show on a shared screen, in the history and
// in a bookmark); the tab keeps it in its session storage, so a reload still hosts.
const KEY_ITEM = "arrival-host-key";
const hashKey = new URLSearchParams(location.hash.slice(1)).get("key");
if (location.hash) history.replaceState(null, "", location.pathname + location.search);
function savedKey() { try { return sessionStorage.getItem(KEY_ITEM); } catch (e) { return null; } }
function saveKey(k) { try { if (k) sessionStorage.setItem(KEY_ITEM, k); else sessionStorage.removeItem(KEY_ITEM); } catch (e) { /* no storage: the key lives in this page only */ } }
$("title").textContent = "arrival host · room " + (room || "(anonymous)");

// Places the scoreboard shows before "and N more": what fits 1280x720 with the stage beside it.
const TOP = 8, TOP_TEAMS = 4;
let ws = null, roster = null, open = false, over = false, rounds = 0;
// How the session ranks answers (its Rules), and the running countdown's stop.
let ranking = "arrival", stopCountdown = null;
// A round the host opened is getting ready (round trips being measured), not open yet.
let readying = 0;
// The open question's queue, and who was up when it was last shown.
let queue = null, lastUp = null;
// The night's record: CSV rows, one per buzz, as the server's transcript has them.
const CSV_HEADER = "game,question,place,name,team,after_go_ms,reaction_ms,gap_ms,rtt_ms,rtt_source,judgement,points,total";
const record = [];

function setStatus(text, detail) { $("status").textContent = text; $("detail").textContent = detail || ""; }
function stopTicker() { if (stopCountdown) { stopCountdown(); stopCountdown = null; } }
function buzzMode() { return roster && roster.buzz; }
function show(box) {
  for (const id of ["join-box", "queue-box", "result-box", "podium-box"]) $(id).hidden = id !== box;
}
function refreshButtons() {
  const enough = roster && A.here(roster).length >= roster.needed;
  $("open").disabled = over || open || readying || !enough;
  $("open").textContent = "Open question " + (rounds + 1);
  const up = open && queue && queue.up;
  $("correct").disabled = !up;
  $("wrong").disabled = !up;
  $("next").disabled = !(open && buzzMode());
  $("correct").hidden = $("wrong").hidden = $("next").hidden = !buzzMode();
  $("new-game").disabled = over || open || readying || !ws;
  $("finish").disabled = over || !ws;
}
function showIdle() {
  if (over || open || !roster) return;
  if (readying) { setStatus("Question " + readying + ": get ready", "Measuring round trips…"); return; }
  if (A.here(roster).length < roster.needed) setStatus("Waiting for players", A.headCount(roster) + " are here.");
  else setStatus("Ready: open question " + (rounds + 1), A.headCount(roster) + ". Open the buzzers when the question has been read.");
}

function showJoin() {
  const link = location.origin + "/?room=" + encodeURIComponent(room || "");
  $("join-room").textContent = room || "(anonymous)";
  $("join-link").textContent = link;
  $("join-qr").src = "/qr.svg?room=" + encodeURIComponent(room || "");
}

// The scoreboard: the top places, then "and N more"; with teams, the teams' totals first.
function showScores(scores) {
  A.fillTable($("scores"), A.scoreRows(scores.slice(0, TOP)));
  const more = scores.length - TOP;
  $("more").textContent = more > 0 ? "and " + more + " more" : "";
  const teams = new Map();
  if (roster) {
    for (const p of roster.players) if (p.team) teams.set(p.team, 0);
    for (const s of scores) {
      const p = roster.players.find((q) => q.name === s.name);
      if (p && p.team) teams.set(p.team, teams.get(p.team) + s.points);
    }
  }
  $("teams-box").hidden = teams.size === 0;
  const ranked = [...teams].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  A.fillTable($("teams"), ranked.slice(0, TOP_TEAMS).map(([t, p]) => [t, String(p)]));
}

// The host's list of players, with a score to set and a button to remove each (or free a held
// seat). Rows are kept and updated in place, so a score being typed survives the roster updates
// that come every few seconds.
const manageRows = new Map();
function manageRow(p) {
  let row = manageRows.get(p.name);
  if (!row) {
    const tr = A.el("tr");
    const cells = [A.el("td"), A.el("td"), A.el("td"), A.el("td")];
    const cell = A.el("td");
    const input = A.el("input");
    input.type = "number"; input.min = "0";
    input.setAttribute("aria-label", "Score of " + p.name);
    input.dataset.score = p.name;
    const set = A.el("button", "Set");
    set.type = "button";
    set.dataset.set = p.name;
    set.addEventListener("click", () => ws && ws.send(A.control.setScore(p.name, Math.max(0, Number(input.value) || 0))));
    const remove = A.el("button");
    remove.type = "button";
    remove.addEventListener("click", () => {
      if (!ws) return;
      ws.send(remove.dataset.free ? A.control.free(p.name) : A.control.kick(p.name));
    });
    cell.append(input, set, remove);
    tr.append(...cells, cell);
    row = { tr, cells, input, remove };
    manageRows.set(p.name, row);
  }
  const away = p.here === false;
  row.cells[0].textContent = p.name + (away ? " · away" : "");
  row.cells[1].textContent = p.team || "";
  row.cells[2].textContent = A.rttText(p);
  row.cells[3].textContent = String(p.points);
  if (document.activeElement !== row.input) row.input.value = String(p.points);
  row.remove.textContent = away ? "Free seat" : "Remove";
  delete row.remove.dataset.free; delete row.remove.dataset.kick;
  row.remove.dataset[away ? "free" : "kick"] = p.name;
  return row.tr;
}
function showManage(players) {
  const names = new Set(players.map((p) => p.name));
  for (const name of [...manageRows.keys()]) if (!names.has(name)) { manageRows.get(name).tr.remove(); manageRows.delete(name); }
  // Appending a row that is there already moves it: nothing is rebuilt.
  for (const p of players) $("roster").append(manageRow(p));
}

function showRoster(f) {
  roster = f;
  // A round that was getting ready does not open without enough players.
  if (A.here(f).length < f.needed) readying = 0;
  rounds = f.round;
  $("count").textContent = "Players: " + A.headCount(f) + " · game " + (f.game || 1);
  showManage(f.players);
  // The server's points, except in a field the host has typed into and not yet set.
  const points = { "points-correct": f.correct ?? 1, "points-penalty": f.penalty ?? 0, "points-early": f.early ?? 1 };
  for (const [id, value] of Object.entries(points)) if (!scoringTyped.has(id)) $(id).value = String(value);
  showScores([...f.players].map((p) => ({ name: p.name, points: p.points }))
    .sort((a, b) => b.points - a.points || (a.name < b.name ? -1 : 1)));
  if (f.change.kind === "newGame") { $("result-box").hidden = true; show("join-box"); }
  if (f.change.kind === "ready") { readying = f.change.round; showIdle(); }
  else { A.log($("events"), A.changeText(f.change, f)); showIdle(); }
}

// The queue, large: place, name, team, gap to the first, and the judgement or "up".
function showQueue(q) {
  queue = q;
  show("queue-box");
  $("queue-title").textContent = "Question " + q.round + (q.open ? ": buzzes" : ": over");
  $("queue").replaceChildren(...q.buzzes.map((b, i) => {
    const li = A.el("li", null, b.judgement === "waiting" ? (q.up === b.name ? "up" : "") : b.judgement);
    // A flagged buzz (its round trip hit the cap, or was much shorter at the buzz) is marked,
    // its reason in the title, for the host to check.
    const who = A.el("span", (b.flag ? "⚑ " : "") + b.name, "who");
    if (b.flag) who.title = b.flag;
    li.append(who, A.el("span", b.team || "", "team"),
      A.el("span", A.gap(b, i), "gap"),
      A.el("span", b.judgement === "waiting" ? (q.up === b.name ? "answering" : "") : b.judgement + (b.points ? " " + (b.points > 0 ? "+" : "") + b.points : ""), "mark"));
    return li;
  }));
  if (q.up && q.up !== lastUp) {
    A.beep($("mute").checked);
    setStatus(q.up + " is up", "Correct (C), Wrong (W), or Next question (N).");
  } else if (q.open && !q.up) {
    setStatus("Question " + q.round + " open", q.buzzes.length ? "Waiting for the next buzz." : "Waiting for the first buzz.");
  }
  lastUp = q.up;
}

function recordQuestion(f) {
  if (!queue || queue.round !== f.round) return;
  const total = new Map(f.scores.map((s) => [s.name, s.points]));
  const field = (t) => {
    const s = /^[=+\-@]/.test(t) ? "'" + t : t;
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };
  // Tenths of a millisecond, rounded half away from zero in integers, as the server writes them.
  const fix = (us) => {
    if (us == null) return "";
    const t = Math.floor((Math.abs(us) + 50) / 100);
    return (us < 0 && t > 0 ? "-" : "") + Math.floor(t / 10) + "." + (t % 10);
  };
  queue.buzzes.forEach((b, i) => record.push([roster ? roster.game : 1, f.round, i + 1, field(b.name),
    field(b.team), fix(b.afterGo), fix(b.reaction), fix(b.gap), fix(b.rtt), b.source, b.judgement,
    b.points, total.get(b.name) ?? 0].join(",")));
}

function showOver(f) {
  over = true; open = false; stopTicker();
  setStatus("Night over", f.rounds === 0 ? "Over before its first question: " + f.why + "."
    : "After " + f.rounds + (f.rounds === 1 ? " question" : " questions") + ": " + f.why + ".");
  // A podium, once a question was played or the host gave points.
  if (f.rounds === 0 && !f.scores.some((s) => s.points > 0)) return;
  showScores(f.scores);
  // Places with points (first place always): a tie at zero is nobody's podium.
  const places = A.podium(f.scores, 3).filter(([points], i) => i === 0 || points > 0);
  const list = (names) => names.length < 2 ? names[0] : names.slice(0, -1).join(", ") + " and " + names[names.length - 1];
  const words = ["First", "Second", "Third"];
  $("podium").replaceChildren(...places.map(([points, names], i) => {
    const li = A.el("li", null, "place-" + (i + 1));
    const tie = names.length > 1 ? " (tie)" : "";
    li.append(A.el("span", words[i] + tie, "place"), A.el("span", list(names), "who"),
      A.el("span", points + (points === 1 ? " point" : " points"), "gap"));
    return li;
  }));
  show("podium-box");
  const [top] = places;
  if (top) setStatus(top[1].length > 1 ? list(top[1]) + " tie for first!" : top[1][0] + " wins!", $("detail").textContent);
}

function onFrame(f) {
  switch (f.type) {
    case "Welcome": setStatus("Hosting", "Players join at " + location.origin + "/?room=" + encodeURIComponent(room || "")); break;
    case "Rules": ranking = f.ranking; break;
    case "Roster": showRoster(f); break;
    case "Go": {
      open = true; rounds = f.round; readying = 0; queue = null; lastUp = null;
      setStatus("Question " + f.round + " open", buzzMode() ? "Waiting for the first buzz." : "Players are answering.");
      stopTicker();
      if (buzzMode()) showQueue({ round: f.round, open: true, buzzes: [], up: null, locked: [] });
      else stopCountdown = A.countdown($("countdown"), roster ? roster.answerMicros : 10e6);
      break;
    }
    case "Buzzes": showQueue(f); break;
    case "Outcome":
      open = false; stopTicker(); rounds = f.round; readying = 0;
      recordQuestion(f);
      $("result-title").textContent = "Question " + f.round;
      A.fillTable($("result-rows"), A.resultRows(f, ranking));
      showScores(f.scores);
      $("result-text").textContent = f.text;
      if (!queue) show("result-box");
      setStatus("Question " + f.round + " over", "Open question " + (f.round + 1) + " when the next question has been read.");
      break;
    case "Over": showOver(f); break;
    case "Error":
      over = true;
      setStatus("Refused", f.message);
      if (f.kind === "Forbidden") { key = null; saveKey(null); $("key-box").hidden = false; }
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
  saveKey(k);
  over = false; open = false; roster = null; rounds = 0; queue = null;
  $("again").hidden = true;
  $("key-box").hidden = true;
  show("join-box");
  showJoin();
  ws = A.connect(room, A.encode.host(room, k), onFrame, onClose);
  refreshButtons();
}

const send = (frame) => { if (ws) ws.send(frame); };
$("open").addEventListener("click", () => { if (ws && !open) { ws.send(A.encode.open()); $("open").disabled = true; } });
$("correct").addEventListener("click", () => send(A.control.correct()));
$("wrong").addEventListener("click", () => send(A.control.wrong()));
$("next").addEventListener("click", () => send(A.control.next()));
$("new-game").addEventListener("click", () => send(A.control.newGame()));
$("finish").addEventListener("click", () => send(A.encode.finish()));
// Points typed but not yet set survive the roster updates that come every few seconds.
const scoringTyped = new Set();
for (const id of ["points-correct", "points-penalty", "points-early"]) $(id).addEventListener("input", () => scoringTyped.add(id));
$("scoring").addEventListener("submit", (e) => {
  e.preventDefault();
  scoringTyped.clear();
  const points = (id) => Math.max(0, Number($(id).value) || 0);
  send(A.control.scoring(points("points-correct"), points("points-penalty"), points("points-early")));
});
// Any player by name: in a room bigger than the list above, the host still reaches every seat.
const anyName = () => $("any-name").value;
$("any-player").addEventListener("submit", (e) => {
  e.preventDefault();
  if (anyName()) send(A.control.setScore(anyName(), Math.max(0, Number($("any-points").value) || 0)));
});
$("any-remove").addEventListener("click", () => { if (anyName()) send(A.control.kick(anyName())); });
$("any-free").addEventListener("click", () => { if (anyName()) send(A.control.free(anyName())); });
$("csv").addEventListener("click", () => {
  const blob = new Blob([[CSV_HEADER, ...record].join("\n") + "\n"], { type: "text/csv" });
  const a = A.el("a");
  a.href = URL.createObjectURL(blob);
  a.download = "arrival-" + (room || "room") + ".csv";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
// Keys for a host at a laptop: C correct, W wrong, N next question.
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.repeat) return;
  const button = { c: "correct", w: "wrong", n: "next" }[e.key.toLowerCase()];
  if (button && !$(button).disabled && !$(button).hidden) { e.preventDefault(); $(button).click(); }
});
// A new session in the same room (after the last one ended, or the connection was lost).
$("again").addEventListener("click", () => { if (key) start(key); });
$("key-form").addEventListener("submit", (e) => { e.preventDefault(); const k = $("key").value.trim(); if (k) start(k); });
const firstKey = hashKey || savedKey();
if (firstKey) start(firstKey); else { $("key-box").hidden = false; setStatus("Host key needed", "Type the host key, or open the host link the server showed."); }
