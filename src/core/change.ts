/**
 * What can happen to a signal, as data. Every change — a manual POST, a source's claim or
 * release, a forced RUN, a timed pause and its end, the restore at start — is one of these,
 * worked out by `transition` and made by the store.
 */
import type { Signal } from "./signal.ts";
import type { Snapshot } from "./snapshot.ts";

export type Change =
  /**
   * A source's opinion (`manual` for POST /RUN|PAUSE|STOP); a release is a claim of RUN.
   * A manual RUN opens the STOP latch: that is what a person resuming the run means.
   */
  | {
    readonly kind: "claim";
    readonly source: string;
    readonly state: Signal;
    readonly reason: string;
    readonly actor?: string;
    /** An act (a person, a webhook): recorded even when the state is unchanged. */
    readonly explicit?: boolean;
    /** The source's memo for the claim; a claim without one has none. */
    readonly memo?: unknown;
  }
  /** `POST /RUN?force=true`: every other claim becomes RUN, the latch opens, the override is kept. */
  | { readonly kind: "force-run"; readonly reason: string; readonly actor?: string }
  /** `POST /PAUSE?for=`: a manual PAUSE until now + ms. */
  | { readonly kind: "timed-pause"; readonly ms: number; readonly actor?: string }
  /**
   * A timed pause ran out: a manual RUN that never opens the latch, and nothing at all unless
   * the manual claim is still that PAUSE (the same `until`).
   */
  | { readonly kind: "pause-expired"; readonly until: Date; readonly lengthMs: number }
  /** At start: the saved claims (manual and `sources` only) and latch put back. */
  | { readonly kind: "restore"; readonly saved: Snapshot; readonly sources: readonly string[] };

/**
 * Whether a change is made at once and saved after (toward safety), or saved first and made
 * only once saved (toward RUN). By kind, which is the same as by effect: a claim of PAUSE or STOP
 * can lower the effective signal only from STOP, and STOP is latched. A restore happens before
 * anyone reads, and the start waits for its write.
 */
export function towardSafety(change: Change): boolean {
  switch (change.kind) {
    case "claim":
      return change.state !== "RUN";
    case "timed-pause":
    case "restore":
      return true;
    default:
      return false;
  }
}

/** How a claim is made, for the convenience methods (`store.claim`, `context.claim`). */
export interface ClaimOptions {
  /** Who asked (remote address, token name); recorded on the claim. */
  readonly actor?: string;
  /**
   * An act by a person or a webhook: emit a claim event even when the state is unchanged, so the
   * audit history records every request. @default false
   */
  readonly explicit?: boolean;
  /** The source's memo for the claim (`Claim.memo`); a claim without one has none. */
  readonly memo?: unknown;
}
