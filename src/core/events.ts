/**
 * What listeners (push, relays, history, metrics, log) are told after a change is made.
 */
import type { Signal } from "./signal.ts";
import { type Claim, claimOf, MANUAL_SOURCE, type Snapshot, type View } from "./snapshot.ts";

/** A claim was made (its state changed, or it was an explicit act). */
export interface ClaimEvent {
  readonly type: "claim";
  readonly at: Date;
  readonly claim: Claim;
  /** The source's previous state; `null` for its first claim. */
  readonly previous: Signal | null;
  /** Made by a change submitted on this server (not one watched from the store). */
  readonly local?: boolean;
}

/** The effective signal changed. */
export interface ChangeEvent {
  readonly type: "change";
  readonly at: Date;
  /** The store's count of changes, this one included. */
  readonly seq: number;
  readonly signal: Signal;
  readonly previous: Signal;
  /** The claim that caused the change. */
  readonly cause: Claim;
  /**
   * A shared store's revision this signal is committed at, the same on every replica; absent
   * while it is made here and not committed yet, or served PAUSE because the store is not current.
   */
  readonly revision?: string;
  /** Made by a change submitted on this server (not one watched from the store, nor a fail-closed PAUSE). */
  readonly local?: boolean;
}

export type SignalEvent = ClaimEvent | ChangeEvent;
export type SignalListener = (event: SignalEvent) => void;

/** An event as a transition produces it: the store numbers the changes when it makes them. */
export type EventDraft = ClaimEvent | Omit<ChangeEvent, "seq">;

/** A shared store (etcd): its revisions name a state the same way on every replica. */
export interface RevisionFeed {
  /** True for a shared store: the rest of this interface then applies. */
  readonly sharedRevisions: boolean;
  /** The last revision committed or seen. */
  readonly revision: string;
  /** The revision the signal served now is committed at; null while it is not (see ChangeEvent.revision). */
  settledRevision(): string | null;
  /** Calls `listener` when the signal served becomes committed at `revision` without changing (a STOP made here, then saved). */
  onSettled(listener: (revision: string) => void): () => void;
}

/** What readers of a signal need: the signal now, a consistent view, and every later event. */
export interface SignalFeed {
  /** The effective signal: what `GET /` answers. */
  readonly signal: Signal;
  snapshot(): View;
  /** Calls `listener` for every later event, in order; returns the unsubscribe function. */
  subscribe(listener: SignalListener): () => void;
}

/**
 * The events that take a reader from `before` to `after`: a claim event per claim whose state
 * differs, and a change event when the signal does. Used when a change made elsewhere (or a
 * commit under changes made meanwhile) moves the state by more than one transition.
 */
export function eventsBetween(before: Snapshot, after: Snapshot, at: Date): EventDraft[] {
  const events: EventDraft[] = [];
  for (const claim of after.claims) {
    const previous = claimOf(before, claim.source);
    if (previous?.state !== claim.state) events.push({ type: "claim", at, claim, previous: previous?.state ?? null });
  }
  if (before.signal !== after.signal) {
    const cause = claimOf(after, after.decidedBy) ?? claimOf(after, MANUAL_SOURCE)!;
    events.push({ type: "change", at, signal: after.signal, previous: before.signal, cause });
  }
  return events;
}
