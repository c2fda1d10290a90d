// The file source's edge cases: content, missing and invalid files, and the ways files get
// replaced in practice (rename, delete and recreate, Kubernetes' ConfigMap symlink swap).
//
// Tests that change the file after the start use interval "10s" and expect the change within
// a few seconds: only a filesystem event can deliver it that fast, so they prove the watch
// follows the path (not the first inode it saw) through each kind of replacement.
import assert from "node:assert/strict";
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { SignalStore, fileSource, type FileSourceOptions, PluginHost } from "../mod.ts";
import { makeReleasableFifo } from "./helpers/fifo.ts";
import { tempDir } from "./helpers/files.ts";
import { waitFor } from "./helpers/wait.ts";

interface Rig {
  readonly arbiter: SignalStore;
  readonly host: PluginHost;
  claim(): { state: string; reason: string } | undefined;
  status(): ReturnType<PluginHost["statuses"]>[number];
  /** Waits until the claim has `state` and `reason`; returns how long that took. */
  until(state: string, reason: string, timeoutMs?: number): Promise<number>;
}

async function withFile(options: Omit<FileSourceOptions, "name">, body: (rig: Rig) => Promise<void>): Promise<void> {
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [fileSource({ name: "switch", ...options })]);
  const claim = () => arbiter.snapshot().claims.find((c) => c.source === "switch");
  host.start();
  try {
    await body({
      arbiter,
      host,
      claim,
      status: () => host.statuses().find((s) => s.name === "switch")!,
      async until(state, reason, timeoutMs = 3000) {
        const started = Date.now();
        await waitFor(() => claim()?.state === state && claim()?.reason === reason, `claim ${state} "${reason}"`, timeoutMs, 10)
          .catch((error) => {
            throw new Error(`${error.message}; the claim is ${JSON.stringify(claim())}`);
          });
        return Date.now() - started;
      },
    });
  } finally {
    await host.stop();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Within this long, only a filesystem event can explain a change when the interval is 10s. */
const BY_EVENT_MS = 2000;

describe("file source", () => {
  test("the trimmed content is the claim, in any letter case", async () => {
    const path = join(tempDir(), "signal");
    writeFileSync(path, " Pause\n");
    await withFile({ path, interval: "100ms" }, async (rig) => {
      await rig.until("PAUSE", `${path} says PAUSE`);
      assert.equal(rig.arbiter.signal, "PAUSE");
      assert.equal(rig.arbiter.snapshot().decidedBy, "switch");
      assert.deepEqual({ ...rig.status().last_observation, at: "" }, { at: "", path, content: "Pause" });
      writeFileSync(path, "\tRUN \r\n");
      await rig.until("RUN", `${path} says RUN`);
      writeFileSync(path, "\uFEFFsToP\n\n");
      await rig.until("STOP", `${path} says STOP`);
      assert.equal(rig.arbiter.signal, "STOP");
    });
  });

  test("a write right after the last change is seen at once, not at the next re-read", async () => {
    // The next write goes out the moment the source has claimed the last one: within a few ms of
    // the event that brought it, which is when Bun drops change events. Interval 10s: only a read
    // soon after the event (the settle re-read) can see each write within BY_EVENT_MS.
    const path = join(tempDir(), "signal");
    writeFileSync(path, "RUN");
    const rounds = 30;
    await withFile({ path, interval: "10s" }, async (rig) => {
      await rig.until("RUN", `${path} says RUN`);
      let written = 0;
      const next = () => writeFileSync(path, ++written % 2 === 1 ? "PAUSE" : "RUN");
      const stopListening = rig.arbiter.subscribe((event) => {
        const expected = written % 2 === 1 ? "PAUSE" : "RUN";
        if (event.type === "claim" && event.claim.source === "switch" && event.claim.state === expected && written < rounds) next();
      });
      try {
        next();
        for (let round = 1; round <= rounds; round++) {
          const state = round % 2 === 1 ? "PAUSE" : "RUN";
          await waitFor(() => written > round || (written === round && rig.claim()?.state === state), `write ${round} (${state}) to be seen`, BY_EVENT_MS, 1);
        }
        assert.equal(written, rounds);
        await rig.until("RUN", `${path} says RUN`, BY_EVENT_MS);
      } finally {
        stopListening();
      }
    });
  });

  test("an empty file and a missing file mean no objection", async () => {
    const path = join(tempDir(), "signal");
    writeFileSync(path, "PAUSE");
    await withFile({ path, interval: "100ms" }, async (rig) => {
      await rig.until("PAUSE", `${path} says PAUSE`);
      writeFileSync(path, "");
      await rig.until("RUN", `${path} is empty`);
      assert.equal(rig.arbiter.signal, "RUN");
      writeFileSync(path, "PAUSE");
      await rig.until("PAUSE", `${path} says PAUSE`);
      writeFileSync(path, " \n\t\n");
      await rig.until("RUN", `${path} is empty`);
      writeFileSync(path, "PAUSE");
      await rig.until("PAUSE", `${path} says PAUSE`);
      rmSync(path);
      await rig.until("RUN", `${path} does not exist`);
      assert.deepEqual({ ...rig.status().last_observation, at: "" }, { at: "", path, content: null });
      assert.equal(rig.status().health, "ok");
      assert.equal(rig.status().warnings, 0, "a missing file is no problem");
    });
  });

  test("a missing file at start is a release, not a warning", async () => {
    const path = join(tempDir(), "signal");
    await withFile({ path, interval: "100ms" }, async (rig) => {
      await rig.until("RUN", `${path} does not exist`);
      assert.equal(rig.status().health, "ok");
      assert.equal(rig.status().warnings, 0);
    });
  });

  test("on_invalid hold: other content is a warning and the claim stays as it was", async () => {
    const path = join(tempDir(), "signal");
    writeFileSync(path, "pause");
    await withFile({ path, interval: "100ms" }, async (rig) => {
      await rig.until("PAUSE", `${path} says PAUSE`);
      writeFileSync(path, "halt please\n");
      await waitFor(() => rig.status().warnings > 0, "a warning");
      const status = rig.status();
      assert.equal(status.health, "warning");
      assert.equal(status.last_warning?.message, `${path} holds "halt please"; expected RUN, PAUSE or STOP (any case), or nothing`);
      assert.equal(status.last_observation?.content, "halt please");
      // Held, through several re-reads.
      await sleep(350);
      assert.equal(rig.claim()?.state, "PAUSE");
      assert.equal(rig.claim()?.reason, `${path} says PAUSE`);
      assert.equal(rig.status().health, "warning", "still a warning while the content is wrong");
      writeFileSync(path, "run");
      await rig.until("RUN", `${path} says RUN`);
      assert.equal(rig.status().health, "ok");
    });
  });

  test("on_invalid hold: invalid content at start claims nothing", async () => {
    const path = join(tempDir(), "signal");
    writeFileSync(path, "PAUSED");
    await withFile({ path, interval: "100ms" }, async (rig) => {
      await waitFor(() => rig.status().warnings > 0, "a warning");
      assert.equal(rig.status().last_warning?.message, `${path} holds "PAUSED"; expected RUN, PAUSE or STOP (any case), or nothing`);
      assert.equal(rig.claim(), undefined);
      assert.equal(rig.arbiter.signal, "RUN");
    });
  });

  test("on_invalid pause: other content is a warning and claims PAUSE", async () => {
    const path = join(tempDir(), "signal");
    writeFileSync(path, "RUN");
    await withFile({ path, interval: "100ms", on_invalid: "pause" }, async (rig) => {
      await rig.until("RUN", `${path} says RUN`);
      writeFileSync(path, "go go go");
      await rig.until("PAUSE", `${path} holds something other than RUN, PAUSE or STOP`);
      assert.equal(rig.arbiter.signal, "PAUSE");
      assert.equal(rig.status().health, "warning");
      assert.equal(rig.status().last_warning?.message, `${path} holds "go go go"; expected RUN, PAUSE or STOP (any case), or nothing`);
    });
  });

  test("a file larger than 4096 bytes is a warning, not a claim; 4096 bytes are read", async () => {
    const path = join(tempDir(), "signal");
    writeFileSync(path, "run");
    await withFile({ path, interval: "100ms" }, async (rig) => {
      await rig.until("RUN", `${path} says RUN`);
      writeFileSync(path, "PAUSE" + " ".repeat(4092));
      await waitFor(() => rig.status().warnings > 0, "a warning");
      assert.equal(rig.status().last_warning?.message, `${path} is larger than 4096 bytes; expected RUN, PAUSE or STOP (any case), or nothing`);
      await sleep(250);
      assert.equal(rig.claim()?.state, "RUN", "held");
      assert.equal(rig.claim()?.reason, `${path} says RUN`);
      // Exactly the limit is fine.
      writeFileSync(path, "PAUSE" + " ".repeat(4091));
      await rig.until("PAUSE", `${path} says PAUSE`);
    });
    // With on_invalid: pause, too large is invalid like any other content.
    writeFileSync(path, "x".repeat(1024 * 1024));
    await withFile({ path, interval: "100ms", on_invalid: "pause" }, async (rig) => {
      await rig.until("PAUSE", `${path} is larger than 4096 bytes`);
      assert.equal(rig.status().last_observation?.content, `${"x".repeat(40)}...`);
    });
  });

  test("filesystem events make it react long before the interval", async () => {
    const path = join(tempDir(), "signal");
    await withFile({ path, interval: "10s" }, async (rig) => {
      await rig.until("RUN", `${path} does not exist`);
      writeFileSync(path, "PAUSE\n");
      const paused = await rig.until("PAUSE", `${path} says PAUSE`, BY_EVENT_MS);
      writeFileSync(path, "STOP\n");
      const stopped = await rig.until("STOP", `${path} says STOP`, BY_EVENT_MS);
      rmSync(path);
      const released = await rig.until("RUN", `${path} does not exist`, BY_EVENT_MS);
      assert.ok(Math.max(paused, stopped, released) < BY_EVENT_MS, `reacted in ${paused}, ${stopped}, ${released} ms`);
    });
  });

  test("a file deleted and recreated is followed", async () => {
    const path = join(tempDir(), "signal");
    writeFileSync(path, "PAUSE");
    await withFile({ path, interval: "10s" }, async (rig) => {
      await rig.until("PAUSE", `${path} says PAUSE`);
      for (let round = 0; round < 2; round++) {
        rmSync(path);
        await rig.until("RUN", `${path} does not exist`, BY_EVENT_MS);
        writeFileSync(path, "PAUSE");
        await rig.until("PAUSE", `${path} says PAUSE`, BY_EVENT_MS);
      }
    });
  });

  test("a file replaced by rename (editors, mv) is followed", async () => {
    const dir = tempDir();
    const path = join(dir, "signal");
    writeFileSync(path, "PAUSE");
    const replace = (text: string) => {
      const temporary = join(dir, `.signal.${Math.random().toString(36).slice(2)}.swp`);
      writeFileSync(temporary, text);
      renameSync(temporary, path);
    };
    await withFile({ path, interval: "10s" }, async (rig) => {
      await rig.until("PAUSE", `${path} says PAUSE`);
      replace("RUN\n");
      await rig.until("RUN", `${path} says RUN`, BY_EVENT_MS);
      replace("PAUSE\n");
      await rig.until("PAUSE", `${path} says PAUSE`, BY_EVENT_MS);
      replace("");
      await rig.until("RUN", `${path} is empty`, BY_EVENT_MS);
      // mv from another directory (a new inode from elsewhere).
      const elsewhere = join(tempDir(), "staged");
      writeFileSync(elsewhere, "STOP");
      renameSync(elsewhere, path);
      await rig.until("STOP", `${path} says STOP`, BY_EVENT_MS);
    });
  });

  test("a Kubernetes ConfigMap update (the ..data symlink swap) is followed", async () => {
    const dir = tempDir();
    const path = join(dir, "signal");
    // What the kubelet's atomic writer lays out: a timestamped directory, ..data pointing at it,
    // and the key as a symlink through ..data.
    const version = (name: string, text: string) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "signal"), text);
    };
    const swap = (to: string, from: string) => {
      symlinkSync(to, join(dir, "..data_tmp"));
      renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
      rmSync(join(dir, from), { recursive: true });
    };
    version("..2026_a", "PAUSE\n");
    symlinkSync("..2026_a", join(dir, "..data"));
    symlinkSync("..data/signal", path);
    await withFile({ path, interval: "10s" }, async (rig) => {
      await rig.until("PAUSE", `${path} says PAUSE`);
      version("..2026_b", "RUN\n");
      swap("..2026_b", "..2026_a");
      await rig.until("RUN", `${path} says RUN`, BY_EVENT_MS);
      version("..2026_c", "STOP\n");
      swap("..2026_c", "..2026_b");
      await rig.until("STOP", `${path} says STOP`, BY_EVENT_MS);
      // The key removed from the ConfigMap: the symlink dangles.
      version("..2026_d", "");
      rmSync(join(dir, "..2026_d", "signal"));
      swap("..2026_d", "..2026_c");
      await rig.until("RUN", `${path} does not exist`, BY_EVENT_MS);
    });
  });

  test("a directory that does not exist at start is picked up when it appears, and then watched", async () => {
    const dir = join(tempDir(), "not-yet");
    const path = join(dir, "signal");
    await withFile({ path, interval: "3s" }, async (rig) => {
      await rig.until("RUN", `${path} does not exist`);
      assert.equal(rig.status().last_warning?.message, `cannot watch ${dir}: it does not exist; re-reading every 3s`);
      mkdirSync(dir);
      writeFileSync(path, "PAUSE");
      await rig.until("PAUSE", `${path} says PAUSE`, 5000);
      // That read came from the periodic re-read, which also started watching: the next change
      // arrives well before the next re-read, 3 s later.
      writeFileSync(path, "STOP");
      await rig.until("STOP", `${path} says STOP`, 1500);
    });
  });

  test("a directory removed and made again is watched again", async () => {
    const dir = join(tempDir(), "config");
    const path = join(dir, "signal");
    mkdirSync(dir);
    writeFileSync(path, "PAUSE");
    await withFile({ path, interval: "3s" }, async (rig) => {
      await rig.until("PAUSE", `${path} says PAUSE`);
      rmSync(dir, { recursive: true });
      await rig.until("RUN", `${path} does not exist`, BY_EVENT_MS);
      mkdirSync(dir);
      writeFileSync(path, "PAUSE");
      await rig.until("PAUSE", `${path} says PAUSE`, 5000);
      // The watch of the removed directory is dead; a new one must carry this change.
      writeFileSync(path, "RUN");
      await rig.until("RUN", `${path} says RUN`, 1500);
    });
  });

  test("a path that cannot be read (a directory) is a warning, and the source keeps going", async () => {
    const path = tempDir();
    await withFile({ path, interval: "100ms" }, async (rig) => {
      await waitFor(() => rig.status().warnings > 0, "a warning");
      assert.equal(rig.status().last_warning?.message, `cannot read ${path}: it is a directory, not a regular file`);
      assert.equal(rig.claim(), undefined);
      assert.equal(rig.status().restarts, 0, "a warning, not a failure");
    });
    // With on_invalid: pause, a path that cannot be read claims PAUSE like invalid content.
    await withFile({ path, interval: "100ms", on_invalid: "pause" }, async (rig) => {
      await rig.until("PAUSE", `cannot read ${path}`);
    });
  });

  test("a FIFO at the path is never opened: a warning, on_invalid's claim, and a file put in its place is read", async () => {
    // Opening a FIFO for reading blocks until a writer comes: the source would be stuck for good.
    const dir = tempDir();
    const path = join(dir, "signal");
    const cleanUp = makeReleasableFifo(path);
    try {
      await withFile({ path, interval: "100ms", on_invalid: "pause" }, async (rig) => {
        await rig.until("PAUSE", `cannot read ${path}`);
        assert.equal(rig.status().health, "warning");
        assert.equal(rig.status().last_warning?.message, `cannot read ${path}: it is a FIFO, not a regular file`);
        assert.equal(rig.status().restarts, 0, "a warning, not a failure");
        writeFileSync(join(dir, "next"), "STOP");
        renameSync(join(dir, "next"), path);
        await rig.until("STOP", `${path} says STOP`);
      });
    } finally {
      cleanUp();
    }
  });

  test("on_invalid hold: a FIFO at the path claims nothing, and the source keeps reading", async () => {
    const path = join(tempDir(), "signal");
    const cleanUp = makeReleasableFifo(path);
    try {
      await withFile({ path, interval: "100ms" }, async (rig) => {
        await waitFor(() => rig.status().warnings >= 2, "two warnings: the source keeps reading");
        assert.equal(rig.status().last_warning?.message, `cannot read ${path}: it is a FIFO, not a regular file`);
        assert.equal(rig.claim(), undefined);
      });
    } finally {
      cleanUp();
    }
  });

  test("a link to /dev/zero is a warning and on_invalid's claim, not an endless read", async () => {
    const path = join(tempDir(), "signal");
    symlinkSync("/dev/zero", path);
    await withFile({ path, interval: "100ms", on_invalid: "pause" }, async (rig) => {
      await rig.until("PAUSE", `cannot read ${path}`);
      assert.equal(rig.status().last_warning?.message, `cannot read ${path}: it is a character device, not a regular file`);
    });
  });

  test("after stop, changes to the file claim nothing", async () => {
    const path = join(tempDir(), "signal");
    writeFileSync(path, "PAUSE");
    const arbiter = SignalStore.inMemory();
    const host = new PluginHost(arbiter, [fileSource({ name: "switch", path, interval: "100ms" })]);
    host.start();
    await waitFor(() => arbiter.signal === "PAUSE", "the first claim");
    await host.stop();
    writeFileSync(path, "STOP");
    await sleep(400);
    assert.equal(arbiter.signal, "PAUSE");
    assert.equal(arbiter.snapshot().claims.find((c) => c.source === "switch")?.state, "PAUSE");
  });

  test("options are validated at construction", () => {
    assert.throws(() => fileSource({ name: "switch", path: "" }), { message: 'file "switch": path: got ""; allowed: a file path' });
    assert.throws(() => fileSource({ name: "switch", path: "/x", on_invalid: "stop" as "pause" }), {
      message: 'file "switch": on_invalid: got "stop"; allowed: hold or pause',
    });
    assert.throws(() => fileSource({ name: "switch", path: "/x", interval: "10ms" }), {
      message: /^file "switch": interval: got "10ms"; allowed: a duration from 50ms to 1h/,
    });
  });
});
