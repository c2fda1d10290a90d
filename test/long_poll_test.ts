// The long-poll form of GET /: `GET /?wait=30s&since=RUN`, in-process and on the real server,
// and plain GET / left exactly as Krkn reads it.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { SignalStore, createHandler } from "../mod.ts";
import { rawRequest, statusOf } from "./helpers/raw_http.ts";
import { type ServerProcess, sharedServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const BASE = "http://chaos-signal.test";

function setup(initialSignal: "RUN" | "PAUSE" | "STOP" = "RUN") {
  const arbiter = SignalStore.inMemory({ initialSignal });
  const handler = createHandler({ store: arbiter, version: "9.9.9" });
  const get = (query: string, init: RequestInit = {}) => handler(new Request(`${BASE}/${query}`, init));
  /** The answer's status and body, and how long it took. */
  const timed = async (query: string, init: RequestInit = {}) => {
    const started = performance.now();
    const response = await get(query, init);
    return { status: response.status, body: await response.text(), ms: performance.now() - started, response };
  };
  return { arbiter, handler, get, timed };
}

describe("long-poll in-process", () => {
  test("answers at once when the signal differs from since", async () => {
    const { timed } = setup("PAUSE");
    const answer = await timed("?wait=4m&since=RUN");
    assert.equal(answer.status, 200);
    assert.equal(answer.body, "PAUSE");
    assert.ok(answer.ms < 500, `took ${answer.ms.toFixed(0)} ms`);
  });

  test("answers when the signal changes while it waits", async () => {
    const { arbiter, handler, timed } = setup("PAUSE");
    const pending = timed("?wait=4m&since=PAUSE");
    await waitFor(() => handler.subscribers().longPolls === 1, "the long-poll to wait", 2000);
    setTimeout(() => arbiter.claim("manual", "RUN", "test"), 100);
    const answer = await pending;
    assert.equal(answer.body, "RUN");
    assert.ok(answer.ms >= 90 && answer.ms < 1500, `took ${answer.ms.toFixed(0)} ms`);
    assert.equal(handler.subscribers().longPolls, 0);
  });

  test("answers with the unchanged signal when the wait ends", async () => {
    const { handler, timed } = setup("PAUSE");
    const answer = await timed("?wait=300ms&since=pause");
    assert.equal(answer.status, 200);
    assert.equal(answer.body, "PAUSE");
    assert.ok(answer.ms >= 290 && answer.ms < 1500, `took ${answer.ms.toFixed(0)} ms`);
    assert.equal(handler.subscribers().longPolls, 0);
  });

  test("the answer has exactly the bytes and headers of plain GET /", async () => {
    const { get } = setup("STOP");
    const plain = await get("");
    const polled = await get("?wait=0s&since=RUN");
    assert.equal(polled.status, 200);
    assert.deepEqual([...polled.headers], [...plain.headers]);
    assert.deepEqual([...new Uint8Array(await polled.arrayBuffer())], [...new TextEncoder().encode("STOP")]);
    const head = await get("?wait=1s&since=RUN", { method: "HEAD" });
    assert.equal(head.headers.get("content-length"), "4");
    assert.equal(await head.text(), "");
  });

  test("wait and since: any letter case, any duration notation up to 4m", async () => {
    const { timed } = setup("RUN");
    for (const query of ["?wait=1s&since=Pause", "?wait=1500ms&since=STOP", "?wait=1&since=stop", "?wait=4m&since=PAUSE", "?since=PAUSE&wait=0s&_=123"]) {
      const answer = await timed(query);
      assert.equal(answer.status, 200, `${query}: ${answer.body}`);
      assert.equal(answer.body, "RUN");
    }
  });

  test("a bad wait or since gets 400 with a one-line reason, and changes nothing", async () => {
    const { arbiter, handler, timed } = setup("PAUSE");
    const rule = /^query parameter "(wait|since)" of GET \/: [^\n]+\n$/;
    const cases: [string, string][] = [
      ["?wait=forever&since=RUN", 'query parameter "wait" of GET /: got "forever"; allowed: a duration from 0s to 4m, such as 500ms, 30s or 2m (or a number of seconds)\n'],
      ["?wait=5m&since=RUN", 'query parameter "wait" of GET /: got "5m"; allowed: a duration from 0s to 4m, such as 500ms, 30s or 2m (or a number of seconds)\n'],
      ["?wait=-1s&since=RUN", 'query parameter "wait" of GET /: got "-1s"; allowed: a duration from 0s to 4m, such as 500ms, 30s or 2m (or a number of seconds)\n'],
      ["?wait=&since=RUN", 'query parameter "wait" of GET /: got ""; allowed: a duration from 0s to 4m, such as 500ms, 30s or 2m (or a number of seconds)\n'],
      ["?wait=1s&since=GO", 'query parameter "since" of GET /: got "GO"; allowed: RUN, PAUSE or STOP in any letter case\n'],
      ["?wait=1s&since=%20RUN", 'query parameter "since" of GET /: got " RUN"; allowed: RUN, PAUSE or STOP in any letter case\n'],
      ["?since=RUN", 'query parameter "wait" of GET /: missing; a long-poll needs both wait, a duration up to 4m, and since, RUN, PAUSE or STOP in any letter case\n'],
      ["?wait=30s", 'query parameter "since" of GET /: missing; a long-poll needs both wait, a duration up to 4m, and since, RUN, PAUSE or STOP in any letter case\n'],
      ["?wait=1s&wait=2s&since=RUN", ""],
    ];
    for (const [query, expected] of cases) {
      const answer = await timed(query);
      assert.equal(answer.status, 400, `${query} -> ${answer.body}`);
      assert.equal(answer.response.headers.get("content-type"), "text/plain; charset=utf-8");
      if (expected) assert.equal(answer.body, expected, query);
      else assert.match(answer.body, rule, query);
      assert.ok(answer.ms < 500, `${query} answered at once`);
    }
    assert.equal(arbiter.signal, "PAUSE");
    assert.equal(arbiter.snapshot().seq, 0);
    assert.equal(handler.subscribers().longPolls, 0);
  });

  test("a client that goes away while waiting is unsubscribed", async () => {
    const { handler, get } = setup("PAUSE");
    const controllers = Array.from({ length: 10 }, () => new AbortController());
    const pending = controllers.map((controller) => get("?wait=4m&since=PAUSE", { signal: controller.signal }));
    await waitFor(() => handler.subscribers().longPolls === 10, "ten long-polls to wait", 2000);
    for (const controller of controllers) controller.abort();
    await Promise.all(pending);
    assert.equal(handler.subscribers().longPolls, 0);
  });

  test("plain GET / still ignores unknown query parameters", async () => {
    const { get } = setup("PAUSE");
    for (const query of ["?_=1", "?waiting=1", "?Wait=1s", "?SINCE=RUN"]) {
      const response = await get(query);
      assert.equal(response.status, 200, query);
      assert.equal(await response.text(), "PAUSE");
    }
  });
});

describe("long-poll on the real server", () => {
  const shared = sharedServer(["--state", "PAUSE"]);
  after(() => shared.stop());

  async function timed(server: ServerProcess, query: string, init: RequestInit = {}) {
    const started = performance.now();
    const response = await fetch(`${server.url}/${query}`, init);
    return { status: response.status, body: await response.text(), ms: performance.now() - started };
  }

  async function longPolls(server: ServerProcess): Promise<number> {
    return (await (await fetch(`${server.url}/status`)).json()).subscribers.long_polls;
  }

  test("plain GET / is byte for byte what Krkn reads", async () => {
    const server = await shared.get();
    const raw = await rawRequest(server.host, server.port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.equal(statusOf(raw), 200);
    assert.match(raw, /\r\ncontent-type: text\/plain; charset=utf-8\r\n/i);
    assert.match(raw, /\r\ncache-control: no-store\r\n/i);
    assert.match(raw, /\r\ncontent-length: 5\r\n/i);
    assert.ok(raw.endsWith("\r\n\r\nPAUSE"), JSON.stringify(raw.slice(-20)));
  });

  test("at once when different, on change when equal, at the end of the wait otherwise", async () => {
    const server = await shared.get();
    const different = await timed(server, "?wait=30s&since=RUN");
    assert.deepEqual([different.status, different.body], [200, "PAUSE"]);
    assert.ok(different.ms < 1000, `at once: ${different.ms.toFixed(0)} ms`);

    const pending = timed(server, "?wait=30s&since=PAUSE");
    await waitFor(async () => (await longPolls(server)) === 1, "the long-poll to wait", 5000);
    const posted = performance.now();
    await fetch(`${server.url}/RUN`, { method: "POST" }).then((response) => response.text());
    const changed = await pending;
    assert.equal(changed.body, "RUN");
    assert.ok(performance.now() - posted < 1000, "answered right after the change");

    const unchanged = await timed(server, "?wait=500ms&since=RUN");
    assert.deepEqual([unchanged.status, unchanged.body], [200, "RUN"]);
    assert.ok(unchanged.ms >= 450 && unchanged.ms < 2500, `took ${unchanged.ms.toFixed(0)} ms`);
    await fetch(`${server.url}/PAUSE`, { method: "POST" }).then((response) => response.text());
  });

  test("a bad wait or since gets 400 and changes nothing", async () => {
    const server = await shared.get();
    const before = await (await fetch(`${server.url}/status`)).json();
    for (const query of ["?wait=1y&since=RUN", "?wait=10s&since=GO", "?since=RUN", "?wait=10s"]) {
      const answer = await timed(server, query);
      assert.equal(answer.status, 400, `${query} -> ${answer.body}`);
      assert.match(answer.body, /^query parameter "(wait|since)" of GET \/: [^\n]+\n$/);
    }
    const afterwards = await (await fetch(`${server.url}/status`)).json();
    assert.equal(afterwards.signal, before.signal);
    assert.equal(afterwards.changes, before.changes);
    assert.equal(afterwards.subscribers.long_polls, 0);
  });

  test("long-polls whose clients go away leave no subscriber behind", async () => {
    const server = await shared.get();
    const controllers = Array.from({ length: 20 }, () => new AbortController());
    const pending = controllers.map((controller) => fetch(`${server.url}/?wait=4m&since=PAUSE`, { signal: controller.signal }).catch(() => undefined));
    await waitFor(async () => (await longPolls(server)) === 20, "twenty long-polls to wait", 5000);
    for (const controller of controllers) controller.abort();
    await Promise.all(pending);
    await waitFor(async () => (await longPolls(server)) === 0, "the long-poll count to return to zero", 5000);
  });

  test("many long-polls are all answered by one change", async () => {
    const server = await shared.get();
    const pending = Array.from({ length: 100 }, () => timed(server, "?wait=30s&since=PAUSE"));
    await waitFor(async () => (await longPolls(server)) === 100, "a hundred long-polls to wait", 10_000);
    await fetch(`${server.url}/RUN`, { method: "POST" }).then((response) => response.text());
    const answers = await Promise.all(pending);
    assert.deepEqual(new Set(answers.map((answer) => answer.body)), new Set(["RUN"]));
    await fetch(`${server.url}/PAUSE`, { method: "POST" }).then((response) => response.text());
  });
});
