// The control room page: plain JavaScript, no build step. Talks to /api/v1 with the operator's
// bearer token (kept in localStorage; a link ending in #token=... sets it) and follows the selected
// match over a WebSocket. window.crowdsound exposes what tests and benchmarks read.
"use strict";

const API = "/api/v1";
const STATE_COLOURS = {
  CALM: "#5b8def", ANTICIPATION: "#f2c14e", EXCITEMENT: "#f28e2b", CELEBRATION: "#59a14f",
  DISAPPOINTMENT: "#9c755f", ANGER: "#e15759", CHANTING: "#b07aa1",
};
const LAYERS = ["pad", "bass", "drums", "strings", "melody", "brass"];
const PLOT_SPAN_MS = 180000;

const cs = window.crowdsound = {
  selected: null, socket: null, windows: new Map(), events: new Map(), stingers: [], bars: [],
  drawn: [], pendingDraw: [], dirty: false, cues: new Map(), match: null,
  audio: { context: null, node: null, socket: null, state: "stopped", played: 0, received: 0, rms: 0, peak: 0 },
};

// -- helpers -------------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
const token = () => localStorage.getItem("crowdsound.token") || "";
function toast(text, error = false) {
  const box = $("toast");
  box.textContent = text; box.className = error ? "error" : ""; box.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}
async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error(`${response.status}: ${(data && data.detail) || response.statusText}`);
  return data;
}
function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${API}${path}`;
}
function openSocket(path) {
  return token() ? new WebSocket(wsUrl(path), ["bearer", token()]) : new WebSocket(wsUrl(path));
}
const fmt = (value, digits = 2) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
const keyOf = (clock) => `${clock.period}:${clock.ms}`;

// -- token -----------------------------------------------------------------------------------------
(function takeTokenFromLink() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    localStorage.setItem("crowdsound.token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("token").value = token();
})();
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem("crowdsound.token", $("token").value.trim());
  refreshMatches(); if (cs.selected) select(cs.selected, true);
});

// -- the match list --------------------------------------------------------------------------------
async function refreshMatches() {
  try {
    const { matches } = await api("GET", "/matches");
    $("connection").textContent = "connected"; $("connection").className = "pill ok";
    const list = $("matches");
    list.replaceChildren();
    if (!matches.length) list.innerHTML = '<li class="empty">no match heard of yet</li>';
    for (const m of matches) {
      const item = document.createElement("li");
      item.dataset.match = m.match_id;
      if (m.match_id === cs.selected) item.classList.add("selected");
      const teams = m.home || m.away ? `${m.home || "?"} v ${m.away || "?"}` : "";
      const music = m.music ? `${fmt(m.music.tempo_bpm, 0)} bpm · ${m.music.key} ${m.music.mode.toLowerCase()}` : "no music yet";
      const behind = m.music_behind_ms === null ? "" : `${(m.music_behind_ms / 1000).toFixed(1)} s behind`;
      item.innerHTML = `<div class="row"><b></b><span class="clock-s"></span></div><div class="teams"></div>
        <div class="row"><span class="st"></span><span class="muted"></span></div><div class="muted small"></div>`;
      item.querySelector("b").textContent = m.match_id;
      item.querySelector(".clock-s").textContent = m.clock_text || "";
      item.querySelector(".teams").textContent = teams;
      item.querySelector(".st").textContent = m.emotion ? m.emotion.state.toLowerCase() : "";
      item.querySelector(".row .muted").textContent = music;
      item.querySelector(".small").textContent = behind;
      item.addEventListener("click", () => select(m.match_id));
      list.appendChild(item);
    }
    if (!cs.selected && matches.length) select(matches[0].match_id);
  } catch (error) {
    $("connection").textContent = error.message.startsWith("401") ? "token needed" : "offline";
    $("connection").className = "pill bad";
  }
}

// -- one match ------------------------------------------------------------------------------------
function select(matchId, force = false) {
  if (cs.selected === matchId && !force) return;
  stopAudio();
  cs.selected = matchId;
  cs.windows.clear(); cs.events.clear(); cs.stingers = []; cs.bars = []; cs.cues.clear(); cs.dirty = true;
  for (const li of document.querySelectorAll("#matches li")) li.classList.toggle("selected", li.dataset.match === matchId);
  $("match").hidden = false; $("none").hidden = true;
  $("match-title").textContent = matchId;
  if (cs.socket) { cs.socket.onclose = null; cs.socket.close(); }
  const socket = cs.socket = openSocket(`/matches/${encodeURIComponent(matchId)}/stream`);
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  socket.onclose = (event) => {
    if (cs.socket !== socket) return;
    if (event.code === 4401) { toast(`stream refused: ${event.reason}`, true); return; }
    setTimeout(() => { if (cs.socket === socket) select(matchId, true); }, 2000);  // reconnect
  };
  loadJobs();
}

function onMessage(message) {
  switch (message.type) {
    case "snapshot": return onSnapshot(message);
    case "emotion": return addWindow(message.window);
    case "control": return addControl(message.control);
    case "event": return addEvent(message.event);
    case "cue": return addCue(message.cue);
    case "preferences": return message.match_id === cs.selected || message.match_id === "*" ? loadPrefs() : null;
    case "dropped": return toast(`the server dropped this page: ${message.reason}`, true);
    case "error": return toast(message.reason, true);
    default: return null;  // heartbeat
  }
}

function onSnapshot(message) {
  const match = message.match;
  cs.match = match;
  if (match) {
    $("match-title").textContent = match.home || match.away ? `${match.match_id} — ${match.home || "?"} v ${match.away || "?"}` : match.match_id;
    for (const w of match.windows) addWindow(w, false);
    for (const e of match.events) addEvent(e);
    for (const b of match.bars) addControl(b);
    for (const s of match.stingers) addControl(s);
    for (const c of match.cues) addCue(c);
  }
  showPrefs(message.preferences);
}

function addWindow(window, live = true) {
  const key = keyOf(window.clock);
  const known = cs.windows.get(key);
  if (known && known.revision >= window.revision) return;
  cs.windows.set(key, window);
  for (const e of window.events) if (!cs.events.has(e.event_id)) cs.events.set(e.event_id, e);
  if (cs.windows.size > 1200) cs.windows.delete(cs.windows.keys().next().value);
  if (live) cs.pendingDraw.push(window);
  cs.dirty = true;
  $("match-clock").textContent = window.clock_text;
  $("match-state").textContent = window.state.toLowerCase();
  $("match-state").style.background = STATE_COLOURS[window.state] || "";
}

function addEvent(event) {
  if (!cs.events.has(event.event_id)) cs.events.set(event.event_id, event);
  if (event.team && cs.match) {
    if (event.side === "HOME") cs.match.home = event.team;
    if (event.side === "AWAY") cs.match.away = event.team;
  }
}

function addControl(control) {
  if (control.kind === "BAR") {
    cs.bars.push(control); if (cs.bars.length > 200) cs.bars.shift();
    showMusic(control);
  } else {
    cs.stingers.push(control); if (cs.stingers.length > 100) cs.stingers.shift();
    cs.dirty = true;
  }
  for (const ref of control.cues || []) {
    const cue = cs.cues.get(ref.cue_id) || { cue_id: ref.cue_id, type: ref.type, set_by: ref.set_by, bars: null };
    Object.assign(cue, { fired_bar: control.bar, fired_beat: control.beat, fired_clock_text: control.clock_text });
    cs.cues.set(ref.cue_id, cue);
    if (control.kind === "BAR") $("held").hidden = ref.type === "HOLD" ? false : ref.type === "RELEASE" ? true : $("held").hidden;
  }
  if ((control.cues || []).length) renderCues();
}

function addCue(cue) {
  const known = cs.cues.get(cue.cue_id);
  cs.cues.set(cue.cue_id, known ? { ...cue, ...Object.fromEntries(Object.entries(known).filter(([, v]) => v !== null)) } : cue);
  renderCues();
}

function renderCues() {
  const log = $("cue-log");
  log.replaceChildren();
  for (const cue of [...cs.cues.values()].reverse().slice(0, 30)) {
    const item = document.createElement("li");
    const name = cue.type.toLowerCase().replace("_", " ");
    if (cue.fired_bar !== null && cue.fired_bar !== undefined) {
      item.className = "fired";
      item.textContent = `${name} cue fired at bar ${cue.fired_bar}` + (cue.fired_beat ? ` beat ${cue.fired_beat + 1}` : "")
        + ` (${cue.fired_clock_text}) — ${cue.set_by || "operator"}`;
    } else {
      item.textContent = `${name} cue sent by ${cue.set_by || "operator"}, waiting for the next ${["hold", "release", "fade out", "fade in"].includes(name) ? "bar" : "beat"}…`;
    }
    item.dataset.cue = cue.cue_id;
    log.appendChild(item);
  }
}

function showMusic(bar) {
  $("m-tempo").textContent = `${fmt(bar.tempo_bpm, 1)} bpm`;
  $("m-key").textContent = `${bar.key} ${bar.mode.toLowerCase()}`;
  $("m-chord").textContent = bar.chord;
  $("m-bar").textContent = bar.bar;
  $("m-style").textContent = bar.style;
  $("m-intensity").value = bar.intensity; $("m-intensity-v").textContent = fmt(bar.intensity);
  $("m-gain").value = bar.gain;
  $("m-reason").textContent = bar.reason;
  $("m-layers").replaceChildren(...LAYERS.map((layer) => {
    const chip = document.createElement("span");
    chip.textContent = layer; if (bar.layers.includes(layer)) chip.className = "on";
    return chip;
  }));
  const latest = cs.match && cs.bars.length ? Math.max(0, Date.now() - bar.x_ms) : null;
  $("behind").textContent = latest === null ? "" : `music ${(latest / 1000).toFixed(1)} s behind the venue`;
}

// -- the plot ------------------------------------------------------------------------------------
function draw() {
  requestAnimationFrame(draw);
  if (!cs.dirty) return;
  cs.dirty = false;
  const canvas = $("plot");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== width * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const windows = [...cs.windows.values()].sort((a, b) => a.x_ms - b.x_ms);
  if (windows.length) {
    const end = windows[windows.length - 1].x_ms + windows[windows.length - 1].length_ms;
    const span = Math.max(60000, Math.min(PLOT_SPAN_MS, end - windows[0].x_ms));  // fill the width early on
    const start = end - span;
    const left = 34, right = width - 8, top = 8, band = 18, bottom = height - band - 22;
    const x = (ms) => left + ((ms - start) / span) * (right - left);
    const yA = (a) => bottom - a * (bottom - top);                    // arousal 0..1
    const yV = (v) => bottom - ((v + 1) / 2) * (bottom - top);        // valence -1..1
    g.strokeStyle = "#2a3644"; g.lineWidth = 1; g.fillStyle = "#8b98a5"; g.font = "10px system-ui";
    for (const level of [0, 0.25, 0.5, 0.75, 1]) {
      g.beginPath(); g.moveTo(left, yA(level)); g.lineTo(right, yA(level)); g.stroke();
      g.fillText(level.toFixed(2), 2, yA(level) + 3);
    }
    const visible = windows.filter((w) => w.x_ms + w.length_ms >= start);
    for (const w of visible) {  // the crowd state band
      g.fillStyle = STATE_COLOURS[w.state] || "#444";
      g.fillRect(Math.max(left, x(w.x_ms)), bottom + 6, Math.max(1, x(w.x_ms + 1000) - x(w.x_ms)), band);
    }
    for (const [series, colour, y] of [["arousal", "#ff9f43", yA], ["valence", "#4fc3f7", yV]]) {
      g.strokeStyle = colour; g.lineWidth = 2; g.beginPath();
      visible.forEach((w, i) => { const px = x(w.x_ms + w.length_ms / 2), py = y(w[series]); i ? g.lineTo(px, py) : g.moveTo(px, py); });
      g.stroke();
    }
    g.font = "11px system-ui";
    for (const e of cs.events.values()) {  // events, from the windows that carry them
      if (e.x_ms === undefined || e.x_ms < start || e.type === "PERIOD_END") continue;
      g.strokeStyle = e.type === "GOAL" ? "#59a14f" : "#8b98a5"; g.setLineDash([4, 3]);
      g.beginPath(); g.moveTo(x(e.x_ms), top); g.lineTo(x(e.x_ms), bottom); g.stroke(); g.setLineDash([]);
      const label = e.type === "PERIOD_START" ? "kick-off" : e.type.toLowerCase().replace("_", " ");
      g.fillStyle = "#e6edf3"; g.fillText(`${label}${e.side && e.side !== "NONE" ? " " + e.side.toLowerCase() : ""}`, x(e.x_ms) + 3, top + 10);
    }
    for (const s of cs.stingers) {  // stingers, where the music placed them
      if (s.x_ms < start) continue;
      g.fillStyle = s.cues && s.cues.length ? "#f2c14e" : "#e6edf3";
      const px = x(s.x_ms), py = bottom - 4;
      g.beginPath(); g.moveTo(px, py - 6); g.lineTo(px + 5, py); g.lineTo(px, py + 6); g.lineTo(px - 5, py); g.fill();
    }
    g.fillStyle = "#8b98a5";  // match clock labels along the axis
    let lastLabel = -Infinity;
    for (const w of visible) {
      const px = x(w.x_ms);
      if (px - lastLabel < 90 || px < left) continue;
      g.fillText(w.clock_text, px, height - 4); lastLabel = px;
    }
  }
  const at = performance.timeOrigin + performance.now();
  for (const w of cs.pendingDraw) cs.drawn.push({ clock: w.clock_text, produced_ms: w.produced_ms, drawn_ms: at });
  if (cs.drawn.length > 20000) cs.drawn.splice(0, cs.drawn.length - 20000);
  cs.pendingDraw = [];
}
requestAnimationFrame(draw);

// -- cues ----------------------------------------------------------------------------------------
for (const button of document.querySelectorAll("button[data-cue]")) {
  button.addEventListener("click", async () => {
    const type = button.dataset.cue;
    const bars = Number($("cue-bars").value) || 2;
    if (type === "fade_out" && !confirm(`Fade the music of ${cs.selected} out over ${bars} bars?`)) return;
    try {
      const cue = await api("POST", `/matches/${encodeURIComponent(cs.selected)}/cues`, { type, bars });
      addCue({ cue_id: cue.cue_id, type: type.toUpperCase(), bars, set_by: cue.set_by, fired_bar: null });
      toast(`${type.replace("_", " ")} cue sent`);
    } catch (error) { toast(`cue refused — ${error.message}`, true); }
  });
}

// -- preferences ---------------------------------------------------------------------------------
function showPrefs(view) {
  if (!view) return;
  const form = $("prefs-form");
  const record = view.record || {};
  form.style.value = record.style || "";
  for (const name of ["intensity_min", "intensity_max", "tempo_min_bpm", "tempo_max_bpm"]) {
    form[name].value = record[name] === null || record[name] === undefined ? "" : Number(record[name]);
  }
  for (const box of form.querySelectorAll("input[name=mute]")) box.checked = (record.muted_layers || []).includes(box.value);
  $("prefs-status").textContent = view.record ? `set by ${view.record.set_by || "?"}` : "defaults";
}
async function loadPrefs() {
  if (!cs.selected) return;
  try { showPrefs(await api("GET", `/matches/${encodeURIComponent(cs.selected)}/preferences`)); } catch (error) { /* shown elsewhere */ }
}
$("prefs-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const number = (name) => (form[name].value === "" ? null : Number(form[name].value));
  const body = {
    style: form.style.value || null, intensity_min: number("intensity_min"), intensity_max: number("intensity_max"),
    tempo_min_bpm: number("tempo_min_bpm"), tempo_max_bpm: number("tempo_max_bpm"),
    muted_layers: [...form.querySelectorAll("input[name=mute]:checked")].map((box) => box.value),
  };
  try {
    const saved = await api("PUT", `/matches/${encodeURIComponent(cs.selected)}/preferences`, body);
    showPrefs(saved); $("prefs-status").textContent = `saved by ${saved.record.set_by}: from the next bar`;
  } catch (error) { $("prefs-status").textContent = error.message; toast(`preferences refused — ${error.message}`, true); }
});

// -- listening -----------------------------------------------------------------------------------
async function startAudio() {
  const audio = cs.audio;
  const context = audio.context || (audio.context = new AudioContext({ sampleRate: 48000 }));
  if (!audio.node) {
    await context.audioWorklet.addModule("/static/pcm-player.js");
  }
  await context.resume();
  const node = audio.node = new AudioWorkletNode(context, "pcm-player", { outputChannelCount: [2], processorOptions: { prebuffer: 1.0, maxBuffer: 4.0 } });
  node.connect(context.destination);
  node.port.onmessage = (event) => {
    Object.assign(audio, event.data);
    $("level").value = Math.min(1, event.data.peak);
    $("listen-status").textContent = `${audio.state} · ${event.data.buffered.toFixed(1)} s buffered`;
  };
  const socket = audio.socket = openSocket(`/matches/${encodeURIComponent(cs.selected)}/audio`);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => {
    if (typeof event.data === "string") return;  // the format message
    const pcm = new Int16Array(event.data);
    const floats = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) floats[i] = pcm[i] / 32768;
    node.port.postMessage(floats, [floats.buffer]);
  };
  socket.onclose = () => { if (audio.socket === socket) stopAudio(); };
  audio.state = "playing"; $("play").textContent = "■ Stop";
}
function stopAudio() {
  const audio = cs.audio;
  if (audio.socket) { const socket = audio.socket; audio.socket = null; socket.close(); }
  if (audio.node) { audio.node.disconnect(); audio.node = null; }
  audio.state = "stopped"; $("play").textContent = "▶ Play"; $("level").value = 0;
  $("listen-status").textContent = "stopped";
}
$("play").addEventListener("click", () => (cs.audio.state === "playing" ? stopAudio() : startAudio().catch((e) => toast(e.message, true))));

// -- highlights ----------------------------------------------------------------------------------
async function loadJobs() {
  if (!cs.selected) return;
  try {
    const { jobs } = await api("GET", `/matches/${encodeURIComponent(cs.selected)}/highlights`);
    const list = $("jobs");
    list.replaceChildren();
    for (const job of jobs) {
      const item = document.createElement("li");
      item.dataset.job = job.job_id;
      const head = document.createElement("div");
      head.textContent = `${job.state} · ${job.options.auto ? `best ${job.options.auto}` : job.options.ranges.join(", ")}`
        + (job.step && job.state === "running" ? ` · ${job.step}` : "") + (job.error ? ` · ${job.error}` : "");
      item.appendChild(head);
      if (job.state === "running") {
        const bar = document.createElement("progress"); bar.max = 1; bar.value = job.progress; item.appendChild(bar);
      }
      for (const [name, url] of Object.entries(job.file_urls)) {
        const link = document.createElement("a");
        link.href = "#"; link.textContent = name;
        link.addEventListener("click", (event) => { event.preventDefault(); download(url, name); });
        item.appendChild(link);
      }
      list.appendChild(item);
    }
    if (jobs.some((job) => job.state === "queued" || job.state === "running")) setTimeout(loadJobs, 1500);
  } catch (error) { /* the connection pill says it */ }
}
async function download(url, name) {
  const response = await fetch(url, { headers: token() ? { Authorization: `Bearer ${token()}` } : {} });
  if (!response.ok) { toast(`download failed: ${response.status}`, true); return; }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob()); link.download = name; link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
$("reel-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    await api("POST", `/matches/${encodeURIComponent(cs.selected)}/highlights`,
      { auto: Number(form.auto.value) || 4, style: form.style.value || null });
    toast("building the reel…"); loadJobs();
  } catch (error) { toast(`reel refused — ${error.message}`, true); }
});

refreshMatches();
setInterval(refreshMatches, 3000);
