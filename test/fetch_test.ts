// fetchText: one time limit over connect and body, a byte cap while reading, typed failures.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { test } from "node:test";
import { FetchError, fetchText } from "../src/util/fetch.ts";
import { freePort } from "./helpers/prometheus.ts";

/** A loopback HTTP server answering with `handle`; `close` ends it and every connection. */
async function serve(handle: (request: IncomingMessage, response: ServerResponse) => void) {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function failure(promise: Promise<unknown>): Promise<FetchError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof FetchError, `a FetchError, not ${error}`);
  assert.equal(error.name, "FetchError");
  return error;
}

test("an answer of any status is returned with its text; method, headers and body are sent", async () => {
  let seen = "";
  const server = await serve((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      seen = `${request.method} ${request.headers["x-test"]} ${body}`;
      response.writeHead(404, { "content-type": "text/plain" }).end("no such thing\n");
    });
  });
  try {
    const answer = await fetchText(`${server.url}/x`, { method: "POST", headers: { "x-test": "yes" }, body: "a=1", timeoutMs: 5000 });
    assert.deepEqual([answer.status, answer.ok, answer.text], [404, false, "no such thing\n"]);
    assert.equal(answer.headers.get("content-type"), "text/plain");
    assert.equal(seen, "POST yes a=1");
  } finally {
    await server.close();
  }
});

test("timeout: no answer at all, and an answer whose body never ends, both within the one limit", async () => {
  const server = await serve((request, response) => {
    if (request.url === "/silent") return; // never answers
    response.writeHead(200, { "content-type": "text/plain" });
    response.write("the beginning of an answer that never ends");
  });
  try {
    const silent = await failure(fetchText(`${server.url}/silent`, { timeoutMs: 150 }));
    assert.deepEqual([silent.reason, silent.status, silent.message], ["timeout", undefined, "no answer within 150 ms"]);
    const started = Date.now();
    const endless = await failure(fetchText(`${server.url}/endless`, { timeoutMs: 300 }));
    assert.deepEqual([endless.reason, endless.status, endless.message], ["timeout", 200, "answer not complete within 300 ms"]);
    assert.ok(Date.now() - started < 10_000, "the body is bounded by the same limit");
  } finally {
    await server.close();
  }
});

test("timeout holds even with a replaced fetch that ignores the abort signal", async () => {
  const never = () => new Promise<Response>(() => {});
  const error = await failure(fetchText("http://signal.test/", { timeoutMs: 100, fetch: never }));
  assert.equal(error.reason, "timeout");
  const stalled = () =>
    Promise.resolve(new Response(new ReadableStream({ start: (controller) => controller.enqueue(new TextEncoder().encode("R")) })));
  const body = await failure(fetchText("http://signal.test/", { timeoutMs: 100, fetch: stalled }));
  assert.deepEqual([body.reason, body.status], ["timeout", 200]);
});

test("refused: nothing listens at the port, told apart from other failures", async () => {
  const port = await freePort();
  const error = await failure(fetchText(`http://127.0.0.1:${port}/`, { timeoutMs: 5000 }));
  assert.equal(error.reason, "refused", error.message);
  assert.ok(error.cause, "the runtime's error is kept as the cause");
  const other = await failure(fetchText("http://signal.test/", { timeoutMs: 5000, fetch: () => Promise.reject(new TypeError("reset by peer")) }));
  assert.deepEqual([other.reason, other.message], ["unreachable", "reset by peer"]);
});

test("maxBytes: a declared length over the cap, and an endless body, stop at the cap", async () => {
  let written = 0;
  const server = await serve((request, response) => {
    if (request.url === "/declared") return response.writeHead(200, { "content-length": "5000" }).end("x".repeat(5000));
    response.writeHead(200); // chunked, no length: only reading tells
    const chunk = "y".repeat(16 * 1024);
    const pump = () => {
      while (written < 64 * 1024 * 1024 && response.write(chunk)) written += chunk.length;
      if (written < 64 * 1024 * 1024) response.once("drain", pump);
      else response.end();
    };
    pump();
  });
  try {
    const declared = await failure(fetchText(`${server.url}/declared`, { timeoutMs: 5000, maxBytes: 1000 }));
    assert.deepEqual([declared.reason, declared.status, declared.message], ["too-large", 200, "answer is larger than 1000 bytes"]);
    const endless = await failure(fetchText(`${server.url}/endless`, { timeoutMs: 20_000, maxBytes: 100_000 }));
    assert.equal(endless.reason, "too-large");
    assert.ok(written < 64 * 1024 * 1024, `the rest was not read (${written} bytes written)`);
    const fits = await fetchText(`${server.url}/declared`, { timeoutMs: 5000, maxBytes: 5000 });
    assert.equal(fits.text.length, 5000);
  } finally {
    await server.close();
  }
});

test("the caller's abort rejects with its reason, not a FetchError", async () => {
  const server = await serve(() => {});
  try {
    const abort = new AbortController();
    const reason = new Error("shutting down");
    setTimeout(() => abort.abort(reason), 50);
    await assert.rejects(fetchText(server.url, { timeoutMs: 5000, abort: abort.signal }), (error) => error === reason);
    await assert.rejects(fetchText(server.url, { timeoutMs: 5000, abort: abort.signal }), (error) => error === reason, "already aborted");
  } finally {
    await server.close();
  }
});
