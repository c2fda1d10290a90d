// GET /metrics, /healthz and /readyz in-process (the e2e test has the real Prometheus scrape them).
import assert from "node:assert/strict";
import { test } from "node:test";
import { readFileSync } from "node:fs";
import {
  alertmanagerSource,
  SignalStore,
  createHandler,
  type DashboardCard,
  fileSource,
  type MetricSample,
  type Plugin,
  type PluginDescription,
  PluginHost,
  type PluginStatus,
  prometheusSource,
  relay,
  type StatusDocument,
  webhookSource,
} from "../mod.ts";
import { Metrics } from "../src/http/metrics.ts";
import { startFakePrometheus, vector } from "./helpers/fake_prometheus.ts";
import { gatedSource } from "./helpers/gated_source.ts";
import { waitFor } from "./helpers/wait.ts";

/** The samples of a text-format exposition: "name{labels}" -> value. */
function samples(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    map.set(line.slice(0, at), line.slice(at + 1));
  }
  return map;
}

test("/metrics: signal, latch, changes and claims by source, requests by bounded route", async () => {
  const arbiter = SignalStore.inMemory();
  const handler = createHandler({ store: arbiter, version: "1.2.3", runtime: "test 1" });
  const call = (method: string, path: string) => handler(new Request(`http://x${path}`, { method }));
  await call("POST", "/PAUSE");
  await arbiter.claim("load", "STOP", "load 9");
  await call("GET", "/");
  await call("GET", "/");
  for (let i = 0; i < 20; i++) await call("GET", `/random-${i}`);
  await call("PROPFIND", "/");
  // A HEAD is dispatched as GET, and counted as the HEAD it was.
  await call("HEAD", "/status");
  await call("HEAD", "/STOP");
  const response = await call("GET", "/metrics");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await response.text();
  const m = samples(text);
  assert.equal(m.get('chaos_signal_signal{signal="STOP"}'), "1");
  assert.equal(m.get('chaos_signal_signal{signal="RUN"}'), "0");
  assert.equal(m.get("chaos_signal_stop_latched"), "1");
  assert.equal(m.get('chaos_signal_changes_total{source="manual",signal="PAUSE"}'), "1");
  assert.equal(m.get('chaos_signal_changes_total{source="load",signal="STOP"}'), "1");
  assert.equal(m.get('chaos_signal_claim{source="load",state="STOP"}'), "1");
  assert.equal(m.get('chaos_signal_claim{source="manual",state="PAUSE"}'), "1");
  assert.equal(m.get('chaos_signal_build_info{version="1.2.3",runtime="test 1"}'), "1");
  assert.equal(m.get('chaos_signal_http_requests_total{route="/",method="GET",code="200"}'), "2");
  assert.equal(m.get('chaos_signal_http_requests_total{route="/PAUSE",method="POST",code="200"}'), "1");
  assert.equal(m.get('chaos_signal_http_requests_total{route="other",method="GET",code="404"}'), "20", "random paths share one series");
  assert.equal(m.get('chaos_signal_http_requests_total{route="/",method="other",code="405"}'), "1");
  assert.equal(m.get('chaos_signal_http_requests_total{route="/status",method="HEAD",code="200"}'), "1");
  assert.equal(m.get('chaos_signal_http_requests_total{route="/STOP",method="HEAD",code="405"}'), "1");
  // Every sample line belongs to a family declared with HELP and TYPE.
  for (const line of text.split("\n").filter((l) => l && !l.startsWith("#"))) {
    const name = line.split(/[{ ]/)[0]!;
    assert.ok(text.includes(`# TYPE ${name} `), `TYPE for ${name}`);
  }
});

test("/metrics: source health, the poller's value and thresholds, relay-free hosts", async () => {
  const fake = await startFakePrometheus();
  fake.answer(vector("+Inf"));
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [
    prometheusSource({ name: "load", url: fake.url, query: "up", pause_above: 4, resume_below: 3, stop_above: 8, interval: "50ms" }),
  ]);
  const handler = createHandler({ store: arbiter, version: "t", plugins: host });
  host.start();
  try {
    await waitFor(() => host.ready, "the first observation");
    const m = samples(await (await handler(new Request("http://x/metrics"))).text());
    assert.equal(m.get('chaos_signal_prometheus_value{source="load"}'), "+Inf");
    assert.equal(m.get('chaos_signal_prometheus_threshold{source="load",threshold="pause_above"}'), "4");
    assert.equal(m.get('chaos_signal_prometheus_threshold{source="load",threshold="stop_above"}'), "8");
    assert.equal(m.get('chaos_signal_prometheus_threshold{source="load",threshold="resume_below"}'), "3");
    assert.equal(m.get('chaos_signal_source_healthy{source="load",kind="prometheus"}'), "1");
    assert.equal(m.get('chaos_signal_subscribers{kind="events"}'), "0");
  } finally {
    await host.stop();
    await fake.close();
  }
});

test("/healthz always answers; /readyz is 200 while a source has not observed yet: /status and /metrics show it waiting", async () => {
  const { plugin: slow, release } = gatedSource("slow");
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [slow]);
  const handler = createHandler({ store: arbiter, version: "t", plugins: host });
  host.start();
  try {
    assert.equal(await (await handler(new Request("http://x/healthz"))).text(), "ok\n");
    const waiting = await handler(new Request("http://x/readyz"));
    assert.equal(waiting.status, 200, "ready means: can serve the signal");
    assert.equal(await waiting.text(), "ready (not observed yet: slow; see /status)\n");
    assert.deepEqual((await (await handler(new Request("http://x/status"))).json()).sources_waiting, ["slow"]);
    assert.match(await (await handler(new Request("http://x/metrics"))).text(), /^chaos_signal_source_waiting\{source="slow",kind="[^"]+"\} 1$/m);
    release();
    await waitFor(() => host.ready, "ready");
    const ready = await handler(new Request("http://x/readyz"));
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), "ready\n");
    assert.deepEqual((await (await handler(new Request("http://x/status"))).json()).sources_waiting, []);
    assert.match(await (await handler(new Request("http://x/metrics"))).text(), /^chaos_signal_source_waiting\{source="slow",kind="[^"]+"\} 0$/m);
  } finally {
    await host.stop();
  }
});

test("sources waiting are sources only: a relay-only config is ready at once, a hook or a route-only plugin is never waited for", async () => {
  const arbiter = SignalStore.inMemory();
  // A relay has run and onChange and never observes before it reaches a target (here: none listens).
  const hooks = [
    relay({ name: "krkn", targets: ["http://127.0.0.1:9/"], timeout: "50ms", max_backoff: "10s" }),
    { name: "hook", kind: "test", onChange() {} },
    { name: "route", kind: "test", fetch: () => new Response("ok") },
  ];
  const host = new PluginHost(arbiter, hooks);
  const handler = createHandler({ store: arbiter, version: "t", plugins: host });
  host.start();
  try {
    assert.deepEqual(host.waitingFor(), []);
    assert.equal(host.ready, true);
    const ready = await handler(new Request("http://x/readyz"));
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), "ready\n");
  } finally {
    await host.stop();
  }
  const { plugin: slow, release } = gatedSource("slow");
  const mixed = new PluginHost(SignalStore.inMemory(), [slow, ...hooks.slice(1)]);
  mixed.start();
  try {
    assert.deepEqual(mixed.waitingFor(), ["slow"]);
    release();
    await waitFor(() => mixed.waitingFor().length === 0, "the source's first observation");
  } finally {
    await mixed.stop();
  }
});

test("/metrics: the exposition byte for byte, the plugins' families included (prometheus, relay)", async () => {
  const at = "2026-01-02T03:04:06.000Z";
  const arbiter = SignalStore.inMemory({ now: () => new Date("2026-01-02T03:04:05.000Z") });
  const metrics = new Metrics(arbiter, [fileSource, webhookSource, alertmanagerSource, prometheusSource, relay]);
  await arbiter.claim("load", "PAUSE", "high");
  metrics.countPoll();
  metrics.countRequest("/status", "GET", 200);
  const sources: PluginStatus[] = [
    { name: "load", kind: "prometheus", health: "ok", last_observation: { at, value: "+Inf", series: 2, claim: "PAUSE", query: "up", pause_above: 4, stop_above: 8, resume_below: 3 }, last_warning: null, warnings: 1, restarts: 0 },
    { name: "quiet", kind: "prometheus", health: "starting", last_observation: null, last_warning: null, warnings: 0, restarts: 0 },
    { name: "krkn", kind: "relay", health: "warning", last_observation: { at, counts: { targets: 2, in_sync: 1, out_of_sync: 0, failing: 1 }, last_change: null, unsynced: [
      { url: "http://127.0.0.1:9/", in_sync: false, last_pushed: null, last_seen: null, last_error: { at, message: "refused" }, failures: 3 },
    ], targets_page: "/status/relays/krkn" }, last_warning: { at, message: "refused" }, warnings: 3, restarts: 0 },
    { name: "f", kind: "file", health: "ok", last_observation: { at, content: "RUN" }, last_warning: null, warnings: 0, restarts: 0 },
  ];
  const factories = new Map<string, { description?: PluginDescription }>([["load", prometheusSource], ["quiet", prometheusSource], ["krkn", relay]]);
  const text = metrics.render({
    snapshot: arbiter.snapshot(),
    sources,
    subscribers: { events: 2, longPolls: 1 },
    version: "1.2.3",
    runtime: "test 1",
    startedAt: new Date("2026-01-02T03:00:00.000Z"),
    store: { type: "file", current: true, revision: "7" },
    describe: (source) => factories.get(source.name)?.description,
  });
  // As metrics.ts wrote it when it knew the poller and the relay by name (commit d26b845), with the
  // store families (current, revision) of issue 11 added after the signal's, and the relay's
  // aggregates of issue 15 (its per-target series only with per_target_metrics) in place of its
  // per-target series.
  assert.equal(text, readFileSync(new URL("./fixtures/metrics_exposition.txt", import.meta.url), "utf8"));
});

test("/metrics: a plugin's own families; undeclared, core-named, badly labelled or throwing samples are dropped", async () => {
  const arbiter = SignalStore.inMemory();
  const describe = (samples: () => MetricSample[]): PluginDescription => ({
    metrics: [
      { name: "queue_depth", type: "gauge", help: "Items waiting.\nSecond line." },
      { name: "signal", type: "gauge", help: "Takes a core name: ignored." },
      { name: "bad name", type: "gauge", help: "Not a metric name: ignored." },
    ],
    samples,
  });
  const queue = (name: string, samples: () => MetricSample[]): Plugin => ({ name, kind: "queue", description: describe(samples), run: (context) => Promise.resolve(context.observe({})) });
  const host = new PluginHost(arbiter, [
    queue("q", () => [
      { family: "queue_depth", labels: { queue: "q" }, value: 7 },
      { family: "undeclared", labels: {}, value: 1 },
      { family: "signal", labels: { signal: "RUN" }, value: 5 },
      { family: "queue_depth", labels: { "bad-label": "x" }, value: 9 },
    ]),
    queue("broken", () => {
      throw new Error("cannot describe");
    }),
  ]);
  const handler = createHandler({ store: arbiter, version: "t", plugins: host });
  host.start();
  try {
    await waitFor(() => host.ready, "the first observations");
    const response = await handler(new Request("http://x/metrics"));
    assert.equal(response.status, 200);
    const text = await response.text();
    const m = samples(text);
    assert.equal(m.get('chaos_signal_queue_depth{queue="q"}'), "7");
    assert.ok(text.includes("# HELP chaos_signal_queue_depth Items waiting.\\nSecond line.\n# TYPE chaos_signal_queue_depth gauge\n"));
    assert.equal(text.match(/^# TYPE chaos_signal_signal /gm)?.length, 1, "the core family once");
    assert.equal(m.get('chaos_signal_signal{signal="RUN"}'), "1", "the core value, not the plugin's");
    assert.ok(![...m.keys()].some((key) => /undeclared|bad|chaos_signal_prometheus_/.test(key)), "nothing else; no built-in families when not told of them");
    assert.ok(m.has('chaos_signal_source_healthy{source="broken",kind="queue"}'), "a throwing describer loses its samples only");
  } finally {
    await host.stop();
  }
});

test("/status: each source's cards as its plugin describes them; a plugin whose cards throw shows without them", async () => {
  const arbiter = SignalStore.inMemory();
  const card: DashboardCard = { section: { id: "queues", title: "Queues" }, title: "q", badge: { text: "draining", tone: "warn" }, fields: [["depth", 7], ["since", { at: "2026-01-02T03:04:05.000Z" }]] };
  const host = new PluginHost(arbiter, [
    { name: "q", kind: "queue", description: { cards: () => [card] } },
    { name: "broken", kind: "queue", description: { cards: () => { throw new Error("no"); } } },
    { name: "plain", kind: "queue" },
  ]);
  const handler = createHandler({ store: arbiter, version: "t", plugins: host });
  const status = await (await handler(new Request("http://x/status"))).json() as StatusDocument;
  assert.deepEqual(status.sources.map((source) => [source.name, source.cards]), [["q", [card]], ["broken", undefined], ["plain", undefined]]);
});

test("/metrics: the file store is always current, at its revision; no leading without etcd", async () => {
  const store = SignalStore.inMemory();
  const handler = createHandler({ store, version: "1.2.3", runtime: "test 1", stateHealth: () => store.health() });
  await store.claim("load", "PAUSE", "high");
  await store.flush({ always: true });
  const m = samples(await (await handler(new Request("http://x/metrics"))).text());
  assert.equal(m.get('chaos_signal_store_current{store="file"}'), "1");
  assert.equal(m.get('chaos_signal_store_revision{store="file"}'), store.revision);
  assert.ok(Number(store.revision) > 0, `revision ${store.revision}`);
  assert.ok(![...m.keys()].some((key) => key.startsWith("chaos_signal_store_leading")));
  // In memory only (no stateHealth): no store families at all.
  const memory = samples(await (await createHandler({ store, version: "1", runtime: "t" })(new Request("http://x/metrics"))).text());
  assert.ok(![...memory.keys()].some((key) => key.startsWith("chaos_signal_store_")));
});
