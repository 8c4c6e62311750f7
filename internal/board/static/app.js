// The Pyrite live board: GET /v1/stream (server-sent events) keeps the cards
// and the feed current; the pipeline and schema panels read the projector's
// board API. No framework and nothing loaded from outside.
"use strict";

const state = {
  cards: new Map(),   // work effort id -> read model
  lastId: "",         // the stream position of the last message
  seen: [],           // every event id received, in order (tests check it for repeats)
  es: null,
  statuses: ["planned", "in-progress", "completed"],
};
window.__pyrite = state;

const $ = (sel, el = document) => el.querySelector(sel);
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const k of kids) e.append(k);
  return e;
}

// ---- sign-in ----
// A projector with read tokens answers 401 to reads without one. The browser
// trades the token for an HttpOnly cookie (POST /v1/session), which
// EventSource and fetch then send on every read; the page never keeps it.
let started = false;
async function start() {
  let r;
  try {
    r = await fetch("/v1/session");
  } catch (e) {
    setTimeout(start, 1000); // the projector is not up: try again
    return;
  }
  if (r.status === 401) return showSignIn("");
  if (r.ok) signedIn((await r.json()).principal);
  if (started) return;
  started = true;
  connect();
  pollHealth();
  setInterval(pollHealth, 3000);
  loadSchemas();
}

function showSignIn(why) {
  if (state.es) { state.es.close(); state.es = null; }
  setConn("signin", "sign in");
  $("#signin").hidden = false;
  $("#signout").hidden = true;
  $("#principal").textContent = "";
  $("#signin-error").textContent = why;
  $("#token").focus();
}

function signedIn(principal) {
  $("#signin").hidden = true;
  $("#principal").textContent = principal ? "signed in as " + principal : "";
  $("#signout").hidden = !principal;
}

$("#signin").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await fetch("/v1/session", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: $("#token").value.trim() }),
  });
  $("#token").value = "";
  if (!r.ok) {
    const p = await r.json().catch(() => ({}));
    $("#signin-error").textContent = r.status === 401 ? "Unknown token." : (p.detail || "Sign-in failed (" + r.status + ").");
    return;
  }
  signedIn((await r.json()).principal);
  if (started) connect(); else start();
});

$("#signout").addEventListener("click", async () => {
  await fetch("/v1/session", { method: "DELETE" });
  showSignIn("Signed out.");
});

// unauthorized shows the sign-in form when a read answered 401.
function unauthorized(r) {
  if (r.status !== 401) return false;
  showSignIn("Your sign-in is no longer valid; sign in again.");
  return true;
}

// ---- connection ----
function setConn(mode, text) {
  const c = $("#conn");
  c.className = "conn " + mode;
  c.textContent = text;
  document.body.dataset.conn = mode;
}

function connect() {
  const url = "/v1/stream" + (state.lastId ? "?lastEventId=" + encodeURIComponent(state.lastId) : "");
  const es = new EventSource(url);
  state.es = es;
  es.addEventListener("ready", (e) => {
    if (e.lastEventId) state.lastId = e.lastEventId;
    setConn("live", "live");
    loadBoard(); // the stored read models; stream messages win by version
  });
  es.addEventListener("applied", (e) => {
    if (e.lastEventId) state.lastId = e.lastEventId;
    onApplied(JSON.parse(e.data));
  });
  es.addEventListener("overflow", () => reopen("fell behind; resuming…"));
  es.addEventListener("error", (e) => {
    if (e.data) return; // a server "error" message: the stream ends and reconnects
    if (es.readyState === EventSource.CLOSED) reopen("reconnecting…");
    else setConn("reconnecting", "reconnecting…");
  });
}

// reopen replaces a closed EventSource, resuming from the last position.
// A stream refused for want of a token (EventSource does not say why it
// failed) shows the sign-in form instead.
function reopen(text) {
  setConn("reconnecting", text);
  if (state.es) state.es.close();
  setTimeout(async () => {
    try {
      if (unauthorized(await fetch("/v1/session"))) return;
    } catch (e) { /* the projector is down: keep trying */ }
    connect();
  }, 1000);
}

// ---- board ----
async function loadBoard() {
  for (const status of state.statuses) {
    let cursor = "";
    do {
      const r = await fetch("/v1/work-efforts?limit=500&status=" + status + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      if (unauthorized(r) || !r.ok) return;
      const page = await r.json();
      for (const we of page.items) upsert(we, false);
      cursor = page.nextCursor || "";
    } while (cursor);
  }
}

function upsert(we, flash) {
  const had = state.cards.get(we.id);
  if (had && had.version >= we.version) return;
  state.cards.set(we.id, we);
  let card = document.querySelector('.card[data-id="' + CSS.escape(we.id) + '"]');
  if (!card) {
    card = el("div", { class: "card", "data-id": we.id },
      el("div", { class: "title" }), el("div", { class: "bar" }, el("i")), el("div", { class: "meta" }, el("span", { class: "pct" }), el("span", { class: "ver" })));
  }
  card.dataset.status = we.status;
  card.dataset.progress = String(we.progress);
  card.dataset.version = String(we.version);
  $(".title", card).textContent = we.title || we.id;
  $(".bar > i", card).style.width = Math.max(0, Math.min(100, we.progress)) + "%";
  $(".pct", card).textContent = we.progress + "%" + (we.assignee ? " · " + we.assignee : "");
  $(".ver", card).textContent = we.id + " v" + we.version;
  if (we.needsManualSync && !$(".flag", card)) card.append(el("div", { class: "flag", textContent: "needs manual sync" }));
  const col = document.querySelector('.column[data-status="' + we.status + '"] .cards');
  if (col && card.parentElement !== col) col.prepend(card);
  if (flash) { card.classList.add("flash"); setTimeout(() => card.classList.remove("flash"), 700); }
  for (const c of document.querySelectorAll(".column")) $(".count", c).textContent = $(".cards", c).children.length;
}

// ---- feed ----
function onApplied(msg) {
  const ev = msg.event;
  state.seen.push(ev.id);
  const feed = $("#feed");
  const t = new Date(ev.time);
  feed.prepend(el("li", { "data-event": ev.id },
    el("span", { class: "t", textContent: isNaN(t) ? "" : t.toLocaleTimeString() }),
    el("span", { class: "ty", textContent: ev.type.replace(/^WorkEffort:/, "") + " · " + ev.aggregateId }),
    el("span", { class: "t", textContent: "v" + ev.version })));
  while (feed.children.length > 200) feed.lastChild.remove();
  $("#feed-count").textContent = state.seen.length;
  if (msg.readModel) upsert(msg.readModel, true); // absent: a later message carries the state
}

// ---- pipeline health ----
let lastHealth = null;
async function pollHealth() {
  if (document.body.dataset.conn === "signin") return;
  try {
    const r = await fetch("/v1/board/pipeline");
    if (unauthorized(r)) return;
    if (!r.ok) throw new Error(r.status);
    const h = await r.json();
    const body = $("#health tbody");
    body.replaceChildren();
    const dt = lastHealth ? (new Date(h.at) - new Date(lastHealth.at)) / 1000 : 0;
    for (const s of h.stages) {
      const prev = lastHealth && lastHealth.stages.find((p) => p.group === s.group);
      const rate = prev && dt > 0 ? Math.max(0, (s.committed - prev.committed) / dt) : null;
      body.append(el("tr", { "data-stage": s.name },
        el("td", { textContent: s.name + (s.group ? "" : " (lag: projection below)") + (s.state === "not running" ? " (not running)" : "") + (s.error ? " (" + s.error + ")" : "") }),
        el("td", { class: "num", textContent: s.lag < 0 ? "–" : s.lag }),
        el("td", { class: "num" + (s.dlq > 0 ? " bad" : ""), textContent: s.dlq }),
        el("td", { class: "num", textContent: rate === null ? "…" : rate.toFixed(1) })));
    }
    for (const p of (h.projections && h.projections.projections) || []) {
      body.append(el("tr", { "data-stage": "projection:" + p.name },
        el("td", { textContent: "projection " + p.name + " (" + p.state + ")" }),
        el("td", { class: "num", textContent: p.lag }), el("td", { class: "num", textContent: "" }), el("td", { textContent: "" })));
    }
    $("#health-note").textContent = "lag in records · rate = committed offsets per second (upcaster: raw records upcast) · " + new Date(h.at).toLocaleTimeString();
    lastHealth = h;
  } catch (e) {
    $("#health-note").textContent = "pipeline health unavailable (" + e.message + ")";
  }
}

// ---- schemas ----
let subjects = [];
async function loadSchemas() {
  const r = await fetch("/v1/board/schemas");
  if (unauthorized(r) || !r.ok) return;
  subjects = (await r.json()).subjects;
  subjects.sort((a, b) => (b.versions.length - a.versions.length) || a.subject.localeCompare(b.subject));
  const sel = $("#subject");
  sel.replaceChildren(...subjects.map((s) => el("option", { value: s.subject, textContent: s.subject + " (" + s.versions.length + ")" })));
  pickSubject();
}
function pickSubject() {
  const s = subjects.find((x) => x.subject === $("#subject").value);
  if (!s) return;
  const opts = () => s.versions.map((v) => el("option", { value: v, textContent: "v" + v }));
  $("#from").replaceChildren(...opts());
  $("#to").replaceChildren(...opts());
  $("#from").value = s.versions[0];
  $("#to").value = s.versions[s.versions.length - 1];
  showDiff();
}
async function showDiff() {
  const q = new URLSearchParams({ subject: $("#subject").value, from: $("#from").value, to: $("#to").value });
  const r = await fetch("/v1/board/schemas/diff?" + q);
  const v = $("#verdict");
  if (!r.ok) { v.className = "bad"; v.textContent = "diff unavailable"; return; }
  const d = await r.json();
  v.className = d.compatible ? "ok" : "bad";
  v.replaceChildren((d.compatible ? "✓ v" + d.to + " is compatible with v" : "✗ v" + d.to + " is not compatible with v") + d.from + " under " + d.level);
  if (!d.compatible) v.append(el("ul", {}, ...d.messages.map((m) => el("li", { textContent: m }))));
  const show = (f) => f ? JSON.stringify(f.type) + (f.hasDefault ? " = " + JSON.stringify(f.default) : "") : "";
  $("#diff tbody").replaceChildren(...d.fields.map((f) => el("tr", { class: f.change },
    el("td", { textContent: f.name }), el("td", { textContent: f.change }),
    el("td", {}, el("code", { textContent: f.change === "changed" ? show(f.from) + " → " + show(f.to) : show(f.to || f.from) })))));
}

$("#subject").addEventListener("change", pickSubject);
$("#from").addEventListener("change", showDiff);
$("#to").addEventListener("change", showDiff);
start();
