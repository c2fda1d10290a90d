/**
 * The dashboard's script, run by the browser on `GET /ui` (see page.ts). It is type-checked with
 * the DOM library (dom.deno.json) and compiled to dashboard_script.gen.ts by
 * scripts/gen_dashboard.mjs: the page embeds that text, so that every way of running the server
 * (source, binary, single file) serves the same bytes under the same CSP hash.
 *
 * Everything that comes from the server reaches the DOM through `textContent`, never `innerHTML`.
 * The types below are the server's own (erased at build): /status and /history as served.
 */
import type { CardTime, DashboardCard } from "../../plugin/api.ts";
import type { HistoryPage } from "../../state/history.ts";
import type { SourceStatus, StatusDocument } from "../status.ts";

const TOKEN_KEY = "chaos-signal-token";
const base = location.pathname.replace(/\/ui\/?$/, "/");
let busy = false;

/** The page's own elements (page.ts): one missing is a bug of this file, not of the server. */
function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from the page`);
  return found as T;
}

function token(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}
function authHeaders(): Record<string, string> {
  const t = token();
  return t ? { "Authorization": "Bearer " + t } : {};
}
function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: unknown): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function say(text: string, kind?: "ok" | "warn" | "error" | ""): void {
  const m = $("message");
  m.textContent = text || "";
  m.className = "message " + (kind || "");
  m.hidden = !text;
}
function when(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d.getTime())) return String(iso);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const rel = s < 5
    ? "just now"
    : s < 90
    ? s + "s ago"
    : s < 5400
    ? Math.round(s / 60) + "m ago"
    : s < 129600
    ? Math.round(s / 3600) + "h ago"
    : Math.round(s / 86400) + "d ago";
  return d.toLocaleString() + " (" + rel + ")";
}
function short(value: unknown): string {
  if (value === null || value === undefined) return "-";
  let text: string;
  if (typeof value === "object") {
    try {
      text = JSON.stringify(value);
    } catch {
      text = String(value);
    }
  } else text = String(value);
  return text.length > 160 ? text.slice(0, 157) + "..." : text;
}
function needToken(reason: string): void {
  $<HTMLDetailsElement>("token-box").open = true;
  $("token").focus();
  say("401 Unauthorized: this server needs a token. Enter it under \u201cToken\u201d and try again." + (reason ? " (" + reason + ")" : ""), "error");
}
// Bumped on every signal the page learns of (an event, a POST's answer). A /status answer that
// was asked for before the latest change is stale: rendering it would flip the page back, say
// from STOP to PAUSE, until the next refresh. The refresh that the change itself asked for
// brings the newer state.
let signalGeneration = 0;
function setSignal(signal: string): void {
  if (signal !== "RUN" && signal !== "PAUSE" && signal !== "STOP") return;
  signalGeneration++;
  $("signal").textContent = signal;
  $("hero").className = "hero sig-" + signal;
  document.title = signal + " \u00b7 chaos-signal";
}
async function getJson<T>(path: string): Promise<T> {
  const r = await fetch(base + path, { headers: authHeaders(), cache: "no-store" });
  const text = await r.text();
  if (r.status === 401) {
    needToken(text.trim());
    throw new Error("401");
  }
  if (!r.ok) throw new Error("GET /" + path + ": " + r.status + " " + text.trim());
  return JSON.parse(text) as T;
}
function pair(dl: HTMLElement, key: string, value: unknown): void {
  dl.appendChild(el("dt", "", key));
  dl.appendChild(el("dd", "", short(value)));
}

/** A plugin's card field: a time (shown in the viewer's zone, with how long ago) or a plain value. */
function fieldText(value: DashboardCard["fields"][number][1]): unknown {
  if (value && typeof value === "object" && typeof (value as CardTime).at === "string") {
    const time = value as CardTime;
    return when(time.at) + (time.text ? ": " + time.text : "");
  }
  return value;
}
const TONE_CLASS: Record<string, string> = { ok: "yes", warn: "warning", bad: "no" };
/** Observation values that are lists of records (the relay's targets) are the plugin's cards' business. */
function isListOfRecords(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0 && value.every((item) => item !== null && typeof item === "object");
}
const SECTION_ID = /^[a-z][a-z0-9-]{0,62}$/;

function sourceCard(src: SourceStatus): HTMLElement {
  const card = el("div", "card"), title = el("div", "title");
  title.appendChild(el("span", "badge " + src.health, src.health));
  title.appendChild(el("span", "", src.name));
  title.appendChild(el("span", "meta", src.kind));
  card.appendChild(title);
  const dl = el("dl"), obs = src.last_observation;
  if (obs && typeof obs === "object") {
    Object.keys(obs).forEach((k) => {
      if (!isListOfRecords(obs[k])) pair(dl, k === "at" ? "seen" : k, k === "at" ? when(obs.at) : obs[k]);
    });
  } else pair(dl, "seen", "no observation yet");
  if (src.last_warning) pair(dl, "warning", when(src.last_warning.at) + ": " + src.last_warning.message);
  if (src.restarts) pair(dl, "restarts", src.restarts);
  card.appendChild(dl);
  return card;
}

function pluginCard(card: DashboardCard): HTMLElement {
  const box = el("div", "card"), title = el("div", "title");
  if (card.badge) title.appendChild(el("span", "badge " + (TONE_CLASS[card.badge.tone] || ""), card.badge.text));
  title.appendChild(el("span", "", card.title));
  box.appendChild(title);
  const dl = el("dl");
  (Array.isArray(card.fields) ? card.fields : []).forEach((field) => {
    if (Array.isArray(field)) pair(dl, String(field[0]), fieldText(field[1]));
  });
  box.appendChild(dl);
  return box;
}

/**
 * The plugins' card sections, in the order they first appear: `<section id="section-<id>">` with
 * a heading and `<div id="<id>">`, unless the page already uses that id (then `cards-<id>`).
 */
function renderPluginCards(sources: readonly SourceStatus[]): void {
  const holder = $("plugin-sections");
  const sections = new Map<string, { title: string; cards: DashboardCard[] }>();
  for (const src of sources) {
    for (const card of Array.isArray(src.cards) ? src.cards : []) {
      const id = card && card.section && SECTION_ID.test(card.section.id) ? card.section.id : "other";
      const section = sections.get(id) ?? { title: String(card.section?.title ?? id), cards: [] };
      section.cards.push(card);
      sections.set(id, section);
    }
  }
  holder.replaceChildren();
  sections.forEach((section, id) => {
    const wrapper = el("section");
    wrapper.id = "section-" + id;
    wrapper.appendChild(el("h2", "", section.title));
    const cards = el("div", "cards");
    cards.id = document.getElementById(id) ? "cards-" + id : id;
    section.cards.forEach((card) => cards.appendChild(pluginCard(card)));
    wrapper.appendChild(cards);
    holder.appendChild(wrapper);
  });
}

function renderStatus(s: StatusDocument, staleSignal: boolean): void {
  if (!staleSignal) setSignal(s.signal);
  $("decided").textContent = "decided by " + (s.decided_by || "-") + " \u00b7 changed " + when(s.changed_at);
  $("latch").textContent = s.stop_latch
    ? "STOP latch: held since " + when(s.stop_latch.since) + " by " + s.stop_latch.source + " (" + s.stop_latch.reason + "); a RUN releases it"
    : "";
  renderStore(s);
  const claims = $("claims");
  claims.replaceChildren();
  (s.claims || []).forEach((c) => {
    const card = el("div", "card"), title = el("div", "title");
    title.appendChild(el("span", "badge " + c.state, c.state));
    title.appendChild(el("span", "", c.source));
    card.appendChild(title);
    const dl = el("dl");
    pair(dl, "why", c.reason);
    pair(dl, "since", when(c.since));
    if (c.actor) pair(dl, "by", c.actor);
    card.appendChild(dl);
    claims.appendChild(card);
  });
  if (!claims.firstChild) claims.appendChild(el("p", "empty", "no claims"));

  const sources = $("sources");
  sources.replaceChildren();
  (s.sources || []).forEach((src) => sources.appendChild(sourceCard(src)));
  if (!sources.firstChild) sources.appendChild(el("p", "empty", "no sources configured"));
  renderPluginCards(s.sources || []);
  $("version").textContent = "chaos-signal " + (s.version || "") + " on " + (s.runtime || "");
}
/** One line on where the signal is kept: etcd (current or why not, revision, replica, leader), the file, or memory. */
function renderStore(s: StatusDocument): void {
  const line = $("store");
  line.className = "";
  if (s.store) {
    const st = s.store;
    if (!st.current) line.className = "not-current";
    const leader = st.leader === null ? "none known" : st.leader + (st.leading ? " (this one)" : "");
    line.textContent = "store etcd \u00b7 " +
      (st.current ? "current" : "not current" + (st.detail ? " (" + st.detail + ")" : "") + ": GET / serves PAUSE") +
      " \u00b7 revision " + st.revision + " \u00b7 replica " + st.replica + " \u00b7 leader " + leader;
  } else if (s.state) {
    line.textContent = "store file " + s.state.file + " \u00b7 current" +
      (s.state.saved ? "" : " \u00b7 not saved" + (s.state.error ? " (" + s.state.error + ")" : "") + ", retrying");
  } else {
    line.textContent = "store memory only (no state file)";
  }
}
function renderHistory(h: HistoryPage): void {
  const list = $("history");
  list.replaceChildren();
  (h.entries || []).forEach((e) => {
    const li = el("li");
    li.appendChild(el("span", "when", when(e.at) + " \u00b7 #" + e.id));
    if (e.type === "note") {
      // A plugin's note (a relay's targets): its kind, its reason, and the lists among its details.
      const lists = Object.entries(e.details || {})
        .filter(([, value]) => Array.isArray(value) && value.length > 0)
        .map(([key, value]) => key + ": " + (value as unknown[]).map(String).join(", "));
      li.appendChild(el("span", "badge note", e.kind));
      li.appendChild(document.createTextNode(" " + e.source + ": " + (e.reason || "") + (lists.length ? " (" + lists.join("; ") + ")" : "")));
      list.appendChild(li);
      return;
    }
    li.appendChild(el("span", "badge " + e.state, e.state));
    li.appendChild(
      document.createTextNode(
        " " + (e.type === "change" ? "signal " : "claim ") + (e.previous ? e.previous + " \u2192 " + e.state : e.state) + " by " + e.source +
          (e.actor ? " (" + e.actor + ")" : "") + ": " + (e.reason || ""),
      ),
    );
    list.appendChild(li);
  });
  if (!list.firstChild) list.appendChild(el("li", "empty", "no entries yet"));
}

let refreshing: Promise<void> | null = null, again = false;
async function refresh(): Promise<void> {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      const asked = signalGeneration;
      const status = await getJson<StatusDocument>("status");
      // Asked before the latest signal: show the rest, keep the newer signal, and ask again.
      const stale = asked !== signalGeneration;
      if (stale) again = true;
      renderStatus(status, stale);
      renderHistory(await getJson<HistoryPage>("history?limit=30"));
    } catch (e) {
      if ((e as Error).message !== "401") say("Cannot read the server: " + (e as Error).message, "error");
    }
  })();
  await refreshing;
  refreshing = null;
  if (again) {
    again = false;
    return refresh();
  }
}
function setBusy(b: boolean): void {
  busy = b;
  ["btn-run", "btn-pause", "btn-stop"].forEach((id) => {
    $<HTMLButtonElement>(id).disabled = b;
  });
}
async function post(signal: "RUN" | "PAUSE" | "STOP", query?: string): Promise<void> {
  if (busy) return;
  setBusy(true);
  say("Sending " + signal + "\u2026", "");
  try {
    const r = await fetch(base + signal + (query || ""), { method: "POST", headers: authHeaders(), cache: "no-store" });
    const text = (await r.text()).trim();
    if (r.status === 401) {
      needToken(text);
      return;
    }
    if (!r.ok) {
      say("POST /" + signal + " failed (" + r.status + "): " + text, "error");
      return;
    }
    setSignal(text);
    if (text === signal) say("POST /" + signal + ": the signal is " + text + (query ? " (" + decodeURIComponent(query.slice(1)) + ")" : "") + ".", "ok");
    else say("Asked for " + signal + "; the signal is " + text + ": another claim or the STOP latch holds it (see Claims).", "warn");
    void refresh();
  } catch (e) {
    say("Cannot reach the server: " + (e as Error).message, "error");
  } finally {
    setBusy(false);
  }
}

$("btn-run").addEventListener("click", () => void post("RUN"));
$("btn-pause").addEventListener("click", () => {
  const d = $<HTMLInputElement>("pause-for").value.trim();
  void post("PAUSE", d ? "?for=" + encodeURIComponent(d) : "");
});
$("btn-stop").addEventListener("click", () => {
  if (!window.confirm("Stop the chaos run?\n\nSTOP latches: it holds until someone sends RUN.")) {
    say("STOP cancelled; nothing was sent.", "");
    return;
  }
  void post("STOP");
});
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>("token");
  const t = input.value.trim();
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage refused (private mode): the token lasts as long as the page */ }
  input.value = "";
  $("token-state").textContent = token() ? "a token is set for this tab" : "no token set";
  say(t ? "Token saved for this browser tab." : "Token removed.", "ok");
  void refresh();
});
$("token-clear").addEventListener("click", () => {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* nothing stored */ }
  $("token-state").textContent = "no token set";
  say("Token removed.", "ok");
});
$("token-state").textContent = token() ? "a token is set for this tab" : "no token set";

function live(on: boolean): void {
  const l = $("live");
  l.className = on ? "on" : "off";
  l.textContent = on ? "live" : "reconnecting";
}
// The live feed: GET /events read with fetch, not EventSource, so that it can carry the token
// when reads need one (protect_reads). It reconnects after a second (five after a 401), with
// Last-Event-ID, and at once when a token is saved.
let lastEventId = "", feed: AbortController | null = null;
function onFrame(frame: string): void {
  let type = "message";
  const data: string[] = [];
  frame.split("\n").forEach((line) => {
    const colon = line.indexOf(":");
    if (colon === 0) return; // a comment: the heartbeat
    const field = colon < 0 ? line : line.slice(0, colon), value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    else if (field === "id") lastEventId = value;
  });
  if (type === "signal" && data.length) {
    setSignal(data.join("\n"));
    void refresh();
  }
}
async function follow(controller: AbortController): Promise<void> {
  while (!controller.signal.aborted) {
    let wait = 1000, idle: ReturnType<typeof setTimeout> | undefined;
    const connection = new AbortController();
    const cut = () => connection.abort();
    controller.signal.addEventListener("abort", cut);
    // Nothing for three heartbeats (15 s each): the connection died without saying so.
    const watch = () => {
      clearTimeout(idle);
      idle = setTimeout(cut, 45000);
    };
    try {
      const headers = authHeaders();
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      watch();
      const r = await fetch(base + "events", { headers, cache: "no-store", signal: connection.signal });
      if (r.status === 401) wait = 5000;
      if (r.ok && r.body) {
        if (feed === controller) live(true);
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) break;
          watch();
          buffer += chunk.value;
          // A CR at the very end may be half of a CRLF whose LF comes in the next chunk.
          const held = buffer.slice(-1) === "\r" ? "\r" : "";
          buffer = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            onFrame(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
          buffer += held;
        }
      } else await r.body?.cancel();
    } catch { /* the server went away, we aborted, or it went quiet: reconnect below */ }
    clearTimeout(idle);
    controller.signal.removeEventListener("abort", cut);
    if (feed === controller) live(false);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
function startFeed(): void {
  if (feed) feed.abort();
  feed = new AbortController();
  void follow(feed);
}
$("token-form").addEventListener("submit", startFeed);
startFeed();
setInterval(refresh, 10000);
void refresh();
