// Small frictions a new user meets (issue 12, item 10): misspelt keys and sections, YAML errors,
// token variables, the endpoint list, log lines that say too little or too much.
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import { join } from "node:path";
import { createHandler, createServer, loadConfigFile, type Plugin, PluginHost, prometheusSource, relay, settingsFromConfig, SignalStore, ValidationError } from "../mod.ts";
import { closestKey } from "../src/config/validation.ts";
import { describeEvent } from "../src/util/log.ts";
import { RepeatedFailures } from "../src/util/repeated_failures.ts";
import { tempDir, tempFile } from "./helpers/files.ts";
import { startKrknServer } from "./helpers/krkn_server.ts";
import { freePort } from "./helpers/prometheus.ts";
import { waitFor } from "./helpers/wait.ts";

/** The one-line message `fn` throws. */
async function errorOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${error}`);
    assert.ok(!error.message.includes("\n"), "one line");
    return error.message;
  }
  assert.fail("expected an error");
}

test("a near miss of chaos_signal at the top level stops the start, naming the key; Krkn's other sections stay allowed", async () => {
  for (const key of ["chaos-signal", "chaosSignal", "chaos_signals", "Chaos_Signal", "chaos_sginal"]) {
    assert.equal(
      await errorOf(() => settingsFromConfig({ [key]: { state_file: "none" } }, "c.yaml")),
      `c.yaml: ${key}: unknown top-level key; did you mean "chaos_signal"? (other top-level keys are Krkn's and ignored)`,
    );
  }
  const krkn = { kraken: { port: 8081 }, cerberus: {}, performance_monitoring: {}, tunings: {}, telemetry: {}, health_checks: {}, elastic: {} };
  assert.deepEqual(settingsFromConfig(krkn, "c.yaml"), { port: 8081 });
  // Through the file, as a user meets it.
  const file = tempFile("kraken:\n  port: 8081\nchaos-signal:\n  state_file: none\n");
  assert.match(await errorOf(() => loadConfigFile(file)), /: chaos-signal: unknown top-level key; did you mean "chaos_signal"\?/);
});

test("a misspelt key names the unknown key and the one meant, in every strict section", async () => {
  const cases: [() => unknown, string][] = [
    [() => settingsFromConfig({ chaos_signal: { stat_file: "none" } }, "c.yaml"), 'c.yaml: chaos_signal.stat_file: unknown key; did you mean "state_file"? allowed keys: '],
    [() => settingsFromConfig({ chaos_signal: { store: { endpoint: ["http://a:1"] } } }, "c.yaml"), 'c.yaml: chaos_signal.store.endpoint: unknown key; did you mean "endpoints"? allowed keys: '],
    [() => settingsFromConfig({ chaos_signal: { auth: { protectReads: true, tokens: [{ name: "ops", token: { value: "0123456789" } }] } } }, "c.yaml"), 'c.yaml: chaos_signal.auth.protectReads: unknown key; did you mean "protect_reads"? allowed keys: '],
    [() => prometheusSource({ name: "load", url: "http://127.0.0.1:9", query: "up", pause_abve: 4 } as never), 'prometheus "load": pause_abve: unknown key; did you mean "pause_above"? allowed keys: '],
    [() => relay({ name: "krkn", target: ["http://127.0.0.1:9"] } as never), 'relay "krkn": target: unknown key; did you mean "targets"? allowed keys: '],
    [() => relay({ name: "krkn", targets: ["http://127.0.0.1:9"], intervall: "5s" } as never), 'relay "krkn": intervall: unknown key; did you mean "interval"? allowed keys: '],
  ];
  for (const [fn, start] of cases) {
    const message = await errorOf(fn);
    assert.ok(message.startsWith(start), message);
  }
  // Nothing close: the list only.
  assert.match(await errorOf(() => settingsFromConfig({ chaos_signal: { colour: "red" } }, "c.yaml")), /chaos_signal\.colour: unknown key; allowed keys: max_body_bytes/);
});

test("closestKey: case, dashes and camelCase, a few edits at most; nothing for unrelated words, and bounded for huge ones", () => {
  const keys = ["pause_above", "resume_below", "interval", "for", "type"];
  assert.equal(closestKey("pause_abve", keys), "pause_above");
  assert.equal(closestKey("pauseAbove", keys), "pause_above");
  assert.equal(closestKey("PAUSE-ABOVE", keys), "pause_above");
  assert.equal(closestKey("tpye", keys), "type");
  assert.equal(closestKey("intervals", keys), "interval");
  assert.equal(closestKey("forever", keys), undefined);
  assert.equal(closestKey("colour", keys), undefined);
  assert.equal(closestKey("x".repeat(1_000_000), keys), undefined);
});

test("a YAML error is one line naming the file and the place, with no dangling colon", async () => {
  for (const text of ["kraken:\n  port: [8081\n", "a: b: c\n", "kraken:\n  port: 1\n port: 2\n"]) {
    const file = tempFile(text);
    const message = await errorOf(() => loadConfigFile(file));
    assert.ok(message.startsWith(`${file}: not valid YAML: `), message);
    assert.match(message, /at line \d+, column \d+$/);
  }
});

test("an unset or short token variable names the variable and the minimum length", async () => {
  const name = "CHAOS_SIGNAL_TEST_FRICTION_TOKEN";
  const config = { chaos_signal: { auth: { tokens: [{ name: "ops", token: { env: name } }] } } };
  const label = "c.yaml: chaos_signal.auth.tokens[0].token: got (hidden); allowed: a token of 8 or more characters in the environment variable";
  delete process.env[name];
  assert.equal(await errorOf(() => settingsFromConfig(config, "c.yaml")), `${label} ${name}, which is unset`);
  try {
    process.env[name] = "short";
    const message = await errorOf(() => settingsFromConfig(config, "c.yaml"));
    assert.equal(message, `${label} ${name}, which is shorter`);
    assert.ok(!message.includes("short,") && !message.includes("5"), "neither the token nor its length");
    process.env[name] = "  ";
    assert.equal(await errorOf(() => settingsFromConfig(config, "c.yaml")), `${label} ${name}, which is empty`);
  } finally {
    delete process.env[name];
  }
  const empty = tempFile("\n", "token");
  assert.equal(
    await errorOf(() => settingsFromConfig({ chaos_signal: { auth: { tokens: [{ name: "ops", token: { file: empty } }] } } }, "c.yaml")),
    `c.yaml: chaos_signal.auth.tokens[0].token: got (hidden); allowed: a token of 8 or more characters in the file ${empty}, which is empty`,
  );
});

test("404 and 405 list every endpoint, each of which answers its method", async () => {
  const echo: Plugin = { name: "echo", kind: "test", fetch: () => new Response("ok") };
  const store = SignalStore.inMemory();
  const handler = createHandler({ store, version: "t", plugins: new PluginHost(store, [echo]) });
  const missing = await handler(new Request("http://x/nope"));
  assert.equal(missing.status, 404);
  const listed = (await missing.text()).trim().replace(/^.*; endpoints: /, "").split(", ");
  for (const path of ["/", "/RUN", "/PAUSE", "/STOP", "/status", "/events", "/metrics", "/history", "/healthz", "/readyz", "/ui", "/hooks/echo"]) {
    assert.ok(listed.some((entry) => entry.split(" ")[1] === path), `${path} is listed in ${listed.join(", ")}`);
  }
  const abort = new AbortController();
  for (const entry of listed) {
    const [method, path] = entry.split(" ") as [string, string];
    if (path.includes("/:")) continue; // a template (GET /status/:section/:name): its own tests ask it
    const response = await handler(new Request(`http://x${path}`, { method, signal: abort.signal }));
    assert.ok(![404, 405].includes(response.status), `${entry} answers ${response.status}`);
    await response.body?.cancel();
  }
  abort.abort();
  const wrongMethod = await handler(new Request("http://x/ui", { method: "DELETE" }));
  assert.equal(wrongMethod.status, 405);
  assert.equal((await wrongMethod.text()).trim().replace(/^.*; endpoints: /, ""), listed.join(", "));
  handler.close();
});

test("a forced RUN's log lines name who forced it once", async () => {
  const store = SignalStore.inMemory();
  await store.claim("kill", "PAUSE", "/tmp/kill says PAUSE");
  const lines: string[] = [];
  store.subscribe((event) => lines.push(describeEvent(event)));
  await store.forceRun("POST /RUN?force=true", { actor: "127.0.0.1" });
  assert.ok(lines.length >= 2, lines.join("\n"));
  assert.ok(lines.includes("claim kill RUN (was PAUSE): overridden by POST /RUN?force=true (was PAUSE: /tmp/kill says PAUSE) from 127.0.0.1"), lines.join("\n"));
  for (const line of lines) assert.equal(line.split("127.0.0.1").length, 2, `the actor once: ${line}`);
});

test("the restored-signal line at start names the claim that holds it, or the latch and what closed it", async () => {
  const restart = async (stateFile: string, before: (server: Awaited<ReturnType<typeof createServer>>) => Promise<unknown>) => {
    const first = await createServer({ settings: { stateFile } });
    await before(first);
    await first.close();
    const lines: string[] = [];
    const second = await createServer({ settings: { stateFile }, log: { info: (line) => lines.push(line), error: (line) => lines.push(line) } });
    await second.close();
    return lines.find((line) => line.startsWith("restored ")) ?? lines.join("\n");
  };
  const manual = await restart(join(tempDir(), "state.json"), (server) => server.claim("manual", "STOP", "POST /STOP", { actor: "ops@127.0.0.1" }));
  assert.match(manual, /^restored STOP from \S+state\.json \(saved [^)]+\): held by manual \(POST \/STOP from ops@127\.0\.0\.1\)$/);
  const latched = await restart(join(tempDir(), "state.json"), async (server) => {
    await server.claim("kill", "STOP", "/tmp/kill says STOP");
    await server.release("kill", "/tmp/kill is empty");
  });
  assert.match(latched, /^restored STOP from .*: held by the STOP latch, closed by kill \(\/tmp\/kill says STOP\) at \S+Z, until a POST \/RUN$/);
});

test("a plain POST /RUN that a source outvotes says, in a header, what holds the signal and how to force RUN", async () => {
  const store = SignalStore.inMemory();
  const handler = createHandler({ store, version: "t" });
  const post = (path: string) => handler(new Request(`http://x${path}`, { method: "POST" }), { remoteAddress: "127.0.0.1" });
  const free = await post("/RUN");
  assert.equal(await free.text(), "RUN");
  assert.equal(free.headers.get("chaos-signal-reason"), null, "nothing to explain");
  await store.claim("kill", "PAUSE", "/tmp/kill says PAUSE \u2014 maintenance");
  const held = await post("/RUN");
  assert.equal(await held.text(), "PAUSE", "the body stays the signal alone: scripts and relays read it");
  assert.equal(
    held.headers.get("chaos-signal-reason"),
    "PAUSE held by kill (/tmp/kill says PAUSE ? maintenance); a plain POST /RUN does not outvote a source: POST /RUN?force=true sets every source's claim to RUN once and opens the STOP latch, until each source claims again on its next observation",
  );
  await store.claim("alerts", "STOP", "critical alert");
  const stopped = await post("/PAUSE");
  assert.equal(await stopped.text(), "STOP");
  assert.equal(stopped.headers.get("chaos-signal-reason"), "STOP held by alerts (critical alert)", "no force hint but for RUN");
  const forced = await post("/RUN?force=true");
  assert.equal(await forced.text(), "RUN");
  assert.equal(forced.headers.get("chaos-signal-reason"), null);
});

test("repeated failures: each problem logged at once, then once a minute with a count, several problems apart", () => {
  const repeats = new RepeatedFailures(60_000);
  const logged: string[] = [];
  for (let second = 0; second <= 61; second++) {
    for (const message of ["a: refused", "b: timed out"]) {
      const line = repeats.line(message, second * 1000);
      if (line !== undefined) logged.push(line);
    }
  }
  assert.deepEqual(logged, [
    "a: refused",
    "b: timed out",
    "a: refused (59 more times since it was last logged)",
    "b: timed out (59 more times since it was last logged)",
  ]);
});

test("a relay target that keeps failing is logged once, not on every retry, while another target works", async () => {
  const krkn = await startKrknServer();
  const down = `http://127.0.0.1:${await freePort()}`;
  const lines: string[] = [];
  const store = SignalStore.inMemory();
  const host = new PluginHost(store, [
    relay({ name: "krkn", targets: [krkn.url, down], interval: "100ms", timeout: "500ms", max_backoff: "200ms", refused_retry: "100ms" }),
  ], { log: (line) => lines.push(line) });
  host.start();
  try {
    // The target that is down is the one listed as not in sync.
    const failures = () => (host.statuses()[0]?.last_observation?.unsynced as { failures: number }[] | undefined)?.[0]?.failures ?? 0;
    await waitFor(() => failures() >= 8, "eight failed attempts on the target that is down", 10_000);
    await store.claim("manual", "PAUSE", "a change while it is down");
    await waitFor(async () => (await krkn.state()) === "PAUSE", "the working target to follow");
    await new Promise((resolve) => setTimeout(resolve, 500));
    const warnings = lines.filter((line) => line.includes("warning"));
    assert.ok(warnings.length >= 1 && warnings.length <= 2, `one line per problem (GET /, then POST /PAUSE), not one per retry:\n${warnings.join("\n")}`);
    for (const line of warnings) assert.match(line, new RegExp(`^relay "krkn": warning: ${down.replaceAll(".", "\\.")}: `));
    assert.ok(host.statuses()[0]!.warnings >= 8, "/status still counts every one");
  } finally {
    await host.stop();
    await krkn.stop();
  }
});
