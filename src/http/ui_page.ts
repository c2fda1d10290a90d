/**
 * The web dashboard at `GET /ui`: one self-contained HTML page (inline CSS and
 * JS, no CDN, works offline) that shows the signal, the claims, the sources,
 * the cards plugins describe (relay targets) and the history, with buttons
 * for RUN, PAUSE (optionally timed) and STOP, and live updates over `/events`.
 * The script is typed TypeScript in ui/dashboard.ts, embedded as compiled text.
 *
 * Everything that comes from the server reaches the DOM through
 * `textContent`, never `innerHTML`. The Content-Security-Policy allows only
 * this page's own script and style (by SHA-256 hash) and requests to the same
 * origin.
 */
import { createHash } from "node:crypto";
import { DASHBOARD_SCRIPT } from "./ui/dashboard_script.gen.ts";

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
#store { margin-top: 6px; font-size: .85rem; } #store.not-current { font-weight: 700; text-decoration: underline; }
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

/** The dashboard's script: src/http/ui/dashboard.ts, compiled (scripts/gen_dashboard.mjs). */
export const UI_SCRIPT = DASHBOARD_SCRIPT;

const BODY = `<header>
<h1><span>chaos-signal</span><span id="live" class="off">connecting</span></h1>
</header>
<main>
<section id="hero" class="hero" aria-live="polite">
<div id="signal">&hellip;</div>
<div id="decided"></div>
<div id="latch"></div>
<div id="store"></div>
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
<div id="plugin-sections"></div>
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
export function uiResponse(): Response {
  return new Response(UI_BYTES.slice(), {
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
