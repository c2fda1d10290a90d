// The TypeScript client: against the real server, against the stand-in for Krkn's own
// server (no /events, no long-poll), against older or quieter servers in this process,
// and the example runner built on it.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { after, describe, test } from "node:test";
import { SignalStore, createHandler, ValidationError } from "../mod.ts";
import { RunStoppedError, SignalClient, SignalRequestError } from "../src/client/client.ts";
import { serve } from "../src/serve/mod.ts";
import { EventStreamParser } from "../src/client/sse_parser.ts";
import { fixture } from "./helpers/files.ts";
import { ROOT, type ServerProcess, sharedServer, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

async function post(url: string, signal: string): Promise<string> {
  return await (await fetch(`${url}/${signal}`, { method: "POST" })).text();
}

async function subscribers(server: ServerProcess): Promise<{ events: number; long_polls: number }> {
  return (await (await fetch(`${server.url}/status`)).json()).subscribers;
}

/** How a promise settled, without an unhandled rejection while the test looks elsewhere. */
function settle<T>(promise: Promise<T>) {
  const state: { done: boolean; value?: T; error?: unknown; at?: number } = { done: false };
  const settled = promise.then(
    (value) => Object.assign(state, { done: true, value, at: performance.now() }),
    (error) => Object.assign(state, { done: true, error, at: performance.now() }),
  );
  return { state, settled };
}

describe("SignalClient against the real server", () => {
  const shared = sharedServer(["--state", "PAUSE"]);
  after(() => shared.stop());

  test("get and set: set answers the effective signal (the STOP latch included), force overrides", async () => {
    const server = await shared.get();
    const client = new SignalClient(server.url);
    assert.equal(await client.get(), "PAUSE");
    assert.equal(await client.set("RUN"), "RUN");
    assert.equal(await client.get(), "RUN");
    assert.equal(await client.set("STOP"), "STOP");
    assert.equal(await client.set("PAUSE"), "STOP", "STOP latches until a person sends RUN");
    assert.equal(await client.set("RUN", { force: true }), "RUN");
    assert.equal(await client.set("PAUSE"), "PAUSE");
  });

  test("waitUntilRunnable resolves at once when the signal is RUN", async () => {
    const server = await shared.get();
    const client = new SignalClient(server.url);
    await client.set("RUN");
    const started = performance.now();
    await client.waitUntilRunnable();
    assert.ok(performance.now() - started < 1000);
    await client.set("PAUSE");
  });

  test("waitUntilRunnable resolves the moment the signal returns to RUN, not a poll interval later", async () => {
    const server = await shared.get();
    const client = new SignalClient(server.url);
    await client.set("PAUSE");
    const waiting = settle(client.waitUntilRunnable({ pollIntervalMs: 10_000 }));
    await waitFor(async () => (await subscribers(server)).events === 1, "the client to follow /events", 5000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(waiting.state.done, false, "still waiting while PAUSE");
    const posted = performance.now();
    await post(server.url, "RUN");
    await waiting.settled;
    assert.equal(waiting.state.error, undefined);
    const lag = waiting.state.at! - posted;
    assert.ok(lag < 1000, `resolved ${lag.toFixed(0)} ms after POST /RUN (the poll interval is 10 s)`);
    await waitFor(async () => (await subscribers(server)).events === 0, "the client to close its stream", 5000);
    await client.set("PAUSE");
  });

  test("waitUntilRunnable rejects with RunStoppedError on STOP, while waiting and at once", async () => {
    const server = await shared.get();
    const client = new SignalClient(server.url);
    await client.set("PAUSE");
    const waiting = settle(client.waitUntilRunnable());
    await waitFor(async () => (await subscribers(server)).events === 1, "the client to follow /events", 5000);
    await post(server.url, "STOP");
    await waiting.settled;
    assert.ok(waiting.state.error instanceof RunStoppedError, String(waiting.state.error));
    assert.equal(waiting.state.error.name, "RunStoppedError");
    assert.equal(waiting.state.error.message, `the chaos run was stopped: ${server.url} answers STOP`);
    await assert.rejects(client.waitUntilRunnable(), RunStoppedError);
    await client.set("RUN");
    await client.set("PAUSE");
  });

  test("an AbortSignal aborts the wait with its reason and closes the stream", async () => {
    const server = await shared.get();
    const client = new SignalClient(server.url);
    await client.set("PAUSE");
    const controller = new AbortController();
    const reason = new Error("the operator cancelled the run");
    const waiting = settle(client.waitUntilRunnable({ signal: controller.signal }));
    await waitFor(async () => (await subscribers(server)).events === 1, "the client to follow /events", 5000);
    controller.abort(reason);
    await waiting.settled;
    assert.equal(waiting.state.error, reason, "rejected with signal.reason itself");
    await waitFor(async () => (await subscribers(server)).events === 0, "the stream to be closed", 5000);
    await assert.rejects(client.waitUntilRunnable({ signal: AbortSignal.abort(reason) }), (error) => error === reason);
    await assert.rejects(client.get({ signal: AbortSignal.abort(reason) }), (error) => error === reason);
  });

  test("watch() yields the signal now, then each change; break closes the stream", async () => {
    const server = await shared.get();
    const client = new SignalClient(server.url);
    await client.set("PAUSE");
    const seen: string[] = [];
    for await (const signal of client.watch()) {
      seen.push(signal);
      if (seen.length === 1) void post(server.url, "RUN");
      if (seen.length === 2) void post(server.url, "PAUSE");
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen, ["PAUSE", "RUN", "PAUSE"]);
    await waitFor(async () => (await subscribers(server)).events === 0, "the stream to be closed", 5000);
  });
});

test("waitUntilRunnable waits through a restart of the server and follows the new process", async () => {
  const first = await startServer(["--state", "PAUSE"]);
  let second: ServerProcess | undefined;
  try {
    const client = new SignalClient(first.url);
    const errors: unknown[] = [];
    const waiting = settle(client.waitUntilRunnable({ onError: (error) => errors.push(error) }));
    await waitFor(async () => (await subscribers(first)).events === 1, "the client to follow /events", 5000);
    await first.stop("SIGKILL");
    await waitFor(() => errors.length > 0, "the client to notice the server is gone", 5000);
    assert.equal(waiting.state.done, false, "still waiting while the server is down");
    // The new process starts again at change 0, as the first did: the event id's instance part
    // keeps the client's Last-Event-ID "0@<first>" from passing for up to date.
    second = await startServer(["--port", String(first.port), "--state", "RUN"]);
    await waitFor(() => waiting.state.done, "the wait to end after the restart", 10_000);
    assert.equal(waiting.state.error, undefined);
    assert.ok(errors.every((error) => error instanceof SignalRequestError), String(errors[0]));
  } finally {
    await first.stop("SIGKILL");
    await second?.stop();
  }
});

// ---------------------------------------------------------------------------
// Krkn's own signal server (a Python stand-in): no /events, silent on unknown paths.

async function startKrkn(state: string) {
  const child: ChildProcess = spawn("python3", [fixture("krkn_server.py"), "0", state], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise((resolve) => child.on("close", resolve));
  const port = await waitFor(() => /listening (\d+)/.exec(output)?.[1], "krkn_server.py to listen", 10_000);
  return {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      try {
        process.kill(child.pid!, "SIGTERM");
      } catch {
        // already gone
      }
      await exited;
    },
  };
}

describe("SignalClient against Krkn's own signal server", () => {
  test("get and set work; set returns the posted state for Krkn's empty answer", async () => {
    const krkn = await startKrkn("PAUSE");
    try {
      const client = new SignalClient(krkn.url);
      assert.equal(await client.get(), "PAUSE");
      assert.equal(await client.set("STOP"), "STOP");
      assert.equal(await client.get(), "STOP");
      assert.equal(await client.set("RUN"), "RUN");
    } finally {
      await krkn.stop();
    }
  });

  test("waitUntilRunnable falls back to polling and resolves when RUN is posted; STOP rejects", async () => {
    const krkn = await startKrkn("PAUSE");
    try {
      const client = new SignalClient(krkn.url);
      const waiting = settle(client.waitUntilRunnable({ pollIntervalMs: 200 }));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(waiting.state.done, false, "still waiting while PAUSE");
      assert.equal(await client.set("RUN"), "RUN");
      await waitFor(() => waiting.state.done, "the wait to end after POST /RUN", 3000);
      assert.equal(waiting.state.error, undefined);
      // Polling, not hammering: about one GET / per interval.
      const gets = krkn.output().split("\n").filter((line) => line === "GET /").length;
      assert.ok(gets <= 12, `${gets} GET / in about 1.2 s`);

      await client.set("PAUSE");
      const stopping = settle(client.waitUntilRunnable({ pollIntervalMs: 200 }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      await client.set("STOP");
      await waitFor(() => stopping.state.done, "the wait to end after POST /STOP", 3000);
      assert.ok(stopping.state.error instanceof RunStoppedError, String(stopping.state.error));
    } finally {
      await krkn.stop();
    }
  });
});

// ---------------------------------------------------------------------------
// Servers in this process that lack a feature.

/** Serves `handler` on a free loopback port for the duration of `body`. */
async function withServer(handler: (request: Request) => Response | Promise<Response>, body: (url: string) => Promise<void>): Promise<void> {
  const server = await serve(handler, { hostname: "127.0.0.1", port: 0 });
  try {
    await body(`http://127.0.0.1:${server.port}`);
  } finally {
    await server.close();
  }
}

function rig(options: { heartbeatMs?: number } = {}) {
  const arbiter = SignalStore.inMemory({ initialSignal: "PAUSE" });
  const handler = createHandler({ store: arbiter, version: "9.9.9", ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}) });
  const requests: string[] = [];
  return { arbiter, handler, requests };
}

describe("SignalClient against servers that lack a feature", () => {
  test("no /events (404) but long-polls: it long-polls and resolves at once on the change", async () => {
    const { arbiter, handler, requests } = rig();
    const noEvents = (request: Request) => {
      const url = new URL(request.url);
      requests.push(url.pathname + url.search);
      if (url.pathname === "/events") return Promise.resolve(new Response("no endpoint\n", { status: 404 }));
      return handler(request);
    };
    try {
      await withServer(noEvents, async (url) => {
        const client = new SignalClient(url);
        const waiting = settle(client.waitUntilRunnable({ pollIntervalMs: 60_000 }));
        await waitFor(() => handler.subscribers().longPolls === 1, "the client to long-poll", 5000);
        const changed = performance.now();
        arbiter.claim("manual", "RUN", "test");
        await waiting.settled;
        assert.equal(waiting.state.error, undefined);
        assert.ok(waiting.state.at! - changed < 1000, "resolved at once, not after the 60 s poll interval");
        assert.ok(requests.some((request) => /^\/\?wait=25s&since=PAUSE$/.test(request)), requests.join(" "));
      });
    } finally {
      handler.close();
    }
  });

  test("an older server (no /events, wait ignored): it polls at the interval instead of looping", async () => {
    const { arbiter, handler, requests } = rig();
    const old = (request: Request) => {
      const url = new URL(request.url);
      requests.push(url.pathname + url.search);
      if (url.pathname === "/events") return Promise.resolve(new Response("no endpoint\n", { status: 404 }));
      // GET / of an older chaos-signal ignores every query parameter.
      return handler(new Request(new URL(url.pathname, url), request));
    };
    try {
      await withServer(old, async (url) => {
        const client = new SignalClient(url);
        const waiting = settle(client.waitUntilRunnable({ pollIntervalMs: 200 }));
        await new Promise((resolve) => setTimeout(resolve, 1000));
        assert.equal(waiting.state.done, false);
        const reads = requests.filter((request) => request.startsWith("/?") || request === "/").length;
        assert.ok(reads <= 10, `${reads} reads in 1 s: ${requests.join(" ")}`);
        arbiter.claim("manual", "RUN", "test");
        await waitFor(() => waiting.state.done, "the wait to end within a poll interval", 2000);
        assert.equal(waiting.state.error, undefined);
      });
    } finally {
      handler.close();
    }
  });

  test("a stream that goes quiet (no heartbeat) is reopened", async () => {
    const { arbiter, handler, requests } = rig({ heartbeatMs: 60_000 });
    const counting = (request: Request) => {
      requests.push(new URL(request.url).pathname);
      return handler(request);
    };
    try {
      await withServer(counting, async (url) => {
        const client = new SignalClient(url);
        const errors: unknown[] = [];
        const waiting = settle(client.waitUntilRunnable({ streamIdleMs: 300, onError: (error) => errors.push(error) }));
        await waitFor(() => requests.filter((path) => path === "/events").length >= 2, "the client to reconnect", 5000);
        assert.match(String(errors[0]), /no event or heartbeat within 300 ms/);
        arbiter.claim("manual", "RUN", "test");
        await waitFor(() => waiting.state.done, "the wait to end", 3000);
        assert.equal(waiting.state.error, undefined);
      });
    } finally {
      handler.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Without a server: options, tokens, errors.

describe("SignalClient without a server", () => {
  function stub(answer: () => Response) {
    const seen: Request[] = [];
    const fetch = (url: string, init: RequestInit) => {
      seen.push(new Request(url, init));
      return Promise.resolve(answer());
    };
    return { seen, fetch };
  }

  test("set sends the bearer token and the force flag", async () => {
    const { seen, fetch } = stub(() => new Response("RUN"));
    const client = new SignalClient("http://signal.test:8090/", { token: "s3cret-token", fetch });
    assert.equal(await client.set("RUN", { force: true }), "RUN");
    assert.equal(seen[0]!.method, "POST");
    assert.equal(seen[0]!.url, "http://signal.test:8090/RUN?force=true");
    assert.equal(seen[0]!.headers.get("authorization"), "Bearer s3cret-token");
    await client.get();
    assert.equal(seen[1]!.url, "http://signal.test:8090/");
  });

  test("an HTTP error, a body that is not a signal and a silent server are one-line SignalRequestErrors", async () => {
    const unauthorized = new SignalClient("http://signal.test", { fetch: stub(() => new Response("wrong bearer token\n", { status: 401 })).fetch });
    await assert.rejects(unauthorized.set("STOP"), (error: SignalRequestError) => {
      assert.equal(error.name, "SignalRequestError");
      assert.equal(error.status, 401);
      assert.equal(error.message, "POST http://signal.test/STOP answered 401: wrong bearer token");
      return true;
    });
    const lower = new SignalClient("http://signal.test", { fetch: stub(() => new Response("pause")).fetch });
    await assert.rejects(lower.get(), { message: 'GET / at http://signal.test answered "pause"; expected exactly RUN, PAUSE or STOP' });
    const silent = new SignalClient("http://signal.test", {
      timeoutMs: 100,
      fetch: (_url, init) => new Promise((_resolve, reject) => init.signal!.addEventListener("abort", () => reject(init.signal!.reason))),
    });
    await assert.rejects(silent.get(), { name: "SignalRequestError", message: "GET http://signal.test/ failed: no answer within 100 ms" });
  });

  test("timeoutMs bounds the body too, and a body larger than a signal server sends is refused", async () => {
    // A replaced fetch that ignores the abort signal: headers come, the body never ends.
    const stalled = new SignalClient("http://signal.test", {
      timeoutMs: 100,
      fetch: () => Promise.resolve(new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode("R")) }))),
    });
    await assert.rejects(stalled.get(), { name: "SignalRequestError", message: "GET http://signal.test/ failed: answer not complete within 100 ms" });
    const huge = new SignalClient("http://signal.test", { fetch: stub(() => new Response("x".repeat(1024 * 1024))).fetch });
    await assert.rejects(huge.get(), { name: "SignalRequestError", message: /^GET http:\/\/signal\.test\/ failed: answer is larger than \d+ bytes$/ });
  });

  test("bad arguments are refused before any request", async () => {
    const { seen, fetch } = stub(() => new Response("RUN"));
    assert.throws(() => new SignalClient("ftp://signal.test"), (error: Error) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.message, 'SignalClient base URL: got "ftp://signal.test"; allowed: an http:// or https:// URL');
      return true;
    });
    assert.throws(() => new SignalClient("http://signal.test", { timeoutMs: 0 }), {
      message: "SignalClient option timeoutMs: got 0; allowed: a number of milliseconds, 1 or more",
    });
    assert.throws(() => new SignalClient("http://signal.test", { tokn: "x" } as never), {
      message: "SignalClient option tokn: unknown key; did you mean \"token\"? allowed keys: token, fetch, timeoutMs",
    });
    const client = new SignalClient("http://signal.test", { fetch });
    await assert.rejects(client.set("GO" as never), { name: "TypeError", message: 'SignalClient.set: got "GO"; allowed: RUN, PAUSE or STOP' });
    await assert.rejects(client.set("PAUSE", { force: true }), { name: "TypeError" });
    await assert.rejects(client.waitUntilRunnable({ pollIntervalMs: -1 }), {
      message: "SignalClient watch option pollIntervalMs: got -1; allowed: a number of milliseconds, 1 or more",
    });
    assert.equal(seen.length, 0);
  });
});

describe("EventStreamParser (the client's reader of /events)", () => {
  test("fields, comments, multi-line data, ids that persist, and retry", () => {
    const parser = new EventStreamParser();
    const events = parser.push("retry: 1000\n\n: keepalive\n\nid: 1@ab\nevent: signal\ndata: RUN\n\ndata:a\ndata: b\n\nevent: x\n\n");
    assert.deepEqual(events, [
      { type: "signal", data: "RUN", lastEventId: "1@ab" },
      { type: "message", data: "a\nb", lastEventId: "1@ab" },
    ]);
    assert.equal(parser.retry, 1000);
  });

  test("any split of the bytes, CRLF and CR line ends, a BOM and multi-byte characters give the same events", () => {
    const text = "\uFEFFid: 7@ff\r\nevent: signal\r\ndata: PAUSE \u00e9\r\n\r\nevent: signal\rdata: STOP\r\r";
    const bytes = new TextEncoder().encode(text);
    const expected = [
      { type: "signal", data: "PAUSE \u00e9", lastEventId: "7@ff" },
      { type: "signal", data: "STOP", lastEventId: "7@ff" },
    ];
    for (let size = 1; size <= bytes.length; size++) {
      const parser = new EventStreamParser();
      const events = [];
      for (let at = 0; at < bytes.length; at += size) events.push(...parser.push(bytes.subarray(at, at + size)));
      assert.deepEqual(events, expected, `chunks of ${size} bytes`);
    }
  });
});

// ---------------------------------------------------------------------------
// examples/runner.ts

test("the example runner waits for RUN, pauses between scenarios on PAUSE and ends on STOP", async () => {
  const server = await startServer(["--state", "PAUSE"]);
  const deno = (process.versions as Record<string, string | undefined>).deno !== undefined;
  const args = deno ? ["run", "-A", "examples/runner.ts"] : ["run", "examples/runner.ts"];
  const runner = spawn(process.execPath, [...args, server.url, "1s"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  runner.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  runner.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => runner.on("close", resolve));
  try {
    await waitFor(() => output.includes("scenario 1/3: waiting for RUN"), "the runner to wait", 20_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.doesNotMatch(output, /injecting/, "nothing injected while PAUSE");
    await post(server.url, "RUN");
    await waitFor(() => output.includes("injecting pod-delete"), "the first scenario", 3000);
    await post(server.url, "PAUSE");
    await waitFor(() => output.includes("scenario 2/3: waiting for RUN"), "the runner to wait before the second", 3000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.doesNotMatch(output, /injecting node-cpu-hog/, "the second scenario waits while PAUSE");
    await post(server.url, "STOP");
    assert.equal(await exited, 0, output);
    assert.match(output, /runner: STOP: ending the run/);
  } finally {
    try {
      process.kill(runner.pid!, "SIGKILL");
    } catch {
      // already gone
    }
    await server.stop();
  }
});
