/**
 * The arbiter holds every source's claim and derives the effective signal.
 *
 * Rules (see README "Design"):
 * - the most severe claim wins: STOP > PAUSE > RUN;
 * - once the effective signal is STOP it latches: it stays STOP until the
 *   `manual` source claims RUN (a person sends `POST /RUN`), even when the
 *   source that claimed STOP lets go, because a stopped chaos run is over;
 * - the `manual` source always exists; its first claim is the configured
 *   `signal_state`, so a run can start paused as in Krkn.
 *
 * Every method is synchronous, so concurrent requests are serialised by the
 * event loop: no caller ever sees a half-applied claim. Events are queued
 * and delivered after the change is complete, in order, even when a
 * listener claims in turn (its events follow the ones being delivered).
 */
import { type Signal, SIGNALS, severity } from "./signal.ts";

/** Name of the source behind the `POST /RUN|PAUSE|STOP` endpoints. */
export const MANUAL_SOURCE = "manual";

/** Shown as `decided_by` when only the STOP latch keeps the signal at STOP. */
export const STOP_LATCH = "stop_latch";

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

/** A consistent view of the arbiter at one moment. */
export interface ArbiterSnapshot {
  readonly signal: Signal;
  /** Counts changes of the effective signal; 0 until the first change. */
  readonly seq: number;
  readonly changedAt: Date;
  /** The source whose claim gives the signal, or `stop_latch`. */
  readonly decidedBy: string;
  readonly latch: StopLatch | null;
  /** Every source's claim, in the order the sources first claimed. */
  readonly claims: readonly Claim[];
  /** The last time an operator forced RUN past the automatic claims. */
  readonly override: Override | null;
}

/** A change worked out ahead: the state it gives, and the way to make it (`Arbiter.plan`). */
export interface PlannedChange<T> {
  readonly snapshot: ArbiterSnapshot;
  commit(): T;
}

/** An operator's forced RUN (`POST /RUN?force=true`). */
export interface Override {
  readonly at: Date;
  readonly reason: string;
  readonly actor?: string;
  /** The sources whose claims were overridden. */
  readonly sources: readonly string[];
}

/** A claim was made (its state changed, or it was an explicit act). */
export interface ClaimEvent {
  readonly type: "claim";
  readonly at: Date;
  readonly claim: Claim;
  /** The source's previous state; `null` for its first claim. */
  readonly previous: Signal | null;
}

/** The effective signal changed. */
export interface ChangeEvent {
  readonly type: "change";
  readonly at: Date;
  readonly seq: number;
  readonly signal: Signal;
  readonly previous: Signal;
  /** The claim that caused the change. */
  readonly cause: Claim;
}

export type ArbiterEvent = ClaimEvent | ChangeEvent;
export type ArbiterListener = (event: ArbiterEvent) => void;

export interface ClaimOptions {
  /** Who asked (remote address, token name); recorded on the claim. */
  readonly actor?: string;
  /**
   * An act by a person or a webhook: emit a claim event even when the state
   * is unchanged, so the audit history records every request.
   * @default false
   */
  readonly explicit?: boolean;
  /**
   * Whether a manual RUN opens the STOP latch. A person's RUN does; a timed
   * pause running out is a manual RUN that must not end a STOP.
   * @default true
   */
  readonly opensLatch?: boolean;
  /** Marks a timed claim: when it ends by itself (kept in the state file). */
  readonly until?: Date;
  /** The source's memo for the claim (`Claim.memo`); a claim without one has none. */
  readonly memo?: unknown;
}

export interface ArbiterOptions {
  /** The `manual` source's first claim (Krkn's `signal_state`). @default "RUN" */
  readonly initialSignal?: Signal;
  /** Clock, replaceable in tests. @default () => new Date() */
  readonly now?: () => Date;
  /** Called when a listener throws; the arbiter and other listeners go on. */
  readonly onListenerError?: (error: unknown, event: ArbiterEvent) => void;
}

export class Arbiter {
  readonly #claims = new Map<string, Claim>();
  readonly #listeners = new Set<ArbiterListener>();
  #now: () => Date;
  readonly #onListenerError: (error: unknown, event: ArbiterEvent) => void;
  #latch: StopLatch | null = null;
  #override: Override | null = null;
  #signal: Signal = "RUN";
  #decidedBy: string = MANUAL_SOURCE;
  #seq = 0;
  #changedAt: Date;
  readonly #queue: ArbiterEvent[] = [];
  #delivering = false;
  /**
   * Counts what happens here (claims changing state, the latch closing), so that a planned change
   * committed later (`plan`) can tell what came after it: it must not undo any of that.
   */
  #version = 0;
  readonly #claimVersions = new Map<string, number>();
  #latchVersion = 0;
  /** While a planned change is committed: the version it was planned at. */
  #asOf: number | undefined;

  constructor(options: ArbiterOptions = {}) {
    this.#now = options.now ?? (() => new Date());
    this.#onListenerError = options.onListenerError ?? (() => {});
    const initial = options.initialSignal ?? "RUN";
    const at = this.#now();
    this.#changedAt = at;
    const claim: Claim = {
      source: MANUAL_SOURCE,
      state: initial,
      reason: `initial signal_state ${initial}`,
      since: at,
      updated: at,
    };
    this.#claims.set(MANUAL_SOURCE, claim);
    this.#settle(at);
  }

  /** The effective signal: what `GET /` answers. */
  get signal(): Signal {
    return this.#signal;
  }

  /**
   * Records `source`'s opinion and returns the effective signal afterwards.
   * Level-triggered: report the whole opinion each time, repeats are cheap.
   */
  claim(source: string, state: Signal, reason: string, options: ClaimOptions = {}): Signal {
    // Callers in plain JavaScript get no type check: a wrong word must never reach GET /.
    if (!SIGNALS.includes(state)) throw new TypeError(`claim state must be one of ${SIGNALS.join(", ")}, not ${JSON.stringify(state)}`);
    if (typeof source !== "string" || source === "") throw new TypeError("claim source must be a non-empty string");
    // A planned change committed after its write (a POST /RUN) must not undo what the same source
    // claimed meanwhile (a POST /PAUSE, made at once): that came later.
    if (this.#changedSincePlan(source)) return this.#signal;
    const at = this.#now();
    const before = this.#claims.get(source);
    const stateChanged = before?.state !== state;
    const claim: Claim = {
      source,
      state,
      reason,
      since: stateChanged || !before ? at : before.since,
      updated: at,
      ...(options.actor === undefined ? {} : { actor: options.actor }),
      ...(options.until === undefined ? {} : { until: options.until }),
      ...(options.memo === undefined ? {} : { memo: options.memo }),
    };
    this.#claims.set(source, claim);
    if (stateChanged || options.explicit) this.#claimVersions.set(source, ++this.#version);
    // A person resuming the run is the only thing that opens the latch; a RUN planned before the
    // latch closed (committed after its write) must not open it: that STOP came later.
    const opens = source === MANUAL_SOURCE && state === "RUN" && options.opensLatch !== false;
    if (opens && (this.#asOf === undefined || this.#latchVersion <= this.#asOf)) this.#latch = null;

    const previousSignal = this.#signal;
    this.#settle(at);
    if (stateChanged || options.explicit) {
      this.#queue.push({ type: "claim", at, claim, previous: before?.state ?? null });
    }
    if (this.#signal !== previousSignal) {
      this.#seq += 1;
      this.#changedAt = at;
      this.#queue.push({
        type: "change",
        at,
        seq: this.#seq,
        signal: this.#signal,
        previous: previousSignal,
        cause: claim,
      });
    }
    this.#deliver();
    return this.#signal;
  }

  /**
   * An operator forces RUN past the automatic claims: every other source's
   * claim becomes RUN and the latch opens. The override is momentary: each
   * source re-asserts its claim on its next observation.
   */
  forceRun(reason: string, options: ClaimOptions = {}): Signal {
    // A person's later manual claim (a PAUSE while this was being written) stands, and so do the others.
    if (this.#changedSincePlan(MANUAL_SOURCE)) return this.#signal;
    const at = this.#now();
    const overridden: string[] = [];
    for (const [source, before] of this.#claims) {
      if (source === MANUAL_SOURCE || before.state === "RUN") continue;
      // A claim made after this override was planned stands: the override cannot have meant it.
      if (this.#changedSincePlan(source)) continue;
      overridden.push(source);
      const claim: Claim = {
        source,
        state: "RUN",
        reason: `overridden by ${reason}${options.actor ? ` from ${options.actor}` : ""} (was ${before.state}: ${before.reason})`,
        since: at,
        updated: at,
        ...(options.actor === undefined ? {} : { actor: options.actor }),
      };
      this.#claims.set(source, claim);
      this.#claimVersions.set(source, ++this.#version);
      this.#queue.push({ type: "claim", at, claim, previous: before.state });
    }
    this.#override = { at, reason, sources: overridden, ...(options.actor === undefined ? {} : { actor: options.actor }) };
    return this.claim(MANUAL_SOURCE, "RUN", reason, { ...options, explicit: true });
  }

  /**
   * Puts back saved claims and the latch: at start from the state file (only
   * the sources that still exist), or into a copy for a preview (`replace`:
   * the claims become exactly the saved ones). A change of the effective
   * signal is an event like any other.
   */
  restore(
    state: { readonly claims: readonly Claim[]; readonly latch: StopLatch | null; readonly override?: Override | null },
    options: { readonly replace?: boolean; readonly keep?: (source: string) => boolean } = {},
  ): Signal {
    if (options.replace) this.#claims.clear();
    // A full snapshot carries the last override too (a preview's copy must have it).
    if (state.override !== undefined) this.#override = state.override;
    for (const claim of state.claims) {
      if (claim.source === MANUAL_SOURCE || (options.keep?.(claim.source) ?? true)) this.#claims.set(claim.source, claim);
    }
    this.#latch = state.latch;
    const previous = this.#signal;
    const at = this.#now();
    this.#settle(at);
    if (this.#signal !== previous) {
      this.#seq += 1;
      this.#changedAt = at;
      const cause = this.#claims.get(this.#decidedBy) ?? this.#claims.get(MANUAL_SOURCE)!;
      this.#queue.push({ type: "change", at, seq: this.#seq, signal: this.#signal, previous, cause });
      this.#deliver();
    }
    return this.#signal;
  }

  /**
   * Works `change` out on a copy, now: `snapshot` is the state it would give (nothing here changes
   * and no event is sent), and `commit()` makes it here, with the same times. A change toward RUN
   * is saved this way before it is made (write-ahead), so no one ever sees a RUN that then fails
   * to save, and the state file holds exactly what was made.
   */
  plan<T>(change: (target: Arbiter) => T): PlannedChange<T> {
    const at = this.#now();
    const asOf = this.#version;
    const copy = new Arbiter({ now: () => at });
    copy.restore(this.snapshot(), { replace: true });
    change(copy);
    return {
      snapshot: copy.snapshot(),
      // What came between the plan and the commit (a source's STOP during the write) stays: the
      // change is made as of its own time. Those later claims' own saves follow this one.
      commit: () => {
        const clock = this.#now;
        this.#now = () => at;
        this.#asOf = asOf;
        try {
          return change(this);
        } finally {
          this.#now = clock;
          this.#asOf = undefined;
        }
      },
    };
  }

  /** The arbiter's clock: held at a planned change's time while that change is made. */
  now(): Date {
    return this.#now();
  }

  /** Back to "no objection": the same as claiming RUN. */
  release(source: string, reason: string, options: ClaimOptions = {}): Signal {
    return this.claim(source, "RUN", reason, options);
  }

  snapshot(): ArbiterSnapshot {
    return {
      signal: this.#signal,
      seq: this.#seq,
      changedAt: this.#changedAt,
      decidedBy: this.#decidedBy,
      latch: this.#latch,
      claims: [...this.#claims.values()],
      override: this.#override,
    };
  }

  /** Calls `listener` for every later event; returns the unsubscribe function. */
  subscribe(listener: ArbiterListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** While a planned change is committed: whether `source` claimed anew after it was planned. */
  #changedSincePlan(source: string): boolean {
    return this.#asOf !== undefined && (this.#claimVersions.get(source) ?? 0) > this.#asOf;
  }

  /** Recomputes the effective signal and the latch from the claims. */
  #settle(at: Date): void {
    let top: Claim | undefined;
    for (const claim of this.#claims.values()) {
      // On a tie, the claim that has held its state longest is named as the decider.
      const rank = top ? severity(claim.state) - severity(top.state) : 1;
      if (rank > 0 || (rank === 0 && claim.since < top!.since)) top = claim;
    }
    // The manual claim always exists, so there is always a top claim.
    const winner = top!;
    if (winner.state === "STOP" && !this.#latch) {
      this.#latch = { since: at, source: winner.source, reason: winner.reason };
      this.#latchVersion = ++this.#version;
    }
    if (this.#latch && winner.state !== "STOP") {
      this.#signal = "STOP";
      this.#decidedBy = STOP_LATCH;
    } else {
      this.#signal = winner.state;
      this.#decidedBy = winner.source;
    }
  }

  /** Delivers queued events in order; a nested call (a listener that claims) leaves it to the outer one. */
  #deliver(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      for (let event = this.#queue.shift(); event; event = this.#queue.shift()) {
        for (const listener of this.#listeners) {
          try {
            listener(event);
          } catch (error) {
            this.#onListenerError(error, event);
          }
        }
      }
    } finally {
      this.#delivering = false;
    }
  }
}
