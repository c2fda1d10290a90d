// The Prometheus poller against a stand-in for Prometheus' API: every answer
// Prometheus can give, and every knob. (test/e2e_prometheus_test.ts uses the real one.)
import assert from "node:assert/strict";
import { test } from "node:test";
import { SignalStore, PluginHost, prometheusSource, type PrometheusSourceOptions, ValidationError } from "../mod.ts";
import { parseSampleValue, readQueryResponse } from "../plugins/prometheus_query.ts";
import { type FakeAnswer, startFakePrometheus, vector } from "./helpers/fake_prometheus.ts";
import { tempFile } from "./helpers/files.ts";
import { waitFor } from "./helpers/wait.ts";

type Options = Omit<PrometheusSourceOptions, "name" | "url" | "query" | "pause_above"> & Partial<PrometheusSourceOptions>;

/** Runs a poller against the fake until `body` is done. */
async function withPoller(options: Options, first: FakeAnswer, body: (rig: Awaited<ReturnType<typeof rigUp>>) => Promise<void>) {
  const rig = await rigUp(options, first);
  try {
    await body(rig);
  } finally {
    await rig.host.stop();
    await rig.fake.close();
  }
}

async function rigUp(options: Options, first: FakeAnswer) {
  const fake = await startFakePrometheus();
  fake.answer(first);
  const arbiter = SignalStore.inMemory();
  const plugin = prometheusSource({
    name: "load",
    url: fake.url,
    query: "node_load1",
    pause_above: 4,
    interval: "50ms",
    consecutive_errors: 1,
    ...options,
  });
  const host = new PluginHost(arbiter, [plugin]);
  host.start();
  const claim = () => arbiter.snapshot().claims.find((c) => c.source === "load");
  const status = () => host.statuses()[0]!;
  return { fake, arbiter, host, claim, status };
}

test("several series: the maximum by default, never the last one", async () => {
  await withPoller({}, vector("5", "1"), async ({ claim, status }) => {
    await waitFor(() => claim()?.state === "PAUSE" && status().last_observation, "PAUSE from the maximum");
    assert.equal(status().last_observation?.value, 5);
    assert.equal(status().last_observation?.series, 2);
  });
});

test("combine: min, avg and sum", async () => {
  for (const [combine, expected] of [["min", 1], ["avg", 3], ["sum", 6]] as const) {
    await withPoller({ combine }, vector("5", "1"), async ({ status }) => {
      await waitFor(() => status().last_observation?.value === expected, `${combine} = ${expected}`);
    });
  }
});

test("NaN samples are ignored by default; with on_nan: error they are errors", async () => {
  await withPoller({}, vector("NaN", "2"), async ({ claim, status }) => {
    await waitFor(() => status().last_observation?.value === 2, "NaN dropped");
    assert.equal(claim()?.state, "RUN");
  });
  await withPoller({ on_nan: "error" }, vector("NaN", "2"), async ({ claim, status }) => {
    await waitFor(() => claim()?.state === "PAUSE" && status().warnings > 0, "NaN as an error pauses (on_error: pause)");
    assert.match(status().last_warning!.message, /1 of 2 series are NaN/);
  });
});

test("all NaN is an empty result", async () => {
  await withPoller({ on_empty: "run" }, vector("NaN"), async ({ claim, status }) => {
    await waitFor(() => status().last_observation !== null, "an observation");
    assert.equal(status().last_observation?.value, null);
    assert.equal(claim()?.state, "RUN");
  });
});

test("+Inf is above any threshold, -Inf below", async () => {
  await withPoller({}, vector("+Inf"), async ({ claim, fake, status }) => {
    // (The claim is PAUSE before the first answer too: wait for the value in the reason.)
    await waitFor(() => claim()?.state === "PAUSE" && /value Infinity, above pause_above 4/.test(claim()!.reason), "+Inf pauses");
    assert.equal(status().last_observation?.value, "+Inf", "shown as Prometheus writes it (JSON has no Infinity)");
    fake.answer(vector("-Inf"));
    await waitFor(() => claim()?.state === "RUN", "-Inf runs");
  });
});

test("an empty vector: on_empty pause (default), run, hold", async () => {
  await withPoller({}, vector(), async ({ claim }) => {
    await waitFor(() => claim()?.state === "PAUSE" && /no data/.test(claim()!.reason), "empty pauses by default");
  });
  await withPoller({ on_empty: "run" }, vector("5"), async ({ claim, fake }) => {
    await waitFor(() => /value 5, above/.test(claim()!.reason), "PAUSE from the value first");
    fake.answer(vector());
    await waitFor(() => claim()?.state === "RUN", "empty runs with on_empty: run");
  });
  await withPoller({ on_empty: "hold" }, vector("5"), async ({ claim, fake, status }) => {
    await waitFor(() => /value 5, above/.test(claim()!.reason), "PAUSE from the value first");
    fake.answer(vector());
    await waitFor(() => status().last_observation?.value === null, "the empty observation");
    assert.equal(claim()?.state, "PAUSE", "held");
  });
});

test("a scalar result works; a matrix or string result is an error that says what to do", async () => {
  const scalar = { status: 200, body: JSON.stringify({ status: "success", data: { resultType: "scalar", result: [1, "7"] } }) };
  await withPoller({}, scalar, async ({ claim }) => {
    await waitFor(() => /value 7, above/.test(claim()!.reason), "scalar 7 pauses");
  });
  const matrix = { status: 200, body: JSON.stringify({ status: "success", data: { resultType: "matrix", result: [] } }) };
  await withPoller({}, matrix, async ({ status }) => {
    await waitFor(() => status().last_warning, "a warning");
    assert.match(status().last_warning!.message, /range vector; use an instant vector or scalar expression/);
  });
});

test("every failure is a warning with a reason, and the poller keeps going", async () => {
  const failures: [FakeAnswer, RegExp][] = [
    [{ status: 400, body: '{"status":"error","errorType":"bad_data","error":"parse error at char 5"}' }, /HTTP 400 \(bad_data\): parse error at char 5/],
    [{ status: 422, body: '{"status":"error","errorType":"execution","error":"many-to-many matching"}' }, /HTTP 422 \(execution\)/],
    [{ status: 503, body: '{"status":"error","errorType":"timeout","error":"query timed out"}' }, /HTTP 503 \(timeout\)/],
    [{ status: 200, body: '{"status":"error","errorType":"internal","error":"boom"}' }, /query failed \(internal\): boom/],
    [{ status: 200, body: "<html>proxy login</html>" }, /body is not JSON/],
    [{ status: 502, body: "Bad Gateway" }, /HTTP 502, and the body is not JSON/],
    [{ status: 200, body: '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}' }, /sample value "abc" is not a number/],
  ];
  for (const [answer, message] of failures) {
    await withPoller({}, vector("1"), async ({ claim, fake, status }) => {
      await waitFor(() => claim()?.state === "RUN", "RUN first");
      fake.answer(answer);
      await waitFor(() => claim()?.state === "PAUSE", `on_error: pause after ${message}`);
      assert.match(status().last_warning!.message, message);
      assert.equal(status().health, "warning");
      fake.answer(vector("1"));
      await waitFor(() => claim()?.state === "RUN" && status().health === "ok", "recovery");
    });
  }
});

test("a query that takes longer than timeout is an error", async () => {
  await withPoller({ interval: "200ms", timeout: "50ms" }, { ...vector("1"), delayMs: 150 }, async ({ status }) => {
    await waitFor(() => status().last_warning, "a timeout warning");
    assert.match(status().last_warning!.message, /no answer from http:\/\/127\.0\.0\.1:\d+ within 50 ms|not complete within 50 ms/);
  });
});

test("connection refused is an error; consecutive_errors waits for a streak; on_error hold and ignore", async () => {
  const closed = await startFakePrometheus();
  const url = closed.url;
  await closed.close();
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [
    prometheusSource({ name: "hold", url, query: "up", pause_above: 4, interval: "30ms", on_error: "hold" }),
    prometheusSource({ name: "ignore", url, query: "up", pause_above: 4, interval: "30ms", on_error: "ignore" }),
    prometheusSource({ name: "pause", url, query: "up", pause_above: 4, interval: "30ms", consecutive_errors: 3 }),
  ]);
  host.start();
  try {
    const claim = (name: string) => arbiter.snapshot().claims.find((c) => c.source === name);
    assert.equal(claim("pause")?.state, "PAUSE", "fail closed before the first answer");
    await waitFor(() => host.statuses().every((s) => s.warnings >= 3), "three errors each");
    assert.equal(claim("hold")?.state, "RUN", "hold keeps the (initial, no objection) claim");
    assert.equal(claim("ignore")?.state, "RUN");
    assert.equal(claim("pause")?.state, "PAUSE");
    assert.match(claim("pause")!.reason, /query errors in a row \(on_error: pause\): cannot reach http:\/\/127\.0\.0\.1:\d+/);
  } finally {
    await host.stop();
  }
});

test("bearer token, token file, basic auth and extra headers are sent", async () => {
  const tokenFile = tempFile("file-token-123\n", "token");
  const cases: [Options, string][] = [
    [{ bearer_token: "inline-token" }, "Bearer inline-token"],
    [{ bearer_token_file: tokenFile }, "Bearer file-token-123"],
    [{ basic_auth: { username: "ops", password: "pw" } }, `Basic ${btoa("ops:pw")}`],
  ];
  for (const [options, expected] of cases) {
    await withPoller({ ...options, headers: { "X-Scope-OrgID": "tenant-a" } }, vector("1"), async ({ fake }) => {
      await waitFor(() => fake.queries.length > 0, "a query");
      assert.equal(fake.queries[0]!.authorization, expected);
      assert.equal(fake.queries[0]!.tenant, "tenant-a");
      assert.equal(fake.queries[0]!.query, "node_load1");
    });
  }
});

test("initial_delay holds the first query back (fail closed meanwhile)", async () => {
  await withPoller({ initial_delay: "300ms" }, vector("1"), async ({ fake, claim }) => {
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(fake.queries.length, 0);
    assert.equal(claim()?.state, "PAUSE");
    await waitFor(() => claim()?.state === "RUN", "RUN after the first query");
  });
});

test("options are validated at construction; errors name the plugin, the key and what is allowed", () => {
  const base = { name: "load", url: "http://127.0.0.1:9090", query: "up", pause_above: 4 };
  const cases: [Record<string, unknown>, string][] = [
    [{ pause_above: "four" }, 'prometheus "load": pause_above: got "four"; allowed: a number'],
    [{ stop_above: 3 }, 'prometheus "load": stop_above: got 3; allowed: a number above pause_above'],
    [{ resume_below: 5 }, 'prometheus "load": resume_below: got 5; allowed: a number not above pause_above'],
    [{ interval: "1m", timeout: "2m" }, 'prometheus "load": timeout: got "2m"; allowed: a duration not longer than interval'],
    [{ interval: "soon" }, 'prometheus "load": interval: got "soon"; allowed: a duration from 10ms to 24h, such as 500ms, 15s, 1m30s or 2h'],
    [{ url: "ftp://x" }, 'prometheus "load": url: got "ftp://x"; allowed: an http(s) URL without user:password@ (credentials would show in logs; use basic_auth)'],
    [{ url: "http://user:secret@127.0.0.1:9090/" }, 'prometheus "load": url: got "http://user:***@127.0.0.1:9090/"; allowed: an http(s) URL without user:password@ (credentials would show in logs; use basic_auth)'],
    [{ url: "https://ghp_abcdef@127.0.0.1/" }, 'prometheus "load": url: got "https://***@127.0.0.1/"; allowed: an http(s) URL without user:password@ (credentials would show in logs; use basic_auth)'],
    [{ max_response_bytes: 100 }, 'prometheus "load": max_response_bytes: got 100; allowed: an integer number of bytes from 1024 to 268435456'],
    [{ on_error: "panic" }, 'prometheus "load": on_error: got "panic"; allowed: pause, hold or ignore'],
    [{ consecutive_errors: 0 }, 'prometheus "load": consecutive_errors: got 0; allowed: an integer from 1 to 1000'],
    [{ bearer_token: "secret-value", basic_auth: { username: "u" } }, 'prometheus "load": basic_auth: got (hidden); allowed: either a bearer token or basic_auth, not both'],
    [{ querry: "up" }, 'prometheus "load": querry: unknown key; did you mean "query"? allowed keys: name, url, query, pause_above, stop_above, resume_below, interval, timeout, max_response_bytes, initial_delay, consecutive_breaches, consecutive_recoveries, consecutive_errors, on_error, on_empty, combine, on_nan, bearer_token, bearer_token_file, basic_auth, headers'],
  ];
  for (const [change, message] of cases) {
    assert.throws(() => prometheusSource({ ...base, ...change } as never), (error: Error) => {
      assert.ok(error instanceof ValidationError, String(error));
      assert.equal(error.message, message);
      return true;
    });
  }
  assert.throws(() => prometheusSource({ ...base, bearer_token_file: "/nonexistent/token" }), /bearer_token_file: cannot read \/nonexistent\/token \(ENOENT\)/);
});

test("sample values in Prometheus' spelling", () => {
  assert.equal(parseSampleValue("1.5"), 1.5);
  assert.equal(parseSampleValue("+Inf"), Number.POSITIVE_INFINITY);
  assert.equal(parseSampleValue("-Inf"), Number.NEGATIVE_INFINITY);
  assert.ok(Number.isNaN(parseSampleValue("NaN")));
  assert.equal(parseSampleValue("1e3"), 1000);
  for (const bad of ["", "abc", 5, null]) assert.throws(() => parseSampleValue(bad), /is not a number/);
  assert.deepEqual(readQueryResponse({ status: "success", data: { resultType: "vector", result: [] }, warnings: ["partial"] }), {
    values: [],
    warnings: ["partial"],
  });
});

test("a malformed answer is one QueryError that says what is wrong with it", () => {
  const success = (data: unknown) => ({ status: "success", data });
  const cases: [unknown, string][] = [
    [null, "answer is not a JSON object"],
    ["up", "answer is not a JSON object"],
    [{ status: "weird" }, 'answer has status "weird", not "success"'],
    [{ status: "error", errorType: "internal", error: "boom" }, "query failed (internal): boom"],
    [{ status: "success" }, "query returns a undefined result; use an instant vector or scalar expression"],
    [success({ resultType: "string", result: [1, "a"] }), 'query returns a "string" result; use an instant vector or scalar expression'],
    [success({ resultType: "matrix", result: [] }), "query returns a range vector; use an instant vector or scalar expression (no [5m] at the end)"],
    [success({ resultType: "vector", result: {} }), "vector result is not a list"],
    [success({ resultType: "vector", result: [{ metric: {}, value: [1] }] }), 'sample [1] is not [time, "value"]'],
    [success({ resultType: "vector", result: [{ metric: {}, value: [1, "2", 3] }] }), 'sample [1,"2",3] is not [time, "value"]'],
    [success({ resultType: "vector", result: [{ metric: {}, value: [1, "2"] }, { value: [1, "x"] }] }), 'sample value "x" is not a number'],
    [success({ resultType: "scalar", result: [1, 7] }), "sample value 7 is not a number"],
  ];
  for (const [body, message] of cases) {
    assert.throws(() => readQueryResponse(body), (error: Error) => error.name === "QueryError" && error.message === message, JSON.stringify(body));
  }
  assert.deepEqual(readQueryResponse({ ...success({ resultType: "vector", result: [{ metric: {}, value: [1, "+Inf"] }] }), warnings: "not a list" }), {
    values: [Number.POSITIVE_INFINITY],
    warnings: [],
  });
});
