/**
 * The web dashboard at `GET /ui`: one self-contained HTML page (inline CSS and
 * JS, no CDN, no build step, works offline) that shows the signal, the
 * claims, the sources, relay targets and the history, with buttons for RUN,
 * PAUSE (optionally timed) and STOP, and live updates over `/events`.
 *
 * Everything that comes from the server reaches the DOM through
 * `textContent`, never `innerHTML`. The Content-Security-Policy allows only
 * this page's own script and style (by SHA-256 hash) and requests to the same
 * origin.
 */
import { createHash } from "node:crypto";

export const UI_STYLE = `
:root { color-scheme: light dark; --run: #1a7f37; --pause: #b26a00; --stop: #c62828; --muted: #6b7280;
  --card: rgba(127,127,127,.08); --line: rgba(127,127,127,.25); font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; padding: 12px; max-width: 960px; margin-inline: auto; line-height: 1.4; overflow-wrap: anywhere; }
h1 { font-size: 1rem; margin: 0 0 8px; color: var(--muted); font-weight: 600; display: flex; justify-content: space-between; gap: 8px; }
h2 { font-size: 1.05rem; margin: 20px 0 8px; }
#live { font-weight: 400; }
#live.on::before { content: "\\25CF "; color: var(--run); }
#live.off::before { content: "\\25CF "; color: var(--muted); }
.hero { border-radius: 14px; padding: 18px 16px; color: #fff; background: var(--muted); text-align: center; }
.hero.sig-RUN { background: var(--run); } .hero.sig-PAUSE { background: var(--pause); } .hero.sig-STOP { background: var(--stop); }
#signal { font-size: clamp(3.5rem, 18vw, 7rem); font-weight: 800; letter-spacing: .04em; line-height: 1.05; }
#decided, #latch { margin-top: 6px; font-size: .95rem; }
#latch:empty { display: none; }
.controls { display: grid; grid-template-columns: repeat(3, 1fr); gap: 10px; margin-top: 14px; }
button { font: inherit; font-weight: 700; min-height: 56px; border-radius: 12px; border: 2px solid transparent; cursor: pointer; padding: 8px 12px; }
button:disabled { opacity: .6; cursor: progress; }
button:focus-visible, input:focus-visible { outline: 3px solid #2563eb; outline-offset: 2px; }
#btn-run { background: var(--run); color: #fff; } #btn-pause { background: var(--pause); color: #fff; } #btn-stop { background: var(--stop); color: #fff; }
.pause-for { grid-column: 1 / -1; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.pause-for label { color: var(--muted); }
input { font: inherit; min-height: 48px; padding: 8px 10px; border-radius: 10px; border: 1px solid var(--line); background: transparent; color: inherit; min-width: 0; flex: 1 1 8rem; }
.message { margin-top: 12px; padding: 12px; border-radius: 10px; background: var(--card); border-left: 6px solid var(--muted); }
.message.ok { border-left-color: var(--run); } .message.warn { border-left-color: var(--pause); } .message.error { border-left-color: var(--stop); font-weight: 600; }
details.token { margin-top: 12px; padding: 10px 12px; border-radius: 10px; background: var(--card); }
details.token summary { cursor: pointer; min-height: 32px; }
.token-row { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 8px; }
.token-row button { min-height: 48px; background: var(--card); color: inherit; border-color: var(--line); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 10px 12px; min-width: 0; }
.card .title { font-weight: 700; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.card .meta { color: var(--muted); font-size: .85rem; }
.card dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 10px; margin: 6px 0 0; font-size: .9rem; }
.card dt { color: var(--muted); } .card dd { margin: 0; min-width: 0; }
.badge { display: inline-block; border-radius: 999px; padding: 1px 10px; font-size: .8rem; font-weight: 700; color: #fff; background: var(--muted); }
.badge.RUN, .badge.ok, .badge.yes { background: var(--run); } .badge.PAUSE, .badge.warning, .badge.starting { background: var(--pause); }
.badge.STOP, .badge.failed, .badge.no { background: var(--stop); }
.empty { color: var(--muted); }
ol.history { list-style: none; padding: 0; margin: 0; border-left: 3px solid var(--line); }
ol.history li { padding: 6px 0 6px 12px; border-bottom: 1px solid var(--line); font-size: .92rem; }
ol.history .when { color: var(--muted); font-size: .82rem; display: block; }
footer { margin-top: 24px; color: var(--muted); font-size: .8rem; }
@media (max-width: 520px) { body { padding: 8px; } .controls { gap: 8px; } .cards { grid-template-columns: 1fr; } }
`;

export const UI_SCRIPT = `
(function () {
  "use strict";
  var TOKEN_KEY = "chaos-signal-token";
  var base = location.pathname.replace(/\\/ui\\/?$/, "/");
  var $ = function (id) { return document.getElementById(id); };
  var busy = false;

  function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; } }
  function authHeaders() { var t = token(); return t ? { "Authorization": "Bearer " + t } : {}; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function say(text, kind) {
    var m = $("message");
    m.textContent = text || "";
    m.className = "message " + (kind || "");
    m.hidden = !text;
  }
  function when(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    var s = Math.round((Date.now() - d.getTime()) / 1000);
    var rel = s < 5 ? "just now" : s < 90 ? s + "s ago" : s < 5400 ? Math.round(s / 60) + "m ago" : s < 129600 ? Math.round(s / 3600) + "h ago" : Math.round(s / 86400) + "d ago";
    return d.toLocaleString() + " (" + rel + ")";
  }
  function short(value) {
    if (value === null || value === undefined) return "-";
    if (typeof value === "object") { try { value = JSON.stringify(value); } catch (e) { value = String(value); } }
    value = String(value);
    return value.length > 160 ? value.slice(0, 157) + "..." : value;
  }
  function needToken(reason) {
    $("token-box").open = true;
    $("token").focus();
    say("401 Unauthorized: this server needs a token. Enter it under \\u201cToken\\u201d and try again." + (reason ? " (" + reason + ")" : ""), "error");
  }
  // Bumped on every signal the page learns of (an event, a POST's answer). A /status answer that
  // was asked for before the latest change is stale: rendering it would flip the page back, say
  // from STOP to PAUSE, until the next refresh. The refresh that the change itself asked for
  // brings the newer state.
  var signalGeneration = 0;
  function setSignal(signal) {
    if (signal !== "RUN" && signal !== "PAUSE" && signal !== "STOP") return;
    signalGeneration++;
    $("signal").textContent = signal;
    $("hero").className = "hero sig-" + signal;
    document.title = signal + " \\u00b7 chaos-signal";
  }
  async function getJson(path) {
    var r = await fetch(base + path, { headers: authHeaders(), cache: "no-store" });
    var text = await r.text();
    if (r.status === 401) { needToken(text.trim()); throw new Error("401"); }
    if (!r.ok) throw new Error("GET /" + path + ": " + r.status + " " + text.trim());
    return JSON.parse(text);
  }
  function pair(dl, key, value) { dl.appendChild(el("dt", "", key)); dl.appendChild(el("dd", "", short(value))); }

  function renderStatus(s, staleSignal) {
    if (!staleSignal) setSignal(s.signal);
    $("decided").textContent = "decided by " + (s.decided_by || "-") + " \\u00b7 changed " + when(s.changed_at);
    $("latch").textContent = s.stop_latch ? "STOP latch: held since " + when(s.stop_latch.since) + " by " + s.stop_latch.source + " (" + s.stop_latch.reason + "); a RUN releases it" : "";
    var claims = $("claims"); claims.replaceChildren();
    (s.claims || []).forEach(function (c) {
      var card = el("div", "card"), title = el("div", "title");
      title.appendChild(el("span", "badge " + c.state, c.state));
      title.appendChild(el("span", "", c.source));
      card.appendChild(title);
      var dl = el("dl"); pair(dl, "why", c.reason); pair(dl, "since", when(c.since));
      if (c.actor) pair(dl, "by", c.actor);
      card.appendChild(dl); claims.appendChild(card);
    });
    if (!claims.firstChild) claims.appendChild(el("p", "empty", "no claims"));

    var sources = $("sources"), relays = $("relays"); sources.replaceChildren(); relays.replaceChildren();
    (s.sources || []).forEach(function (src) {
      var card = el("div", "card"), title = el("div", "title");
      title.appendChild(el("span", "badge " + src.health, src.health));
      title.appendChild(el("span", "", src.name));
      title.appendChild(el("span", "meta", src.kind));
      card.appendChild(title);
      var dl = el("dl"), obs = src.last_observation;
      if (obs && typeof obs === "object") {
        Object.keys(obs).forEach(function (k) { if (k !== "targets") pair(dl, k === "at" ? "seen" : k, k === "at" ? when(obs.at) : obs[k]); });
      } else pair(dl, "seen", "no observation yet");
      if (src.last_warning) pair(dl, "warning", when(src.last_warning.at) + ": " + src.last_warning.message);
      if (src.restarts) pair(dl, "restarts", src.restarts);
      card.appendChild(dl); sources.appendChild(card);
      if (src.kind === "relay" && obs && Array.isArray(obs.targets)) {
        obs.targets.forEach(function (t) {
          var tc = el("div", "card"), tt = el("div", "title");
          tt.appendChild(el("span", "badge " + (t.in_sync ? "yes" : "no"), t.in_sync ? "in sync" : "out of sync"));
          tt.appendChild(el("span", "", t.url));
          tc.appendChild(tt);
          var tdl = el("dl"); pair(tdl, "relay", src.name);
          ["last_pushed", "last_seen", "last_error", "failures"].forEach(function (k) {
            var value = t[k];
            if (value && typeof value === "object" && "message" in value) value = (value.at ? when(value.at) + ": " : "") + value.message;
            if (k in t) pair(tdl, k.replace("_", " "), value);
          });
          tc.appendChild(tdl); relays.appendChild(tc);
        });
      }
    });
    if (!sources.firstChild) sources.appendChild(el("p", "empty", "no sources configured"));
    $("relays-section").hidden = !relays.firstChild;
    $("version").textContent = "chaos-signal " + (s.version || "") + " on " + (s.runtime || "");
  }
  function renderHistory(h) {
    var list = $("history"); list.replaceChildren();
    (h.entries || []).forEach(function (e) {
      var li = el("li");
      li.appendChild(el("span", "when", when(e.at) + " \\u00b7 #" + e.id));
      li.appendChild(el("span", "badge " + e.state, e.state));
      li.appendChild(document.createTextNode(" " + (e.type === "change" ? "signal " : "claim ") + (e.previous ? e.previous + " \\u2192 " + e.state : e.state) + " by " + e.source + (e.actor ? " (" + e.actor + ")" : "") + ": " + (e.reason || "")));
      list.appendChild(li);
    });
    if (!list.firstChild) list.appendChild(el("li", "empty", "no entries yet"));
  }
  var refreshing = null, again = false;
  async function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async function () {
      try {
        var asked = signalGeneration;
        var status = await getJson("status");
        // Asked before the latest signal: show the rest, keep the newer signal, and ask again.
        var stale = asked !== signalGeneration;
        if (stale) again = true;
        renderStatus(status, stale);
        renderHistory(await getJson("history?limit=30"));
      } catch (e) {
        if (e.message !== "401") say("Cannot read the server: " + e.message, "error");
      }
    })();
    await refreshing; refreshing = null;
    if (again) { again = false; return refresh(); }
  }
  function setBusy(b) { busy = b; ["btn-run", "btn-pause", "btn-stop"].forEach(function (id) { $(id).disabled = b; }); }
  async function post(signal, query) {
    if (busy) return;
    setBusy(true); say("Sending " + signal + "\\u2026", "");
    try {
      var r = await fetch(base + signal + (query || ""), { method: "POST", headers: authHeaders(), cache: "no-store" });
      var text = (await r.text()).trim();
      if (r.status === 401) { needToken(text); return; }
      if (!r.ok) { say("POST /" + signal + " failed (" + r.status + "): " + text, "error"); return; }
      setSignal(text);
      if (text === signal) say("POST /" + signal + ": the signal is " + text + (query ? " (" + decodeURIComponent(query.slice(1)) + ")" : "") + ".", "ok");
      else say("Asked for " + signal + "; the signal is " + text + ": another claim or the STOP latch holds it (see Claims).", "warn");
      refresh();
    } catch (e) {
      say("Cannot reach the server: " + e.message, "error");
    } finally { setBusy(false); }
  }

  $("btn-run").addEventListener("click", function () { post("RUN"); });
  $("btn-pause").addEventListener("click", function () {
    var d = $("pause-for").value.trim();
    post("PAUSE", d ? "?for=" + encodeURIComponent(d) : "");
  });
  $("btn-stop").addEventListener("click", function () {
    if (!window.confirm("Stop the chaos run?\\n\\nSTOP latches: it holds until someone sends RUN.")) { say("STOP cancelled; nothing was sent.", ""); return; }
    post("STOP");
  });
  $("token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = $("token").value.trim();
    try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) {}
    $("token").value = "";
    $("token-state").textContent = token() ? "a token is set for this tab" : "no token set";
    say(t ? "Token saved for this browser tab." : "Token removed.", "ok");
    refresh();
  });
  $("token-clear").addEventListener("click", function () {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) {}
    $("token-state").textContent = "no token set";
    say("Token removed.", "ok");
  });
  $("token-state").textContent = token() ? "a token is set for this tab" : "no token set";

  function live(on) { var l = $("live"); l.className = on ? "on" : "off"; l.textContent = on ? "live" : "reconnecting"; }
  // The live feed: GET /events read with fetch, not EventSource, so that it can carry the token
  // when reads need one (protect_reads). It reconnects after a second (five after a 401), with
  // Last-Event-ID, and at once when a token is saved.
  var lastEventId = "", feed = null;
  function onFrame(frame) {
    var type = "message", data = [];
    frame.split("\\n").forEach(function (line) {
      var colon = line.indexOf(":");
      if (colon === 0) return; // a comment: the heartbeat
      var field = colon < 0 ? line : line.slice(0, colon), value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id") lastEventId = value;
    });
    if (type === "signal" && data.length) { setSignal(data.join("\\n")); refresh(); }
  }
  async function follow(controller) {
    while (!controller.signal.aborted) {
      var wait = 1000, connection = new AbortController(), idle = null;
      var cut = function () { connection.abort(); };
      controller.signal.addEventListener("abort", cut);
      // Nothing for three heartbeats (15 s each): the connection died without saying so.
      var watch = function () { clearTimeout(idle); idle = setTimeout(cut, 45000); };
      try {
        var headers = authHeaders();
        if (lastEventId) headers["Last-Event-ID"] = lastEventId;
        watch();
        var r = await fetch(base + "events", { headers: headers, cache: "no-store", signal: connection.signal });
        if (r.status === 401) wait = 5000;
        if (r.ok && r.body) {
          if (feed === controller) live(true);
          var reader = r.body.pipeThrough(new TextDecoderStream()).getReader(), buffer = "";
          for (;;) {
            var chunk = await reader.read();
            if (chunk.done) break;
            watch();
            buffer += chunk.value;
            // A CR at the very end may be half of a CRLF whose LF comes in the next chunk.
            var held = buffer.slice(-1) === "\\r" ? "\\r" : "";
            buffer = buffer.slice(0, buffer.length - held.length).replace(/\\r\\n?/g, "\\n");
            var end;
            while ((end = buffer.indexOf("\\n\\n")) >= 0) { onFrame(buffer.slice(0, end)); buffer = buffer.slice(end + 2); }
            buffer += held;
          }
        } else await r.body?.cancel();
      } catch (e) { /* the server went away, we aborted, or it went quiet: reconnect below */ }
      clearTimeout(idle);
      controller.signal.removeEventListener("abort", cut);
      if (feed === controller) live(false);
      await new Promise(function (resolve) { setTimeout(resolve, wait); });
    }
  }
  function startFeed() {
    if (feed) feed.abort();
    feed = new AbortController();
    follow(feed);
  }
  $("token-form").addEventListener("submit", startFeed);
  startFeed();
  setInterval(refresh, 10000);
  refresh();
})();
`;

const BODY = `<header>
<h1><span>chaos-signal</span><span id="live" class="off">connecting</span></h1>
</header>
<main>
<section id="hero" class="hero" aria-live="polite">
<div id="signal">&hellip;</div>
<div id="decided"></div>
<div id="latch"></div>
</section>
<section class="controls" aria-label="Change the signal">
<button id="btn-run" type="button">RUN</button>
<button id="btn-pause" type="button">PAUSE</button>
<button id="btn-stop" type="button">STOP</button>
<div class="pause-for"><label for="pause-for">Pause for</label><input id="pause-for" name="pause-for" inputmode="text" autocomplete="off" placeholder="e.g. 15m (empty: until RUN)"></div>
</section>
<div id="message" class="message" role="status" hidden></div>
<details id="token-box" class="token">
<summary>Token &middot; <span id="token-state" class="meta"></span></summary>
<form id="token-form" class="token-row">
<input id="token" type="password" autocomplete="off" placeholder="bearer token" aria-label="bearer token">
<button id="token-save" type="submit">Save</button>
<button id="token-clear" type="button">Forget</button>
</form>
</details>
<h2>Claims</h2>
<div id="claims" class="cards"></div>
<h2>Sources</h2>
<div id="sources" class="cards"></div>
<section id="relays-section" hidden>
<h2>Relay targets</h2>
<div id="relays" class="cards"></div>
</section>
<h2>History</h2>
<ol id="history" class="history"></ol>
</main>
<footer id="version"></footer>`;

export const UI_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>chaos-signal</title>
<link rel="icon" href="data:,">
<style>${UI_STYLE}</style>
</head>
<body>
${BODY}
<script>${UI_SCRIPT}</script>
</body>
</html>
`;

const hash = (text: string) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;

/** Only this page's own script and style run; requests go to the same origin only. */
export const UI_CSP = [
  "default-src 'none'",
  `script-src ${hash(UI_SCRIPT)}`,
  `style-src ${hash(UI_STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const UI_BYTES = new TextEncoder().encode(UI_HTML);

/** `GET|HEAD /ui`. */
export function uiResponse(head = false): Response {
  return new Response(head ? null : UI_BYTES.slice(), {
    status: 200,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "content-length": String(UI_BYTES.byteLength),
      "content-security-policy": UI_CSP,
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
    },
  });
}
