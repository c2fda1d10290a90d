/**
 * `POST /PAUSE?for=15m`: a manual PAUSE that ends by itself. When the time
 * is up and the manual claim is still that pause, the manual source goes back
 * to RUN, saying so (the claim event is the history's record). Any other
 * manual request in between replaces the pause and cancels its end. Running
 * out never opens the STOP latch: a STOP that came meanwhile stays.
 */
import { setTimeout as setNodeTimeout } from "node:timers";
import { type Arbiter, type Claim, type ClaimOptions, MANUAL_SOURCE, type PlannedChange } from "../core/arbiter.ts";
import { formatDuration } from "../config/duration.ts";
import type { Signal } from "../core/signal.ts";

/** The longest timed pause: a week. */
export const MAX_PAUSE_MS = 7 * 86_400_000;

/** When the RUN that ends a timed pause could not be saved: the pause holds, and this much later it tries again. */
export const EXPIRY_RETRY_MS = 1000;

/** Saves a change toward RUN before it is made (the state file's write-ahead `commit`). */
export type Persist = <T>(plan: () => PlannedChange<T>) => Promise<T>;

export class TimedPause {
  /**
   * Claims a manual PAUSE for `ms` from the arbiter's clock, without arming its end: what `start`
   * claims, and all a planned change's copy needs. The clock is the plan's time both on the copy
   * and when the change is made, so the state file and the arbiter get the same `until`.
   */
  static claim(arbiter: Arbiter, ms: number, options: ClaimOptions): Signal {
    const until = new Date(arbiter.now().getTime() + ms);
    const reason = `POST /PAUSE?for=${formatDuration(ms)} (until ${until.toISOString()})`;
    return arbiter.claim(MANUAL_SOURCE, "PAUSE", reason, { ...options, until });
  }

  readonly #arbiter: Arbiter;
  #timer: ReturnType<typeof setNodeTimeout> | undefined;
  /** Our claim (the arbiter keeps claim objects as made): the pause is on while it stands. */
  #claim: Claim | undefined;
  #starting = false;

  readonly #persist: Persist | undefined;

  /** `persist`: the end is a change toward RUN, made only once it is saved. */
  constructor(arbiter: Arbiter, persist?: Persist) {
    this.#arbiter = arbiter;
    this.#persist = persist;
    // A timed pause restored from the state file goes on: it ends when it would have.
    const restored = this.#manualClaim();
    // Its length from the claim itself, rounded, as `until` and `updated` were read a moment apart.
    if (restored?.state === "PAUSE" && restored.until) {
      this.#arm(restored, Math.round((restored.until.getTime() - restored.updated.getTime()) / 10) * 10);
    }
    arbiter.subscribe((event) => {
      // Another manual request replaced the timed pause: its end no longer applies.
      if (event.type === "claim" && event.claim.source === MANUAL_SOURCE && !this.#starting && event.claim !== this.#claim) {
        this.cancel();
      }
    });
  }

  /** Claims a manual PAUSE for `ms`; returns the effective signal. */
  start(ms: number, options: ClaimOptions): Signal {
    this.cancel();
    // Our own claim event must not cancel us.
    this.#starting = true;
    let signal: Signal;
    try {
      signal = TimedPause.claim(this.#arbiter, ms, options);
    } finally {
      this.#starting = false;
    }
    this.#arm(this.#manualClaim()!, ms);
    return signal;
  }

  /** Ends the pause at its claim's `until`; `lengthMs` is what the expiry says it lasted. */
  #arm(claim: Claim, lengthMs: number): void {
    this.#claim = claim;
    this.#timer = setNodeTimeout(() => this.#expire(lengthMs), Math.max(0, claim.until!.getTime() - Date.now()));
    // A pending end must not keep a process alive that is otherwise done (tests, library use).
    this.#timer.unref?.();
  }

  cancel(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#claim = undefined;
  }

  #manualClaim(): Claim | undefined {
    return this.#arbiter.snapshot().claims.find((claim) => claim.source === MANUAL_SOURCE);
  }

  #expire(ms: number): void {
    const claim = this.#claim;
    if (claim === undefined || this.#manualClaim() !== claim) return;
    // Checked again where it is made: on the plan's copy, and when committed after the write, for a
    // manual request made meanwhile replaces the pause (claims are kept as made, so identity holds).
    const end = (target: Arbiter): void => {
      if (target.snapshot().claims.find((c) => c.source === MANUAL_SOURCE) !== claim) return;
      target.claim(MANUAL_SOURCE, "RUN", `timed pause of ${formatDuration(ms)} expired`, { explicit: true, opensLatch: false });
    };
    if (!this.#persist) {
      this.cancel();
      return end(this.#arbiter);
    }
    this.#persist(() => this.#arbiter.plan(end)).catch(() => {
      // Not saved, so not made: still paused. Try again while the pause is still ours.
      if (this.#claim !== claim || this.#manualClaim() !== claim) return;
      this.#timer = setNodeTimeout(() => this.#expire(ms), EXPIRY_RETRY_MS);
      this.#timer.unref?.();
    });
  }
}
