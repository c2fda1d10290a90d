// Config layers: Krkn's config.yaml, chaos-signal's own keys, env and flags, and their error lines.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_SETTINGS, loadConfigFile, mergeSettings, settingsFromConfig, settingsFromEnv, ValidationError } from "../mod.ts";
import { readFlags, settingsFromFlags } from "../src/config/flags.ts";
import { nestedDeeperThan } from "../src/util/json_text.ts";
import { redactUrlCredentials, showValue } from "../src/config/validation.ts";
import { fixture, tempFile } from "./helpers/files.ts";

const parseFlags = (argv: string[]) => settingsFromFlags(readFlags(argv));

/** The one-line message a bad layer throws. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${error}`);
    return error.message;
  }
  assert.fail("expected an error");
}

async function asyncErrorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${error}`);
    return error.message;
  }
  assert.fail("expected an error");
}

test("defaults are Krkn's: 0.0.0.0:8081, RUN", () => {
  assert.deepEqual(mergeSettings(), { port: 8081, address: "0.0.0.0", state: "RUN", maxBodyBytes: 65536, stateFile: ".chaos-signal/state.json", onUnreadableState: "pause", sources: [], relays: [], auth: { tokens: [], protectReads: false }, allowedOrigins: [], idleTimeoutMs: 30_000, pluginModules: [], store: "file", etcdEndpoints: [], etcdPrefix: "/chaos-signal/default", maxStalenessMs: 3000 });
  assert.deepEqual(mergeSettings(), DEFAULT_SETTINGS);
});

test("Krkn's own config.yaml is read unchanged: port, signal_address, signal_state; the rest ignored", async () => {
  const layer = await loadConfigFile(fixture("krkn_config.yaml"));
  assert.deepEqual(layer, { port: 8082, address: "127.0.0.1", state: "PAUSE" });
});

test("chaos-signal's own file: the kraken keys plus a chaos_signal section", async () => {
  const layer = await loadConfigFile(fixture("chaos_signal.yaml"));
  assert.deepEqual(layer, { port: 9090, address: "::1", state: "STOP", maxBodyBytes: 1024 });
});

test("an empty file, an empty kraken section, and a numeric string port are fine", () => {
  assert.deepEqual(settingsFromConfig(null, "f"), {});
  assert.deepEqual(settingsFromConfig({ kraken: null }, "f"), {});
  assert.deepEqual(settingsFromConfig({ kraken: { port: "8083" } }, "f"), { port: 8083 });
  assert.deepEqual(settingsFromConfig({ kraken: { signal_address: "[::1]" } }, "f"), { address: "::1" });
  assert.deepEqual(settingsFromConfig({ chaos_signal: { idle_timeout: "90s" } }, "f"), { idleTimeoutMs: 90_000 });
  assert.deepEqual(settingsFromConfig({ chaos_signal: { idle_timeout: 5 } }, "f"), { idleTimeoutMs: 5000 });
});

test("invalid config values name the file, the key, the value and what is allowed", () => {
  const cases: [unknown, string][] = [
    [{ kraken: { port: 70000 } }, "c.yaml: kraken.port: got 70000; allowed: an integer from 0 to 65535 (0 picks a free port)"],
    [{ kraken: { port: "http" } }, 'c.yaml: kraken.port: got "http"; allowed: an integer from 0 to 65535 (0 picks a free port)'],
    [{ kraken: { port: 80.5 } }, "c.yaml: kraken.port: got 80.5; allowed: an integer from 0 to 65535 (0 picks a free port)"],
    [{ kraken: { signal_state: "GO" } }, 'c.yaml: kraken.signal_state: got "GO"; allowed: one of RUN, PAUSE, STOP in capitals: Krkn reads the same key and compares the exact words'],
    [{ kraken: { signal_state: "pause" } }, 'c.yaml: kraken.signal_state: got "pause"; allowed: one of RUN, PAUSE, STOP in capitals: Krkn reads the same key and compares the exact words'],
    [{ kraken: { signal_address: "not an address!" } }, 'c.yaml: kraken.signal_address: got "not an address!"; allowed: an IPv4 or IPv6 address or a host name, such as 0.0.0.0, 127.0.0.1, :: or localhost'],
    [{ chaos_signal: { colour: "red" } }, "c.yaml: chaos_signal.colour: unknown key; allowed keys: max_body_bytes, state_file, on_unreadable_state, sources, relays, auth, allowed_origins, idle_timeout, store, plugins"],
    [{ chaos_signal: { idle_timeout: "500ms" } }, 'c.yaml: chaos_signal.idle_timeout: got "500ms"; allowed: a duration from 1s to 4m15s, such as 500ms, 15s, 1m30s or 2h'],
    [{ chaos_signal: { idle_timeout: 300 } }, "c.yaml: chaos_signal.idle_timeout: got 300; allowed: a duration from 1s to 4m15s, such as 500ms, 15s, 1m30s or 2h"],
    [{ chaos_signal: { max_body_bytes: -1 } }, "c.yaml: chaos_signal.max_body_bytes: got -1; allowed: an integer number of bytes from 0 to 16777216"],
    [{ chaos_signal: { plugins: "./tcp.ts" } }, 'c.yaml: chaos_signal.plugins: got "./tcp.ts"; allowed: a list of modules to import plugins from'],
    [{ chaos_signal: { plugins: [""] } }, 'c.yaml: chaos_signal.plugins[0]: got ""; allowed: a module to import plugins from: a path relative to the config file (./plugins/tcp.ts) or a package (npm:name)'],
    [{ kraken: "yes" }, `c.yaml: kraken: got "yes"; allowed: a mapping (Krkn's kraken: section)`],
    [["a"], 'c.yaml: (top level): got ["a"]; allowed: a YAML mapping with a kraken: and/or chaos_signal: section'],
  ];
  for (const [document, message] of cases) {
    assert.equal(errorOf(() => settingsFromConfig(document, "c.yaml")), message);
  }
});

test("chaos_signal.plugins: module paths are relative to the config file's directory", () => {
  const layer = settingsFromConfig({ chaos_signal: { plugins: ["./plugins/tcp.ts", "npm:some-package"] } }, "/etc/chaos/config.yaml");
  assert.deepEqual(layer.pluginModules, [
    { specifier: "./plugins/tcp.ts", where: "/etc/chaos/config.yaml: chaos_signal.plugins[0]", baseDir: "/etc/chaos" },
    { specifier: "npm:some-package", where: "/etc/chaos/config.yaml: chaos_signal.plugins[1]", baseDir: "/etc/chaos" },
  ]);
});

test("an unreadable file and invalid YAML are one-line errors naming the file", async () => {
  assert.match(await asyncErrorOf(loadConfigFile("/nonexistent/config.yaml")), /^\/nonexistent\/config\.yaml: cannot read the config file \(ENOENT\)$/);
  const broken = tempFile("kraken:\n  port: [8081\n");
  const message = await asyncErrorOf(loadConfigFile(broken));
  assert.ok(message.startsWith(`${broken}: not valid YAML: `), message);
  assert.ok(!message.includes("\n"));
});

test("environment variables are read, validated and named; empty ones are unset", () => {
  assert.deepEqual(
    settingsFromEnv({ CHAOS_SIGNAL_PORT: "9000", CHAOS_SIGNAL_ADDRESS: "127.0.0.1", CHAOS_SIGNAL_STATE: "pause", OTHER: "x" }),
    { port: 9000, address: "127.0.0.1", state: "PAUSE" },
  );
  assert.deepEqual(settingsFromEnv({ CHAOS_SIGNAL_PORT: "" }), {});
  assert.equal(
    errorOf(() => settingsFromEnv({ CHAOS_SIGNAL_STATE: "halt" })),
    'CHAOS_SIGNAL_STATE: got "halt"; allowed: one of RUN, PAUSE, STOP (any letter case)',
  );
});

test("flags are read, validated and named", () => {
  const flags = readFlags(["--port", "0", "-a", "::1", "--state=stop", "--config", "x.yaml"]);
  assert.deepEqual(settingsFromFlags(flags), { port: 0, address: "::1", state: "STOP" });
  assert.equal(flags.configFile, "x.yaml");
  const portRule = "an integer from 0 to 65535 (0 picks a free port)";
  assert.equal(errorOf(() => parseFlags(["--port"])), `--port: needs a value; allowed: ${portRule}`);
  assert.equal(errorOf(() => parseFlags(["-p"])), `--port: needs a value; allowed: ${portRule}`);
  assert.equal(
    errorOf(() => parseFlags(["--port", "-5"])),
    `--port: needs a value; allowed: ${portRule} (for a value that starts with "-", write --port=VALUE)`,
  );
  assert.equal(errorOf(() => parseFlags(["--port=-5"])), `--port: got "-5"; allowed: ${portRule}`);
  assert.equal(errorOf(() => parseFlags(["--port", "99999"])), `--port: got "99999"; allowed: ${portRule}`);
  assert.equal(errorOf(() => parseFlags(["--help=x"])), "--help: takes no value (see --help)");
  assert.equal(errorOf(() => parseFlags(["--config="])), "--config: needs a file path (see --help)");
  assert.match(errorOf(() => parseFlags(["--colour", "red"])), /^--colour: unknown flag; allowed flags: --config, --port, --address, --state, --state-file, --allowed-origins, --store, --etcd-endpoints, --etcd-prefix, --etcd-ca-file, --etcd-cert-file, --etcd-key-file, --check-config, --help, --version/);
  assert.match(errorOf(() => parseFlags(["serve"])), /^serve: unexpected argument/);
});

test("allowed_origins: a list in the file, comma-separated in env and flags; each one an origin without path", () => {
  const rule = "an origin: http:// or https://, a host and an optional :port, no path (not even /), such as https://ops.example or http://localhost:3000";
  assert.deepEqual(
    settingsFromConfig({ chaos_signal: { allowed_origins: ["https://Ops.Example:443", "http://localhost:3000", "http://[::1]:8080"] } }, "c.yaml"),
    { allowedOrigins: ["https://ops.example", "http://localhost:3000", "http://[::1]:8080"] },
  );
  assert.deepEqual(settingsFromEnv({ CHAOS_SIGNAL_ALLOWED_ORIGINS: " https://a.example, http://b.example:81 ," }), { allowedOrigins: ["https://a.example", "http://b.example:81"] });
  assert.deepEqual(settingsFromFlags(readFlags(["--allowed-origins", "https://a.example"])), { allowedOrigins: ["https://a.example"] });
  const cases: [unknown, string][] = [
    ["https://ops.example", `c.yaml: chaos_signal.allowed_origins: got "https://ops.example"; allowed: a list of origins, such as [https://ops.example]`],
    [["https://ops.example/"], `c.yaml: chaos_signal.allowed_origins[0]: got "https://ops.example/"; allowed: ${rule}`],
    [["https://a.example", "https://ops.example/ui"], `c.yaml: chaos_signal.allowed_origins[1]: got "https://ops.example/ui"; allowed: ${rule}`],
    [["ops.example"], `c.yaml: chaos_signal.allowed_origins[0]: got "ops.example"; allowed: ${rule}`],
    [["null"], `c.yaml: chaos_signal.allowed_origins[0]: got "null"; allowed: ${rule}`],
    [["ftp://ops.example"], `c.yaml: chaos_signal.allowed_origins[0]: got "ftp://ops.example"; allowed: ${rule}`],
    [["https://user:pw@ops.example"], `c.yaml: chaos_signal.allowed_origins[0]: got "https://user:***@ops.example"; allowed: ${rule}`],
    [["http://ops.example:99999"], `c.yaml: chaos_signal.allowed_origins[0]: got "http://ops.example:99999"; allowed: ${rule}`],
  ];
  for (const [value, message] of cases) {
    assert.equal(errorOf(() => settingsFromConfig({ chaos_signal: { allowed_origins: value } }, "c.yaml")), message);
  }
  assert.equal(errorOf(() => parseFlags(["--allowed-origins", "https://a.example,*"])), `--allowed-origins: got "*"; allowed: ${rule}`);
});

test("precedence: flags over env over file over defaults", () => {
  const file = { port: 1, address: "10.0.0.1", state: "PAUSE" as const };
  const env = settingsFromEnv({ CHAOS_SIGNAL_PORT: "2", CHAOS_SIGNAL_STATE: "STOP" });
  const flags = parseFlags(["--port", "3"]);
  assert.deepEqual(mergeSettings(file, env, flags), { port: 3, address: "10.0.0.1", state: "STOP", maxBodyBytes: 65536, stateFile: ".chaos-signal/state.json", onUnreadableState: "pause", sources: [], relays: [], auth: { tokens: [], protectReads: false }, allowedOrigins: [], idleTimeoutMs: 30_000, pluginModules: [], store: "file", etcdEndpoints: [], etcdPrefix: "/chaos-signal/default", maxStalenessMs: 3000 });
});

test("secret-looking values never appear in config errors, however deep", async () => {
  const { prometheusSource } = await import("../mod.ts");
  const base = { name: "load", url: "http://127.0.0.1:9090", query: "up", pause_above: 4 };
  for (const change of [
    { bearer_token: "t0ken-value", basic_auth: { username: "admin", password: "hunter2-secret" } },
    { headers: { Authorization: 123456789 } },
  ]) {
    assert.throws(() => prometheusSource({ ...base, ...change } as never), (error: Error) => {
      assert.doesNotMatch(error.message, /hunter2|123456789/);
      assert.match(error.message, /\(hidden\)/);
      return true;
    });
  }
});

test("error lines mask URL credentials and survive values too deep to show", () => {
  assert.equal(redactUrlCredentials('got "http://user:pa55@host:1/x" and https://tok@h/'), 'got "http://user:***@host:1/x" and https://***@h/');
  assert.equal(redactUrlCredentials("user@example.com, http://host/a@b"), "user@example.com, http://host/a@b");
  // Masked before the line is cut short: the cut never leaves half a password.
  assert.equal(showValue(`${"x".repeat(60)} http://u:${"s".repeat(40)}@h/`), `"${"x".repeat(60)} http://u:***@h/"`);
  let deep: unknown = 1;
  for (let i = 0; i < 50_000; i++) deep = [deep];
  // Bun cannot stringify it (nor String() it); Deno can. Either way: one short line, no throw.
  assert.match(showValue(deep), /^(\(a list too deep to show\)|\[{77}\.\.\.)$/);
});

test("JSON nesting is measured on the raw text; brackets inside strings do not count", () => {
  assert.equal(nestedDeeperThan('{"a": [[1]]}', 3), false);
  assert.equal(nestedDeeperThan('{"a": [[[1]]]}', 3), true);
  assert.equal(nestedDeeperThan('{"a": "[[[[\\"[[["}', 1), false);
});

test("store: file by default; etcd from the file (store:), env (CHAOS_SIGNAL_STORE, CHAOS_SIGNAL_ETCD_ENDPOINTS) and flags; errors name the key, URLs redacted", () => {
  assert.equal(mergeSettings().store, "file");
  assert.deepEqual(
    settingsFromConfig({ chaos_signal: { store: { type: "etcd", endpoints: ["http://10.0.0.11:2379"], prefix: "/cs/a", max_staleness: "2s", username: "cs", password: "pw" } } }, "c.yaml"),
    { store: "etcd", etcdEndpoints: ["http://10.0.0.11:2379"], etcdPrefix: "/cs/a", maxStalenessMs: 2000, etcdUsername: "cs", etcdPassword: "pw" },
  );
  assert.deepEqual(settingsFromEnv({ CHAOS_SIGNAL_STORE: "ETCD", CHAOS_SIGNAL_ETCD_ENDPOINTS: "http://a:1, http://b:2" }), { store: "etcd", etcdEndpoints: ["http://a:1", "http://b:2"] });
  assert.deepEqual(parseFlags(["--store", "etcd", "--etcd-endpoints", "http://a:1,http://b:2"]), { store: "etcd", etcdEndpoints: ["http://a:1", "http://b:2"] });
  assert.match(errorOf(() => parseFlags(["--store", "zookeeper"])), /^--store: got "zookeeper"; allowed: file .* or etcd/);
  const leaked = errorOf(() => settingsFromConfig({ chaos_signal: { store: { type: "etcd", endpoints: ["http://u:secret@a:1"] } } }, "c.yaml"));
  assert.match(leaked, /^c\.yaml: chaos_signal\.store\.endpoints\[0\]: got "http:\/\/u:\*\*\*@a:1"; allowed: etcd client URLs/);
  assert.doesNotMatch(leaked, /secret/);
  assert.match(errorOf(() => settingsFromConfig({ chaos_signal: { store: { tpye: "etcd" } } }, "c.yaml")), /^c\.yaml: chaos_signal\.store\.tpye: unknown key; did you mean "type"\? allowed keys: type, endpoints/);
  assert.match(errorOf(() => settingsFromConfig({ chaos_signal: { store: { max_staleness: "1h" } } }, "c.yaml")), /^c\.yaml: chaos_signal\.store\.max_staleness: got "1h"; allowed: a duration/);
});
