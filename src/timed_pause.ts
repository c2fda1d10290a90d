/**
 * `POST /PAUSE?for=15m`: a manual PAUSE that ends by itself. When the time
 * is up and the manual claim is still that pause, the manual source goes back
 * to RUN, saying so (the claim event is the history's record). Any other
 * manual request in between replaces the pause and cancels its end. Running
 * out never opens the STOP latch: a STOP that came meanwhile stays.
 */
import { setTimeout as setNodeTimeout } from "node:timers";
import { type Arbiter, type Claim, type ClaimOptions, MANUAL_SOURCE } from "./arbiter.ts";
import { formatDuration } from "./duration.ts";
import type { Signal } from "./signal.ts";

/** The longest timed pause: a week. */
export const MAX_PAUSE_MS = 7 * 86_400_000;

export class TimedPause {
  readonly #arbiter: Arbiter;
  #timer: ReturnType<typeof setNodeTimeout> | undefined;
  /** Our claim (the arbiter keeps claim objects as made): the pause is on while it stands. */
  #claim: Claim | undefined;
  #starting = false;

  constructor(arbiter: Arbiter) {
    this.#arbiter = arbiter;
    // A timed pause restored from the state file goes on: it ends when it would have.
    const restored = this.#manualClaim();
    if (restored?.state === "PAUSE" && restored.until) this.#arm(restored, restored.until.getTime() - Date.now());
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
    const until = new Date(Date.now() + ms);
    const reason = `POST /PAUSE?for=${formatDuration(ms)} (until ${until.toISOString()})`;
    // Our own claim event must not cancel us.
    this.#starting = true;
    let signal: Signal;
    try {
      signal = this.#arbiter.claim(MANUAL_SOURCE, "PAUSE", reason, { ...options, until });
    } finally {
      this.#starting = false;
    }
    this.#arm(this.#manualClaim()!, ms);
    return signal;
  }

  #arm(claim: Claim, ms: number): void {
    this.#claim = claim;
    // From the claim itself (restored ones too); rounded, as `until` and `updated` are read a moment apart.
    const length = claim.until ? Math.round((claim.until.getTime() - claim.updated.getTime()) / 10) * 10 : ms;
    this.#timer = setNodeTimeout(() => this.#expire(length), Math.max(0, ms));
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
    if (this.#claim === undefined || this.#manualClaim() !== this.#claim) return;
    this.cancel();
    this.#arbiter.claim(MANUAL_SOURCE, "RUN", `timed pause of ${formatDuration(ms)} expired`, { explicit: true, opensLatch: false });
  }
}
