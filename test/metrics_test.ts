// GET /metrics, /healthz and /readyz in-process (the e2e test has the real Prometheus scrape them).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Arbiter, createHandler, PluginHost, prometheusSource } from "../mod.ts";
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
  const arbiter = new Arbiter();
  const handler = createHandler({ arbiter, version: "1.2.3", runtime: "test 1" });
  const call = (method: string, path: string) => handler(new Request(`http://x${path}`, { method }));
  await call("POST", "/PAUSE");
  arbiter.claim("load", "STOP", "load 9");
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
  const arbiter = new Arbiter();
  const host = new PluginHost(arbiter, [
    prometheusSource({ name: "load", url: fake.url, query: "up", pause_above: 4, resume_below: 3, stop_above: 8, interval: "50ms" }),
  ]);
  const handler = createHandler({ arbiter, version: "t", plugins: host });
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

test("/healthz always answers; /readyz waits for every source's first observation", async () => {
  const { plugin: slow, release } = gatedSource("slow");
  const arbiter = new Arbiter();
  const host = new PluginHost(arbiter, [slow]);
  const handler = createHandler({ arbiter, version: "t", plugins: host });
  host.start();
  try {
    assert.equal(await (await handler(new Request("http://x/healthz"))).text(), "ok\n");
    const waiting = await handler(new Request("http://x/readyz"));
    assert.equal(waiting.status, 503);
    assert.equal(await waiting.text(), "not ready: waiting for the first observation of slow\n");
    release();
    await waitFor(() => host.ready, "ready");
    const ready = await handler(new Request("http://x/readyz"));
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), "ready\n");
  } finally {
    await host.stop();
  }
});
