// Durable state: acknowledged changes survive kill -9; a bad file starts paused; write failures are not acknowledged.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Arbiter, createHandler } from "../mod.ts";
import { parseStateFile, StateStore } from "../src/state_store.ts";
import { tempDir, tempFile } from "./helpers/files.ts";
import { runCli, startServer } from "./helpers/server_process.ts";

const post = async (url: string, path: string) => await (await fetch(`${url}${path}`, { method: "POST" })).text();
const get = async (url: string) => await (await fetch(`${url}/`)).text();

test("kill -9 right after an acknowledged STOP: STOP after the restart, latched", async () => {
  const stateFile = join(tempDir(), "state", "state.json");
  const first = await startServer(["--state-file", stateFile]);
  assert.equal(await post(first.url, "/PAUSE"), "PAUSE");
  assert.equal(await post(first.url, "/STOP"), "STOP");
  const killed = await first.stop("SIGKILL");
  assert.equal(killed.signal, "SIGKILL");
  const second = await startServer(["--state-file", stateFile]);
  try {
    assert.equal(await get(second.url), "STOP");
    const status = await (await fetch(`${second.url}/status`)).json();
    assert.equal(status.stop_latch?.source, "manual");
    assert.match(second.output(), /restored STOP from /);
    assert.equal(await post(second.url, "/RUN"), "RUN", "a person's RUN still opens the latch");
  } finally {
    await second.stop();
  }
});

test("many acknowledged changes, then kill -9: the file is whole and holds the last one", async () => {
  const stateFile = join(tempDir(), "state.json");
  const server = await startServer(["--state-file", stateFile]);
  let last = "";
  for (let i = 0; i < 50; i++) last = await post(server.url, i % 2 ? "/RUN" : "/PAUSE");
  await server.stop("SIGKILL");
  const saved = parseStateFile(readFileSync(stateFile, "utf8")); // throws on a torn file
  assert.equal(saved.claims.find((c) => c.source === "manual")?.state, last);
  assert.deepEqual(readdirSync(join(stateFile, "..")).filter((name) => name.endsWith(".tmp")), [], "no temporary file left");
});

test("a corrupt state file: a clear message, the file set aside, and the server starts PAUSED", async () => {
  const dir = tempDir();
  const stateFile = join(dir, "state.json");
  writeFileSync(stateFile, '{"version": 1, "claims": [{"sou');
  const server = await startServer(["--state-file", stateFile]);
  try {
    assert.equal(await get(server.url), "PAUSE");
    assert.match(server.output(), /state\.json is unreadable \(not JSON .*\); starting PAUSED; the file was moved to .*state\.json\.corrupt-\d+/);
    assert.equal(readdirSync(dir).filter((name) => name.includes(".corrupt-")).length, 1);
  } finally {
    await server.stop();
  }
});

test("a state file that cannot be written is an error at start (exit 2), not at the first POST", async () => {
  const notADirectory = tempFile("a file, not a directory", "blocker");
  const result = await runCli(["--address", "127.0.0.1", "--port", "0", "--state-file", join(notADirectory, "state.json")]);
  assert.equal(result.code, 2, result.output);
  assert.match(result.output, /chaos-signal: --state-file .*blocker\/state\.json: cannot write it \(ENOTDIR|EEXIST\); give a writable place, or none/);
});

test("write-ahead: a change is saved before anyone sees it; one that cannot be saved is never made (503)", async () => {
  const arbiter = new Arbiter();
  let failing = false;
  const saved: string[] = [];
  const seenDuringWrite: string[] = [];
  const events: string[] = [];
  arbiter.subscribe((event) => events.push(`${event.type} ${event.type === "change" ? event.signal : event.claim.state}`));
  const handler = createHandler({
    arbiter,
    version: "t",
    persist: async (plan) => {
      const { snapshot, commit } = plan();
      await new Promise((resolve) => setTimeout(resolve, 5)); // the write takes a moment
      seenDuringWrite.push(arbiter.signal);
      if (failing) throw new Error("EROFS: read-only file system");
      saved.push(`${snapshot.signal}${snapshot.latch ? " latched" : ""}`);
      const signal = commit();
      assert.deepEqual(arbiter.snapshot().claims, snapshot.claims, "what was made is exactly what was saved");
      return signal;
    },
  });
  const call = (path: string) => handler(new Request(`http://x${path}`, { method: "POST" }));
  assert.equal(await (await call("/PAUSE")).text(), "PAUSE");
  assert.deepEqual(saved, ["PAUSE"]);
  assert.deepEqual(seenDuringWrite, ["RUN"], "while PAUSE was being written, GET / still said RUN");
  assert.deepEqual(events, ["claim PAUSE", "change PAUSE"]);

  failing = true;
  const refused = await call("/STOP");
  assert.equal(refused.status, 503);
  assert.equal(await refused.text(), "the change was not saved, so it was not made: EROFS: read-only file system\n");
  assert.deepEqual(seenDuringWrite, ["RUN", "PAUSE"], "the refused STOP was never visible");
  assert.deepEqual(events, ["claim PAUSE", "change PAUSE"], "no event for the refused STOP");
  assert.equal(arbiter.signal, "PAUSE");
  assert.equal(arbiter.snapshot().latch, null);

  failing = false;
  assert.equal(await (await call("/STOP")).text(), "STOP");
  assert.deepEqual(saved, ["PAUSE", "STOP latched"]);
});

test("the store writes the latest state even when writes overlap", async () => {
  const store = new StateStore(join(tempDir(), "s.json"));
  const arbiter = new Arbiter();
  const writes = [];
  for (const state of ["PAUSE", "RUN", "STOP", "RUN", "PAUSE"] as const) {
    arbiter.claim("manual", state, state);
    writes.push(store.save(() => arbiter.snapshot()));
  }
  await Promise.all(writes);
  const saved = await store.load();
  assert.equal(saved?.claims.find((c) => c.source === "manual")?.state, "PAUSE");
  assert.equal(saved?.latch, null, "the manual RUN after the STOP opened the latch");
});

test("only claims of sources that still exist are restored", async () => {
  const dir = tempDir();
  const stateFile = join(dir, "state.json");
  const signalFile = join(dir, "signal");
  writeFileSync(signalFile, "PAUSE");
  const config = tempFile(`chaos_signal:\n  sources:\n    - type: file\n      name: switch\n      path: ${signalFile}\n`);
  const first = await startServer(["--state-file", stateFile, "--config", config]);
  await first.stop("SIGKILL");
  // Restarted without the source: its PAUSE claim must not linger with nobody to release it.
  const second = await startServer(["--state-file", stateFile]);
  try {
    assert.equal(await get(second.url), "RUN");
  } finally {
    await second.stop();
  }
});

test("on_unreadable_state: run starts from signal_state instead (still set aside, still said)", async () => {
  const dir = tempDir();
  const stateFile = join(dir, "state.json");
  writeFileSync(stateFile, "garbage");
  const config = tempFile("chaos_signal:\n  on_unreadable_state: run\n");
  const server = await startServer(["--state-file", stateFile, "--config", config]);
  try {
    assert.equal(await get(server.url), "RUN");
    assert.match(server.output(), /is unreadable \(not JSON .*\); starting from signal_state \(on_unreadable_state: run\)/);
  } finally {
    await server.stop();
  }
});

test("a write cut off by kill -9 leaves a temporary file; the next start removes it, and nothing else", async () => {
  const dir = tempDir();
  const stateFile = join(dir, "state.json");
  writeFileSync(join(dir, "state.json.4242.tmp"), '{"version": 1, "signal": "ST'); // a write cut short
  writeFileSync(join(dir, "state.json.notes.tmp"), "someone else's file");
  const server = await startServer(["--state-file", stateFile]);
  try {
    assert.equal(await get(server.url), "RUN");
    const names = readdirSync(dir);
    assert.ok(!names.includes("state.json.4242.tmp"), `left: ${names.join(", ")}`);
    assert.ok(names.includes("state.json.notes.tmp") && names.includes("state.json"), `left: ${names.join(", ")}`);
    assert.match(server.output(), /removed state\.json\.4242\.tmp: writes a stopped server never finished/);
  } finally {
    await server.stop();
  }
});

test("a timed pause is timed from when its turn to be saved comes, not from the request", async () => {
  const arbiter = new Arbiter();
  const handler = createHandler({
    arbiter,
    version: "t",
    persist: async (plan) => {
      await new Promise((resolve) => setTimeout(resolve, 300)); // earlier writes ahead of it
      return plan().commit();
    },
  });
  const asked = Date.now();
  const response = await handler(new Request("http://x/PAUSE?for=1s", { method: "POST" }));
  assert.equal(await response.text(), "PAUSE");
  const claim = arbiter.snapshot().claims.find((c) => c.source === "manual")!;
  const length = claim.until!.getTime() - claim.updated.getTime();
  assert.ok(Math.abs(length - 1000) <= 10, `a whole second from the claim (to the 10 ms the expiry rounds to): ${length} ms`);
  assert.ok(claim.until!.getTime() - asked >= 1250, "not from the request, 300 ms earlier");
});
