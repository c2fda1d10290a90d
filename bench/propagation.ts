/**
 * How long a change of the signal takes to show, on this machine, on the
 * runtime that runs this script:
 *
 *   deno run -A bench/propagation.ts [subscribers] [rounds]   (defaults: 1000 20)
 *   bun run bench/propagation.ts [subscribers] [rounds]
 *
 * It starts chaos-signal (on the same runtime) with a file source, a webhook
 * source, a Prometheus poller (interval 1 s) against a stand-in for
 * Prometheus' query API that runs in this process, and a relay to a Krkn
 * stand-in (test/fixtures/krkn_server.py). Then, `rounds` times each, the
 * signal alternates PAUSE and RUN (every round is a real change) through:
 *
 * - the file: one write() of the new content over the old, padded to the
 *   same length (no truncation in between), timed from write() returning;
 * - the webhook: `POST /hooks/bench {"state": ...}`, timed from the send
 *   (its answer comes after the claim is applied);
 * - Prometheus: right after the stand-in answers a query, its answer flips
 *   across pause_above, so the poller sees it one interval later; both the
 *   raw time and the time beyond one interval (the poller's own latency; it
 *   can be a little negative, as the interval runs from the previous query's
 *   start, just before the flip);
 *
 * each until `GET /` answers the new signal, polled every 1 ms over one
 * keep-alive connection (so each figure has about 1 ms of resolution), with
 * 20 ms between changes. Finally `subscribers` SSE clients connect to
 * GET /events over raw sockets and each `POST /PAUSE|RUN` is timed until every
 * one of them and the Krkn stand-in have the new signal.
 *
 * Last, a relay target that comes up late: a second chaos-signal (relay
 * defaults: interval 10 s, max_backoff 30 s) is at PAUSE while nothing listens
 * on its target's port; after 5 s (5 times) and 40 s (once) a Krkn stand-in
 * starts there at RUN, as a stock Krkn run would, and is timed from its
 * "listening" line to its "POST /PAUSE" line: the time it runs chaos it should
 * not.
 *
 * One table, p50 / p99 / max (nearest rank), for the runtime that runs it; a
 * run takes about `rounds` + 75 seconds. Loopback only; every wait has a
 * deadline, the whole run a budget, and the children are killed and the temp
 * dir removed on any exit. Figures are printed, never asserted: machines are
 * shared and noisy. An odd round count is rounded up, so each phase ends at RUN.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { createServer } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { freePort } from "../test/helpers/prometheus.ts";

type Change = "PAUSE" | "RUN";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
function count(arg: string | undefined, fallback: number): number {
  if (arg === undefined) return fallback;
  if (/^[1-9]\d*$/.test(arg)) return Number(arg);
  console.error(`usage: bench/propagation.ts [subscribers] [rounds] (positive integers; got ${arg})`);
  process.exit(2);
}
const SUBSCRIBERS = count(process.argv[2], 1000);
const ROUNDS = 2 * Math.ceil(count(process.argv[3], 20) / 2); // even: each phase ends at RUN
const INTERVAL_MS = 1000; // the Prometheus poller's
const DEADLINE_MS = 10_000; // per change: above the file source's 5 s re-read, which backs up missed events
const BUDGET_MS = 300_000; // the whole run
// How long the late relay target stays down before it starts: several short outages (a doubling
// backoff would be at 4 s by then) and one long one (it would be at 30 s).
const SHORT_DOWN_MS = 5000;
const SHORT_OUTAGES = 5;
const LONG_DOWN_MS = 40_000;
// Between changes, so that each figure times one isolated change. (Bun's fs.watch drops a change
// event that comes within ~2 ms of the last one; the file source reads again 25 ms after each
// event for that reason, so without this gap some file rounds would time that read instead.)
const SETTLE_MS = 20;
const RUNTIME = (process.versions as Record<string, string | undefined>).bun ? "bun" : "deno";
const VERSION = (process.versions as Record<string, string | undefined>)[RUNTIME];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const signalOf = (round: number): Change => (round % 2 === 0 ? "PAUSE" : "RUN");

/** Resolves with what `value()` returns once it is defined; rejects after `ms`. */
async function waitFor<T>(
  value: () => T | undefined | Promise<T | undefined>,
  what: string,
  ms = DEADLINE_MS,
): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const result = await value();
    if (result !== undefined) return result;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

/** Collects a child's output and resolves with the first match of `pattern` in it. */
async function started(child: ChildProcess, pattern: RegExp, what: string) {
  let output = "";
  let ended = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.on("error", (error) => (ended = `failed: ${error}`)); // such as python3 missing
  child.on("exit", (code, signal) => (ended ||= `exited (${code ?? signal})`));
  const match = await waitFor(
    () => {
      if (ended) throw new Error(`${what} ${ended}`);
      return output.match(pattern) ?? undefined;
    },
    `${what} to start`,
    20_000,
  ).catch((error) => Promise.reject(new Error(`${error.message}:\n${output}`)));
  return { match, output: () => output };
}

/** GET / over one keep-alive connection: cheap enough to ask every millisecond. */
async function signalReader(port: number) {
  const socket = connect({ host: "127.0.0.1", port }).setNoDelay(true);
  await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let buffer = "";
  let pending: { resolve: (body: string) => void; reject: (error: Error) => void } | undefined;
  socket.setEncoding("latin1").on("data", (chunk: string) => {
    buffer += chunk;
    const end = buffer.indexOf("\r\n\r\n");
    if (end === -1) return;
    const length = /\r\ncontent-length: *(\d+)/i.exec(buffer.slice(0, end))?.[1];
    if (length === undefined) return pending?.reject(new Error(`GET /: an answer without Content-Length:\n${buffer}`));
    if (buffer.length < end + 4 + Number(length)) return;
    const body = buffer.slice(end + 4, end + 4 + Number(length));
    buffer = buffer.slice(end + 4 + Number(length));
    pending?.resolve(body);
  });
  socket.on("close", () => pending?.reject(new Error("GET /: the connection closed")));
  const get = (ms: number) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return new Promise<string>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`GET /: no answer within ${ms} ms`)), ms);
      pending = { resolve, reject };
      socket.write("GET / HTTP/1.1\r\nHost: bench\r\n\r\n");
    }).finally(() => {
      clearTimeout(timer);
      pending = undefined;
    });
  };
  return {
    /** When GET / first answers `signal`, polling every 1 ms until the deadline. */
    async until(signal: Change, deadline: number): Promise<number> {
      for (;;) {
        const body = await get(Math.max(1000, deadline - performance.now()));
        const at = performance.now();
        if (body === signal) return at;
        if (at > deadline) throw new Error(`GET / still answers ${body}, not ${signal}, after ${DEADLINE_MS} ms`);
        await sleep(1);
      }
    },
    close: () => socket.destroy(),
  };
}

/**
 * A stand-in for Prometheus' query API. It answers `value`; after each answer
 * it takes the next value of `script`, if any, and notes the time in `flips`:
 * the instant the load crossed the threshold.
 */
async function startPrometheus() {
  const state = { value: "0", script: [] as string[], flips: [] as number[] };
  const server = createServer((request, response) => {
    request.resume().on("end", () => {
      const result = [{ metric: { instance: "bench" }, value: [Date.now() / 1000, state.value] }];
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ status: "success", data: { resultType: "vector", result } }));
      const next = state.script.shift();
      if (next !== undefined) {
        state.value = next;
        state.flips.push(performance.now());
      }
    });
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  return { state, port: (server.address() as { port: number }).port, close: () => server.close() };
}

/** `ROUNDS` changes, each made by `change` (which returns when it counts as made), until GET / shows it. */
async function timeToGet(port: number, change: (round: number, signal: Change) => number | Promise<number>) {
  const reader = await signalReader(port);
  try {
    const times: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const start = await change(round, signalOf(round));
      times.push((await reader.until(signalOf(round), start + DEADLINE_MS)) - start);
      await sleep(SETTLE_MS);
    }
    return times;
  } finally {
    reader.close();
  }
}

/** POST /PAUSE|RUN until every SSE subscriber and the relay target (the Krkn stand-in) have the new signal. */
async function timeToSubscribers(base: string, port: number, krknOutput: () => string, sockets: Socket[]) {
  let awaited = "";
  let arrivals: number[] = [];
  const connecting = performance.now();
  const subscribed = Promise.all(Array.from({ length: SUBSCRIBERS }, () =>
    new Promise<void>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port }, () => {
        socket.write(`GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n`);
      });
      sockets.push(socket);
      let seen = "";
      let connected = false;
      socket.setEncoding("latin1").on("data", (chunk: string) => {
        seen += chunk;
        if (!connected && seen.includes("data: RUN")) {
          connected = true;
          seen = "";
          resolve();
        } else if (awaited && seen.includes(`data: ${awaited}`)) {
          seen = "";
          arrivals.push(performance.now());
        }
      });
      socket.on("error", reject);
    })));
  const late = sleep(DEADLINE_MS).then(() =>
    Promise.reject(new Error(`${SUBSCRIBERS} subscribers did not connect in time`))
  );
  await Promise.race([subscribed, late]);
  const connected = performance.now() - connecting;

  const pushes = (signal: string) => krknOutput().split("\n").filter((line) => line === `POST /${signal}`).length;
  const rounds: { fanout: number[]; relay: number }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    awaited = signalOf(round);
    arrivals = [];
    const before = pushes(awaited);
    const start = performance.now();
    await (await fetch(`${base}/${awaited}`, { method: "POST", signal: AbortSignal.timeout(DEADLINE_MS) })).text();
    let relay = 0;
    while (performance.now() - start < DEADLINE_MS && (arrivals.length < SUBSCRIBERS || !relay)) {
      if (!relay && pushes(awaited) > before) relay = performance.now();
      await sleep(1);
    }
    if (arrivals.length < SUBSCRIBERS) {
      throw new Error(`round ${round}: only ${arrivals.length} of ${SUBSCRIBERS} subscribers saw ${awaited}`);
    }
    if (!relay) throw new Error(`round ${round}: the Krkn stand-in got no POST /${awaited}`);
    rounds.push({ fanout: arrivals.map((t) => t - start).sort((a, b) => a - b), relay: relay - start });
  }
  return {
    connected,
    one: rounds.flatMap((r) => r.fanout),
    all: rounds.map((r) => r.fanout.at(-1)!),
    relay: rounds.map((r) => r.relay),
  };
}

type Spawn = (command: string, args: string[]) => ChildProcess;

/** Starts chaos-signal on this runtime with `config`; resolves with its base URL and output. */
async function startChaosSignal(spawnChild: Spawn, config: string) {
  const args = RUNTIME === "bun" ? ["run", "mod.ts"] : ["run", "-A", "mod.ts"];
  const flags = ["--address", "127.0.0.1", "--port", "0", "--state-file", "none", "--config", config];
  const server = await started(
    spawnChild(process.execPath, [...args, ...flags]),
    /listening on http:\/\/127\.0\.0\.1:(\d+)\//,
    "chaos-signal",
  );
  return { port: Number(server.match[1]), base: `http://127.0.0.1:${server.match[1]}`, output: server.output };
}

/**
 * For each of `downTimes`: chaos-signal is at PAUSE (a fresh manual change, so the relay fails at
 * once and its backoff starts over), nothing listens on the target's port for that long, then a
 * Krkn stand-in starts there at RUN. Returns, per outage, the time from the stand-in listening to
 * it handling `POST /PAUSE` (both lines come through the same pipe).
 */
async function timeLateTarget(spawnChild: Spawn, dir: string, downTimes: number[]): Promise<number[]> {
  const krknPort = await freePort();
  const config = join(dir, "late.yaml");
  writeFileSync(config, `chaos_signal:\n  relays:\n    - { name: late, targets: ["http://127.0.0.1:${krknPort}"] }\n`);
  const server = await startChaosSignal(spawnChild, config);
  serverOutput = server.output;
  const post = async (signal: string) => {
    const response = await fetch(`${server.base}/${signal}`, { method: "POST", signal: AbortSignal.timeout(DEADLINE_MS) });
    if (!response.ok) throw new Error(`POST /${signal}: ${response.status} ${await response.text()}`);
    await response.text();
  };
  const times: number[] = [];
  for (const downMs of downTimes) {
    await post("RUN");
    await post("PAUSE");
    await sleep(downMs);
    const child = spawnChild("python3", ["-u", "test/fixtures/krkn_server.py", String(krknPort), "RUN"]);
    const exited = new Promise((resolve) => child.once("exit", resolve));
    const krkn = await started(child, /listening (\d+)/, "the late Krkn stand-in");
    const up = performance.now();
    // Generous, so that a relay without a fast retry for refused connects still gets a figure.
    await waitFor(() => krkn.output().includes("POST /PAUSE\n") || undefined, "the late target to get PAUSE", 60_000);
    times.push(performance.now() - up);
    child.kill("SIGKILL");
    await exited; // its port refuses connects again before the next outage begins
  }
  return times;
}

/** Nearest-rank percentile. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const ms = (value: number) => `${value.toFixed(1)} ms`;
const row = (what: string, values: number[]) =>
  `| ${what} | ${ms(percentile(values, 50))} | ${ms(percentile(values, 99))} | ${ms(Math.max(...values))} |`;

/** What chaos-signal printed, for the error report. */
let serverOutput = () => "";

async function main(cleanups: (() => void)[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "chaos-signal-bench-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const sockets: Socket[] = [];
  cleanups.push(() => sockets.forEach((socket) => socket.destroy()));
  const spawnChild = (command: string, args: string[]) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    cleanups.push(() => child.kill("SIGKILL"));
    return child;
  };

  // The Krkn stand-in logs "POST /PAUSE" the moment it handles a push.
  const krkn = await started(
    spawnChild("python3", ["-u", "test/fixtures/krkn_server.py", "0", "RUN"]),
    /listening (\d+)/,
    "the Krkn stand-in",
  );
  const prometheus = await startPrometheus();
  cleanups.push(prometheus.close);
  const signalFile = join(dir, "signal");
  writeFileSync(signalFile, "RUN  "); // every content is written as 5 bytes: one write, no truncation
  const fd = openSync(signalFile, "r+");
  cleanups.push(() => closeSync(fd));
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    `chaos_signal:
  sources:
    - { type: file, name: switch, path: ${JSON.stringify(signalFile)} }
    - { type: webhook, name: bench }
    - { type: prometheus, name: load, url: "http://127.0.0.1:${prometheus.port}", query: bench_load, pause_above: 1, interval: ${INTERVAL_MS}ms }
  relays:
    - { name: krkn, targets: ["http://127.0.0.1:${krkn.match[1]}"], interval: 10s }
`,
  );
  const server = await startChaosSignal(spawnChild, config);
  serverOutput = server.output;
  const { port, base } = server;
  // Every source has observed once (the poller got its first answer): the signal is RUN.
  await waitFor(async () => (await fetch(`${base}/readyz`)).ok || undefined, "GET /readyz to answer 200");
  const hook = async (state: Change) => {
    const body = JSON.stringify({ state });
    const response = await fetch(`${base}/hooks/bench`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(DEADLINE_MS),
    });
    if (!response.ok) throw new Error(`POST /hooks/bench: ${response.status} ${await response.text()}`);
    await response.text();
  };
  await hook("RUN"); // the route works, and the connection is open

  const file = await timeToGet(port, (_, signal) => {
    // A buffer, not a string: Deno 2.9's writeSync(fd, string, position) ignores the position.
    writeSync(fd, new TextEncoder().encode(signal.padEnd(5)), 0, 5, 0);
    return performance.now();
  });
  const webhook = await timeToGet(port, async (_, signal) => {
    const start = performance.now();
    await hook(signal); // answered after the claim is applied, so GET / follows at once
    return start;
  });
  prometheus.state.script = Array.from({ length: ROUNDS }, (_, round) => (signalOf(round) === "PAUSE" ? "2" : "0"));
  const flipped = (round: number) =>
    waitFor(() => prometheus.state.flips[round], "a query to the Prometheus stand-in", 3 * INTERVAL_MS);
  const breach = await timeToGet(port, flipped);
  const push = await timeToSubscribers(base, port, krkn.output, sockets);
  sockets.splice(0).forEach((socket) => socket.destroy()); // the subscribers are done
  const late = await timeLateTarget(spawnChild, dir, [...Array(SHORT_OUTAGES).fill(SHORT_DOWN_MS), LONG_DOWN_MS]);

  console.log(
    `\n${RUNTIME} ${VERSION}: time from a change to its effect, over ${ROUNDS} changes (PAUSE and RUN in turn) each;`,
  );
  console.log(`GET / polled every 1 ms; ${SUBSCRIBERS} SSE subscribers connected in ${ms(push.connected)}\n`);
  console.log(`| change -> seen | p50 | p99 | max |`);
  console.log(`|---|---|---|---|`);
  console.log(row("file write -> GET /", file));
  console.log(row("webhook POST -> GET /", webhook));
  console.log(row(`Prometheus breach -> GET / (interval ${INTERVAL_MS / 1000} s)`, breach));
  console.log(row("Prometheus breach -> GET /, beyond one interval", breach.map((t) => t - INTERVAL_MS)));
  console.log(row(`POST -> one SSE subscriber of ${SUBSCRIBERS}`, push.one));
  console.log(row(`POST -> all ${SUBSCRIBERS} SSE subscribers`, push.all));
  console.log(row("POST -> relay target (Krkn stand-in)", push.relay));
  console.log(row(`relay target down ${SHORT_DOWN_MS / 1000} s, then up at RUN -> PAUSE (${SHORT_OUTAGES} times)`, late.slice(0, -1)));
  console.log(row(`relay target down ${LONG_DOWN_MS / 1000} s, then up at RUN -> PAUSE (once)`, late.slice(-1)));
  console.log(`(the relay figures include the stand-in's log lines reaching this process through a pipe)`);
}

const cleanups: (() => void)[] = [];
const cleanUp = () =>
  cleanups.splice(0).reverse().forEach((step) => {
    try {
      step();
    } catch { /* best effort: the rest still runs */ }
  });
const watchdog = setTimeout(() => {
  console.error(`bench/propagation.ts: over its ${BUDGET_MS / 1000} s budget; giving up`);
  cleanUp();
  process.exit(1);
}, BUDGET_MS);
try {
  await main(cleanups);
} catch (error) {
  console.error(`${serverOutput().split("\n").slice(-30).join("\n")}\n${(error as Error)?.stack ?? error}`);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  cleanUp();
}
process.exit(process.exitCode ?? 0);
