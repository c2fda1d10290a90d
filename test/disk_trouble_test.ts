// The state file's disk in trouble (full, hung): STOP and PAUSE are made at once and shown
// unsaved; RUN waits for a save and is refused when there is none; the retry saves once it can.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { rmSync, unlinkSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { StatusDocument } from "../src/http/status.ts";
import { tempDir } from "./helpers/files.ts";
import { type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const post = async (url: string, path: string) => {
  const response = await fetch(`${url}${path}`, { method: "POST", signal: AbortSignal.timeout(20_000) });
  return { status: response.status, text: await response.text() };
};
/** A POST with its answer's time and its `Chaos-Signal-Saved` header. */
const timedPost = async (url: string, path: string) => {
  const started = Date.now();
  const response = await fetch(`${url}${path}`, { method: "POST", signal: AbortSignal.timeout(20_000) });
  const text = await response.text();
  return { status: response.status, text, saved: response.headers.get("chaos-signal-saved"), ms: Date.now() - started };
};
const get = async (url: string) => await (await fetch(`${url}/`)).text();
const status = async (url: string) => (await (await fetch(`${url}/status`)).json()) as StatusDocument;
const metric = async (url: string, name: string) => {
  const line = (await (await fetch(`${url}/metrics`)).text()).split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
};
const saveFailureLines = (server: ServerProcess) => server.output().split("\n").filter((l) => /saving .*state\.json failed \(/.test(l));

/** Mounting needs root (or CAP_SYS_ADMIN); without it the full-disk test is skipped, and says why. */
function mountProblem(): string | false {
  const probe = tempDir();
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], { stdio: "pipe" });
    execFileSync("umount", [probe], { stdio: "pipe" });
    return false;
  } catch (error) {
    return `cannot mount a tmpfs (${String((error as { stderr?: unknown }).stderr ?? error).trim()}); run as root to test a full disk`;
  }
}
const skipFull = mountProblem();
if (skipFull) console.warn(`test/disk_trouble_test.ts: full-disk test skipped: ${skipFull}`);

test("a full disk: STOP and PAUSE are made and shown unsaved, RUN is refused; space again, the retry saves and RUN works", {
  skip: skipFull,
  timeout: 90_000,
}, async () => {
  const mountPoint = tempDir();
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mountPoint]);
  let server: ServerProcess | undefined;
  try {
    const stateFile = join(mountPoint, "state.json");
    server = await startServer(["--state-file", stateFile]);
    const url = server.url;
    assert.equal((await status(url)).state?.saved, true);
    assert.equal(await metric(url, "chaos_signal_state_saved"), 1);

    // Fill the filesystem: a write stops short with ENOSPC, leaving the filler as large as it could grow.
    const filler = join(mountPoint, "filler");
    assert.throws(() => writeFileSync(filler, Buffer.alloc(128 * 1024)), /ENOSPC/);
    assert.throws(() => writeFileSync(join(mountPoint, "probe"), "x".repeat(8192)), /ENOSPC/, "the disk is full");

    // Made and served at once, but not saved: 202 (not 200), the same body, and a header saying why.
    const pause = await timedPost(url, "/PAUSE");
    assert.deepEqual([pause.status, pause.text], [202, "PAUSE"]);
    assert.match(pause.saved ?? "", /^pending; .*(ENOSPC|no space)/i);
    assert.ok(pause.ms < 3000, `PAUSE answered after ${pause.ms} ms`);
    assert.equal(await get(url), "PAUSE");
    const unsaved = await waitFor(async () => {
      const doc = await status(url);
      return doc.state?.saved === false && doc;
    }, "/status to show the state unsaved");
    assert.equal(unsaved.state?.file, stateFile);
    assert.match(unsaved.state?.error ?? "", /ENOSPC|no space/i);
    assert.ok(unsaved.state?.since && !Number.isNaN(Date.parse(unsaved.state.since)), `since: ${unsaved.state?.since}`);
    assert.equal(await metric(url, "chaos_signal_state_saved"), 0);
    assert.ok((await metric(url, "chaos_signal_state_save_failures_total"))! >= 1);

    const stop = await timedPost(url, "/STOP");
    assert.deepEqual([stop.status, stop.text], [202, "STOP"], "a STOP is never refused");
    assert.match(stop.saved ?? "", /^pending; /);
    assert.ok(stop.ms < 3000, `STOP answered after ${stop.ms} ms`);
    assert.equal(await get(url), "STOP");
    assert.equal((await status(url)).stop_latch?.source, "manual");

    for (const path of ["/RUN", "/RUN?force=true"]) {
      const refused = await post(url, path);
      assert.equal(refused.status, 503, `POST ${path}: ${refused.text}`);
      assert.match(refused.text, /^the change was not saved, so it was not made: [^\n]*(ENOSPC|no space)[^\n]*\n$/i);
      assert.equal(await get(url), "STOP", `after the refused POST ${path}`);
    }

    // The store retries with backoff; the log says a repeated failure once, /status counts them all.
    const failures = await waitFor(async () => {
      const count = (await status(url)).state?.failures ?? 0;
      return count >= 4 && count;
    }, "a few retries", 20_000);
    const lines = saveFailureLines(server);
    assert.ok(lines.length >= 1 && lines.length < failures, `${lines.length} log lines for ${failures} failures:\n${lines.join("\n")}`);

    rmSync(filler);
    await waitFor(async () => (await status(url)).state?.saved === true, "a retry to save the state once there is space", 20_000);
    const saved = await status(url);
    assert.equal(saved.state?.error, null);
    assert.equal(saved.state?.since, null);
    assert.equal(await metric(url, "chaos_signal_state_saved"), 1);
    assert.match(server.output(), /saved .*state\.json again, after \d+ failed writes? since /);
    assert.equal(await get(url), "STOP");
    // Saved: a STOP or PAUSE is answered 200 again, without the header.
    const healthy = await timedPost(url, "/PAUSE");
    assert.deepEqual([healthy.status, healthy.text, healthy.saved], [200, "STOP", null]);

    // What was made while the disk was full is on disk now: it survives kill -9.
    await server.stop("SIGKILL");
    server = await startServer(["--state-file", stateFile]);
    assert.equal(await get(server.url), "STOP");
    assert.deepEqual(await post(server.url, "/RUN"), { status: 200, text: "RUN" });
  } finally {
    await server?.stop();
    execFileSync("umount", [mountPoint]);
  }
});

test("a write that hangs (a FIFO where the temporary file goes): STOP and PAUSE at once, RUN refused after 5 s, saved once it ends", {
  timeout: 90_000,
}, async () => {
  const stateFile = join(tempDir(), "state.json");
  const server = await startServer(["--state-file", stateFile]);
  // Opening a FIFO for writing blocks until a reader comes: the server's next write hangs there.
  const fifo = `${stateFile}.${server.child.pid}.tmp`;
  execFileSync("mkfifo", [fifo]);
  try {
    const url = server.url;
    const timed = (path: string) => timedPost(url, path);
    const stop = await timed("/STOP");
    assert.deepEqual([stop.status, stop.text, stop.saved], [202, "STOP", "pending; not saved within 1 s"]);
    assert.ok(stop.ms < 4000, `STOP answered after ${stop.ms} ms`);
    assert.equal(await get(url), "STOP");
    const pause = await timed("/PAUSE");
    assert.deepEqual([pause.status, pause.text], [202, "STOP"], "latched, and the STOP is still not saved");
    assert.ok(pause.ms < 4000, `PAUSE answered after ${pause.ms} ms`);

    const run = await timed("/RUN");
    assert.equal(run.status, 503, run.text);
    assert.match(run.text, /^the change was not saved, so it was not made: .*state\.json could not be written within 5 s\n$/);
    assert.ok(run.ms < 15_000, `refused after ${run.ms} ms`);
    assert.equal(await get(url), "STOP");
    const hung = await status(url);
    assert.equal(hung.state?.saved, false);
    assert.match(hung.state?.error ?? "", /a write has not finished after 5 s/);

    // The disk comes back: the hung write ends (and fails: a FIFO cannot be fsynced), the retry saves.
    const reader = await open(fifo, "r");
    unlinkSync(fifo);
    await reader.readFile();
    await reader.close();
    await waitFor(async () => (await status(url)).state?.saved === true, "the state saved once the write no longer hangs", 20_000);
    assert.equal(await get(url), "STOP");
    assert.deepEqual(await post(url, "/RUN"), { status: 200, text: "RUN" });
  } finally {
    rmSync(fifo, { force: true });
    await server.stop();
  }
});
