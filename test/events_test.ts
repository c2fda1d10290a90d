// GET /events, the signal as Server-Sent Events: in-process through the fetch handler,
// over HTTP through the runtime's serve file, and on the real server process.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { SignalStore, createHandler } from "../mod.ts";
import type { SignalHandler } from "../src/http/app.ts";
import { MAX_BACKLOG_CHUNKS } from "../src/push/event_stream.ts";
import { serve } from "../src/serve/mod.ts";
import { EventStreamReader, parseEventId } from "./helpers/event_stream_reader.ts";
import { type ServerProcess, sharedServer, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const BASE = "http://chaos-signal.test";

function setup(options: { initialSignal?: "RUN" | "PAUSE" | "STOP"; heartbeatMs?: number } = {}) {
  const arbiter = SignalStore.inMemory({ initialSignal: options.initialSignal ?? "RUN" });
  const handler = createHandler({ store: arbiter, version: "9.9.9", ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}) });
  const open = async (headers: Record<string, string> = {}) => {
    const response = await handler(new Request(`${BASE}/events`, { headers }));
    assert.equal(response.status, 200);
    return new EventStreamReader(response);
  };
  return { arbiter, handler, open };
}

/** Ends every stream a test opened, so that no heartbeat timer outlives the test. */
async function closeAll(handler: SignalHandler, ...readers: EventStreamReader[]): Promise<void> {
  handler.close();
  await Promise.all(readers.map((reader) => reader.ended));
}

describe("GET /events in-process", () => {
  test("headers, then retry, then the current signal at once", async () => {
    const { handler, open } = setup({ initialSignal: "PAUSE" });
    const stream = await open();
    try {
      assert.equal(stream.response.headers.get("content-type"), "text/event-stream; charset=utf-8");
      assert.equal(stream.response.headers.get("cache-control"), "no-store");
      assert.equal(stream.response.headers.get("content-length"), null);
      await stream.until(() => stream.signals().length === 1, "the first event");
      assert.match(stream.text, /^retry: 1000\n\nid: 0@[0-9a-f]{8}\nevent: signal\ndata: PAUSE\n\n$/);
    } finally {
      await closeAll(handler, stream);
    }
  });

  test("one event per change of the effective signal, with increasing ids", async () => {
    const { arbiter, handler, open } = setup();
    const stream = await open();
    try {
      await arbiter.claim("manual", "PAUSE", "test"); // RUN -> PAUSE
      await arbiter.claim("load", "PAUSE", "busy"); // still PAUSE: no event
      await arbiter.claim("manual", "RUN", "test"); // still PAUSE (load holds it): no event
      await arbiter.release("load", "calm"); // PAUSE -> RUN
      await arbiter.claim("manual", "STOP", "test"); // RUN -> STOP
      await stream.until(() => stream.signals().length === 4, "four events");
      assert.deepEqual(stream.data(), ["RUN", "PAUSE", "RUN", "STOP"]);
      const ids = stream.signals().map((event) => parseEventId(event.id));
      assert.deepEqual(ids.map((id) => id.seq), [0, 1, 2, 3]);
      assert.equal(new Set(ids.map((id) => id.instance)).size, 1, "one instance");
      assert.equal(ids[3]!.seq, arbiter.snapshot().seq);
    } finally {
      await closeAll(handler, stream);
    }
  });

  test("Last-Event-ID equal to the current id: up to date, no initial event", async () => {
    const { arbiter, handler, open } = setup();
    const first = await open();
    await arbiter.claim("manual", "PAUSE", "test");
    await first.until(() => first.signals().length === 2, "two events");
    const current = first.signals()[1]!.id!;
    const again = await open({ "last-event-id": current });
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(again.text, "retry: 1000\n\n", "nothing but the retry line");
      await arbiter.claim("manual", "RUN", "test");
      await again.until(() => again.signals().length === 1, "the next change");
      assert.deepEqual(again.data(), ["RUN"]);
      assert.equal(parseEventId(again.signals()[0]!.id).seq, 2);
    } finally {
      await closeAll(handler, first, again);
    }
  });

  test("an older, foreign or garbage Last-Event-ID gets the current signal at once (missed changes coalesce)", async () => {
    const { arbiter, handler, open } = setup();
    const first = await open();
    await first.until(() => first.signals().length === 1, "the first event");
    const { instance } = parseEventId(first.signals()[0]!.id);
    await arbiter.claim("manual", "PAUSE", "test");
    await arbiter.claim("manual", "STOP", "test");
    const streams = [first];
    try {
      // Older than the current one (it missed two changes), another server process' id, garbage.
      for (const lastEventId of [`0@${instance}`, `1@${instance}`, "2@00000000", "2", "abc", "-1", ""]) {
        const stream = await open({ "last-event-id": lastEventId });
        streams.push(stream);
        await stream.until(() => stream.signals().length === 1, `the current signal for Last-Event-ID ${JSON.stringify(lastEventId)}`);
        assert.deepEqual(stream.data(), ["STOP"], `only the latest state for ${JSON.stringify(lastEventId)}`);
        assert.equal(stream.signals()[0]!.id, `2@${instance}`);
      }
    } finally {
      await closeAll(handler, ...streams);
    }
  });

  test("a heartbeat comment every heartbeatMs", async () => {
    const { handler, open } = setup({ heartbeatMs: 30 });
    const stream = await open();
    try {
      await stream.until(() => stream.heartbeats() >= 3, "three heartbeats", 2000);
      assert.equal(stream.signals().length, 1, "heartbeats are not events");
    } finally {
      await closeAll(handler, stream);
    }
  });

  test("clients that disconnect mid-stream are unsubscribed: the count returns to zero", async () => {
    const { arbiter, handler, open } = setup();
    const streams = await Promise.all(Array.from({ length: 5 }, () => open()));
    assert.deepEqual(handler.subscribers(), { events: 5, longPolls: 0 });
    await streams[0]!.cancel();
    await streams[1]!.cancel();
    assert.deepEqual(handler.subscribers(), { events: 3, longPolls: 0 });
    await arbiter.claim("manual", "PAUSE", "test");
    for (const stream of streams.slice(2)) await stream.until(() => stream.data().includes("PAUSE"), "PAUSE after two left");
    // A request whose signal aborts, as a runtime aborts it when the client goes away.
    const controller = new AbortController();
    const aborted = new EventStreamReader(await handler(new Request(`${BASE}/events`, { signal: controller.signal })));
    assert.equal(handler.subscribers().events, 4);
    controller.abort();
    await aborted.ended;
    for (const stream of streams.slice(2)) await stream.cancel();
    await waitFor(() => handler.subscribers().events === 0, "the subscriber count to return to zero", 2000);
    handler.close();
  });

  test("close() ends every stream cleanly and answers every long-poll; later /events get 503", async () => {
    const { handler, open } = setup({ initialSignal: "PAUSE" });
    const streams = await Promise.all([open(), open(), open()]);
    const polled = handler(new Request(`${BASE}/?wait=4m&since=PAUSE`));
    await waitFor(() => handler.subscribers().longPolls === 1, "the long-poll to wait", 2000);
    handler.close();
    for (const stream of streams) assert.equal(await stream.ended, "done");
    const answer = await polled;
    assert.equal(answer.status, 200);
    assert.equal(await answer.text(), "PAUSE");
    assert.deepEqual(handler.subscribers(), { events: 0, longPolls: 0 });
    const late = await handler(new Request(`${BASE}/events`));
    assert.equal(late.status, 503);
    assert.match(await late.text(), /^the server is shutting down; [^\n]+\n$/);
    const latePoll = await handler(new Request(`${BASE}/?wait=4m&since=PAUSE`));
    assert.equal(await latePoll.text(), "PAUSE", "a long-poll after close answers at once");
  });

  test("a client that does not read is cut off after a bounded backlog", async () => {
    const { arbiter, handler } = setup();
    const response = await handler(new Request(`${BASE}/events`));
    assert.equal(handler.subscribers().events, 1);
    for (let i = 0; i < MAX_BACKLOG_CHUNKS + 10; i++) await arbiter.claim("manual", i % 2 ? "RUN" : "PAUSE", "flap");
    assert.equal(handler.subscribers().events, 0, "unsubscribed once the backlog was full");
    const stream = new EventStreamReader(response);
    assert.equal(await stream.ended, "done", "the queued events, then a clean end: the client reconnects");
    assert.ok(stream.signals().length <= MAX_BACKLOG_CHUNKS, `${stream.signals().length} events queued`);
    handler.close();
  });

  test("HEAD /events: the headers, no body and no subscription; other methods get 405", async () => {
    const { handler } = setup();
    const head = await handler(new Request(`${BASE}/events`, { method: "HEAD" }));
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(await head.text(), "");
    assert.equal(handler.subscribers().events, 0);
    const post = await handler(new Request(`${BASE}/events`, { method: "POST" }));
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    handler.close();
  });

  test("/status counts the open streams", async () => {
    const { handler, open } = setup();
    const stream = await open();
    const status = await (await handler(new Request(`${BASE}/status`))).json();
    assert.deepEqual(status.subscribers, { events: 1, long_polls: 0 });
    await closeAll(handler, stream);
  });
});

describe("GET /events over HTTP in this process (the runtime's serve file)", () => {
  test("heartbeats arrive over the wire, and a client that goes away is unsubscribed", async () => {
    const arbiter = SignalStore.inMemory();
    const handler = createHandler({ store: arbiter, version: "9.9.9", heartbeatMs: 50 });
    const server = await serve(handler, { hostname: "127.0.0.1", port: 0 });
    try {
      const controller = new AbortController();
      const stream = new EventStreamReader(await fetch(`http://127.0.0.1:${server.port}/events`, { signal: controller.signal }));
      await stream.until(() => stream.heartbeats() >= 3, "three heartbeats", 3000);
      await arbiter.claim("manual", "PAUSE", "test");
      await stream.until(() => stream.data().join() === "RUN,PAUSE", "RUN, then PAUSE");
      assert.equal(handler.subscribers().events, 1);
      controller.abort();
      await stream.ended;
      await waitFor(() => handler.subscribers().events === 0, "the server to notice the disconnect", 3000);
    } finally {
      handler.close();
      await server.close();
    }
  });
});

describe("GET /events on the real server", () => {
  const shared = sharedServer(["--state", "PAUSE"]);
  after(() => shared.stop());

  async function post(server: ServerProcess, signal: string): Promise<string> {
    return await (await fetch(`${server.url}/${signal}`, { method: "POST" })).text();
  }

  async function subscribers(server: ServerProcess): Promise<{ events: number; long_polls: number }> {
    return (await (await fetch(`${server.url}/status`)).json()).subscribers;
  }

  async function open(server: ServerProcess, headers: Record<string, string> = {}, signal?: AbortSignal) {
    const response = await fetch(`${server.url}/events`, { headers, ...(signal ? { signal } : {}) });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    return new EventStreamReader(response);
  }

  test("the current signal on connect, then one event per change with increasing ids", async () => {
    const server = await shared.get();
    const stream = await open(server);
    try {
      await stream.until(() => stream.data().length === 1, "the current signal");
      assert.deepEqual(stream.data(), ["PAUSE"]);
      for (const signal of ["RUN", "STOP", "PAUSE", "RUN"]) await post(server, signal);
      // STOP latches: the PAUSE is no change, so four posts make three changes.
      await stream.until(() => stream.data().length === 4, "three changes");
      assert.deepEqual(stream.data(), ["PAUSE", "RUN", "STOP", "RUN"]);
      const seqs = stream.signals().map((event) => parseEventId(event.id).seq);
      assert.ok(seqs.every((seq, i) => i === 0 || seq === seqs[i - 1]! + 1), `ids increase by one: ${seqs}`);
      const status = await (await fetch(`${server.url}/status`)).json();
      assert.equal(seqs.at(-1), status.changes, "the id's counter is /status' changes");
    } finally {
      await stream.cancel();
    }
  });

  test("Last-Event-ID is honoured across a reconnect", async () => {
    const server = await shared.get();
    const first = await open(server);
    await first.until(() => first.signals().length === 1, "the current signal");
    const seen = first.signals()[0]!;
    await first.cancel();
    const upToDate = await open(server, { "last-event-id": seen.id! });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(upToDate.signals().length, 0, "no initial event for a client that is up to date");
    await post(server, "PAUSE");
    await upToDate.until(() => upToDate.data().join() === "PAUSE", "the change");
    await upToDate.cancel();
    const behind = await open(server, { "last-event-id": seen.id! });
    await behind.until(() => behind.signals().length === 1, "the current signal for a client that missed a change");
    assert.deepEqual(behind.data(), ["PAUSE"]);
    await behind.cancel();
    await post(server, "RUN");
  });

  test("200 concurrent subscribers all receive a change, and the count returns to zero when they leave", async () => {
    const server = await shared.get();
    const streams = await Promise.all(Array.from({ length: 200 }, () => open(server)));
    try {
      await Promise.all(streams.map((stream) => stream.until(() => stream.data().length === 1, "the current signal", 10_000)));
      assert.equal((await subscribers(server)).events, 200);
      await post(server, "PAUSE");
      await Promise.all(streams.map((stream) => stream.until(() => stream.data().join() === "RUN,PAUSE", "the change", 10_000)));
    } finally {
      await Promise.all(streams.map((stream) => stream.cancel()));
    }
    await waitFor(async () => (await subscribers(server)).events === 0, "the subscriber count to return to zero", 5000);
    await post(server, "RUN");
  });

  test("clients that disconnect mid-stream (aborted fetches) leave no subscriber behind", async () => {
    const server = await shared.get();
    const controllers = Array.from({ length: 20 }, () => new AbortController());
    const streams = await Promise.all(controllers.map((controller) => open(server, {}, controller.signal)));
    await Promise.all(streams.map((stream) => stream.until(() => stream.data().length === 1, "the current signal")));
    assert.equal((await subscribers(server)).events, 20);
    for (const controller of controllers) controller.abort();
    await Promise.all(streams.map((stream) => stream.ended));
    await waitFor(async () => (await subscribers(server)).events === 0, "the subscriber count to return to zero", 5000);
  });

  test("a quiet stream and a quiet long-poll outlive Bun's 10 s idle timeout", async () => {
    const server = await shared.get();
    const stream = await open(server);
    await stream.until(() => stream.data().length === 1, "the current signal");
    const current = stream.data()[0]!;
    const polled = fetch(`${server.url}/?wait=30s&since=${current}`).then((response) => response.text());
    // No heartbeat before 15 s, no answer before a change: both connections are silent for 11 s.
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    const next = current === "PAUSE" ? "RUN" : "PAUSE";
    await post(server, next);
    await stream.until(() => stream.data().length === 2, "the change after 11 quiet seconds");
    assert.equal(stream.data()[1], next);
    assert.equal(await polled, next);
    await stream.cancel();
    await post(server, "RUN");
  });
});

test("SIGTERM with open event streams and long-polls: the streams end cleanly and the process exits within 2 s", async () => {
  const server = await startServer(["--state", "PAUSE"]);
  try {
    const streams = await Promise.all([1, 2, 3].map(async () => new EventStreamReader(await fetch(`${server.url}/events`))));
    await Promise.all(streams.map((stream) => stream.until(() => stream.data().length === 1, "the current signal")));
    const polled = fetch(`${server.url}/?wait=60s&since=PAUSE`)
      .then(async (response) => [response.status, await response.text()], (error: Error) => `no answer: ${error.message}`);
    await waitFor(async () => (await (await fetch(`${server.url}/status`)).json()).subscribers.long_polls === 1, "the long-poll to wait", 5000);
    const exit = await server.stop("SIGTERM");
    assert.equal(exit.code, 0, server.output());
    assert.ok(exit.ms < 2000, `took ${exit.ms.toFixed(0)} ms`);
    for (const stream of streams) assert.equal(await stream.ended, "done", "the server ended the stream (no dropped connection)");
    assert.deepEqual(await polled, [200, "PAUSE"], "the long-poll was answered before the exit");
  } finally {
    await server.stop("SIGKILL");
  }
});
