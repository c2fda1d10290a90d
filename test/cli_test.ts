// The command-line program as a real process: flags, env, config files,
// exit codes, port in use, signals, and the README's start command.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { fixture, tempDir, tempFile } from "./helpers/files.ts";
import { ROOT, runCli, runtimeCommand, startServer } from "./helpers/server_process.ts";

/** The lines chaos-signal itself printed (runtimes may add nothing else on a config error). */
function lines(output: string): string[] {
  return output.trim().split("\n").filter(Boolean);
}

test("--help and --version print and exit 0", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.output, /^Usage: chaos-signal \[flags\]/);
  for (const flag of ["--config", "--port", "--address", "--state", "CHAOS_SIGNAL_PORT"]) assert.ok(help.output.includes(flag), flag);
  const helpDespiteBadEnv = await runCli(["--help"], { CHAOS_SIGNAL_PORT: "abc" });
  assert.equal(helpDespiteBadEnv.code, 0, "--help answers whatever else is wrong");
  assert.match(helpDespiteBadEnv.output, /^Usage: /);
  const version = await runCli(["--version"]);
  assert.equal(version.code, 0);
  const { version: expected } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  assert.equal(version.output, `chaos-signal ${expected}\n`);
});

test("an invalid flag, env var or config value exits 2 with one line naming the key, before listening", async () => {
  const badFile = tempFile("kraken:\n  port: 8081\n  signal_state: HALT\n");
  const badSource = tempFile("chaos_signal:\n  sources:\n    - type: prometheus\n      name: load\n      url: http://127.0.0.1:9090\n      query: up\n      pause_above: high\n");
  const cases: [string[], Record<string, string>, string][] = [
    [["--port", "70000"], {}, 'chaos-signal: --port: got "70000"; allowed: an integer from 0 to 65535 (0 picks a free port)'],
    [["--state", "go"], {}, 'chaos-signal: --state: got "go"; allowed: one of RUN, PAUSE, STOP (any letter case)'],
    [["--port"], {}, "chaos-signal: --port: needs a value; allowed: an integer from 0 to 65535 (0 picks a free port)"],
    [["--bogus"], {}, "chaos-signal: --bogus: unknown flag; allowed flags: --config, --port, --address, --state, --state-file, --allowed-origins, --store, --etcd-endpoints, --etcd-prefix, --etcd-ca-file, --etcd-cert-file, --etcd-key-file, --check-config, --help, --version (see --help)"],
    [[], { CHAOS_SIGNAL_ADDRESS: "not an address" }, 'chaos-signal: CHAOS_SIGNAL_ADDRESS: got "not an address"; allowed: an IPv4 or IPv6 address or a host name, such as 0.0.0.0, 127.0.0.1, :: or localhost'],
    [["--config", badFile], {}, `chaos-signal: ${badFile}: kraken.signal_state: got "HALT"; allowed: one of RUN, PAUSE, STOP in capitals: Krkn reads the same key and compares the exact words`],
    [[], { CHAOS_SIGNAL_ALLOWED_ORIGINS: "https://ops.example/" }, 'chaos-signal: CHAOS_SIGNAL_ALLOWED_ORIGINS: got "https://ops.example/"; allowed: an origin: http:// or https://, a host and an optional :port, no path (not even /), such as https://ops.example or http://localhost:3000'],
    [[], { CHAOS_SIGNAL_CONFIG: "/nonexistent.yaml" }, "chaos-signal: /nonexistent.yaml: cannot read the config file (ENOENT)"],
    [["--config", badSource], {}, `chaos-signal: ${badSource}: chaos_signal.sources[0] (prometheus "load"): pause_above: got "high"; allowed: a number`],
  ];
  for (const [flags, env, message] of cases) {
    const result = await runCli(flags, env);
    assert.equal(result.code, 2, `${flags} ${JSON.stringify(env)}: ${result.output}`);
    assert.deepEqual(lines(result.output), [message]);
  }
});

test("a port in use exits 1 with a clear message", async () => {
  const first = await startServer();
  try {
    const second = await runCli(["--address", "127.0.0.1", "--port", String(first.port)]);
    assert.equal(second.code, 1, second.output);
    assert.deepEqual(lines(second.output), [
      `chaos-signal: cannot listen on 127.0.0.1:${first.port}: the port is already in use (a Krkn run with publish_kraken_status: True holds its own port; pick another with --port)`,
    ]);
    assert.equal(await (await fetch(`${first.url}/`)).text(), "RUN", "the first server is unharmed");
  } finally {
    await first.stop();
  }
});

test("a saved signal wins over --state at start, and the log says that the flag was not applied", async () => {
  const stateFile = join(tempDir(), "state.json");
  const first = await startServer(["--state-file", stateFile]);
  assert.equal(await (await fetch(`${first.url}/`)).text(), "RUN");
  await first.stop();
  const second = await startServer(["--state-file", stateFile, "--state", "PAUSE"]);
  try {
    assert.equal(await (await fetch(`${second.url}/`)).text(), "RUN", "the saved RUN, as README \"Durable state\" says");
    assert.match(second.output(), /warning: signal_state PAUSE is not applied: it sets the signal only when nothing is saved, and .*state\.json holds RUN \(POST \/PAUSE to change it\)/);
  } finally {
    await second.stop();
  }
});

test("an address that is not this host's exits 1 saying so, not that the port is in use", async () => {
  // Bun reports a name it cannot resolve as EADDRINUSE ("Is port in use?"): the serve file looks it up first.
  for (const address of ["no-such-host.invalid", "999.1.1.1"]) {
    const result = await runCli(["--address", address, "--port", "8081"]);
    assert.equal(result.code, 1, result.output);
    const last = lines(result.output).at(-1) ?? "";
    assert.match(last, new RegExp(`^chaos-signal: cannot listen on ${address.replaceAll(".", "\\.")}:8081: `), result.output);
    assert.doesNotMatch(last, /already in use/, result.output);
  }
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`${signal} shuts the server down cleanly within 2 s`, async () => {
    const server = await startServer();
    assert.equal(await (await fetch(`${server.url}/`)).text(), "RUN");
    const exit = await server.stop(signal);
    assert.equal(exit.code, 0, server.output());
    assert.ok(exit.ms < 2000, `took ${exit.ms.toFixed(0)} ms`);
    assert.match(server.output(), new RegExp(`${signal}: shutting down`));
  });
}

test("SIGTERM during an open slow request still exits within 2 s", async () => {
  const server = await startServer();
  // A request whose body never completes keeps a connection busy.
  const { connect } = await import("node:net");
  const socket = connect({ host: server.host, port: server.port });
  socket.on("error", () => {});
  socket.write("POST /STOP HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
  await new Promise((resolve) => setTimeout(resolve, 200));
  const exit = await server.stop("SIGTERM");
  socket.destroy();
  assert.equal(exit.code, 0);
  assert.ok(exit.ms < 2000, `took ${exit.ms.toFixed(0)} ms`);
});

test("Krkn's config.yaml sets the initial signal and address; a flag overrides its port", async () => {
  const server = await startServer(["--config", fixture("krkn_config.yaml"), "--port", "0"]);
  try {
    assert.equal(server.host, "127.0.0.1");
    assert.notEqual(server.port, 8082);
    assert.equal(await (await fetch(`${server.url}/`)).text(), "PAUSE");
  } finally {
    await server.stop();
  }
});

test("an environment variable overrides the config file, and a flag overrides the environment", async () => {
  const config = tempFile("kraken:\n  signal_state: PAUSE\n  signal_address: 127.0.0.1\n  port: 0\n");
  const fromEnv = await startServer(["--config", config], { env: { CHAOS_SIGNAL_STATE: "STOP" } });
  try {
    assert.equal(await (await fetch(`${fromEnv.url}/`)).text(), "STOP");
  } finally {
    await fromEnv.stop();
  }
  const fromFlag = await startServer(["--config", config, "--state", "run"], { env: { CHAOS_SIGNAL_STATE: "STOP" } });
  try {
    assert.equal(await (await fetch(`${fromFlag.url}/`)).text(), "RUN");
  } finally {
    await fromFlag.stop();
  }
});

test("listens on IPv6 loopback", async () => {
  const server = await startServer(["--address", "::1"]);
  try {
    assert.equal(server.url, `http://[::1]:${server.port}`);
    assert.equal(await (await fetch(`${server.url}/`)).text(), "RUN");
  } finally {
    await server.stop();
  }
});

test("the log reader going away does not take the server down", async () => {
  const server = await startServer();
  try {
    // Nobody reads the log any more: the next log writes hit a closed pipe.
    server.child.stdout!.destroy();
    server.child.stderr!.destroy();
    for (const signal of ["PAUSE", "RUN", "STOP", "RUN"]) {
      const response = await fetch(`${server.url}/${signal}`, { method: "POST" });
      assert.equal(await response.text(), signal);
    }
    assert.equal(await (await fetch(`${server.url}/`)).text(), "RUN");
  } finally {
    await server.stop();
  }
});

/** Resolves whether nothing listens on 127.0.0.1:port (by trying to listen there). */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}

test("the README's start command serves RUN at http://127.0.0.1:8081/", async () => {
  assert.ok(await portIsFree(8081), "port 8081 is taken on this machine: this test needs it free (the README's default)");
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const firstBlock = /```(?:sh|bash|shell)\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const startLine = firstBlock.split("\n")[0]!.replace(/#.*$/, "").trim();
  assert.match(startLine, /npm start/, `first README command: ${startLine}`);
  // `npm install` already ran. Under bun test, run the README's Bun variant of the same command.
  const command = runtimeCommand().name === "bun" ? "npm run start:bun" : startLine.split("&&").pop()!.trim();
  assert.ok(readme.includes(runtimeCommand().name === "bun" ? "npm run start:bun" : command), `the README shows ${command}`);
  // A state file left by someone's own `npm start` must not decide what this test sees.
  const env = { ...process.env, CHAOS_SIGNAL_STATE_FILE: "none" };
  const child = spawn("sh", ["-c", command], { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  try {
    const deadline = Date.now() + 20_000;
    while (!/listening on http:\/\/0\.0\.0\.0:8081\//.test(output)) {
      assert.ok(Date.now() < deadline, `"${command}" did not listen on 0.0.0.0:8081:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const response = await fetch("http://127.0.0.1:8081/");
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "RUN");
  } finally {
    // npm does not pass SIGTERM on to its child: signal the whole process group.
    process.kill(-child.pid!, "SIGTERM");
    const killer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 5000);
    await exited;
    clearTimeout(killer);
  }
});

test("store etcd: without endpoints, or with no etcd answering, exits 2 with one line (no stack trace)", async () => {
  const none = await runCli(["--store", "etcd"]);
  assert.equal(none.code, 2);
  assert.deepEqual(lines(none.output), ["chaos-signal: store etcd: needs endpoints (chaos_signal.store.endpoints, --etcd-endpoints or CHAOS_SIGNAL_ETCD_ENDPOINTS)"]);
  const down = await runCli(["--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:1"]);
  assert.equal(down.code, 2, down.output);
  assert.equal(lines(down.output).length, 1, down.output);
  assert.match(down.output, /^chaos-signal: store etcd: cannot read \/chaos-signal\/default\/signals\/default\/state \(http:\/\/127\.0\.0\.1:1: /);
});
