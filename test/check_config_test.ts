// --check-config: flags, env and the config file validated as a start would (plugins and the
// store included), one line, exit 0 or 2; nothing listens and the state is not touched.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir, tempFile } from "./helpers/files.ts";
import { runCli } from "./helpers/server_process.ts";

const GOOD = `kraken:
  port: 8090
chaos_signal:
  sources:
    - type: prometheus
      name: load
      url: http://prometheus.monitoring:9090
      query: max(node_load1)
      pause_above: 4
      resume_below: 3
  relays:
    - name: krkn
      targets: [http://krkn-signal.chaos:8081]
  auth:
    tokens:
      - name: ops
        token: { env: CHECK_CONFIG_TOKEN }
`;

test("--check-config: a good config prints one 'config OK' line, exits 0, listens nowhere and writes no state", async () => {
  const config = tempFile(GOOD);
  const state = join(tempDir(), "data", "state.json");
  const result = await runCli(["--check-config", "--config", config, "--state-file", state], { CHECK_CONFIG_TOKEN: "a-token-of-some-length" });
  assert.equal(result.code, 0, result.output);
  assert.deepEqual(result.output.trim().split("\n"), [
    `config OK: ${config}; listen 0.0.0.0:8090; state file ${state}; sources: load (prometheus); relays: krkn (relay); tokens: 1`,
  ]);
  assert.equal(existsSync(state), false, "the state is not touched");
  // The config file can come from CHAOS_SIGNAL_CONFIG, and the etcd store is checked without connecting.
  const etcd = await runCli(["--check-config", "--store", "etcd", "--etcd-endpoints", "http://etcd-0.etcd:2379,http://etcd-1.etcd:2379"], {
    CHAOS_SIGNAL_CONFIG: config,
    CHECK_CONFIG_TOKEN: "a-token-of-some-length",
  });
  assert.equal(etcd.code, 0, etcd.output);
  assert.match(etcd.output, /^config OK: .*; store etcd http:\/\/etcd-0\.etcd:2379,http:\/\/etcd-1\.etcd:2379 \/chaos-signal\/default; /);
});

test("--check-config: a bad config exits 2 with the one line that names the key", async () => {
  const misspelled = tempFile(GOOD.replace("pause_above: 4", "pause_above: high"));
  const noToken = tempFile(GOOD);
  const etcdNoEndpoints = tempFile("chaos_signal:\n  store:\n    type: etcd\n");
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--config", misspelled], { CHECK_CONFIG_TOKEN: "a-token-of-some-length" }, /^chaos-signal: .*: chaos_signal\.sources\[0\] \(prometheus "load"\): pause_above: got "high"; allowed: a number$/],
    [["--config", noToken], {}, /^chaos-signal: .*: chaos_signal\.auth\.tokens\[0\]\.token: .*8 or more characters.*$/],
    [["--config", etcdNoEndpoints], {}, /^chaos-signal: store etcd: needs endpoints \(chaos_signal\.store\.endpoints, --etcd-endpoints or CHAOS_SIGNAL_ETCD_ENDPOINTS\)$/],
    [["--port", "70000"], {}, /^chaos-signal: --port: got "70000"; allowed: /],
  ];
  for (const [flags, env, line] of cases) {
    const result = await runCli(["--check-config", ...flags], env);
    assert.equal(result.code, 2, `${flags}: ${result.output}`);
    const lines = result.output.trim().split("\n");
    assert.equal(lines.length, 1, result.output);
    assert.match(lines[0]!, line);
  }
});
