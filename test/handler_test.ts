// The fetch handler in-process: every endpoint, header and error of the HTTP API.
import assert from "node:assert/strict";
import { test } from "node:test";
import { StatusError } from "itty-router";
import { SignalStore, createHandler, DEFAULT_MAX_BODY_BYTES, HttpError, MAX_URL_BYTES, type StatusDocument } from "../mod.ts";

const BASE = "http://chaos-signal.test";

function setup(initialSignal: "RUN" | "PAUSE" | "STOP" = "RUN") {
  const arbiter = SignalStore.inMemory({ initialSignal });
  const handler = createHandler({ store: arbiter, version: "9.9.9", runtime: "test 1" });
  const call = (method: string, path: string, init: RequestInit = {}) =>
    handler(new Request(`${BASE}${path}`, { method, ...init }), { remoteAddress: "192.0.2.7" });
  return { arbiter, handler, call };
}

async function bodyOf(response: Response): Promise<string> {
  return await response.text();
}

test("GET / answers exactly RUN with text/plain and no-store", async () => {
  const { call } = setup();
  const response = await call("GET", "/");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(response.headers.get("cache-control"), "no-store");
  const bytes = new Uint8Array(await response.arrayBuffer());
  assert.deepEqual([...bytes], [...new TextEncoder().encode("RUN")]);
});

test("HEAD / has the GET headers and no body", async () => {
  const { call } = setup("PAUSE");
  const response = await call("HEAD", "/");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-length"), "5");
  assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(await bodyOf(response), "");
});

test("HEAD on every path answers what GET answers: status and headers (content-length included), no body", async () => {
  const startedAt = new Date("2026-01-02T03:04:05Z");
  const arbiter = SignalStore.inMemory({ initialSignal: "PAUSE" });
  const handler = createHandler({ store: arbiter, version: "9.9.9", runtime: "test 1", startedAt, now: () => startedAt });
  const call = (method: string, path: string) => handler(new Request(`${BASE}${path}`, { method }));
  // Every GET route, a long-poll, a 400 and a 404: one HEAD rule for all of them.
  for (const path of ["/", "/status", "/history", "/healthz", "/readyz", "/ui", "/?wait=0s&since=RUN", "/?wait=nope&since=RUN", "/nope"]) {
    const get = await call("GET", path);
    const getBody = new Uint8Array(await get.arrayBuffer());
    const head = await call("HEAD", path);
    assert.equal(head.status, get.status, path);
    assert.deepEqual([...head.headers], [...get.headers], path);
    assert.equal(head.headers.get("content-length"), String(getBody.byteLength), path);
    assert.equal(await bodyOf(head), "", path);
  }
  // /metrics counts this very request, so only its shape is compared.
  const metrics = await call("HEAD", "/metrics");
  assert.equal(metrics.status, 200);
  assert.equal(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.ok(Number(metrics.headers.get("content-length")) > 0);
  assert.equal(await bodyOf(metrics), "");
  assert.equal(arbiter.signal, "PAUSE", "a HEAD changes nothing");
});

test("HttpError is itty-router's StatusError, with the headers and cause it is given", () => {
  const cause = new Error("disk full");
  const error = new HttpError(405, "method PUT is not allowed", { allow: "POST" }, { cause });
  assert.ok(error instanceof StatusError);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "HttpError");
  assert.equal(error.status, 405);
  assert.equal(error.message, "method PUT is not allowed");
  assert.deepEqual(error.headers, { allow: "POST" });
  assert.equal(error.cause, cause);
});

test("POST /RUN, /PAUSE, /STOP answer the effective signal after the request", async () => {
  const { call } = setup();
  const steps: [string, string][] = [["/PAUSE", "PAUSE"], ["/RUN", "RUN"], ["/STOP", "STOP"], ["/PAUSE", "STOP"], ["/RUN", "RUN"]];
  for (const [path, expected] of steps) {
    const response = await call("POST", path);
    assert.equal(response.status, 200, path);
    assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(await bodyOf(response), expected, `${path} -> ${expected}`);
    assert.equal(await bodyOf(await call("GET", "/")), expected);
  }
});

test("signal paths work in any letter case, percent-encoded, and with a trailing slash", async () => {
  const { call } = setup();
  assert.equal(await bodyOf(await call("POST", "/pause")), "PAUSE");
  assert.equal(await bodyOf(await call("POST", "/Run")), "RUN");
  assert.equal(await bodyOf(await call("POST", "/%53TOP")), "STOP");
  assert.equal(await bodyOf(await call("POST", "/run/")), "RUN");
});

test("a request body is read and ignored, including JSON and a chunked stream", async () => {
  const { call } = setup();
  assert.equal(await bodyOf(await call("POST", "/PAUSE", { body: "{}" })), "PAUSE");
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("anything"));
      controller.close();
    },
  });
  const response = await call("POST", "/STOP", { body: stream, duplex: "half" } as RequestInit);
  assert.equal(await bodyOf(response), "STOP");
});

test("a body over the limit gets 413 and changes nothing, declared or streamed", async () => {
  const { call } = setup();
  const big = new Uint8Array(DEFAULT_MAX_BODY_BYTES + 1);
  const declared = await call("POST", "/STOP", { body: big });
  assert.equal(declared.status, 413);
  assert.match(await bodyOf(declared), /larger than the limit of 65536 bytes/);

  let sent = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      sent += 16384;
      controller.enqueue(new Uint8Array(16384));
      if (sent > 10 * DEFAULT_MAX_BODY_BYTES) controller.close();
    },
  });
  const streamed = await call("POST", "/PAUSE", { body: endless, duplex: "half" } as RequestInit);
  assert.equal(streamed.status, 413);
  assert.ok(sent < 10 * DEFAULT_MAX_BODY_BYTES, "stopped reading soon after the limit");
  assert.equal(await bodyOf(await call("GET", "/")), "RUN");
});

test("a body exactly at the limit is accepted", async () => {
  const { call } = setup();
  const response = await call("POST", "/PAUSE", { body: new Uint8Array(DEFAULT_MAX_BODY_BYTES) });
  assert.equal(response.status, 200);
});

test("unknown paths get 404 with a one-line reason listing the endpoints", async () => {
  const { call, arbiter } = setup();
  for (const path of ["/nope", "/PAUSED", "/status/x", "/RUN/now", "/%00", "/favicon.ico"]) {
    for (const method of ["GET", "POST", "DELETE"]) {
      const response = await call(method, path);
      assert.equal(response.status, 404, `${method} ${path}`);
      const text = await bodyOf(response);
      assert.match(text, /^no endpoint at \/\S* ?.*; endpoints: GET \/ \(the signal\), POST \/RUN, POST \/PAUSE, POST \/STOP, GET \/status, GET \/status\/:section\/:name \(a plugin's full state in pages: \/status\/relays\/<name>\), GET \/events, GET \/metrics, GET \/history, GET \/healthz, GET \/readyz, GET \/ui\n$/);
      assert.equal(text.split("\n").length, 2, "one line");
    }
  }
  assert.equal(arbiter.signal, "RUN");
});

test("known paths with the wrong method get 405 with Allow", async () => {
  const { call, arbiter } = setup();
  const cases: [string, string, string][] = [
    ["POST", "/", "GET, HEAD"],
    ["PUT", "/", "GET, HEAD"],
    ["DELETE", "/status", "GET, HEAD"],
    ["GET", "/PAUSE", "POST"],
    ["HEAD", "/STOP", "POST"],
    ["PUT", "/run", "POST"],
    ["OPTIONS", "/", "GET, HEAD"],
  ];
  for (const [method, path, allow] of cases) {
    const response = await call(method, path);
    assert.equal(response.status, 405, `${method} ${path}`);
    assert.equal(response.headers.get("allow"), allow);
    const text = await bodyOf(response);
    if (method !== "HEAD") {
      assert.equal(text, `method ${method} is not allowed on ${path}; allowed: ${allow}; endpoints: GET / (the signal), POST /RUN, POST /PAUSE, POST /STOP, GET /status, GET /status/:section/:name (a plugin's full state in pages: /status/relays/<name>), GET /events, GET /metrics, GET /history, GET /healthz, GET /readyz, GET /ui\n`);
    }
    else assert.equal(text, "");
  }
  assert.equal(arbiter.signal, "RUN");
});

test("unknown query parameters on POST get 400 and change nothing", async () => {
  const { call, arbiter } = setup();
  const response = await call("POST", "/PAUSE?forever=1");
  assert.equal(response.status, 400);
  assert.equal(await bodyOf(response), 'query parameter "forever" of POST /PAUSE: unknown key; allowed keys: for\n');
  const onStop = await call("POST", "/STOP?for=15m");
  assert.equal(await bodyOf(onStop), 'query parameter "for" of POST /STOP: unknown key; allowed keys: none\n');
  assert.equal(arbiter.signal, "RUN");
});

test("GET / ignores query parameters (cache busters are harmless)", async () => {
  const { call } = setup("PAUSE");
  assert.equal(await bodyOf(await call("GET", "/?_=123")), "PAUSE");
});

test("malformed percent-encoding gets 400 and changes nothing", async () => {
  const { call, arbiter } = setup();
  for (const path of ["/%E0%A4%A", "/%ZZ", "/%"]) {
    const response = await call("POST", path);
    assert.equal(response.status, 400, path);
    assert.match(await bodyOf(response), /^malformed percent-encoding in path/);
  }
  assert.equal(arbiter.signal, "RUN");
});

test("the URL limit counts the request target, not the host", async () => {
  const { handler } = setup();
  const longHost = `http://${"h".repeat(60)}.${"x".repeat(60)}.test`;
  const response = await handler(new Request(`${longHost}/?${"q".repeat(MAX_URL_BYTES - 100)}`));
  assert.equal(response.status, 200);
});

test("a URL over the limit gets 414 and changes nothing", async () => {
  const { call, arbiter } = setup();
  const response = await call("POST", `/STOP?${"x".repeat(MAX_URL_BYTES)}`);
  assert.equal(response.status, 414);
  assert.match(await bodyOf(response), /^request target is \d+ bytes; the limit is 8192\n$/);
  assert.equal(arbiter.signal, "RUN");
});

test("GET /status reports signal, claims, latch, version and uptime", async () => {
  const { call } = setup();
  await call("POST", "/STOP");
  const response = await call("GET", "/status");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
  assert.equal(response.headers.get("cache-control"), "no-store");
  const status = await response.json() as StatusDocument;
  assert.equal(status.signal, "STOP");
  assert.equal(status.decided_by, "manual");
  assert.equal(status.changes, 1);
  assert.equal(status.version, "9.9.9");
  assert.equal(status.runtime, "test 1");
  assert.equal(typeof status.uptime_seconds, "number");
  assert.ok(status.uptime_seconds >= 0);
  assert.ok(!Number.isNaN(Date.parse(status.started_at)));
  assert.equal(status.stop_latch?.source, "manual");
  assert.deepEqual(
    status.claims.map(({ source, state, reason, actor }) => ({ source, state, reason, actor })),
    [{ source: "manual", state: "STOP", reason: "POST /STOP", actor: "192.0.2.7" }],
  );
  const head = await call("HEAD", "/status");
  assert.equal(head.status, 200);
  assert.equal(await bodyOf(head), "");
});

test("1,000 concurrent POSTs of mixed signals: each answer is consistent, and so is the end state", async () => {
  const { call, arbiter } = setup();
  let changes = 0;
  arbiter.subscribe((event) => {
    if (event.type === "change") changes += 1;
  });
  const posted = Array.from({ length: 1000 }, (_, i) => ["RUN", "PAUSE", "STOP"][(i * 7) % 3]!);
  const responses = await Promise.all(posted.map((signal) => call("POST", `/${signal}`)));
  const answers = await Promise.all(responses.map(bodyOf));
  answers.forEach((answer, i) => {
    assert.equal(responses[i]!.status, 200);
    // A RUN is committed before it is made, in turn behind the saves of the PAUSEs and STOPs made
    // at once meanwhile; one posted after it stands, and the RUN answers the signal then.
    const allowed = posted[i] === "STOP" ? ["STOP"] : posted[i] === "PAUSE" ? ["PAUSE", "STOP"] : ["RUN", "PAUSE", "STOP"];
    assert.ok(allowed.includes(answer), `POST /${posted[i]} answered ${answer}`);
  });
  const status = await (await call("GET", "/status")).json() as StatusDocument;
  assert.equal(await bodyOf(await call("GET", "/")), status.signal);
  const manual = status.claims.find((claim) => claim.source === "manual")!;
  assert.equal(status.signal, status.stop_latch ? "STOP" : manual.state);
  assert.equal(status.changes, changes);
});

test("an unexpected error is a 500 with a reason, and is reported", async () => {
  const arbiter = SignalStore.inMemory();
  const errors: unknown[] = [];
  const handler = createHandler({ store: arbiter, version: "1", onError: (error) => errors.push(error) });
  arbiter.snapshot = () => {
    throw new Error("disk on fire");
  };
  const response = await handler(new Request(`${BASE}/status`));
  assert.equal(response.status, 500);
  assert.equal(await response.text(), "internal error: disk on fire\n");
  assert.equal(errors.length, 1);
});
