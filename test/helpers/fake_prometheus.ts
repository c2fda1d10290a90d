/**
 * A stand-in for Prometheus' query API on a loopback port, for unit tests of
 * the poller's edge cases (the end-to-end tests use the real Prometheus).
 * The test sets what the next queries answer.
 */
import { serve } from "../../src/serve/mod.ts";

export interface FakeAnswer {
  status: number;
  body: string;
  /** Milliseconds to wait before answering (timeouts). */
  delayMs?: number;
  /** Send the body in 64 KiB pieces spread over this many milliseconds (a large answer in transit). */
  streamMs?: number;
}

/** A body sent piece by piece over `streamMs`; stops when the client goes away. */
function streamed(body: string, streamMs: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(body);
  const piece = 64 * 1024;
  const pause = streamMs / Math.max(1, Math.ceil(bytes.byteLength / piece));
  let offset = 0;
  return new ReadableStream({
    async pull(controller) {
      if (offset >= bytes.byteLength) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, pause));
      controller.enqueue(bytes.subarray(offset, offset + piece));
      offset += piece;
    },
  });
}

export function vector(...values: string[]): FakeAnswer {
  return {
    status: 200,
    body: JSON.stringify({
      status: "success",
      data: {
        resultType: "vector",
        result: values.map((value, i) => ({ metric: { instance: `node-${i}` }, value: [1700000000 + i, value] })),
      },
    }),
  };
}

export async function startFakePrometheus() {
  let answer: FakeAnswer = vector("1");
  const queries: { query: string; authorization: string | null; tenant: string | null }[] = [];
  const server = await serve(async (request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/api/v1/query") return new Response("not found", { status: 404 });
    const form = new URLSearchParams(await request.text());
    // Like Prometheus 2.x: a duration is digits with a unit, or plain (fractional) seconds; "0.4s" is refused.
    const timeout = form.get("timeout");
    if (timeout !== null && !/^(\d+(ms|s|m|h|d|w|y))+$|^\d+(\.\d+)?$/.test(timeout)) {
      const error = `invalid parameter "timeout": cannot parse "${timeout}" to a valid duration`;
      return new Response(JSON.stringify({ status: "error", errorType: "bad_data", error }), { status: 400 });
    }
    queries.push({
      query: form.get("query") ?? "",
      authorization: request.headers.get("authorization"),
      tenant: request.headers.get("x-scope-orgid"),
    });
    const current = answer;
    if (current.delayMs) await new Promise((resolve) => setTimeout(resolve, current.delayMs));
    const body = current.streamMs ? streamed(current.body, current.streamMs) : current.body;
    return new Response(body, { status: current.status, headers: { "content-type": "application/json" } });
  }, { hostname: "127.0.0.1", port: 0 });
  return {
    url: `http://127.0.0.1:${server.port}`,
    queries,
    answer(next: FakeAnswer) {
      answer = next;
    },
    close: () => server.close(),
  };
}
