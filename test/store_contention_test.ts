// A shared store busy with other writers: a save that loses MAX_CONFLICTS times in a row is
// retried later (as a failed write is), not left unsaved until the next change comes; a RUN
// whose commit loses keeps the rule that a later word of its source stands.
import assert from "node:assert/strict";
import { test } from "node:test";
import { initialSnapshot, MANUAL_SOURCE, NotSavedError, SignalStore } from "../mod.ts";
import type { CommitResult, Revision } from "../src/state/backend.ts";
import { MemoryBackend } from "../src/state/memory_backend.ts";
import type { Snapshot } from "../src/core/snapshot.ts";
import { MAX_CONFLICTS } from "../src/state/signal_store.ts";
import { waitFor } from "./helpers/wait.ts";
import { transition } from "../src/core/transition.ts";

const transitionTo = (snapshot: Snapshot, state: "STOP", at: Date) =>
  transition(snapshot, { kind: "claim", source: MANUAL_SOURCE, state, reason: "POST /STOP", explicit: true }, at).next;

/** Another replica commits (the same state again) just before each of the next `busy` commits. */
class BusyBackend extends MemoryBackend {
  busy = 0;
  override async commit(expected: Revision, next: Snapshot): Promise<CommitResult> {
    if (this.busy > 0) {
      this.busy -= 1;
      const latest = await this.load();
      await super.commit(latest.revision, latest.snapshot!);
    }
    return super.commit(expected, next);
  }
}

test("a save that loses to other writers MAX_CONFLICTS times in a row is retried, and the STOP is saved", async () => {
  const snapshot = initialSnapshot("RUN", new Date());
  const backend = new BusyBackend(snapshot);
  const store = new SignalStore(backend, { snapshot, revision: "0" }, { retryMs: 50, maxRetryMs: 100 });
  try {
    backend.busy = MAX_CONFLICTS;
    const made = store.claim(MANUAL_SOURCE, "STOP", "POST /STOP");
    const saving = store.flush();
    assert.equal(await made, "STOP");
    await assert.rejects(saving, (error: Error) => error instanceof NotSavedError && /changed elsewhere/.test(error.message));
    assert.equal(store.health().saved, false, "shown unsaved");
    await waitFor(async () => (await backend.load()).snapshot?.signal === "STOP", { what: "the STOP saved by a retry", timeoutMs: 2000 });
    await waitFor(() => store.health().saved, { what: "shown saved again", timeoutMs: 2000 });
  } finally {
    await store.close();
  }
});

/** The first commit waits for `release`, then loses to another writer (who commits the same state again). */
class GatedConflictBackend extends MemoryBackend {
  release!: () => void;
  readonly #reachedGate = Promise.withResolvers<void>();
  readonly reached = this.#reachedGate.promise;
  #first = true;
  override async commit(expected: Revision, next: Snapshot): Promise<CommitResult> {
    if (this.#first) {
      this.#first = false;
      this.#reachedGate.resolve();
      await new Promise<void>((resolve) => this.release = resolve);
      const latest = await this.load();
      await super.commit(latest.revision, latest.snapshot!);
    }
    return super.commit(expected, next);
  }
}

test("a RUN whose commit lost to another writer does not undo, on its retry, a STOP of the same source made meanwhile", async () => {
  const at = new Date();
  const stopped = transitionTo(initialSnapshot("RUN", at), "STOP", at);
  const backend = new GatedConflictBackend(stopped);
  const store = new SignalStore(backend, { snapshot: stopped, revision: "0" });
  try {
    assert.equal(store.signal, "STOP");
    const run = store.claim(MANUAL_SOURCE, "RUN", "POST /RUN", { explicit: true });
    await backend.reached;
    // A person says STOP again while the RUN is being written: the later word.
    assert.equal(await store.claim(MANUAL_SOURCE, "STOP", "POST /STOP", { explicit: true }), "STOP");
    backend.release();
    assert.equal(await run, "STOP", "the RUN's answer");
    await store.flush();
    assert.equal(store.signal, "STOP");
    assert.equal((await backend.load()).snapshot?.signal, "STOP", "stored");
  } finally {
    await store.close();
  }
});
