/**
 * The one way a signal changes: `transition(snapshot, change, now)` works out the next snapshot
 * and the events it gives, with no clock, no I/O and nothing mutated. The store commits `next`
 * through its backend and adopts it; a conflict re-runs the transition on the latest snapshot.
 */
import { SIGNALS } from "./signal.ts";
import type { Change } from "./change.ts";
import type { EventDraft } from "./events.ts";
import { type Claim, claimOf, MANUAL_SOURCE, type Override, settle, type Snapshot } from "./snapshot.ts";
import { formatDuration } from "./duration.ts";

export interface Transition {
  readonly next: Snapshot;
  readonly events: readonly EventDraft[];
  /**
   * Whether `next` must be written: it gives events, or a claim's memo changed. A source
   * re-asserting the same state with a new reason is made here and never written, so that a
   * level-triggered source does not write the state file on every observation.
   */
  readonly durable: boolean;
}

/** Throws TypeError for what no type check caught (plain JavaScript callers): a wrong word must never reach GET /. */
export function checkChange(change: Change): void {
  if (change.kind !== "claim") return;
  if (!SIGNALS.includes(change.state)) throw new TypeError(`claim state must be one of ${SIGNALS.join(", ")}, not ${JSON.stringify(change.state)}`);
  if (typeof change.source !== "string" || change.source === "") throw new TypeError("claim source must be a non-empty string");
}

export function transition(snapshot: Snapshot, change: Change, now: Date): Transition {
  switch (change.kind) {
    case "claim":
      return claim(snapshot, change, now, { opensLatch: true });
    case "force-run":
      return forceRun(snapshot, change, now);
    case "timed-pause": {
      const until = new Date(now.getTime() + change.ms);
      const reason = `POST /PAUSE?for=${formatDuration(change.ms)} (until ${until.toISOString()})`;
      return claim(snapshot, { kind: "claim", source: MANUAL_SOURCE, state: "PAUSE", reason, explicit: true, ...actor(change.actor) }, now, { until });
    }
    case "pause-expired": {
      const manual = claimOf(snapshot, MANUAL_SOURCE);
      // Replaced meanwhile (another request, another timed pause): that one stands.
      if (manual?.state !== "PAUSE" || manual.until?.getTime() !== change.until.getTime()) return unchanged(snapshot);
      const reason = `timed pause of ${formatDuration(change.lengthMs)} expired`;
      // Running out never opens the latch: a STOP that came meanwhile stays.
      return claim(snapshot, { kind: "claim", source: MANUAL_SOURCE, state: "RUN", reason, explicit: true }, now, { opensLatch: false });
    }
    case "restore":
      return restore(snapshot, change.saved, change.sources, now);
  }
}

function unchanged(snapshot: Snapshot): Transition {
  return { next: snapshot, events: [], durable: false };
}

function actor(value: string | undefined): { actor?: string } {
  return value === undefined ? {} : { actor: value };
}

function claim(
  snapshot: Snapshot,
  change: Extract<Change, { kind: "claim" }>,
  at: Date,
  how: { opensLatch?: boolean; until?: Date },
  events: EventDraft[] = [],
  override: Override | null = snapshot.override,
): Transition {
  const before = claimOf(snapshot, change.source);
  const stateChanged = before?.state !== change.state;
  const made: Claim = {
    source: change.source,
    state: change.state,
    reason: change.reason,
    since: stateChanged || !before ? at : before.since,
    updated: at,
    ...actor(change.actor),
    ...(how.until === undefined ? {} : { until: how.until }),
    ...(change.memo === undefined ? {} : { memo: change.memo }),
  };
  const claims = before ? snapshot.claims.map((c) => (c === before ? made : c)) : [...snapshot.claims, made];
  // A person resuming the run is the only thing that opens the latch.
  const opens = change.source === MANUAL_SOURCE && change.state === "RUN" && how.opensLatch === true;
  const next = settle(snapshot.name, claims, opens ? null : snapshot.latch, override, at);
  if (stateChanged || change.explicit) events.push({ type: "claim", at, claim: made, previous: before?.state ?? null });
  if (next.signal !== snapshot.signal) {
    events.push({ type: "change", at, signal: next.signal, previous: snapshot.signal, cause: made });
  }
  const memoChanged = memoText(before?.memo) !== memoText(made.memo);
  return { next, events, durable: events.length > 0 || memoChanged || override !== snapshot.override };
}

function memoText(memo: unknown): string | undefined {
  try {
    return JSON.stringify(memo);
  } catch {
    return "(not JSON)";
  }
}

/**
 * Every other source's claim becomes RUN and the latch opens. The override is momentary: each
 * source re-asserts its claim on its next observation.
 */
function forceRun(snapshot: Snapshot, change: Extract<Change, { kind: "force-run" }>, at: Date): Transition {
  const events: EventDraft[] = [];
  const overridden: string[] = [];
  const claims = snapshot.claims.map((before): Claim => {
    if (before.source === MANUAL_SOURCE || before.state === "RUN") return before;
    overridden.push(before.source);
    const made: Claim = {
      source: before.source,
      state: "RUN",
      // Who forced it is the claim's actor: said again in the reason, the log line said it twice.
      reason: `overridden by ${change.reason} (was ${before.state}: ${before.reason})`,
      since: at,
      updated: at,
      ...actor(change.actor),
    };
    events.push({ type: "claim", at, claim: made, previous: before.state });
    return made;
  });
  const override: Override = { at, reason: change.reason, sources: overridden, ...actor(change.actor) };
  const released = { ...snapshot, claims };
  return claim(
    released,
    { kind: "claim", source: MANUAL_SOURCE, state: "RUN", reason: change.reason, explicit: true, ...actor(change.actor) },
    at,
    { opensLatch: true },
    events,
    override,
  );
}

/** The saved claims of the manual source and of `sources` (those configured now), and the latch. */
function restore(snapshot: Snapshot, saved: Snapshot, sources: readonly string[], at: Date): Transition {
  const keep = new Set([MANUAL_SOURCE, ...sources]);
  const claims = new Map(snapshot.claims.map((c) => [c.source, c]));
  for (const c of saved.claims) if (keep.has(c.source)) claims.set(c.source, c);
  const next = settle(snapshot.name, [...claims.values()], saved.latch, saved.override ?? snapshot.override, at);
  const events: EventDraft[] = [];
  if (next.signal !== snapshot.signal) {
    const cause = claimOf(next, next.decidedBy) ?? claimOf(next, MANUAL_SOURCE)!;
    events.push({ type: "change", at, signal: next.signal, previous: snapshot.signal, cause });
  }
  return { next, events, durable: true };
}

/** The end of the manual timed pause in `snapshot`, if there is one: when, and how long it lasts. */
export function nextExpiry(snapshot: Snapshot): { until: Date; lengthMs: number } | undefined {
  const manual = claimOf(snapshot, MANUAL_SOURCE);
  if (manual?.state !== "PAUSE" || !manual.until) return undefined;
  // Its length from the claim itself, rounded, as a restored claim's `until` and `updated` were read a moment apart.
  return { until: manual.until, lengthMs: Math.round((manual.until.getTime() - manual.updated.getTime()) / 10) * 10 };
}
