/**
 * The state of one signal as a value: every source's claim, the STOP latch, the last override,
 * and the effective signal derived from them. A snapshot is never changed: a change makes a new
 * one (`transition`), and that new value is what a state backend commits and the store adopts.
 *
 * Rules (see README "Design"):
 * - the most severe claim wins: STOP > PAUSE > RUN;
 * - once the effective signal is STOP it latches: it stays STOP until the `manual` source claims
 *   RUN (a person sends `POST /RUN`), even when the source that claimed STOP lets go;
 * - the `manual` source always exists; its first claim is the configured `signal_state`.
 */
import { type Signal, severity } from "./signal.ts";

/** Name of the source behind the `POST /RUN|PAUSE|STOP` endpoints. */
export const MANUAL_SOURCE = "manual";

/** Shown as `decided_by` when only the STOP latch keeps the signal at STOP. */
export const STOP_LATCH = "stop_latch";

/** Names a signal; one server holds one today, and backends key everything by it. */
export type SignalName = string;
export const DEFAULT_SIGNAL: SignalName = "default";

/** One source's current opinion of the signal. */
export interface Claim {
  readonly source: string;
  /** `RUN` means "no objection". */
  readonly state: Signal;
  readonly reason: string;
  /** When the claim took its current state; re-asserting the same state keeps it. */
  readonly since: Date;
  /** When the source last reported, re-assertions included. */
  readonly updated: Date;
  /** Who asked, for claims made on someone's behalf (remote address, token name). */
  readonly actor?: string;
  /** When a timed claim (`POST /PAUSE?for=`) ends by itself. */
  readonly until?: Date;
  /**
   * What the source needs to pick its claim up again after a restart (an Alertmanager source's
   * firing alerts): plain JSON, owned by the source, kept in the state file beside the claim.
   */
  readonly memo?: unknown;
}

/** Set when the effective signal became STOP; cleared only by a manual RUN. */
export interface StopLatch {
  readonly since: Date;
  readonly source: string;
  readonly reason: string;
}

/** An operator's forced RUN (`POST /RUN?force=true`). */
export interface Override {
  readonly at: Date;
  readonly reason: string;
  readonly actor?: string;
  /** The sources whose claims were overridden. */
  readonly sources: readonly string[];
}

/** What a backend stores for one signal. */
export interface Snapshot {
  readonly name: SignalName;
  /** Every source's claim, in the order the sources first claimed; `manual` is always there. */
  readonly claims: readonly Claim[];
  readonly latch: StopLatch | null;
  /** The last time an operator forced RUN past the automatic claims. */
  readonly override: Override | null;
  /** The effective signal: what `GET /` answers. */
  readonly signal: Signal;
  /** The source whose claim gives the signal, or `stop_latch`. */
  readonly decidedBy: string;
}

/** A snapshot as this server shows it: with the count of visible changes (never stored). */
export interface View extends Snapshot {
  /** Counts changes of the effective signal in this process; 0 until the first change. */
  readonly seq: number;
  readonly changedAt: Date;
}

/** The state before anything happened: the manual source's `signal_state` claim. */
export function initialSnapshot(signal: Signal, at: Date, name: SignalName = DEFAULT_SIGNAL): Snapshot {
  const claim: Claim = { source: MANUAL_SOURCE, state: signal, reason: `initial signal_state ${signal}`, since: at, updated: at };
  return settle(name, [claim], null, null, at);
}

/**
 * Derives the effective signal from the claims and closes the latch when the top claim is STOP.
 * On a tie the claim that has held its state longest decides.
 */
export function settle(
  name: SignalName,
  claims: readonly Claim[],
  latch: StopLatch | null,
  override: Override | null,
  at: Date,
): Snapshot {
  let top: Claim | undefined;
  for (const claim of claims) {
    const rank = top ? severity(claim.state) - severity(top.state) : 1;
    if (rank > 0 || (rank === 0 && claim.since < top!.since)) top = claim;
  }
  // The manual claim always exists, so there is always a top claim.
  const winner = top!;
  const closed = winner.state === "STOP" && !latch ? { since: at, source: winner.source, reason: winner.reason } : latch;
  const latched = closed !== null && winner.state !== "STOP";
  return {
    name,
    claims,
    latch: closed,
    override,
    signal: latched ? "STOP" : winner.state,
    decidedBy: latched ? STOP_LATCH : winner.source,
  };
}

/** `source`'s claim in `snapshot`, if it has one. */
export function claimOf(snapshot: Snapshot, source: string): Claim | undefined {
  return snapshot.claims.find((claim) => claim.source === source);
}
