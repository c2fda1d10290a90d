/**
 * Hostile connections against the real server process (loopback only, bounded in count and time):
 *
 * 1. Out of file descriptors: under `prlimit --nofile=256:256`, 300 idle connections exhaust the
 *    process' descriptors. The process stays alive, and once the connections are closed GET /
 *    answers again within a few seconds. (Deno.serve ended its accept loop on EMFILE and the
 *    process exited.)
 * 2. Idle connections: with `idle_timeout: 2s`, a silent connection, one that sent half a header
 *    and a keep-alive connection after one answer are closed by the server (Deno: within 1 to
 *    1.25 times the bound; Bun: see README, "Runtime differences"); a long-poll and an event
 *    stream open longer than those lived are not cut.
 * 3. Pipelining: `POST /PAUSE` and `GET /` in one write, the POST answered after its write to the
 *    state file. Deno answers both. Bun 1.4 closes the connection without a byte (its HTTP server
 *    does not support a request pipelined behind one answered asynchronously) though the change
 *    is applied: the test asserts exactly that, and fails when a Bun release answers both, so
 *    that the README's "Runtime differences" can be updated.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { EventStreamReader } from "./helpers/event_stream_reader.ts";
import { tempDir, tempFile } from "./helpers/files.ts";
import { statusOf } from "./helpers/raw_http.ts";
import { runtimeCommand, type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function getText(url: string, path = "/"): Promise<string> {
  const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(2000) });
  return await response.text();
}

interface Held {
  readonly socket: Socket;
  closedAt?: number;
}

/** Opens a connection and resolves once it is connected (or failed: counted as closed). */
function hold(server: ServerProcess, first = ""): Promise<Held> {
  return new Promise((resolve) => {
    const socket = connect({ host: server.host, port: server.port });
    const held: Held = { socket };
    // Read what comes: a paused socket with unread data never reports the close.
    socket.resume();
    socket.on("close", () => (held.closedAt ??= performance.now()));
    socket.on("error", () => resolve(held));
    socket.on("connect", () => {
      if (first) socket.write(first);
      resolve(held);
    });
  });
}

/** Everything received on one connection until `enough`, the server closes it, or 3 s pass. */
function allReceived(server: ServerProcess, data: string, enough: (received: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    let received = "";
    const socket = connect({ host: server.host, port: server.port });
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    };
    const timer = setTimeout(finish, 3000);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      received += chunk;
      if (enough(received)) finish();
    });
    socket.on("error", finish);
    socket.on("close", finish);
    socket.write(data);
  });
}

test("300 idle connections under a 256-descriptor limit: the process survives and answers again once they close", {
  timeout: 60_000,
}, async () => {
  const server = await startServer([], { launcher: ["prlimit", "--nofile=256:256", "--"] });
  let exited = false;
  server.exited.then(() => (exited = true));
  const held: Held[] = [];
  try {
    assert.equal(await getText(server.url), "RUN");
    // In batches of 50, so that the listen backlog never refuses them before the server has to accept.
    for (let i = 0; i < 300; i += 50) {
      held.push(...await Promise.all(Array.from({ length: 50 }, () => hold(server))));
    }
    // The server has accepted what it could and runs out of descriptors; give it time to fail.
    await sleep(1500);
    assert.equal(exited, false, `the server exited while out of descriptors:\n${server.output()}`);

    for (const h of held) h.socket.destroy();
    const answer = await waitFor(async () => {
      if (exited) throw new Error(`the server exited:\n${server.output()}`);
      return (await getText(server.url).catch(() => undefined)) ?? false;
    }, { what: "GET / to answer after the connections closed", timeoutMs: 10_000, intervalMs: 200, diagnose: server.output });
    assert.equal(answer, "RUN");
    assert.equal(exited, false);
  } finally {
    for (const h of held) h.socket.destroy();
    await server.stop("SIGKILL");
  }
});

test("idle_timeout: quiet connections are closed after the bound, a long-poll and an event stream are not", {
  timeout: 60_000,
}, async () => {
  const config = tempFile("chaos_signal:\n  idle_timeout: 2s\n");
  const server = await startServer(["--config", config]);
  const held: Held[] = [];
  try {
    const openedAt = performance.now();
    const silent = await hold(server);
    const halfHeader = await hold(server, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    const keepAlive = await hold(server, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    held.push(silent, halfHeader, keepAlive);
    const stream = new EventStreamReader(await fetch(`${server.url}/events`));
    await waitFor(() => stream.data().length === 1, "the event stream's current signal", 5000);
    const polled = fetch(`${server.url}/?wait=30s&since=RUN`)
      .then((response) => response.text(), (error: Error) => `no answer: ${error.message}`);

    // Deno closes them within 1 to 1.25 times the bound. Bun closes the keep-alive one within the
    // bound plus its timer's 4 s granularity, and those without a complete request after its own
    // fixed 10 to 12 s, whatever the bound; 20 s leaves room for a busy machine.
    await waitFor(() => held.every((h) => h.closedAt !== undefined), {
      what: "the server to close the quiet connections",
      timeoutMs: 20_000,
      intervalMs: 50,
      diagnose: () => held.map((h) => h.closedAt === undefined ? "open" : "closed").join(", "),
    });
    for (const h of held) {
      const quietMs = h.closedAt! - openedAt;
      assert.ok(quietMs >= 1500, `closed after ${quietMs.toFixed(0)} ms, before the 2 s bound`);
    }

    // The long-poll and the stream have been quiet for more than twice the bound by now, and
    // longer than the quiet connections lived.
    await sleep(Math.max(0, openedAt + 5000 - performance.now(), Math.max(...held.map((h) => h.closedAt!)) + 1000 - performance.now()));
    assert.equal(await getText(server.url, "/"), "RUN");
    const response = await fetch(`${server.url}/PAUSE`, { method: "POST" });
    assert.equal(await response.text(), "PAUSE");
    assert.equal(await polled, "PAUSE", "the long-poll was answered with the change");
    await waitFor(() => stream.data().length === 2, "the change on the event stream", 5000);
    assert.deepEqual(stream.data(), ["RUN", "PAUSE"]);
    await stream.response.body?.cancel().catch(() => {});
  } finally {
    for (const h of held) h.socket.destroy();
    await server.stop("SIGKILL");
  }
});

test("a GET pipelined behind a POST answered after its write: Deno answers both, Bun 1.4 neither (known)", {
  timeout: 30_000,
}, async () => {
  const server = await startServer(["--state-file", join(tempDir(), "state.json")]);
  try {
    const answer = await allReceived(
      server,
      "POST /PAUSE HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
      (received) => (received.match(/\r\n\r\nPAUSE/g) ?? []).length === 2,
    );
    const responses = answer.split(/(?=HTTP\/1\.1 )/).filter(Boolean);
    // The change is applied on both runtimes, answered or not (on Bun, once its write is done).
    await waitFor(async () => (await getText(server.url)) === "PAUSE", "GET / to answer PAUSE", 5000);
    if (runtimeCommand().name === "bun") {
      assert.equal(
        answer,
        "",
        "Bun now answers a request pipelined behind an asynchronous answer: update README.md " +
          `(Runtime differences) and this test. Received:\n${answer}`,
      );
    } else {
      assert.equal(responses.length, 2, `two responses expected, received:\n${answer}`);
      assert.deepEqual(responses.map(statusOf), [200, 200]);
      assert.ok(responses.every((response) => response.endsWith("\r\n\r\nPAUSE")), answer);
    }
  } finally {
    await server.stop("SIGKILL");
  }
});
