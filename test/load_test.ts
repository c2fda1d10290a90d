/**
 * Load tests against the real server process (loopback only, bounded in time).
 *
 * 1. Full concurrency (LOAD_SECONDS, default 60): 64 keep-alive clients send
 *    mixed GET /, GET /status and POST /RUN|/PAUSE|/STOP (any letter case, a
 *    trailing slash) as fast as the server answers (48 mostly poll, 16 mostly
 *    post), against a server with a state file (every POST is fsynced). Proves zero errors under load: every answer is 200 with
 *    exactly RUN, PAUSE or STOP; every POST answer obeys the STOP latch
 *    (POST /STOP -> STOP, POST /RUN -> RUN, POST /PAUSE -> PAUSE or STOP);
 *    every /status is consistent in itself (STOP exactly when latched, else
 *    the manual claim) and its change counter never goes back for a client.
 *    Then kill -9 in the middle of the load: the state file is whole and the
 *    server comes back from it; then a final known sequence (RUN, STOP, PAUSE:
 *    STOP, latched, manual claim PAUSE), kill -9 again, and exactly that state
 *    comes back: nothing acknowledged is lost. The request count is printed;
 *    there is no speed assertion (bench/ measures speed).
 *
 * 2. 400 connections that hold the server: 150 connect and send nothing, 100
 *    send half a header block, 100 declare a POST /STOP body that never
 *    finishes, 50 send GET / one byte every 200 ms. While they are all open,
 *    other clients (fresh connections, fetch and raw) get correct answers
 *    within 5 s each and see their POSTs take effect; the dribbled GETs get
 *    the right answer when they finish; and afterwards the change counter and
 *    the history show that exactly the probes' POSTs changed anything: none
 *    of the 100 unfinished POST /STOP did, before or after they were cut.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import type { StatusDocument } from "../src/http/status.ts";
import { parseStateFile } from "../src/state/state_file.ts";
import { tempDir } from "./helpers/files.ts";
import {
  failures,
  type HttpAnswer,
  KeepAliveClient,
  type RunningLoad,
  seededRandom,
  signalAnswerProblem,
  sleep,
  startLoad,
} from "./helpers/http_load.ts";
import { runtimeCommand, type ServerProcess, startServer } from "./helpers/server_process.ts";

const LOAD_SECONDS = Number(process.env.LOAD_SECONDS || 60);
if (!(LOAD_SECONDS > 0)) {
  throw new Error(
    `LOAD_SECONDS: got ${JSON.stringify(process.env.LOAD_SECONDS)}; allowed: a number of seconds above 0`,
  );
}
const CLIENTS = 64;

async function getText(url: string, path = "/"): Promise<string> {
  const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5000) });
  assert.equal(response.status, 200, `GET ${path}`);
  return await response.text();
}

async function post(url: string, path: string): Promise<string> {
  const response = await fetch(`${url}${path}`, { method: "POST", signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  assert.equal(response.status, 200, `POST ${path}: ${text}`);
  return text;
}

async function status(url: string): Promise<StatusDocument> {
  return JSON.parse(await getText(url, "/status")) as StatusDocument;
}

const manualState = (doc: StatusDocument) => doc.claims.find((claim) => claim.source === "manual")?.state;

/** What every /status must say of itself when only the manual source claims. */
function statusProblem(doc: StatusDocument): string | undefined {
  if (!["RUN", "PAUSE", "STOP"].includes(doc.signal)) return `signal ${JSON.stringify(doc.signal)}`;
  const manual = manualState(doc);
  if (!manual) return "no manual claim";
  const expected = doc.stop_latch ? "STOP" : manual;
  if (doc.signal !== expected) {
    return `signal ${doc.signal}, but latch ${JSON.stringify(doc.stop_latch)} and manual claim ${manual}`;
  }
  if (manual === "STOP" && !doc.stop_latch) return "manual claim STOP without the latch";
  return undefined;
}

// ---------------------------------------------------------------------------
// 1. Full concurrency

/**
 * The next request of a client. Three clients in four mostly poll (90% GET /, 5% GET /status,
 * 5% POST), the others mostly post (20% GET /, 80% POST): every POST waits for its fsync, so
 * with one mix for all the pollers would mostly wait for the disk too.
 */
function mixedRequests(clients: number): (client: number, sequence: number) => readonly [string, string] {
  const randoms = Array.from({ length: clients }, (_, client) => seededRandom(0x5eed + client));
  return (client) => {
    const random = randoms[client]!;
    const roll = random();
    const poller = client % 4 !== 3;
    if (roll < (poller ? 0.9 : 0.2)) return ["GET", "/"];
    if (poller && roll < 0.95) return ["GET", "/status"];
    const word = (["RUN", "PAUSE", "STOP"] as const)[Math.floor(random() * 3)]!;
    const spelling = random();
    const path = spelling < 0.8 ? `/${word}` : spelling < 0.9 ? `/${word.toLowerCase()}` : `/${word}/`;
    return ["POST", path];
  };
}

function checkMixed(
  request: readonly [string, string],
  answer: HttpAnswer,
  previous: HttpAnswer | undefined,
): string | undefined {
  const [method, path] = request;
  if (method === "GET" && path === "/") {
    return signalAnswerProblem(answer) ??
      (answer.headers["cache-control"] === "no-store" ? undefined : `cache-control ${answer.headers["cache-control"]}`);
  }
  if (method === "GET" && path === "/status") {
    if (answer.status !== 200) return `status ${answer.status}: ${answer.body.slice(0, 200)}`;
    let doc: StatusDocument;
    try {
      doc = JSON.parse(answer.body) as StatusDocument;
    } catch (error) {
      return `not JSON (${(error as Error).message}): ${answer.body.slice(0, 200)}`;
    }
    const problem = statusProblem(doc);
    if (problem) return problem;
    // One client's requests are in order, so the server-wide change counter never goes back for it.
    if (previous && doc.changes < (JSON.parse(previous.body) as StatusDocument).changes) {
      return `changes went back from ${(JSON.parse(previous.body) as StatusDocument).changes} to ${doc.changes}`;
    }
    return undefined;
  }
  const problem = signalAnswerProblem(answer);
  if (problem) return problem;
  const posted = path.replaceAll("/", "").toUpperCase();
  // Only the manual source claims: RUN opens the latch, STOP latches, PAUSE cannot open it. A RUN
  // waits for its write while a PAUSE or STOP is made at once: one made during that write stands,
  // and the RUN's answer says so (never a stale RUN).
  const allowed = posted === "PAUSE" ? ["PAUSE", "STOP"] : posted === "RUN" ? ["RUN", "PAUSE", "STOP"] : [posted];
  return allowed.includes(answer.body) ? undefined : `answered ${answer.body}; allowed: ${allowed.join(" or ")}`;
}

test(
  `${CLIENTS} clients for ${LOAD_SECONDS} s of mixed GETs and POSTs: zero errors, and kill -9 loses nothing acknowledged`,
  {
    timeout: LOAD_SECONDS * 1000 + 120_000,
  },
  async () => {
    const dir = tempDir();
    const stateFile = join(dir, "state", "state.json");
    const servers: ServerProcess[] = [];
    const start = async () => {
      const server = await startServer(["--state-file", stateFile]);
      servers.push(server);
      return server;
    };
    let load: RunningLoad | undefined;
    try {
      const first = await start();
      load = startLoad({
        host: first.host,
        port: first.port,
        clients: CLIENTS,
        next: mixedRequests(CLIENTS),
        check: checkMixed,
      });
      const started = performance.now();
      await sleep(LOAD_SECONDS * 1000);
      // kill -9 while every client has a request in flight: the state file must stay whole.
      const beforeKill = load.errors();
      const total = load.total();
      const counts = load.counts();
      const firstOutput = first.output();
      const killed = first.stop("SIGKILL");
      const seconds = (performance.now() - started) / 1000;
      await load.stop();
      assert.equal((await killed).signal, "SIGKILL");
      const runtime = runtimeCommand().name;
      console.log(
        `load (${runtime}): ${total} requests in ${seconds.toFixed(1)} s by ${CLIENTS} keep-alive clients ` +
          `(${Math.round(total / seconds)}/s), ${beforeKill.count} errors; ` +
          Object.entries(counts).sort().map(([k, n]) => `${k} ${n}`).join(", "),
      );
      assert.equal(beforeKill.count, 0, `errors under load:\n${beforeKill.first.join("\n")}`);
      assert.ok(total > CLIENTS, `only ${total} requests were answered`);
      for (const kind of ["GET /", "GET /status", "POST /RUN", "POST /PAUSE", "POST /STOP"]) {
        assert.ok((counts[kind] ?? 0) > 0, `no ${kind} was answered: ${JSON.stringify(counts)}`);
      }
      assert.deepEqual(failures(firstOutput), [], "the server logged no failure");

      // The file a kill -9 under load left behind is whole, and the server starts from it.
      const saved = parseStateFile(readFileSync(stateFile, "utf8")).snapshot;
      const second = await start();
      assert.match(second.output(), /restored (RUN|PAUSE|STOP) from /);
      assert.doesNotMatch(second.output(), /unreadable/);
      assert.deepEqual(readdirSync(join(stateFile, "..")).filter((name) => name.includes(".corrupt-")), []);
      let doc = await status(second.url);
      assert.equal(statusProblem(doc), undefined, JSON.stringify(doc));
      assert.equal(
        manualState(doc),
        saved.claims.find((claim) => claim.source === "manual")?.state,
        "the saved manual claim came back",
      );
      assert.equal(doc.stop_latch?.since, saved.latch?.since.toISOString(), "the saved latch (or none) came back");
      assert.equal(await getText(second.url), doc.signal);

      // A final known sequence, acknowledged, then kill -9: exactly that state comes back.
      assert.equal(await post(second.url, "/RUN"), "RUN");
      assert.equal(await post(second.url, "/STOP"), "STOP");
      assert.equal(await post(second.url, "/PAUSE"), "STOP", "the latch holds STOP against a PAUSE");
      assert.equal(await getText(second.url), "STOP");
      doc = await status(second.url);
      assert.equal(manualState(doc), "PAUSE");
      const latch = doc.stop_latch;
      assert.ok(latch, "latched");
      assert.equal((await second.stop("SIGKILL")).signal, "SIGKILL");

      const third = await start();
      assert.equal(await getText(third.url), "STOP");
      doc = await status(third.url);
      assert.equal(manualState(doc), "PAUSE", "the manual claim came back");
      assert.deepEqual(doc.stop_latch, latch, "the same latch came back");
      assert.equal(doc.decided_by, "stop_latch");
      // And it is a working server: a person's RUN opens the latch.
      assert.equal(await post(third.url, "/RUN"), "RUN");
      assert.equal((await status(third.url)).stop_latch, null);
    } finally {
      await load?.stop();
      await Promise.allSettled(servers.map((server) => server.stop()));
    }
  },
);

// ---------------------------------------------------------------------------
// 2. Idle, slow and stalled connections

interface Held {
  readonly kind: "silent" | "half headers" | "unfinished POST /STOP body" | "dribbled GET /";
  readonly socket: Socket;
  received: string;
  closedAt?: number;
}

const DRIBBLED = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

function open(host: string, port: number, kind: Held["kind"], first: string): Promise<Held> {
  return new Promise((resolve, reject) => {
    let connected = false;
    const socket = connect({ host, port }, () => {
      connected = true;
      if (first) socket.write(first);
      resolve(held);
    });
    const held: Held = { kind, socket, received: "" };
    socket.setNoDelay(true);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (held.received += chunk));
    socket.on("close", () => (held.closedAt ??= performance.now()));
    // After the connection, an error is followed by "close", which is what the test looks at.
    socket.on("error", (error) => connected || reject(error));
  });
}

test(
  "400 idle, slow and stalled connections do not block other clients, and change nothing",
  { timeout: 90_000 },
  async () => {
    const server = await startServer(["--state-file", join(tempDir(), "state.json")]);
    const held: Held[] = [];
    let dribbling: Promise<void> | undefined;
    let release = () => {};
    try {
      const manualClaims = async () =>
        (JSON.parse(await getText(server.url, "/history?source=manual&limit=1000")) as { entries: { type: string }[] })
          .entries.filter((entry) => entry.type === "claim").length;
      const claimsBefore = await manualClaims();
      const changesBefore = (await status(server.url)).changes;
      assert.equal(await getText(server.url), "RUN");

      const plan: [Held["kind"], number, string][] = [
        ["silent", 150, ""],
        ["half headers", 100, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "],
        ["unfinished POST /STOP body", 100, "POST /STOP HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"],
        ["dribbled GET /", 50, DRIBBLED.slice(0, 1)],
      ];
      const openedAt = performance.now();
      for (const [kind, count, first] of plan) {
        // In batches, so that the listen backlog is never the limit being tested.
        for (let i = 0; i < count; i += 50) {
          held.push(
            ...await Promise.all(
              Array.from({ length: Math.min(50, count - i) }, () => open(server.host, server.port, kind, first)),
            ),
          );
        }
      }
      assert.equal(held.length, 400);

      // The dribblers send one byte every 200 ms; the last byte waits until the probes are done
      // and the signal is held at PAUSE, so that their answer is known.
      const released = new Promise<void>((resolve) => (release = resolve));
      dribbling = Promise.all(
        held.filter((h) => h.kind === "dribbled GET /").map(async (h) => {
          for (let i = 1; i < DRIBBLED.length; i++) {
            if (i === DRIBBLED.length - 1) await released;
            else await sleep(200);
            if (h.closedAt !== undefined) return;
            h.socket.write(DRIBBLED[i]!);
          }
        }),
      ).then(() => {});

      // Probes on fresh connections, each answer bounded by 5 s (a correctness bound, not a speed goal).
      const within = async <T>(what: string, work: Promise<T>): Promise<T> => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<never>((
          _,
          reject,
        ) => (timer = setTimeout(
          () => reject(new Error(`${what}: no answer within 5 s while 400 connections are held`)),
          5000,
        )));
        try {
          return await Promise.race([work, late]);
        } finally {
          clearTimeout(timer);
        }
      };
      const rounds = 10;
      let probes = 0;
      for (let round = 0; round < rounds; round++) {
        if (round % 2 === 0) {
          assert.equal(await within("GET /", getText(server.url)), "RUN");
          assert.equal(await within("POST /PAUSE", post(server.url, "/PAUSE")), "PAUSE");
          assert.equal(await within("GET /", getText(server.url)), "PAUSE");
          assert.equal(await within("POST /RUN", post(server.url, "/RUN")), "RUN");
          assert.equal(await within("GET /", getText(server.url)), "RUN");
          assert.equal(statusProblem(await within("GET /status", status(server.url))), undefined);
        } else {
          const raw = new KeepAliveClient(server.host, server.port);
          try {
            const ask = async (method: string, path: string) => {
              const answer = await raw.request(method, path, { timeoutMs: 5000 });
              assert.equal(answer.status, 200, `${method} ${path}: ${answer.body}`);
              return answer.body;
            };
            assert.equal(await ask("GET", "/"), "RUN");
            assert.equal(await ask("POST", "/PAUSE"), "PAUSE");
            assert.equal(await ask("GET", "/"), "PAUSE");
            assert.equal(await ask("POST", "/RUN"), "RUN");
            assert.equal(await ask("GET", "/"), "RUN");
          } finally {
            raw.close();
          }
        }
        probes += 6;
      }
      const probesDoneAt = performance.now();
      assert.equal(await post(server.url, "/PAUSE"), "PAUSE");

      // Everything held was still open while the probes ran (Bun cuts a connection idle for 10 s;
      // only when the probes took that long can the server have cut them meanwhile).
      const cut = held.filter((h) => h.closedAt !== undefined);
      console.log(
        `held connections (${runtimeCommand().name}): 400 open, ${probes} probes answered in ${
          ((probesDoneAt - openedAt) / 1000).toFixed(1)
        } s, ${cut.length} cut by the server meanwhile`,
      );
      if (probesDoneAt - openedAt < 9000) {
        assert.deepEqual(cut.map((h) => h.kind), [], "no held connection was closed while the probes ran");
      }
      assert.ok(held.every((h) => h.kind === "dribbled GET /" || h.received === ""), "no held request was answered");

      // The dribbled GETs finish now and get the signal as it is: PAUSE.
      release();
      await dribbling;
      const dribblers = held.filter((h) => h.kind === "dribbled GET /");
      const answered = await Promise.all(dribblers.map(async (h) => {
        for (
          const deadline = Date.now() + 10_000;
          Date.now() < deadline && !/\r\n\r\n(RUN|PAUSE|STOP)$/.test(h.received);
        ) {
          if (h.closedAt !== undefined) break;
          await sleep(20);
        }
        return h.received;
      }));
      for (const answer of answered) {
        assert.match(
          answer,
          /^HTTP\/1\.1 200 [^\r]*\r\n[\s\S]*\r\n\r\nPAUSE$/,
          `a dribbled GET / answered ${JSON.stringify(answer.slice(0, 200))}`,
        );
      }

      // None of the unfinished POST /STOP took effect while held...
      let doc = await status(server.url);
      assert.equal(doc.signal, "PAUSE");
      assert.equal(doc.stop_latch, null);
      assert.equal(doc.changes - changesBefore, rounds * 2 + 1, "exactly the probes' changes");

      // ...nor when they are cut. Close everything; the server still answers.
      for (const h of held) h.socket.destroy();
      await sleep(300);
      assert.equal(await getText(server.url), "PAUSE");
      assert.equal(await post(server.url, "/RUN"), "RUN");
      doc = await status(server.url);
      assert.equal(doc.signal, "RUN");
      assert.equal(doc.stop_latch, null);
      assert.equal(doc.changes - changesBefore, rounds * 2 + 2);
      assert.equal(await manualClaims() - claimsBefore, rounds * 2 + 2, "the history holds exactly the probes' POSTs");
      // A client that hangs up mid-body is its own doing: not logged as a failure, not counted as a 500.
      assert.deepEqual(failures(server.output()), [], "the server logged no failure");
      assert.doesNotMatch(await getText(server.url, "/metrics"), /code="5\d\d"/, "no 5xx answer was counted");
    } finally {
      for (const h of held) h.socket.destroy();
      release();
      await dribbling?.catch(() => {});
      await server.stop();
    }
  },
);
