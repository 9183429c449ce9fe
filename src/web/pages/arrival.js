// arrival's protocol (PROTOCOL.md), version 6, for the player and host pages, and what both pages
// share (the countdown, tables, the event log): each WebSocket
// binary message is one frame, its 4-byte big-endian length included; the body is bincode
// (little-endian, fixed-width integers, u64 lengths). Only the frames a browser sends or reads.
"use strict";
const Arrival = (() => {
  const VERSION = 6;
  const utf8in = new TextEncoder(), utf8out = new TextDecoder();

  class Writer {
    constructor() { this.bytes = []; }
    u8(v) { this.bytes.push(v & 255); }
    u16(v) { this.u8(v); this.u8(v >> 8); }
    u32(v) { for (let i = 0; i < 4; i++) this.u8(v >>> (8 * i)); }
    u64(v) { let big = BigInt(v); for (let i = 0; i < 8; i++) { this.u8(Number(big & 255n)); big >>= 8n; } }
    str(s) { const b = utf8in.encode(s); this.u64(b.length); for (const x of b) this.u8(x); }
    optStr(s) { if (s == null) { this.u8(0); } else { this.u8(1); this.str(s); } }
    frame() {
      const out = new Uint8Array(4 + this.bytes.length);
      new DataView(out.buffer).setUint32(0, this.bytes.length);
      out.set(this.bytes, 4);
      return out;
    }
  }

  class Reader {
    constructor(buf) { this.view = new DataView(buf); this.at = 4; }
    u8() { return this.view.getUint8(this.at++); }
    u16() { const x = this.view.getUint16(this.at, true); this.at += 2; return x; }
    u32() { const x = this.view.getUint32(this.at, true); this.at += 4; return x; }
    u64() { const x = this.view.getBigUint64(this.at, true); this.at += 8; return Number(x); }
    i64() { const x = this.view.getBigInt64(this.at, true); this.at += 8; return Number(x); }
    bool() { return this.u8() !== 0; }
    str() {
      const n = this.u64();
      const s = utf8out.decode(new Uint8Array(this.view.buffer, this.at, n));
      this.at += n;
      return s;
    }
    opt(read) { return this.u8() ? read.call(this) : null; }
    vec(read) { const n = this.u64(), out = []; for (let i = 0; i < n; i++) out.push(read.call(this)); return out; }
  }

  // Appended to, never reordered, as in the protocol.
  const STANDING = ["answered", "false start", "too early", "locked out", "no answer", "left",
    "correct", "wrong"];
  const JUDGEMENT = ["waiting", "correct", "wrong", "void"];
  const SOURCE = ["none", "kernel", "ping"];
  const ERROR = ["Version", "Protocol", "Malformed", "Timeout", "InvalidName", "RoundFull", "Busy",
    "PartyLeft", "RoundTimeout", "ShuttingDown", "Forbidden"];
  const OVER = ["the last round was played", "too few players were left", "the host ended it",
    "the server stopped"];
  const RANKING = ["arrival", "reaction"];

  function score() { return { name: this.str(), points: this.u64() }; }
  function placing() {
    return { name: this.str(), standing: STANDING[this.u32()], afterGo: this.opt(this.u64),
      rtt: this.opt(this.u64), source: SOURCE[this.u32()], reaction: this.opt(this.i64) };
  }
  function member() {
    return { name: this.str(), rtt: this.opt(this.u64), source: SOURCE[this.u32()],
      points: this.u64(), fromRound: this.u64() };
  }
  function change() {
    switch (this.u32()) {
      case 0: return { kind: "update" };
      case 1: return { kind: "joined", name: this.str() };
      case 2: return { kind: "left", name: this.str(), round: this.u64() };
      case 3: return { kind: "hostJoined" };
      case 4: return { kind: "hostLeft" };
      case 5: return { kind: "ready", round: this.u64() };
      case 6: return { kind: "newGame", game: this.u64() };
      case 7: return { kind: "kicked", name: this.str() };
      case 8: return { kind: "back", name: this.str() };
      case 9: return { kind: "away", name: this.str(), round: this.u64() };
      default: return { kind: "unknown" };
    }
  }

  function contestant() {
    return { name: this.str(), team: this.str(), rtt: this.opt(this.u64), source: SOURCE[this.u32()],
      points: this.u64(), fromRound: this.u64(), here: this.bool() };
  }
  function buzz() {
    return { name: this.str(), team: this.str(), afterGo: this.u64(), rtt: this.opt(this.u64),
      source: SOURCE[this.u32()], reaction: this.opt(this.i64), gap: this.u64(),
      judgement: JUDGEMENT[this.u32()] || "void", points: this.i64(), flag: this.str() };
  }

  function decode(buf) {
    if (buf.byteLength < 8 || new DataView(buf).getUint32(0) !== buf.byteLength - 4) {
      throw new Error("not one whole frame");
    }
    const r = new Reader(buf);
    const tag = r.u32();
    switch (tag) {
      case 1: return { type: "Welcome", version: r.u16() };
      case 5: return { type: "Error", kind: ERROR[r.u32()] || "Unknown", message: r.str() };
      case 11: return { type: "Ping", seq: r.u32() };
      case 13: return { type: "Go", round: r.u64() };
      case 17: return { type: "Outcome", round: r.u64(), text: r.str(), order: r.vec(placing),
        scores: r.vec(score) };
      case 18: return { type: "Early", round: r.u64() };
      case 20: return { type: "Roster", round: r.u64(), open: r.bool(), needed: r.u32(),
        hosted: r.bool(), answerMicros: r.u64(), players: r.vec(member), change: change.call(r) };
      case 23: return { type: "Over", why: OVER[r.u32()] || "it ended", rounds: r.u64(),
        scores: r.vec(score) };
      case 24: return { type: "Rules", ranking: RANKING[r.u32()] || "arrival" };
      case 26: return { type: "Seated", secret: r.str() };
      // A lineup is a roster with teams and held seats: the pages read both as a roster.
      case 27: return { type: "Lineup", round: r.u64(), open: r.bool(), needed: r.u32(),
        hosted: r.bool(), answerMicros: r.u64(), players: r.vec(contestant), change: change.call(r),
        game: r.u64(), buzz: r.bool(), correct: r.u64(), penalty: r.u64(), early: r.u64() };
      case 28: return { type: "Buzzes", round: r.u64(), open: r.bool(), buzzes: r.vec(buzz),
        up: r.opt(r.str), locked: r.vec(r.str) };
      default: return { type: "Unknown", tag };
    }
  }

  function frame(tag, fill) { const w = new Writer(); w.u32(tag); if (fill) fill(w); return w.frame(); }
  const encode = {
    join: (room, name) => frame(10, (w) => { w.u16(VERSION); w.optStr(room); w.str(name); }),
    pong: (seq) => frame(12, (w) => w.u32(seq)),
    answer: () => frame(14),
    host: (room, key) => frame(19, (w) => { w.u16(VERSION); w.optStr(room); w.str(key); }),
    open: () => frame(21),
    finish: () => frame(22),
    seat: (room, name, team, secret) => frame(25, (w) => { w.u16(VERSION); w.optStr(room); w.str(name);
      w.optStr(team); w.optStr(secret); }),
    // The host's controls, by their index in the protocol's Control.
    control: (index, fill) => frame(29, (w) => { w.u32(index); if (fill) fill(w); }),
  };
  const control = {
    correct: () => encode.control(0),
    wrong: () => encode.control(1),
    next: () => encode.control(2),
    setScore: (name, points) => encode.control(3, (w) => { w.str(name); w.u64(points); }),
    kick: (name) => encode.control(4, (w) => w.str(name)),
    free: (name) => encode.control(5, (w) => w.str(name)),
    newGame: () => encode.control(6),
    scoring: (correct, penalty, early) => encode.control(7, (w) => { w.u64(correct); w.u64(penalty); w.u64(early); }),
  };

  // Opens the WebSocket, sends `first`, answers every Ping at once (the server measures the
  // round trip with them, so nothing may come before the Pong), and hands every other frame
  // to `onFrame`. The room rides in the address too, for a balancer that routes by room (the
  // server reads it from the frame).
  function connect(room, first, onFrame, onClose) {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/ws?room=" + encodeURIComponent(room || ""));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(first);
    ws.onmessage = (event) => {
      let f;
      try { f = decode(event.data); } catch (e) { ws.close(1007, "undecodable frame"); return; }
      if (f.type === "Ping") { ws.send(encode.pong(f.seq)); return; }
      if (f.type === "Lineup") f.type = "Roster";
      onFrame(f);
    };
    ws.onclose = (event) => onClose(event.code, event.reason);
    return ws;
  }

  const ms = (us) => (us / 1000).toFixed(1) + " ms";
  const seconds = (us) => { const s = us / 1e6; return Number.isInteger(s) ? String(s) : s.toFixed(1); };
  // Players whose connection is here (a held seat's player is away).
  const here = (roster) => roster.players.filter((p) => p.here !== false);
  function headCount(roster) {
    const n = here(roster).length;
    if (n < roster.needed) return n + " of " + roster.needed + " needed players";
    return n === 1 ? "1 player" : n + " players";
  }
  function rttText(m) {
    if (m.rtt == null) return "not measured yet";
    return (m.rtt < 1000 ? (m.rtt / 1000).toFixed(2) + " ms" : ms(m.rtt)) + (m.source === "kernel" ? " (checked by the kernel)" : " (from pings)");
  }
  // A placing's figure, as the session ranked it (its Rules): reaction time in a reaction-order
  // session (where there is one), else time from go to arrival.
  function figure(p, ranking) {
    if (ranking === "reaction" && p.reaction != null) return ms(p.reaction);
    if (p.afterGo != null) return ms(p.afterGo);
    return "";
  }
  function changeText(c, roster) {
    switch (c.kind) {
      case "joined": return c.name + " joined (" + headCount(roster) + ")";
      case "left": return c.round ? c.name + " left during round " + c.round + " (" + headCount(roster) + ")"
        : c.name + " left (" + headCount(roster) + ")";
      case "hostJoined": return "The host is here: the host opens each round.";
      case "hostLeft": return "The host left: rounds wait for the host.";
      case "ready": return "Round " + c.round + ": get ready (measuring round trips)";
      case "newGame": return "Game " + c.game + ": a new game with the same players";
      case "kicked": return "The host removed " + c.name;
      case "back": return c.name + " is back (" + headCount(roster) + ")";
      case "away": return c.name + " is away: the seat is held (" + headCount(roster) + ")";
      default: return null;
    }
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function fillTable(tbody, rows) {
    tbody.replaceChildren(...rows.map((cells) => {
      const tr = el("tr");
      for (const c of cells) tr.append(el("td", c));
      return tr;
    }));
  }
  // Seconds left to answer, shown in `node` (not a live region: a screen reader is not read a
  // number every second) until the time is up or `stop` is called.
  function countdown(node, answerMicros) {
    const opened = performance.now();
    const tick = () => {
      const left = Math.max(0, answerMicros / 1e3 - (performance.now() - opened));
      node.textContent = left > 0 ? Math.ceil(left / 1000) + " s left to answer" : "Time is up";
      if (left <= 0) stop();
    };
    const timer = setInterval(tick, 200);
    const stop = () => clearInterval(timer);
    tick();
    return () => { stop(); node.textContent = ""; };
  }
  // A result's rows: place and name, then the figure or the standing.
  const ranked = (p) => p.standing === "answered" || p.standing === "correct" || p.standing === "wrong";
  function resultRows(f, ranking) {
    return f.order.map((p, i) => [
      (ranked(p) ? (i + 1) + ". " : "") + p.name,
      !ranked(p) ? p.standing
        : figure(p, ranking) + (p.standing === "answered" ? "" : " · " + p.standing)]);
  }
  function scoreRows(scores) { return scores.map((s) => [s.name, String(s.points)]); }
  // "Session over after 3 rounds: the host ended it." (or before its first round).
  function overText(f) {
    return f.rounds === 0 ? "before its first round: " + f.why + "."
      : "after " + f.rounds + (f.rounds === 1 ? " round" : " rounds") + ": " + f.why + ".";
  }
  // "+23.1 ms" behind the first buzz, or "first".
  const gap = (b, i) => i === 0 ? "first" : "+" + ms(b.gap);
  // A short tone (the first buzz, your turn), unless muted; browsers allow sound only after the
  // page has been used, which a host or a player has by then.
  let audio = null;
  function beep(muted) {
    if (muted) return;
    try {
      audio = audio || new AudioContext();
      const osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.2;
      osc.connect(gain).connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + 0.25);
    } catch (e) { /* no sound on this device */ }
  }
  // Top places with ties named: [[points, [names]], ...] for the first `places` distinct scores.
  function podium(scores, places) {
    const out = [];
    for (const s of scores) {
      const last = out[out.length - 1];
      if (last && last[0] === s.points) last[1].push(s.name);
      else if (out.length < places) out.push([s.points, [s.name]]);
      else break;
    }
    return out;
  }
  function log(list, text) {
    if (!text) return;
    const li = el("li", text);
    list.prepend(li);
    while (list.children.length > 8) list.lastChild.remove();
  }

  return { connect, encode, control, ms, seconds, here, headCount, rttText, figure, changeText, el,
    fillTable, log, countdown, resultRows, scoreRows, overText, gap, beep, podium };
})();
