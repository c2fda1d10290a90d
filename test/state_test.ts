// Durable state: acknowledged changes survive kill -9; a bad file starts paused; write failures are not acknowledged.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { createHandler, createServer, initialSnapshot, SignalStore } from "../mod.ts";
import { SAFE_SAVE_WAIT_MS } from "../src/http/app.ts";
import { parseStateFile } from "../src/state/state_file.ts";
import { FileBackend } from "../src/state/file_backend.ts";
import { FaultyBackend } from "./helpers/faulty_backend.ts";
import { waitFor } from "./helpers/wait.ts";
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
  const saved = parseStateFile(readFileSync(stateFile, "utf8")).snapshot; // throws on a torn file
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

/** A store on a backend that can fail or hang, and the handler on it (as createServer wires them). */
function storeAndHandler(initialSignal: "RUN" | "PAUSE" = "RUN") {
  const backend = new FaultyBackend(initialSnapshot(initialSignal, new Date()));
  const store = new SignalStore(backend, { snapshot: initialSnapshot(initialSignal, new Date()), revision: "0" }, { retryMs: 20, maxRetryMs: 40 });
  const handler = createHandler({ store, version: "t", stateHealth: () => store.health() });
  const call = (path: string) => handler(new Request(`http://x${path}`, { method: "POST" }));
  return { backend, store, handler, call };
}

test("toward RUN: saved before anyone sees it, refused (503) when it cannot be; toward safety: made at once, saved after", async () => {
  const { backend, store, call } = storeAndHandler();
  const saved: string[] = [];
  const seenDuringWrite: string[] = [];
  const events: string[] = [];
  store.subscribe((event) => events.push(`${event.type} ${event.type === "change" ? event.signal : event.claim.state}`));
  const commit = backend.commit.bind(backend);
  backend.commit = async (expected, next) => {
    await new Promise((resolve) => setTimeout(resolve, 5)); // the write takes a moment
    seenDuringWrite.push(store.signal);
    const result = await commit(expected, next);
    saved.push(`${next.signal}${next.latch ? " latched" : ""}`);
    return result;
  };
  assert.equal(await (await call("/PAUSE")).text(), "PAUSE");
  assert.deepEqual(saved, ["PAUSE"]);
  assert.deepEqual(seenDuringWrite, ["PAUSE"], "a PAUSE is made before it is written");
  assert.equal(await (await call("/RUN")).text(), "RUN");
  assert.deepEqual(saved, ["PAUSE", "RUN"]);
  assert.deepEqual(seenDuringWrite, ["PAUSE", "PAUSE"], "while RUN was being written, GET / still said PAUSE");
  assert.deepEqual(events, ["claim PAUSE", "change PAUSE", "claim RUN", "change RUN"]);
  assert.deepEqual((await backend.stored())?.claims, store.snapshot().claims, "what was made is exactly what was saved");

  backend.mode = "fail";
  assert.equal(await (await call("/PAUSE")).text(), "PAUSE", "a PAUSE that cannot be saved is made all the same");
  for (const path of ["/RUN", "/RUN?force=true"]) {
    const refused = await call(path);
    assert.equal(refused.status, 503);
    assert.equal(await refused.text(), "the change was not saved, so it was not made: ENOSPC: no space left on device\n");
  }
  assert.equal(store.signal, "PAUSE");
  assert.equal(await (await call("/STOP")).text(), "STOP", "a STOP that cannot be saved is made all the same");
  assert.ok(store.snapshot().latch, "and latches");
  assert.deepEqual(events.slice(4), ["claim PAUSE", "change PAUSE", "claim STOP", "change STOP"], "no event for the refused RUNs");
  assert.equal(store.health().saved, false);

  backend.mode = "ok";
  assert.equal(await (await call("/RUN")).text(), "RUN");
  assert.equal((await backend.stored())?.signal, "RUN");
});

test("a POST /PAUSE made while a POST /RUN is being written stands: the RUN, committed after, does not undo it", async () => {
  const { backend, store, call } = storeAndHandler("PAUSE");
  backend.mode = "hang";
  const run = call("/RUN");
  await waitFor(() => backend.commits === 1, "the RUN is being written");
  assert.equal(await (await call("/PAUSE")).text(), "PAUSE", "made at once, the RUN's write notwithstanding");
  backend.mode = "ok";
  backend.release();
  assert.equal(await (await run).text(), "PAUSE", "the RUN answers the signal after it: the later PAUSE");
  assert.equal(store.signal, "PAUSE");
  assert.match(store.snapshot().claims.find((c) => c.source === "manual")!.reason, /POST \/PAUSE/);

  // The same with force: the override does not override the person's later PAUSE either.
  backend.mode = "hang";
  const forced = call("/RUN?force=true");
  await waitFor(() => backend.commits >= 3, "the forced RUN is being written");
  await call("/PAUSE");
  backend.mode = "ok";
  backend.release();
  assert.equal(await (await forced).text(), "PAUSE");
});

test("the file backend: a write that hangs holds up neither a PAUSE nor GET /; a RUN behind it is refused within its bound", async () => {
  const dir = tempDir();
  const stateFile = join(dir, "state.json");
  const failures: string[] = [];
  const backend = new FileBackend(stateFile);
  const store = new SignalStore(backend, { snapshot: initialSnapshot("RUN", new Date()), revision: "0" }, {
    saveTimeoutMs: 300,
    retryMs: 50,
    onFailure: (error) => failures.push(error.message),
  });
  await store.flush({ always: true });
  // A FIFO where the temporary file goes: opening it for writing blocks until a reader comes.
  const fifo = `${stateFile}.${process.pid}.tmp`;
  execFileSync("mkfifo", [fifo]);
  try {
    assert.equal(await store.claim("manual", "STOP", "POST /STOP"), "STOP");
    const refused = await store.claim("manual", "RUN", "POST /RUN").then(() => "committed", (error: Error) => error.message);
    assert.match(refused, /could not be written within 0\.3 s/);
    assert.equal(store.signal, "STOP", "the refused RUN was not made");
    const health = await waitFor(() => !store.health().saved && store.health(), "the hung write to show as failed", 5000);
    assert.match(health.error ?? "", /a write has not finished after 0\.3 s/);
    assert.ok(health.since instanceof Date);
    // The disk answers again: the hung write fails (a FIFO cannot be fsynced), the retry writes.
    const reader = await open(fifo, "r");
    unlinkSync(fifo);
    await reader.readFile();
    await reader.close();
    await waitFor(() => store.health().saved, "the retry to save the state", 10_000);
    await store.flush();
    const saved = await new FileBackend(stateFile).load();
    assert.equal(saved.snapshot?.claims.find((c) => c.source === "manual")?.state, "STOP", "the file holds STOP, not the refused RUN");
    assert.ok(failures.length >= 2, failures.join("; "));
  } finally {
    rmSync(fifo, { force: true });
  }
});

test("the file backend ends on the latest state even when changes come faster than writes", async () => {
  const stateFile = join(tempDir(), "s.json");
  const store = new SignalStore(new FileBackend(stateFile), { snapshot: initialSnapshot("RUN", new Date()), revision: "0" });
  const made = [];
  for (const state of ["PAUSE", "RUN", "STOP", "RUN", "PAUSE"] as const) {
    // A PAUSE or STOP is made at once and its save queued; a RUN is committed behind those saves.
    const change = store.claim("manual", state, state);
    made.push(change);
    if (state === "RUN") await change;
  }
  await Promise.all(made);
  await store.flush();
  const saved = (await new FileBackend(stateFile).load()).snapshot;
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

test("a timed pause is made at once while its save hangs; its end, a RUN, waits until it is saved", async () => {
  const backend = new FaultyBackend(initialSnapshot("RUN", new Date()));
  const app = await createServer({ settings: { stateFile: "none" }, backend, plugins: [] });
  app.start();
  try {
    backend.mode = "hang"; // a disk that hangs
    const asked = Date.now();
    const response = await app.fetch(new Request("http://x/PAUSE?for=1s", { method: "POST" }));
    assert.equal(await response.text(), "PAUSE");
    assert.ok(Date.now() - asked < SAFE_SAVE_WAIT_MS + 3000, "answered though its save never finished");
    const claim = app.store.snapshot().claims.find((c) => c.source === "manual")!;
    assert.equal(claim.until!.getTime() - claim.updated.getTime(), 1000);
    assert.ok(claim.until!.getTime() - asked <= 1100, "timed from the request");
    backend.mode = "fail";
    backend.release();
    await new Promise((resolve) => setTimeout(resolve, 1600));
    assert.equal(app.store.signal, "PAUSE", "the end could not be saved, so it was not made");
    backend.mode = "ok";
    await waitFor(() => app.store.signal === "RUN", "the end of the pause, once it can be saved", 10_000);
    assert.match(app.store.snapshot().claims.find((c) => c.source === "manual")!.reason, /timed pause of 1s expired/);
  } finally {
    await app.close(200);
  }
});
