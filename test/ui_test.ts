// The web dashboard at /ui, end to end: the real server process, driven through a real headless
// Chromium (Debian's /usr/bin/chromium) with playwright-core. Screenshots go to test-results/.
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { ROOT, type ServerProcess, sharedServer, startServer } from "./helpers/server_process.ts";
import { tempDir, tempFile } from "./helpers/files.ts";
import { waitFor } from "./helpers/wait.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOTS = join(ROOT, "test-results");
const TOKEN = "ui-test-token-0123456789";

/** Without a browser there is nothing to drive: say so instead of failing with a launch error. */
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (Debian package chromium; or set CHROMIUM_PATH)`;
if (skip) console.warn(`test/ui_test.ts: skipped: ${skip}`); // Bun lists skipped suites without their reason

const server = sharedServer(["--config", tempFile(`
chaos_signal:
  sources:
    - type: file
      name: switch
      path: ${join(tempDir(), "signal")}
  relays:
    - name: krkn
      targets: [http://127.0.0.1:9/]
      interval: 1s
`)]);
after(() => server.stop());

/** A fresh browser per test, closed in finally by the caller; no network beyond loopback. */
function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: 30_000,
  });
}

/** Opens /ui and collects the page's script errors and CSP violations, which must stay empty. */
async function openUi(browser: Browser, url: string, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  const response = await page.goto(`${url}/ui`);
  assert.equal(response?.status(), 200);
  await waitForSignal(page, await signalOf(url));
  return { page, problems };
}

async function signalOf(url: string): Promise<string> {
  return await (await fetch(`${url}/`)).text();
}

async function post(url: string, path: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${url}${path}`, { method: "POST", headers });
  const text = await response.text();
  assert.equal(response.status, 200, `POST ${path}: ${text}`);
  return text;
}

async function waitForSignal(page: Page, signal: string): Promise<void> {
  await waitForText(page, "#signal", new RegExp(`^${signal}$`));
}

/** Polls an element's text (the tests have no DOM types: nothing runs in the page but the page). */
async function waitForText(page: Page, selector: string, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => pattern.test(await page.textContent(selector) ?? ""), {
    what: `${selector} to match ${pattern}`,
    timeoutMs,
    intervalMs: 50,
    diagnose: async () => `${selector}: ${JSON.stringify(await page.textContent(selector))}; #message: ${JSON.stringify(await page.textContent("#message"))}`,
  });
}

async function waitForServer(url: string, signal: string): Promise<void> {
  await waitFor(async () => (await signalOf(url)) === signal, `GET / to answer ${signal}`, 10_000);
}

async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name), fullPage: true });
}

describe("web dashboard /ui", { skip }, () => {
  test("GET and HEAD /ui: one self-contained HTML page with a strict CSP", async () => {
    const { url } = await server.get();
    const response = await fetch(`${url}/ui`);
    const html = await response.text();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "no-store");
    const csp = response.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe/);
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\//, "nothing loaded from elsewhere");
    assert.doesNotMatch(html, /innerHTML|insertAdjacentHTML|document\.write/, "server data goes in as text only");

    const head = await fetch(`${url}/ui`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), response.headers.get("content-length"));
    assert.equal(await head.text(), "");
    const put = await fetch(`${url}/ui`, { method: "PUT" });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get("allow"), "GET, HEAD");
    await put.body?.cancel();
  });

  test("shows RUN, the claims, sources and relay targets; PAUSE clicks through; another client's STOP appears live", async () => {
    const { url } = await server.get();
    await post(url, "/RUN");
    const browser = await launch();
    try {
      const { page, problems } = await openUi(browser, url);
      assert.equal(await page.textContent("#signal"), "RUN");
      assert.match(await page.getAttribute("#hero", "class") ?? "", /sig-RUN/);
      await waitForText(page, "#claims", /manual/);
      await waitForText(page, "#sources", /switch/);
      // The store line: where the signal is kept (this server has no state file).
      await waitForText(page, "#store", /store memory only/);
      // The relay's dead target shows, out of sync, with its error.
      await waitForText(page, "#relays", /127\.0\.0\.1:9/, 15_000);
      assert.match(await page.textContent("#relays") ?? "", /out of sync/);

      const clicked = page.waitForRequest((request) => request.method() === "POST");
      await page.click("#btn-pause");
      await waitForServer(url, "PAUSE");
      await waitForSignal(page, "PAUSE");
      await waitForText(page, "#history", /POST \/PAUSE/);
      // Chromium names the page's origin on its POSTs: the server takes it as its own, not as another site's.
      const sent = await (await clicked).allHeaders();
      assert.equal(sent.origin, url);
      assert.equal(sent["sec-fetch-site"], "same-origin");

      // Another client: the page follows over /events, without a reload.
      const navigations: string[] = [];
      page.on("framenavigated", (frame) => navigations.push(frame.url()));
      // Every value #signal takes from here on: once STOP shows, a stale /status answer must not flip it back.
      await page.evaluate(`window.shown = [];
        new MutationObserver(() => window.shown.push(document.getElementById("signal").textContent))
          .observe(document.getElementById("signal"), { childList: true, characterData: true, subtree: true });`);
      // Make that race certain: a refresh asks /status while PAUSE holds, and its answer is held back until
      // the STOP has reached the page.
      const stale = Promise.withResolvers<void>(), release = Promise.withResolvers<void>();
      await page.route("**/status", async (route) => {
        const answer = await route.fetch();
        stale.resolve();
        await release.promise;
        await route.fulfill({ response: answer });
      }, { times: 1 });
      await page.evaluate(`document.getElementById("token-form").requestSubmit()`); // saving no token refreshes
      await stale.promise;
      assert.equal(await post(url, "/STOP"), "STOP");
      await waitForSignal(page, "STOP");
      release.resolve();
      assert.match(await page.getAttribute("#hero", "class") ?? "", /sig-STOP/);
      await waitForText(page, "#latch", /STOP latch/);
      await waitForText(page, "#history", /POST \/STOP/);
      const shown = await page.evaluate<string[]>("window.shown");
      assert.deepEqual(shown.slice(shown.indexOf("STOP")), shown.slice(shown.indexOf("STOP")).map(() => "STOP"), `#signal went ${shown.join(" -> ")}`);
      assert.deepEqual(navigations, [], "no reload");
      assert.equal(await page.textContent("#live"), "live");
      await screenshot(page, "ui.png");

      await page.click("#btn-run");
      await waitForServer(url, "RUN");
      await waitForSignal(page, "RUN");
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });

  test("STOP asks first: dismissing sends nothing, accepting stops", async () => {
    const { url } = await server.get();
    await post(url, "/RUN");
    const browser = await launch();
    try {
      const { page, problems } = await openUi(browser, url);
      const dialogs: string[] = [];
      page.once("dialog", (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      await page.click("#btn-stop");
      await waitForText(page, "#message", /cancelled/);
      assert.equal(dialogs.length, 1);
      assert.match(dialogs[0]!, /Stop the chaos run\?/);
      assert.equal(await signalOf(url), "RUN");
      assert.equal(await page.textContent("#signal"), "RUN");

      page.once("dialog", (dialog) => void dialog.accept());
      await page.click("#btn-stop");
      await waitForServer(url, "STOP");
      await waitForSignal(page, "STOP");
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await post(url, "/RUN");
    }
  });

  test("a timed PAUSE sends for=; a bad duration shows the server's reason and changes nothing", async () => {
    const { url } = await server.get();
    await post(url, "/RUN");
    const browser = await launch();
    try {
      const { page, problems } = await openUi(browser, url);
      await page.fill("#pause-for", "forever");
      await page.click("#btn-pause");
      await waitForText(page, "#message", /failed \(400\)/);
      assert.match(await page.textContent("#message") ?? "", /query parameter "for" of POST \/PAUSE/);
      assert.equal(await signalOf(url), "RUN");

      await page.fill("#pause-for", "15m");
      await page.click("#btn-pause");
      await waitForServer(url, "PAUSE");
      await waitForSignal(page, "PAUSE");
      const status = await (await fetch(`${url}/status`)).json() as { claims: { source: string; reason: string }[] };
      const manual = status.claims.find((claim) => claim.source === "manual");
      assert.match(manual?.reason ?? "", /^POST \/PAUSE\?for=15m \(until /);
      await waitForText(page, "#claims", /for=15m \(until/);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await post(url, "/RUN");
    }
  });

  test("with auth on: a click without a token shows the 401, a saved token makes it work", async () => {
    const config = tempFile(`
chaos_signal:
  auth:
    tokens:
      - name: ops
        token: { value: ${TOKEN} }
`);
    let authServer: ServerProcess | undefined;
    const browser = await launch();
    try {
      authServer = await startServer(["--config", config]);
      const { url } = authServer;
      const { page, problems } = await openUi(browser, url);
      await page.click("#btn-pause");
      await waitForText(page, "#message", /401 Unauthorized/);
      assert.equal(await page.getAttribute("#token-box", "open"), "", "the token field opens");
      assert.equal(await signalOf(url), "RUN");

      await page.fill("#token", TOKEN);
      await page.click("#token-save");
      assert.equal(await page.evaluate<string | null>('sessionStorage.getItem("chaos-signal-token")'), TOKEN);
      await page.click("#btn-pause");
      await waitForServer(url, "PAUSE");
      await waitForSignal(page, "PAUSE");
      const status = await (await fetch(`${url}/status`)).json() as { claims: { source: string; actor?: string }[] };
      assert.match(status.claims.find((claim) => claim.source === "manual")?.actor ?? "", /^ops@/);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await authServer?.stop();
    }
  });

  test("with protect_reads: the live feed carries the saved token, and another client's STOP appears without a reload", async () => {
    const config = tempFile(`
chaos_signal:
  auth:
    protect_reads: true
    tokens:
      - name: ops
        token: { value: ${TOKEN} }
`);
    const bearer = { authorization: `Bearer ${TOKEN}` };
    let authServer: ServerProcess | undefined;
    const browser = await launch();
    try {
      authServer = await startServer(["--config", config]);
      const { url } = authServer;
      const context = await browser.newContext();
      const page = await context.newPage();
      const problems: string[] = [];
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      assert.equal((await page.goto(`${url}/ui`))?.status(), 200);
      await waitForText(page, "#message", /401 Unauthorized/);
      assert.equal(await page.textContent("#live"), "reconnecting", "no feed without the token");

      await page.fill("#token", TOKEN);
      await page.click("#token-save");
      await waitForSignal(page, "RUN");
      await waitForText(page, "#live", /^live$/);
      // Within 5 s: the page's own refresh is every 10 s, so only the feed can bring it this soon.
      assert.equal(await post(url, "/STOP", bearer), "STOP");
      await waitForText(page, "#signal", /^STOP$/, 5000);
      assert.equal(await post(url, "/RUN", bearer), "RUN");
      await waitForText(page, "#signal", /^RUN$/, 5000);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await authServer?.stop();
    }
  });

  test("on a phone (390x844): no horizontal overflow, big touch targets", async () => {
    const { url } = await server.get();
    await post(url, "/PAUSE");
    const browser = await launch();
    try {
      const { page, problems } = await openUi(browser, url, { width: 390, height: 844 });
      await waitForText(page, "#relays", /127\.0\.0\.1:9/, 15_000);
      await waitFor(async () => (await page.locator("#history > li").count()) > 1, "history entries on the page");
      const scrollWidth = await page.evaluate<number>("document.documentElement.scrollWidth");
      assert.ok(scrollWidth <= 390, `scrollWidth ${scrollWidth} > 390`);
      for (const id of ["#btn-run", "#btn-pause", "#btn-stop"]) {
        const box = await page.locator(id).boundingBox();
        assert.ok(box && box.height >= 44 && box.width >= 44, `${id} is ${box?.width}x${box?.height}`);
      }
      await screenshot(page, "ui-phone.png");
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await post(url, "/RUN");
    }
  });
});
