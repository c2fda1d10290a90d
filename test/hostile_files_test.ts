/**
 * Files that are not what they should be, against the real server process: a FIFO at a file
 * source's path (opening it for reading blocks until a writer comes), and a state file or
 * history.jsonl that is a FIFO, a link to /dev/zero, or larger than the server ever writes.
 * Nothing of that may freeze a source, a POST, the start or the shutdown.
 */
import assert from "node:assert/strict";
import { lstatSync, readdirSync, renameSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { STATE_FILE_MAX_BYTES } from "../src/state/file_backend.ts";
import type { StatusDocument } from "../src/http/status.ts";
import { makeReleasableFifo } from "./helpers/fifo.ts";
import { tempDir } from "./helpers/files.ts";
import { type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

/** SIGTERM must end the process within this long, whatever a source is doing. */
const EXIT_WITHIN_MS = 2000;
/** The start must not wait on a bad file: generous for a runtime's own start on a busy machine. */
const LISTEN_WITHIN_MS = 10_000;

async function get(server: ServerProcess, path = "/"): Promise<string> {
  const response = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(5000) });
  return await response.text();
}

async function status(server: ServerProcess): Promise<StatusDocument> {
  return JSON.parse(await get(server, "/status"));
}

async function stopWithin(server: ServerProcess): Promise<void> {
  const exit = await server.stop("SIGTERM");
  console.log(`SIGTERM to exit: ${exit.ms.toFixed(0)} ms`);
  assert.equal(exit.code, 0, server.output());
  assert.ok(exit.ms < EXIT_WITHIN_MS, `exited after ${exit.ms.toFixed(0)} ms:\n${server.output()}`);
}

/** Starts a server and says how long it took to listen. */
async function startTimed(flags: string[]): Promise<ServerProcess> {
  const started = performance.now();
  const server = await startServer(flags, { timeoutMs: LISTEN_WITHIN_MS });
  console.log(`listening after ${(performance.now() - started).toFixed(0)} ms`);
  return server;
}

function configWithSources(dir: string, sources: { name: string; path: string; on_invalid?: string }[]): string {
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    ["chaos_signal:", "  sources:", ...sources.flatMap((s) => [
      "    - type: file",
      `      name: ${s.name}`,
      `      path: ${s.path}`,
      "      interval: 200ms",
      ...(s.on_invalid ? [`      on_invalid: ${s.on_invalid}`] : []),
    ])].join("\n") + "\n",
  );
  return config;
}

describe("a FIFO at a file source's path", () => {
  test("is a warning and the on_invalid claim; a file put in its place is read; SIGTERM exits", async () => {
    const dir = tempDir();
    const path = join(dir, "signal");
    const cleanUp = makeReleasableFifo(path);
    let server: ServerProcess | undefined;
    try {
      server = await startTimed(["--config", configWithSources(dir, [{ name: "switch", path, on_invalid: "pause" }])]);
      const running = server;
      await waitFor(async () => (await get(running)) === "PAUSE", "GET / to answer PAUSE", 5000);
      const source = (await status(running)).sources.find((s) => s.name === "switch");
      assert.equal(source?.health, "warning");
      assert.equal(source?.last_warning?.message, `cannot read ${path}: it is a FIFO, not a regular file`);
      writeFileSync(join(dir, "next"), "STOP\n");
      renameSync(join(dir, "next"), path);
      await waitFor(async () => (await get(running)) === "STOP", "GET / to answer STOP once a file replaced the FIFO", 5000);
      await stopWithin(running);
    } finally {
      if (server) await server.stop("SIGKILL");
      cleanUp();
    }
  });

  test("one put in place of the file while watched: a warning and the on_invalid claim; SIGTERM exits", async () => {
    // A new FIFO in a watched directory: Deno's watcher thread opens it, and the close of the
    // watch at shutdown then waited for that open for good.
    const dir = tempDir();
    const path = join(dir, "signal");
    writeFileSync(path, "RUN\n");
    const elsewhere = join(tempDir(), "fifo");
    const cleanUp = makeReleasableFifo(elsewhere);
    let server: ServerProcess | undefined;
    try {
      server = await startTimed(["--config", configWithSources(dir, [{ name: "switch", path, on_invalid: "pause" }])]);
      const running = server;
      await waitFor(async () => (await status(running)).sources[0]?.health === "ok", "the source's first read", 5000);
      renameSync(elsewhere, path);
      await waitFor(async () => (await get(running)) === "PAUSE", "GET / to answer PAUSE", 5000);
      assert.equal((await status(running)).sources[0]?.last_warning?.message, `cannot read ${path}: it is a FIFO, not a regular file`);
      await stopWithin(running);
    } finally {
      if (server) await server.stop("SIGKILL");
      cleanUp(path);
    }
  });

  test("two of them and a state file: POST /STOP answers and is applied; SIGTERM exits", async () => {
    const dir = tempDir();
    const cleanUps = ["a", "b"].map((name) => makeReleasableFifo(join(dir, name)));
    let server: ServerProcess | undefined;
    try {
      const config = configWithSources(dir, [{ name: "a", path: join(dir, "a") }, { name: "b", path: join(dir, "b") }]);
      server = await startTimed(["--config", config, "--state-file", join(dir, "state", "state.json")]);
      // A few rounds of reads first: each blocked open used to take one more file-system thread.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const response = await fetch(`${server.url}/STOP`, { method: "POST", signal: AbortSignal.timeout(5000) });
      assert.equal(response.status, 200, await response.text());
      assert.equal(await get(server), "STOP");
      await stopWithin(server);
    } finally {
      if (server) await server.stop("SIGKILL");
      for (const cleanUp of cleanUps) cleanUp();
    }
  });
});

/** The ways a file can be bad, each made at `path`. */
const HOSTILE: { name: string; make(path: string, validHead: string): (() => void) | void; says: RegExp }[] = [
  { name: "a FIFO", make: (path) => makeReleasableFifo(path), says: /is a FIFO, not a regular file/ },
  { name: "a link to /dev/zero", make: (path) => symlinkSync("/dev/zero", path), says: /is a character device, not a regular file/ },
  {
    // A sparse file: as large as it says, without the disk space.
    name: "an 8 GiB file",
    make(path, validHead) {
      writeFileSync(path, validHead);
      truncateSync(path, 8 * 1024 ** 3);
    },
    says: /is 8589934592 bytes, more than the \d+ allowed/,
  },
];

/** A state file that says STOP, to show it is not read when it is too large. */
const STOP_STATE = JSON.stringify({
  version: 1,
  saved_at: "2026-01-01T00:00:00.000Z",
  signal: "STOP",
  stop_latch: { since: "2026-01-01T00:00:00.000Z", source: "manual", reason: "test" },
  claims: [{ source: "manual", state: "STOP", reason: "test", since: "2026-01-01T00:00:00.000Z", updated: "2026-01-01T00:00:00.000Z" }],
});

function setAside(dir: string, name: string): string[] {
  return readdirSync(dir).filter((entry) => entry.startsWith(`${name}.corrupt-`));
}

describe("a state file that is not a regular file of bounded size", () => {
  for (const kind of [
    ...HOSTILE,
    {
      name: "a file one byte over the cap",
      make(path: string) {
        writeFileSync(path, STOP_STATE + " ".repeat(STATE_FILE_MAX_BYTES + 1 - STOP_STATE.length));
      },
      says: new RegExp(`is ${STATE_FILE_MAX_BYTES + 1} bytes, more than the ${STATE_FILE_MAX_BYTES} allowed`),
    },
  ]) {
    test(`${kind.name}: the server listens at PAUSE, says so in one line, and moves it aside`, async () => {
      const dir = tempDir();
      const stateFile = join(dir, "state.json");
      const cleanUp = kind.make(stateFile, STOP_STATE);
      let server: ServerProcess | undefined;
      try {
        server = await startTimed(["--state-file", stateFile]);
        assert.equal(await get(server), "PAUSE");
        const lines = server.output().split("\n").filter((line) => line.includes("state.json is unreadable"));
        assert.equal(lines.length, 1, server.output());
        assert.match(lines[0]!, kind.says);
        assert.match(lines[0]!, /starting PAUSED; the file was moved to .*state\.json\.corrupt-\d+/);
        assert.equal(setAside(dir, "state.json").length, 1);
        assert.ok(lstatSync(stateFile).isFile(), "a new regular state file in its place");
        await stopWithin(server);
      } finally {
        if (server) await server.stop("SIGKILL");
        cleanUp?.();
      }
    });
  }
});

describe("a history.jsonl that is not a regular file of bounded size", () => {
  const entry = JSON.stringify({ id: 7, at: "2026-01-01T00:00:00.000Z", type: "claim", source: "manual", state: "PAUSE", previous: null, reason: "x" });
  for (const kind of [
    ...HOSTILE,
    {
      name: "a file one byte over the cap (4 × 10 MiB)",
      make(path: string) {
        writeFileSync(path, `${entry}\n`);
        truncateSync(path, 40 * 1024 * 1024 + 1);
      },
      says: /is 41943041 bytes, more than the 41943040 allowed/,
    },
  ]) {
    test(`${kind.name}: the server listens, says so in one line, moves it aside and keeps a new history`, async () => {
      const dir = tempDir();
      const history = join(dir, "history.jsonl");
      const cleanUp = kind.make(history, `${entry}\n`);
      let server: ServerProcess | undefined;
      try {
        // The state file, not the history, holds the signal: it starts from signal_state.
        server = await startTimed(["--state-file", join(dir, "state.json"), "--state", "PAUSE"]);
        assert.equal(await get(server), "PAUSE");
        const lines = server.output().split("\n").filter((line) => line.includes("history.jsonl "));
        assert.equal(lines.length, 1, server.output());
        assert.match(lines[0]!, kind.says);
        assert.match(lines[0]!, /history not read from it; the file was moved to .*history\.jsonl\.corrupt-\d+/);
        assert.equal(setAside(dir, "history.jsonl").length, 1);
        // The history goes on in a new file: entries from now on, none from the refused one.
        const response = await fetch(`${server.url}/STOP`, { method: "POST", signal: AbortSignal.timeout(5000) });
        assert.equal(response.status, 200);
        const page = JSON.parse(await get(server, "/history")) as { entries: { id: number; state: string }[] };
        assert.equal(page.entries[0]?.state, "STOP");
        assert.ok(page.entries.every((e) => e.id !== 7), "nothing read from the refused file");
        await waitFor(() => lstatSync(history).isFile() && lstatSync(history).size > 0, "the new history.jsonl", 5000);
        await stopWithin(server);
      } finally {
        if (server) await server.stop("SIGKILL");
        cleanUp?.();
      }
    });
  }
});
