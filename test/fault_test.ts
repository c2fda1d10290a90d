/**
 * Fault tests against the real server process (loopback only, bounded in time).
 *
 * 1. Prometheus and a relay target killed and restarted mid-run, under a
 *    background load of GETs: a prometheus source (a real Prometheus scraping
 *    a target the test sets; on_error: pause after 2 errors) and a relay to
 *    the Krkn stand-in. Prometheus killed -> PAUSE, and every GET / answered
 *    while it is down says PAUSE; the relay carries it into Krkn; Prometheus
 *    restarted on its port -> RUN. The stand-in killed -> POSTs are still
 *    answered at once; while it is down the signal goes STOP, RUN, PAUSE; the
 *    stand-in restarted on its port (at its own initial RUN) gets only the
 *    latest signal (its first request is POST /PAUSE, never STOP), and /status
 *    shows the target in sync again. The background load sees zero errors.
 *
 * 2. The state directory made unwritable mid-run (moved away with a plain
 *    file in its place, which stops root too; or chmod 0555 where that is
 *    enough), under a background load of GETs: every change toward RUN
 *    (POST /RUN, forced or not), sequential or 60 at once, gets 503 with a
 *    one-line reason and leaves the signal, the manual claim, the latch and
 *    the override record exactly as acknowledged before, and no GET / ever
 *    sees it (write-ahead); changes toward safety (PAUSE, timed or not, and
 *    STOP) are made all the same and /status shows the state unsaved; GETs
 *    keep answering; once the directory is back, the store's retry saves the
 *    state, POSTs work, and all of it survives kill -9.
 *
 * 3. A malformed-input battery: a seeded generator (the seed is printed;
 *    FUZZ_SEED=<n> replays it, FUZZ_VERBOSE=1 prints every request and its
 *    answer) makes 400 raw requests with random methods,
 *    paths (percent-encoding, unicode, 9 KB and 100 KB), versions, headers,
 *    bodies, bad Content-Length, chunked garbage, and requests cut off before
 *    they end. None of them is a complete POST to a signal path, so none may
 *    change anything. Each request whose framing is complete gets an answer
 *    or a closed connection within 10 s; every answer is well-formed HTTP,
 *    never a 500 (nor any 5xx but the parsers' 501 and 505), and no error
 *    page is HTML; after every batch the server is alive and the
 *    signal unchanged; and afterwards the change counter and the history show
 *    that nothing changed, and GET /, POST /PAUSE, POST /RUN and GET /status
 *    answer correctly.
 */
import assert from "node:assert/strict";
import { chmodSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import type { StatusDocument } from "../src/http/status.ts";
import { tempDir, tempFile } from "./helpers/files.ts";
import {
  failures,
  type RunningLoad,
  seededRandom,
  signalAnswerProblem,
  sleep,
  startLoad,
} from "./helpers/http_load.ts";
import { type KrknServer, startKrknServer } from "./helpers/krkn_server.ts";
import {
  freePort,
  type MetricsTarget,
  type PrometheusInstance,
  startPrometheus,
  startTarget,
} from "./helpers/prometheus.ts";
import { runtimeCommand, type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

async function getText(url: string, path = "/"): Promise<string> {
  const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  assert.equal(response.status, 200, `GET ${path}: ${text}`);
  return text;
}

async function postRaw(url: string, path: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${url}${path}`, { method: "POST", signal: AbortSignal.timeout(5000) });
  return { status: response.status, text: await response.text() };
}

async function post(url: string, path: string): Promise<string> {
  const { status, text } = await postRaw(url, path);
  assert.equal(status, 200, `POST ${path}: ${text}`);
  return text;
}

async function status(url: string): Promise<StatusDocument> {
  return JSON.parse(await getText(url, "/status")) as StatusDocument;
}

const claimOf = (doc: StatusDocument, source: string) => doc.claims.find((claim) => claim.source === source);

/** A background load of GET / on keep-alive connections that keeps every answer with its time. */
function getLoad(server: ServerProcess, clients = 8): RunningLoad {
  return startLoad({
    host: server.host,
    port: server.port,
    clients,
    next: () => ["GET", "/"],
    check: (_request, answer) => signalAnswerProblem(answer),
    keepSamples: true,
  });
}

function assertNoLoadErrors(load: RunningLoad, what: string): void {
  const errors = load.errors();
  assert.equal(errors.count, 0, `${what}: errors under the background load:\n${errors.first.join("\n")}`);
  assert.ok(load.total() > 0, `${what}: the background load got no answer at all`);
}

// ---------------------------------------------------------------------------
// 1. Prometheus and a relay target killed and restarted

interface RelayTargetStatus {
  url: string;
  in_sync: boolean;
  failures: number;
  last_pushed: { signal: string } | null;
  last_error: { message: string } | null;
}

test(
  "Prometheus and a relay target killed and restarted mid-run: the signal follows, the relay catches up, no request fails",
  {
    timeout: 180_000,
  },
  async () => {
    const LOAD = "chaos_fault_test_load";
    let target: MetricsTarget | undefined;
    let prometheus: PrometheusInstance | undefined;
    let krkn: KrknServer | undefined;
    let server: ServerProcess | undefined;
    let load: RunningLoad | undefined;
    let configFile: string | undefined;
    try {
      target = await startTarget({ [LOAD]: 1 });
      const prometheusPort = await freePort();
      krkn = await startKrknServer(0, "RUN");
      const krknPort = krkn.port;
      configFile = tempFile([
        "chaos_signal:",
        "  sources:",
        "    - type: prometheus",
        "      name: load",
        `      url: http://127.0.0.1:${prometheusPort}`,
        `      query: max(${LOAD})`,
        "      pause_above: 4",
        "      resume_below: 3",
        "      interval: 500ms",
        "      timeout: 400ms",
        "      consecutive_errors: 2",
        "      on_error: pause",
        "  relays:",
        "    - name: krkn",
        `      targets: [http://127.0.0.1:${krknPort}]`,
        "      interval: 500ms",
        "      timeout: 1s",
        "      max_backoff: 500ms",
        "",
      ].join("\n"));
      server = await startServer(["--config", configFile]);
      const s = server;
      prometheus = await startPrometheus({ port: prometheusPort, targets: [target.address] });
      const p = prometheus;

      let serverExit: string | undefined;
      s.exited.then((exit) => (serverExit = `chaos-signal exited (${exit.code ?? exit.signal})`));
      // The relay's one target: listed while out of sync or failing, counted in sync otherwise.
      const relayTarget = (doc: StatusDocument): Pick<RelayTargetStatus, "in_sync" | "failures"> | undefined => {
        const observation = doc.sources.find((source) => source.name === "krkn")?.last_observation as
          | { counts?: { in_sync: number }; unsynced?: RelayTargetStatus[] }
          | undefined;
        if (!observation?.counts) return undefined;
        return observation.unsynced?.[0] ?? { in_sync: observation.counts.in_sync === 1, failures: 0 };
      };
      const loadSource = (doc: StatusDocument) => doc.sources.find((source) => source.name === "load");
      const diagnose = async () => {
        const doc = await status(s.url).catch((error) => `(/status failed: ${error})`);
        return `/status: ${JSON.stringify(doc, null, 2)}\nchaos-signal output:\n${s.output().slice(-3000)}\n` +
          `prometheus output:\n${p.output().slice(-1500)}\nkrkn stand-in requests: ${
            krkn?.requests().slice(-20).join(", ")
          }`;
      };
      const statusWhere = (what: string, check: (doc: StatusDocument) => boolean) =>
        waitFor(async () => {
          const doc = await status(s.url);
          return check(doc) && doc;
        }, { what, timeoutMs: 30_000, diagnose, giveUpIf: () => serverExit });
      const krknHolds = (signal: string) =>
        waitFor(async () => (await krkn!.state()) === signal, {
          what: `the Krkn stand-in to hold ${signal}`,
          timeoutMs: 30_000,
          diagnose,
          giveUpIf: () => serverExit,
        });

      // Baseline: load 1 -> RUN, the relay target in sync.
      await statusWhere(
        "RUN, the load source at value 1, the relay target in sync",
        (doc) =>
          doc.signal === "RUN" && loadSource(doc)?.last_observation?.value === 1 && relayTarget(doc)?.in_sync === true,
      );
      await krknHolds("RUN");
      load = getLoad(s);

      // Prometheus dies: after 2 failed polls the source claims PAUSE (on_error: pause).
      await p.kill();
      let doc = await statusWhere("PAUSE after Prometheus was killed", (doc) => doc.signal === "PAUSE");
      const pausedAt = performance.now();
      assert.equal(doc.decided_by, "load");
      assert.match(claimOf(doc, "load")!.reason, /\d+ query errors in a row \(on_error: pause\)/);
      assert.equal(loadSource(doc)?.health, "warning");
      await krknHolds("PAUSE");
      // It stays PAUSE while Prometheus is down (several more failed polls).
      await sleep(2500);
      assert.equal(await getText(s.url), "PAUSE");
      const restartingAt = performance.now();
      await p.restart();
      doc = await statusWhere(
        "RUN after Prometheus came back on its port",
        (doc) => doc.signal === "RUN" && loadSource(doc)?.health === "ok",
      );
      await krknHolds("RUN");
      const whileDown = load.samples().filter((sample) => sample.sentAt >= pausedAt && sample.doneAt <= restartingAt);
      assert.ok(whileDown.length > 0, "the background load was answered while Prometheus was down");
      const notPaused = whileDown.filter((sample) => sample.answer?.body !== "PAUSE");
      assert.deepEqual(
        notPaused.slice(0, 5),
        [],
        `${notPaused.length} of ${whileDown.length} GET / while Prometheus was down did not say PAUSE`,
      );

      // The Krkn stand-in dies: POSTs are still answered at once, and the relay reports the target down.
      await krkn.stop();
      await statusWhere(
        "the relay to report its target down",
        (doc) => (relayTarget(doc)?.failures ?? 0) > 0 && relayTarget(doc)?.in_sync === false,
      );
      // While it is down the signal moves on; a restarted target must get only the latest signal.
      assert.equal(await post(s.url, "/STOP"), "STOP");
      assert.equal(await post(s.url, "/RUN"), "RUN");
      assert.equal(await post(s.url, "/PAUSE"), "PAUSE");
      assert.equal(await getText(s.url), "PAUSE");
      const failuresBefore = relayTarget(await status(s.url))?.failures ?? 0;
      await statusWhere("the relay to keep retrying", (doc) => (relayTarget(doc)?.failures ?? 0) > failuresBefore);
      // Back on the same port, at its own initial signal (as a restarted Krkn run is: signal_state RUN).
      krkn = await startKrknServer(krknPort, "RUN");
      await krknHolds("PAUSE");
      doc = await statusWhere(
        "the relay target in sync again, last pushed PAUSE",
        (doc) =>
          relayTarget(doc)?.in_sync === true && relayTarget(doc)?.failures === 0 && doc.signal === "PAUSE",
      );
      const posts = krkn.requests().filter((line) => line.startsWith("POST "));
      assert.equal(posts[0], "POST /PAUSE", `the restarted stand-in got ${JSON.stringify(krkn.requests())}`);
      assert.ok(!posts.includes("POST /STOP"), `a signal it missed was replayed: ${JSON.stringify(posts)}`);
      assert.equal(await post(s.url, "/RUN"), "RUN");
      await krknHolds("RUN");

      await load.stop();
      const counted = load.total();
      console.log(
        `prometheus and relay faults (${runtimeCommand().name}): ${counted} background GET / answered, ${load.errors().count} errors`,
      );
      assertNoLoadErrors(load, "Prometheus and relay faults");
      assert.equal(serverExit, undefined, "chaos-signal kept running");
      assert.deepEqual(failures(s.output()), [], "the server logged no failure");
    } finally {
      await load?.stop();
      await Promise.allSettled([prometheus?.stop(), krkn?.stop(), server?.stop(), target?.close()]);
      if (configFile) {
        rmSync(join(configFile, ".."), { recursive: true, force: true });
      }
    }
  },
);

// ---------------------------------------------------------------------------
// 2. The state directory made unwritable

/**
 * Makes `dir` unwritable for the server and returns how, and the function that undoes it.
 * chmod 0555 stops an ordinary user; root (CI) writes through it, so then the directory is
 * moved away and a plain file put in its place: every write fails with ENOTDIR or EEXIST.
 */
function makeUnwritable(dir: string): { how: string; restore: () => void } {
  chmodSync(dir, 0o555);
  const probe = join(dir, ".write-probe");
  try {
    writeFileSync(probe, "");
  } catch {
    return { how: "chmod 0555", restore: () => chmodSync(dir, 0o755) };
  }
  unlinkSync(probe);
  chmodSync(dir, 0o755);
  const away = `${dir}.away`;
  renameSync(dir, away);
  writeFileSync(dir, "not a directory\n");
  return {
    how: "moved away, a plain file in its place",
    restore: () => {
      unlinkSync(dir);
      renameSync(away, dir);
    },
  };
}

test("the state directory made unwritable mid-run: RUN gets 503 and changes nothing, PAUSE and STOP are made, GETs keep answering, then saved again", {
  timeout: 120_000,
}, async () => {
  const stateDir = join(tempDir(), "state");
  const stateFile = join(stateDir, "state.json");
  const servers: ServerProcess[] = [];
  let load: RunningLoad | undefined;
  let restore: (() => void) | undefined;
  try {
    const server = await startServer(["--state-file", stateFile]);
    servers.push(server);
    assert.equal(await post(server.url, "/PAUSE"), "PAUSE", "the acknowledged baseline");
    const acknowledged = await status(server.url);
    const manualBefore = claimOf(acknowledged, "manual");
    load = getLoad(server);
    await sleep(300);

    const broken = makeUnwritable(stateDir);
    restore = broken.restore;
    const brokenAt = performance.now();
    const unchanged = async (after: string) => {
      assert.equal(await getText(server.url), "PAUSE", `GET / after ${after}`);
      const doc = await status(server.url);
      assert.equal(doc.signal, "PAUSE", `/status after ${after}`);
      assert.equal(doc.stop_latch, null, `no latch after ${after}`);
      assert.deepEqual(claimOf(doc, "manual"), manualBefore, `the manual claim after ${after}`);
      assert.equal(doc.last_override, null, `no override after ${after}`);
    };
    const refused = (answer: { status: number; text: string }, what: string) => {
      assert.equal(answer.status, 503, `${what}: ${answer.text}`);
      assert.match(answer.text, /^the change was not saved, so it was not made: [^\n]+\n$/, `${what}: one line`);
    };

    // One at a time, every kind of change toward RUN.
    for (const path of ["/RUN", "/RUN?force=true", "/run/", "/RUN?force=1"]) {
      refused(await postRaw(server.url, path), `POST ${path}`);
      await unchanged(`POST ${path}`);
    }
    // Many at once: none of them may be made, whatever the order they fail in.
    const paths = Array.from({ length: 60 }, (_, i) => ["/RUN", "/RUN?force=true", "/run"][i % 3]!);
    const answers = await Promise.all(paths.map((path) => postRaw(server.url, path)));
    answers.forEach((answer, i) => refused(answer, `concurrent POST ${paths[i]}`));
    await unchanged("60 concurrent POSTs");
    const refusedUntil = performance.now();

    // GETs answered meanwhile: write-ahead means none of them ever saw a refused RUN, not even
    // for the moment its write took.
    const during = load.samples().filter((sample) => sample.sentAt >= brokenAt && sample.doneAt <= refusedUntil);
    const flickers = during.filter((sample) => sample.answer?.body !== "PAUSE");
    console.log(`state directory ${broken.how} (${runtimeCommand().name}): ${during.length} background GET / answered meanwhile`);
    assert.ok(during.length > 0, "the background load was answered while the directory was broken");
    assert.deepEqual(flickers.map((sample) => sample.answer?.body), [], "a GET / saw a change that was refused");

    // Toward safety: made all the same, shown unsaved, answered 202 (not saved) with the same body.
    assert.deepEqual(await postRaw(server.url, "/PAUSE?for=1m"), { status: 202, text: "PAUSE" });
    assert.match(claimOf(await status(server.url), "manual")?.reason ?? "", /PAUSE\?for=1m/);
    assert.deepEqual(await postRaw(server.url, "/STOP"), { status: 202, text: "STOP" });
    assert.equal(await getText(server.url), "STOP");
    const unsaved = await status(server.url);
    assert.equal(unsaved.state?.saved, false, JSON.stringify(unsaved.state));
    assert.ok(unsaved.state?.error, "the failure is shown");
    broken.restore();
    restore = undefined;

    // Writable again: the retry saves what was made, POSTs work and are durable.
    await waitFor(async () => (await status(server.url)).state?.saved === true, "the retry to save the state", 20_000);
    assert.equal(await post(server.url, "/PAUSE"), "STOP", "latched");
    assert.equal(await getText(server.url), "STOP");
    const last = await status(server.url);
    await load.stop();
    assertNoLoadErrors(load, "state directory unwritable");
    load = undefined;
    assert.equal((await server.stop("SIGKILL")).signal, "SIGKILL");

    const again = await startServer(["--state-file", stateFile]);
    servers.push(again);
    assert.equal(await getText(again.url), "STOP");
    const doc = await status(again.url);
    assert.deepEqual(doc.stop_latch, last.stop_latch, "the latch came back");
    assert.deepEqual(claimOf(doc, "manual"), claimOf(last, "manual"), "the last acknowledged manual claim came back");
    assert.equal(await post(again.url, "/RUN"), "RUN");
  } finally {
    restore?.();
    await load?.stop();
    await Promise.allSettled(servers.map((server) => server.stop()));
  }
});

// ---------------------------------------------------------------------------
// 3. The malformed-input battery

interface Generated {
  readonly name: string;
  readonly bytes: Buffer;
  /** Headers end and the body framing is definite: the server must answer or close. */
  readonly complete: boolean;
}

const SIGNAL_NAME = /RUN|PAUSE|STOP/;

/**
 * Whether `bytes` could hold a complete POST to a signal path, by any spelling the server
 * might accept: every request of the battery is checked, so no generated one can change the
 * signal by design and any change is the server's fault. Conservative: "POST" anywhere, in
 * any case, and a signal name anywhere, raw or percent-decoded, is enough to be refused.
 */
function couldChangeSignal(bytes: Buffer): boolean {
  const raw = bytes.toString("latin1");
  const views = [raw, raw.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))];
  views.push(views[1]!.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))));
  try {
    views.push(decodeURIComponent(raw));
  } catch {
    // not decodable as a whole; the byte-wise views cover it
  }
  return views.some((view) => /post/i.test(view) && SIGNAL_NAME.test(view.toUpperCase()));
}

function generator(seed: number) {
  const random = seededRandom(seed);
  const int = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const chance = (p: number) => random() < p;
  const bytes = (length: number) => Buffer.from(Array.from({ length }, () => int(0, 255)));
  const letters = (length: number, alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~") =>
    Array.from({ length }, () => alphabet[int(0, alphabet.length - 1)]).join("");
  const printable = (length: number) => Array.from({ length }, () => String.fromCharCode(int(0x20, 0x7e))).join("");

  // Each part of a request comes plain or faulty; a request gets 0 to 3 faults, so that the
  // faults reach past the runtime's parser into the router and the handlers too.
  const plainMethod = () => pick(["GET", "GET", "GET", "HEAD", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
  const faultyMethod = () =>
    pick([
      "TRACE",
      "PROPFIND",
      "PURGE",
      "CONNECT",
      "BREW",
      "get",
      "Get",
      "G ET",
      "GET\t",
      "",
      letters(int(1, 24), "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
      printable(int(1, 12)),
      bytes(int(1, 8)).toString("latin1"),
    ]);
  const segment = () =>
    pick([
      letters(int(1, 12)),
      `%${letters(2, "0123456789ABCDEFabcdefXYZ%")}`,
      Array.from({ length: int(1, 6) }, () => `%${int(0, 255).toString(16).padStart(2, "0")}`).join(""),
      encodeURIComponent(pick(["ünïcödé", "😀", "\u0000", "\u202e", "ſ", "K", " ", "\r\n", "/..", "\\"])),
      pick(["ünïcödé", "日本", "😀", "é"]), // raw UTF-8 bytes in the request target
      pick(["..", ".", "%2e%2e", "", "//", "\\", "*", ";", "#frag"]),
    ]);
  const query = () =>
    chance(0.6) ? "" : `?${
      Array.from(
        { length: int(1, 4) },
        () => `${letters(int(0, 6))}=${pick([letters(int(0, 8)), "%", "%zz", "&&", "=="])}`,
      ).join("&")
    }`;
  const plainPath = () =>
    pick([
      "/",
      "/",
      "/",
      "/status",
      "/metrics",
      "/healthz",
      "/readyz",
      "/history",
      "/history?limit=5",
      "/ui",
      "/events?x=1",
      "/?cache=1",
      "/?wait=0s&since=PAUSE",
      "/STOP",
      "/pause/",
      "/Run",
      "/hooks/nobody",
      `/${letters(int(1, 12))}`,
    ]);
  const faultyPath = (): string =>
    pick([
      "/history?limit=abc",
      "/history?limit=0",
      "/history?before=-1",
      "/?wait=abc&since=RUN",
      "/?wait=5m&since=RUN",
      "/?since=RUN",
      "/STOP?force=maybe",
      "/PAUSE?for=1y",
      "*",
      "http://127.0.0.1/",
      "//status",
      "/a/../status",
      "/%",
      "/%zz",
      "/%E0%A4%A",
      `/${Array.from({ length: int(1, 5) }, segment).join("/")}${query()}`,
      `/${Array.from({ length: int(1, 5) }, segment).join("/")}${query()}`,
      `/${"a".repeat(pick([9000, 20_000, 100_000]))}`,
      `/?${"q=1&".repeat(int(10, 3000))}`,
    ]);
  const faultyVersion = () => pick(["HTTP/2.0", "HTTP/9.9", "http/1.1", "HTTP/1.1 x", "HTTP/1", "HTTP/1.01", ""]);
  const plainHeader = () =>
    pick([
      "Accept: */*",
      "User-Agent: chaos-fuzz",
      `Cookie: ${letters(int(1, 40))}`,
      "Connection: keep-alive",
      "Connection: close",
      `X-${letters(int(1, 10))}: ${printable(int(0, 40))}`,
      `Last-Event-ID: ${letters(int(0, 20))}`,
      "Content-Type: application/json",
    ]);
  const faultyHeader = (): string =>
    pick([
      `${letters(int(1, 10))}: ${bytes(int(1, 30)).toString("latin1").replace(/[\r\n]/g, "")}`,
      `${printable(int(1, 20))}: x`, // names with spaces, colons, quotes
      `X-Long: ${"v".repeat(pick([100, 9000, 70_000]))}`,
      "X-Folded: a\r\n  continued",
      "NoColonHere",
      ": empty-name",
      `Host: ${pick(["", "[::1", "a b", "127.0.0.1:99999", "ü"])}`,
      "Host: x",
      `Connection: ${pick(["upgrade", "garbage", "close, close"])}`,
      `Accept: ${pick(["\u0000", "\u00ff"])}`,
      `Authorization: ${pick(["Bearer", "Bearer ", "Basic !!!", `Bearer ${letters(int(0, 40))}`])}`,
      `Last-Event-ID: ${printable(int(0, 30))}`,
    ]);
  const body = (): Buffer =>
    pick([
      Buffer.alloc(0),
      bytes(int(1, 2000)),
      Buffer.from(printable(int(1, 500))),
      Buffer.from(JSON.stringify({ [letters(5)]: letters(int(1, 20)), n: int(0, 1e6) })),
      Buffer.from("{not json"),
      Buffer.alloc(70_000, "x"),
    ]);

  /** A request line, headers, and a body framed one of several ways. */
  const request = (): Generated => {
    const parts = ["method", "path", "version", "headers", "framing"];
    const faults = new Set(Array.from({ length: pick([0, 1, 1, 2, 2, 3]) }, () => pick(parts)));
    const m = faults.has("method") ? faultyMethod() : plainMethod();
    const v = faults.has("version") ? faultyVersion() : pick(["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]);
    const line = `${m} ${faults.has("path") ? faultyPath() : plainPath()}${v ? ` ${v}` : ""}`;
    const randomHeaders = faults.has("headers")
      ? Array.from({ length: int(1, 6) }, () => (chance(0.6) ? faultyHeader() : plainHeader()))
      : Array.from({ length: int(0, 3) }, plainHeader);
    const headers = [...(faults.has("headers") && chance(0.3) ? [] : ["Host: x"]), ...randomHeaders];
    const content = body();
    const framing = faults.has("framing")
      ? pick(["short length", "long length", "bad length", "chunked garbage", "both", "undeclared body"])
      : pick(["none", "none", "length", "chunked"]);
    let definite = true;
    let tail: Buffer = Buffer.alloc(0);
    switch (framing) {
      case "none":
        break;
      case "undeclared body": // a body without Content-Length: read as the next request
        tail = content;
        break;
      case "length":
        headers.push(`Content-Length: ${content.length}`);
        tail = content;
        break;
      case "short length": // the rest of the body is read as the next request
        headers.push(`Content-Length: ${Math.floor(content.length / 2)}`);
        tail = content;
        break;
      case "long length": // the body never ends: the server may wait for it
        headers.push(`Content-Length: ${content.length + int(1, 100)}`);
        tail = content;
        definite = false;
        break;
      case "bad length":
        headers.push(
          `Content-Length: ${pick(["abc", "-1", "1e3", "0x10", " 12 ", "99999999999999999999", "5, 6", ""])}`,
        );
        if (chance(0.5)) headers.push(`Content-Length: ${int(0, 9)}`);
        tail = content;
        definite = false;
        break;
      case "chunked": {
        headers.push("Transfer-Encoding: chunked");
        const chunks: Buffer[] = [];
        for (let at = 0; at < content.length;) {
          const size = Math.min(content.length - at, int(1, 700));
          chunks.push(Buffer.from(`${size.toString(16)}\r\n`), content.subarray(at, at + size), Buffer.from("\r\n"));
          at += size;
        }
        chunks.push(Buffer.from("0\r\n\r\n"));
        tail = Buffer.concat(chunks);
        break;
      }
      case "chunked garbage":
        headers.push(
          `Transfer-Encoding: ${pick(["chunked", "gzip, chunked", "chunked, gzip", "identity", "xchunked"])}`,
        );
        tail = Buffer.from(
          pick([
            "zz\r\nabc\r\n0\r\n\r\n",
            "5\r\nabc\r\n",
            "ffffffffffffffffff\r\n",
            "3;ext=\u0000\r\nabc\r\n0\r\n\r\n",
            "\r\n\r\n",
            printable(30),
          ]),
        );
        definite = false;
        break;
      case "both":
        headers.push(`Content-Length: ${content.length}`, "Transfer-Encoding: chunked");
        tail = content;
        definite = false;
        break;
    }
    // A random header that bears on the framing, or a folded one, makes the request's end uncertain.
    if (randomHeaders.some((h) => /^(content-length|transfer-encoding|expect)\s*:/i.test(h) || /\r\n/.test(h))) {
      definite = false;
    }
    const head = Buffer.from(`${line}\r\n${headers.map((h) => `${h}\r\n`).join("")}\r\n`, "latin1");
    const raw = Buffer.concat([head, tail]);
    const shownFaults = faults.size ? [...faults].join("+") : "no fault";
    return { name: `${shownFaults}, ${framing}`, bytes: raw, complete: definite };
  };

  /** One of `request()` that cannot change the signal. */
  const harmless = (): Generated => {
    for (;;) {
      const generated = request();
      if (!couldChangeSignal(generated.bytes)) return generated;
    }
  };

  /** Requests cut off before they end; the connection is closed right after. Signal POSTs included. */
  const truncated = (): Generated => {
    const whole = chance(0.5)
      ? Buffer.from(
        `POST /${pick(["STOP", "PAUSE", "RUN", "stop"])} HTTP/1.1\r\nHost: x\r\nContent-Length: ${int(5, 500)}\r\n\r\n`,
      )
      : harmless().bytes;
    const signalPost = /^POST \/(STOP|PAUSE|RUN|stop) /.test(whole.toString("latin1"));
    // A signal POST declares a body it never sends: cut anywhere, even after its headers, it never completes.
    const cut = signalPost ? int(1, whole.length) : int(1, Math.max(1, whole.length - 1));
    return {
      name: `truncated at ${cut} of ${whole.length}${signalPost ? " (a signal POST)" : ""}`,
      bytes: whole.subarray(0, cut),
      complete: false,
    };
  };

  return (): Generated & { truncated: boolean } =>
    chance(0.2) ? { ...truncated(), truncated: true } : { ...harmless(), truncated: false };
}

interface Exchange {
  /** The status line and headers of the first answer, if one came. */
  readonly head: string | undefined;
  readonly closed: boolean;
  readonly received: string;
  readonly ms: number;
}

/** Sends `bytes`; resolves once an answer's headers came, the server closed, or `waitMs` passed. */
function exchange(
  host: string,
  port: number,
  bytes: Buffer,
  waitMs: number,
  closeAfterWrite: boolean,
): Promise<Exchange> {
  return new Promise((resolve) => {
    const started = performance.now();
    let received = "";
    let closed = false;
    let settled = false;
    const socket = connect({ host, port });
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const end = received.indexOf("\r\n\r\n");
      resolve({
        head: end === -1 ? undefined : received.slice(0, end),
        closed,
        received,
        ms: performance.now() - started,
      });
    };
    const timer = setTimeout(finish, waitMs);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      received += chunk;
      // The first answer's headers are enough (interim 1xx answers aside).
      const end = received.indexOf("\r\n\r\n");
      if (end !== -1 && !/^HTTP\/1\.[01] 1\d\d/.test(received)) finish();
    });
    socket.on("error", () => {
      closed = true;
      finish();
    });
    socket.on("close", () => {
      closed = true;
      finish();
    });
    socket.write(bytes, () => {
      if (closeAfterWrite) finish();
    });
  });
}

test(
  "a malformed-input battery of 400 seeded random requests changes nothing, and the server still answers correctly",
  {
    timeout: 180_000,
  },
  async () => {
    const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : Math.floor(Math.random() * 2 ** 32);
    console.log(`malformed-input battery (${runtimeCommand().name}): seed ${seed}; replay with FUZZ_SEED=${seed}`);
    const next = generator(seed);
    const server = await startServer(["--state", "PAUSE"]);
    let serverExit: string | undefined;
    server.exited.then((exit) => (serverExit = `chaos-signal exited (${exit.code ?? exit.signal})`));
    try {
      const manualClaims = async () =>
        (JSON.parse(await getText(server.url, "/history?source=manual&limit=1000")) as { entries: { type: string }[] })
          .entries.filter((entry) => entry.type === "claim").length;
      const before = await status(server.url);
      const claimsBefore = await manualClaims();
      assert.equal(before.signal, "PAUSE");

      const TOTAL = 400;
      const BATCH = 20;
      const statuses: Record<string, number> = {};
      let answered = 0;
      let closedWithoutAnswer = 0;
      let waited = 0;
      let cut = 0;
      for (let sent = 0; sent < TOTAL; sent += BATCH) {
        const batch = Array.from({ length: BATCH }, next);
        const results = await Promise.all(
          batch.map((generated) =>
            exchange(server.host, server.port, generated.bytes, generated.complete ? 10_000 : 500, generated.truncated)
          ),
        );
        results.forEach((result, i) => {
          const generated = batch[i]!;
          const shown = `request ${sent + i} (${generated.name}, seed ${seed}): ${
            JSON.stringify(generated.bytes.toString("latin1").slice(0, 160))
          }`;
          if (result.received !== "") {
            assert.match(
              result.received,
              /^HTTP\/1\.[01] \d{3}/,
              `${shown}\nanswered something other than HTTP: ${JSON.stringify(result.received.slice(0, 200))}`,
            );
          }
          if (process.env.FUZZ_VERBOSE) {
            console.log(
              `${sent + i} ${generated.name}: ${
                result.head?.split("\r\n")[0] ?? (result.closed ? "closed" : "waiting")
              } <- ${JSON.stringify(generated.bytes.toString("latin1").slice(0, 100))}`,
            );
          }
          if (result.head !== undefined) {
            answered += 1;
            const code = /^HTTP\/1\.[01] (\d{3})/.exec(result.head)![1]!;
            statuses[code] = (statuses[code] ?? 0) + 1;
            assert.ok(
              !code.startsWith("5") || code === "501" || code === "505",
              `${shown}\nanswered ${result.head.split("\r\n")[0]}`,
            );
            if (Number(code) >= 400) assert.doesNotMatch(result.received, /<html/i, `${shown}\nan HTML error page`);
          } else if (generated.truncated) {
            cut += 1;
          } else if (result.closed) {
            closedWithoutAnswer += 1;
          } else {
            waited += 1;
            assert.ok(!generated.complete, `${shown}\nneither an answer nor a closed connection within 10 s`);
          }
        });
        assert.equal(
          serverExit,
          undefined,
          `the server died during the batch from request ${sent} (seed ${seed}):\n${server.output().slice(-3000)}`,
        );
        assert.equal(await getText(server.url), "PAUSE", `GET / after the batch from request ${sent} (seed ${seed})`);
      }
      console.log(
        `malformed-input battery (${runtimeCommand().name}): ${TOTAL} requests; ${answered} answered ` +
          `(${Object.entries(statuses).sort().map(([code, n]) => `${code}: ${n}`).join(", ")}), ` +
          `${closedWithoutAnswer} closed without an answer, ${waited} waiting for the rest of a request after 500 ms, ${cut} cut off by the test`,
      );

      // Nothing changed, not even for a moment: same change counter, no new manual claim.
      const afterwards = await status(server.url);
      assert.equal(afterwards.signal, "PAUSE");
      assert.equal(afterwards.changes, before.changes, `the change counter moved (seed ${seed})`);
      assert.equal(afterwards.stop_latch, null);
      assert.deepEqual(claimOf(afterwards, "manual"), claimOf(before, "manual"));
      assert.equal(await manualClaims(), claimsBefore, `a manual claim was recorded (seed ${seed})`);

      // And the server works as before.
      assert.equal(await getText(server.url), "PAUSE");
      assert.equal(await post(server.url, "/PAUSE"), "PAUSE");
      assert.equal(await post(server.url, "/RUN"), "RUN");
      assert.equal(await getText(server.url), "RUN");
      const doc = await status(server.url);
      assert.equal(doc.signal, "RUN");
      assert.equal(doc.changes, before.changes + 1);
      assert.doesNotMatch(await getText(server.url, "/metrics"), /code="500"/, `a 500 was counted (seed ${seed})`);
    } finally {
      await server.stop();
    }
  },
);
