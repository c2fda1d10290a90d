/**
 * Where a signal's state is kept. Designed for a replicated store from the start (etcd next:
 * `commit` is a transaction on the key's mod_revision, `watch` an etcd watch); the file and the
 * memory backends are the first two.
 */
import type { Snapshot } from "../core/snapshot.ts";

/**
 * Which commit a snapshot is: a decimal counter that only grows (the file backend's write count,
 * etcd's mod_revision), so that a watch event older than what a store has is known as such.
 */
export type Revision = string;

/** Whether revision `a` came after `b`. */
export function isNewer(a: Revision, b: Revision): boolean {
  return Number(a) > Number(b);
}

export type CommitResult =
  | { readonly ok: true; readonly revision: Revision }
  /** Someone else committed since `expected`: this is what they committed. */
  | { readonly ok: false; readonly latest: Snapshot; readonly revision: Revision };

export interface BackendHealth {
  /** False when this server cannot know the stored state is current (→ PAUSE, once replicated). */
  readonly current: boolean;
  readonly lastContact: Date | null;
  readonly detail?: string;
}

export interface StateBackend {
  /** Where the state lives, for messages (`/var/lib/chaos-signal/state.json`, `memory`). */
  readonly where: string;
  /** The stored snapshot, null when nothing is stored yet. */
  load(): Promise<{ readonly snapshot: Snapshot | null; readonly revision: Revision }>;
  /** Stores `next` if the stored revision is still `expected`; rejects on I/O failure. */
  commit(expected: Revision, next: Snapshot): Promise<CommitResult>;
  /** Calls `onChange` for every commit made elsewhere, until `abort`. */
  watch(onChange: (snapshot: Snapshot, revision: Revision) => void, abort: AbortSignal): void;
  health(): BackendHealth;
  /**
   * Shared by several servers (etcd): while `health().current` is false the store serves PAUSE
   * (STOP stays STOP), refuses changes toward RUN, and reloads once it is current again.
   */
  readonly failClosed?: boolean;
}
