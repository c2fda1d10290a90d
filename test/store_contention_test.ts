// A shared store busy with other writers: a save that loses MAX_CONFLICTS times in a row is
// retried later (as a failed write is), not left unsaved until the next change comes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { initialSnapshot, MANUAL_SOURCE, NotSavedError, SignalStore } from "../mod.ts";
import type { CommitResult, Revision } from "../src/state/backend.ts";
import { MemoryBackend } from "../src/state/memory_backend.ts";
import type { Snapshot } from "../src/core/snapshot.ts";
import { MAX_CONFLICTS } from "../src/state/signal_store.ts";
import { waitFor } from "./helpers/wait.ts";

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
