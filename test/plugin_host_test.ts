// The plugin host: contexts, health, restarts, hooks, shutdown; and sources built from config.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as v from "valibot";
import {
  SignalStore,
  type ChangeEvent,
  createHandler,
  definePlugin,
  type Plugin,
  PluginHost,
  PluginNameSchema,
  settingsFromConfig,
  sourcesFromConfig,
  ValidationError,
} from "../mod.ts";
import { gatedSource } from "./helpers/gated_source.ts";
import { waitFor } from "./helpers/wait.ts";

test("a source that fails is reported and restarted with growing delays", async () => {
  let runs = 0;
  const flaky: Plugin = {
    name: "flaky",
    kind: "test",
    async run(context) {
      runs += 1;
      context.observe({ run: runs });
      if (runs < 3) throw new Error(`crash ${runs}`);
      context.claim("PAUSE", "third time lucky");
      await new Promise((resolve) => context.abort.addEventListener("abort", resolve, { once: true }));
    },
  };
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [flaky], { restartDelayMs: 20, maxRestartDelayMs: 40 });
  host.start();
  try {
    await waitFor(() => arbiter.signal === "PAUSE", "the third run to claim");
    const status = host.statuses()[0]!;
    assert.equal(status.restarts, 2);
    assert.equal(status.warnings, 2);
    assert.match(status.last_warning!.message, /^source failed, restarting in 40 ms: crash 2$/);
    assert.equal(status.health, "ok", "healthy again after its next observation");
  } finally {
    await host.stop();
  }
});

test("a run() that returns before shutdown counts as a failure", async () => {
  const quitter: Plugin = { name: "quitter", kind: "test", async run() {} };
  const host = new PluginHost(SignalStore.inMemory(), [quitter], { restartDelayMs: 10_000 });
  host.start();
  try {
    await waitFor(() => host.statuses()[0]!.health === "failed", "failed health");
    assert.match(host.statuses()[0]!.last_warning!.message, /run\(\) returned before shutdown/);
  } finally {
    await host.stop();
  }
});

test("hooks hear every change of the effective signal; a throwing hook is a warning", async () => {
  const heard: string[] = [];
  const hook: Plugin = {
    name: "relay",
    kind: "test",
    onChange: (event: ChangeEvent) => heard.push(`${event.previous}->${event.signal}`),
  };
  const broken: Plugin = {
    name: "broken",
    kind: "test",
    onChange: () => {
      throw new Error("target down");
    },
  };
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [hook, broken]);
  host.start();
  await arbiter.claim("manual", "PAUSE", "x");
  await arbiter.claim("manual", "PAUSE", "again"); // no change, no event
  await arbiter.claim("manual", "RUN", "y");
  await host.stop();
  await arbiter.claim("manual", "STOP", "after stop");
  assert.deepEqual(heard, ["RUN->PAUSE", "PAUSE->RUN"]);
  assert.equal(host.statuses().find((s) => s.name === "broken")!.warnings, 2);
});

test("plugin names must be unique", () => {
  const plugin: Plugin = { name: "same", kind: "test" };
  assert.throws(() => new PluginHost(SignalStore.inMemory(), [plugin, { ...plugin }]), /two plugins are named "same"/);
});

test("ready once every source has observed once", async () => {
  const { plugin: slow, release } = gatedSource("slow");
  const host = new PluginHost(SignalStore.inMemory(), [slow, { name: "hook", kind: "test", onChange() {} }]);
  host.start();
  try {
    assert.equal(host.ready, false);
    assert.equal(host.statuses()[0]!.health, "starting");
    release();
    await waitFor(() => host.ready, "ready");
  } finally {
    await host.stop();
  }
});

test("definePlugin: options are validated at construction, errors name the plugin and where it was configured", () => {
  const echo = definePlugin("echo", v.strictObject({ name: PluginNameSchema, times: v.number("a number") }), (options) => ({
    name: options.name,
    kind: "echo",
  }));
  assert.equal(echo({ name: "e", times: 2 }).name, "e");
  assert.throws(() => echo({ name: "e", times: "2" as never }), new ValidationError('echo "e": times: got "2"; allowed: a number'));
  assert.throws(
    () => echo({ name: "Bad Name", times: 1 }, "c.yaml: chaos_signal.sources[0]"),
    new ValidationError('c.yaml: chaos_signal.sources[0] (echo "Bad Name"): name: got "Bad Name"; allowed: a name of lower-case letters, digits, - and _ (up to 63)'),
  );
  assert.throws(() => echo({ name: "manual", times: 1 }), /name: got "manual"; allowed: any name but manual and stop_latch/);
});

test("sources from a config file: types, options and names are checked with the entry named", () => {
  const settings = (sources: unknown[]) => settingsFromConfig({ chaos_signal: { sources } }, "c.yaml").sources!;
  const plugins = sourcesFromConfig(settings([
    { type: "file", name: "switch", path: "/tmp/x" },
    { type: "webhook", name: "ci" },
    { type: "alertmanager", name: "alerts" },
    { type: "prometheus", name: "load", url: "http://127.0.0.1:9090", query: "up", pause_above: 1 },
  ]));
  assert.deepEqual(plugins.map((p) => `${p.kind}:${p.name}`), ["file:switch", "webhook:ci", "alertmanager:alerts", "prometheus:load"]);
  const cases: [unknown[], string][] = [
    [[{ type: "kafka", name: "k" }], 'c.yaml: chaos_signal.sources[0].type: got "kafka"; allowed: one of file, webhook, alertmanager, prometheus'],
    [[{ name: "k" }], "c.yaml: chaos_signal.sources[0].type: missing; it is required"],
    [
      [{ type: "webhook", name: "ci" }, { type: "file", name: "ci", path: "/x" }],
      'c.yaml: chaos_signal.sources[1].name: got "ci"; allowed: a name no other plugin has (c.yaml: chaos_signal.sources[0] has it)',
    ],
    [
      [{ type: "prometheus", name: "load", url: "http://p:9090", query: "up", pause_above: "high" }],
      'c.yaml: chaos_signal.sources[0] (prometheus "load"): pause_above: got "high"; allowed: a number',
    ],
  ];
  for (const [sources, message] of cases) {
    assert.throws(() => sourcesFromConfig(settings(sources)), (error: Error) => {
      assert.ok(error instanceof ValidationError, String(error));
      assert.equal(error.message, message);
      return true;
    });
  }
});

test("/hooks/<name> routes to the plugin; unknown hooks get 404 listing the hook endpoints", async () => {
  const echo: Plugin = {
    name: "echo",
    kind: "test",
    fetch: (request, { source, remoteAddress }) => new Response(`${request.method} ${source.name} ${remoteAddress}`),
  };
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [echo]);
  const handler = createHandler({ store: arbiter, version: "t", plugins: host });
  const hit = await handler(new Request("http://x/hooks/echo", { method: "POST" }), { remoteAddress: "192.0.2.1" });
  assert.equal(await hit.text(), "POST echo 192.0.2.1");
  const missing = await handler(new Request("http://x/hooks/nope", { method: "POST" }));
  assert.equal(missing.status, 404);
  assert.match(await missing.text(), /; endpoints: GET \/ \(the signal\), POST \/RUN, POST \/PAUSE, POST \/STOP, GET \/status, GET \/status\/:section\/:name \(a plugin's full state in pages: \/status\/relays\/<name>\), GET \/events, GET \/metrics, GET \/history, GET \/healthz, GET \/readyz, GET \/ui, POST \/hooks\/echo\n$/);
  const status = await (await handler(new Request("http://x/status"))).json();
  assert.deepEqual(status.sources.map((s: { name: string; route?: string }) => [s.name, s.route]), [["echo", "/hooks/echo"]]);
});

test("POST /RUN?force=true overrides every automatic claim and the latch, and /status says so", async () => {
  const arbiter = SignalStore.inMemory();
  const handler = createHandler({ store: arbiter, version: "t" });
  await arbiter.claim("load", "PAUSE", "load 5 above 4");
  await arbiter.claim("alerts", "STOP", "critical alert");
  const plain = await handler(new Request("http://x/RUN", { method: "POST" }));
  assert.equal(await plain.text(), "STOP", "a plain RUN does not outvote the sources");
  const forced = await handler(new Request("http://x/RUN?force=true", { method: "POST" }), { remoteAddress: "192.0.2.9" });
  assert.equal(await forced.text(), "RUN");
  const status = await (await handler(new Request("http://x/status"))).json();
  assert.equal(status.signal, "RUN");
  assert.equal(status.stop_latch, null);
  assert.deepEqual(status.last_override.sources, ["load", "alerts"]);
  assert.equal(status.last_override.actor, "192.0.2.9");
  const load = status.claims.find((c: { source: string }) => c.source === "load");
  assert.equal(load.state, "RUN");
  assert.equal(load.reason, "overridden by POST /RUN?force=true (was PAUSE: load 5 above 4)");
  assert.equal(load.actor, "192.0.2.9");
  // The source re-asserts on its next observation.
  await arbiter.claim("load", "PAUSE", "load 5 above 4");
  assert.equal(arbiter.signal, "PAUSE");
  for (const query of ["force=yes", "forse=true"]) {
    const bad = await handler(new Request(`http://x/RUN?${query}`, { method: "POST" }));
    assert.equal(bad.status, 400, query);
  }
  const onPause = await handler(new Request("http://x/PAUSE?force=true", { method: "POST" }));
  assert.equal(onPause.status, 400);
  assert.equal(await onPause.text(), 'query parameter "force" of POST /PAUSE: unknown key; allowed keys: for\n');
});

test("a warning that repeats is counted every time but logged once a minute, with how often it came meanwhile", async () => {
  let clock = Date.parse("2026-01-01T00:00:00Z");
  const lines: string[] = [];
  let warn: ((message: string) => void) | undefined;
  const noisy: Plugin = {
    name: "noisy",
    kind: "test",
    async run(context) {
      warn = (message) => context.warn(message);
      await new Promise((resolve) => context.abort.addEventListener("abort", resolve, { once: true }));
    },
  };
  const host = new PluginHost(SignalStore.inMemory(), [noisy], { log: (line) => lines.push(line), now: () => new Date(clock) });
  host.start();
  try {
    await waitFor(() => warn !== undefined, "the source to start");
    for (let i = 0; i < 5; i++) {
      warn!("the file holds junk");
      clock += 1_000;
    }
    warn!("the file cannot be read");
    warn!("the file cannot be read");
    clock += 60_000;
    warn!("the file cannot be read");
    assert.equal(host.statuses()[0]!.warnings, 8, "/status counts every warning");
    assert.deepEqual(lines.filter((line) => line.includes("warning")), [
      'test "noisy": warning: the file holds junk',
      'test "noisy": warning: the file cannot be read',
      'test "noisy": warning: the file cannot be read (1 more time since it was last logged)',
    ]);
  } finally {
    await host.stop();
  }
});

test("leaderOnly: such a source runs only while lead(true), stops at once on lead(false) with its claim kept, and restarts on the next lead; others always run", async () => {
  let runs = 0;
  let aborts = 0;
  const polling: Plugin = {
    name: "polling",
    kind: "test",
    async run(context) {
      runs += 1;
      context.observe({ run: runs });
      await context.claim("PAUSE", `run ${runs}`);
      await new Promise((resolve) => context.abort.addEventListener("abort", resolve, { once: true }));
      aborts += 1;
    },
  };
  const everywhere: Plugin = {
    name: "everywhere",
    kind: "test",
    async run(context) {
      context.observe({});
      await new Promise((resolve) => context.abort.addEventListener("abort", resolve, { once: true }));
    },
  };
  const store = SignalStore.inMemory();
  const host = new PluginHost(store, [polling, everywhere], { leaderOnly: (plugin) => plugin.name === "polling" });
  host.start();
  try {
    await waitFor(() => host.statuses()[1]!.health === "ok", "the other source to run");
    assert.deepEqual([runs, host.statuses()[0]!.health, host.ready], [0, "standby", true]);
    host.lead(true);
    await waitFor(() => store.signal === "PAUSE" && host.statuses()[0]!.health === "ok", "the leader-only source to run");
    host.lead(false);
    await waitFor(() => aborts === 1, "the leader-only source to stop");
    assert.deepEqual([host.statuses()[0]!.health, store.signal], ["standby", "PAUSE"]);
    host.lead(true);
    await waitFor(() => runs === 2 && host.statuses()[0]!.health === "ok", "the leader-only source to run again");
  } finally {
    await host.stop();
  }
  assert.equal(aborts, 2);
});
