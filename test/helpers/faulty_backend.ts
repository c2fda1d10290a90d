/** A MemoryBackend whose commits can be made to fail or to hang, and counted. */
import { MemoryBackend } from "../../src/state/memory_backend.ts";
import type { CommitResult, Revision } from "../../src/state/backend.ts";
import type { Snapshot } from "../../src/core/snapshot.ts";

export class FaultyBackend extends MemoryBackend {
  mode: "ok" | "fail" | "hang" = "ok";
  commits = 0;
  readonly #held: (() => void)[] = [];

  override async commit(expected: Revision, next: Snapshot): Promise<CommitResult> {
    this.commits += 1;
    if (this.mode === "fail") throw new Error("ENOSPC: no space left on device");
    if (this.mode === "hang") await new Promise<void>((resolve) => this.#held.push(resolve));
    return super.commit(expected, next);
  }

  /** Lets the hung commits finish (successfully, unless the mode says otherwise by then). */
  release(): void {
    for (const resolve of this.#held.splice(0)) resolve();
  }

  async stored(): Promise<Snapshot | null> {
    return (await this.load()).snapshot;
  }
}
