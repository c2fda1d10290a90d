/**
 * State kept in memory only (`--state-file none`), and the reference for a replicated backend:
 * commits compare revisions, and every store watching it is told of the others' commits.
 */
import type { Snapshot } from "../core/snapshot.ts";
import type { BackendHealth, CommitResult, Revision, StateBackend } from "./backend.ts";

export class MemoryBackend implements StateBackend {
  readonly where = "memory";
  #snapshot: Snapshot | null;
  #revision = 0;
  readonly #watchers = new Set<(snapshot: Snapshot, revision: Revision) => void>();

  constructor(initial: Snapshot | null = null) {
    this.#snapshot = initial;
  }

  load(): Promise<{ snapshot: Snapshot | null; revision: Revision }> {
    return Promise.resolve({ snapshot: this.#snapshot, revision: String(this.#revision) });
  }

  commit(expected: Revision, next: Snapshot): Promise<CommitResult> {
    if (expected !== String(this.#revision)) {
      return Promise.resolve({ ok: false, latest: this.#snapshot!, revision: String(this.#revision) });
    }
    this.#snapshot = next;
    const revision = String(++this.#revision);
    // Told after the committer has its answer: a watcher must never see a commit before its maker does.
    queueMicrotask(() => {
      for (const watcher of this.#watchers) watcher(next, revision);
    });
    return Promise.resolve({ ok: true, revision });
  }

  watch(onChange: (snapshot: Snapshot, revision: Revision) => void, abort: AbortSignal): void {
    if (abort.aborted) return;
    this.#watchers.add(onChange);
    abort.addEventListener("abort", () => this.#watchers.delete(onChange), { once: true });
  }

  health(): BackendHealth {
    return { current: true, lastContact: null };
  }
}
