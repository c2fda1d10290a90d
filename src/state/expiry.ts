/**
 * Ends a timed pause (`POST /PAUSE?for=15m`) when its time is up: one timer, armed from the
 * store's state after every event. The end is a `pause-expired` change toward RUN, so it is made
 * only once committed; when that fails the pause holds and the end is tried again shortly. Any
 * other manual request replaces the pause, and its end then changes nothing.
 */
import { clearTimeout, setTimeout } from "node:timers";
import { nextExpiry } from "../core/transition.ts";
import type { SignalStore } from "./signal_store.ts";

/** The longest timed pause: a week. */
export const MAX_PAUSE_MS = 7 * 86_400_000;

/** When the RUN that ends a timed pause could not be saved: the pause holds, and this much later it tries again. */
export const EXPIRY_RETRY_MS = 1000;

export class PauseExpiry {
  readonly #store: SignalStore;
  readonly #retryMs: number;
  #armed: { until: Date; lengthMs: number } | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(store: SignalStore, options: { readonly retryMs?: number } = {}) {
    this.#store = store;
    this.#retryMs = options.retryMs ?? EXPIRY_RETRY_MS;
  }

  /** Arms the end of the pause standing now (one restored from the state file goes on), and of every later one. */
  start(): void {
    this.#unsubscribe ??= this.#store.subscribe(() => this.#check());
    this.#check();
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#disarm();
  }

  #check(): void {
    const next = nextExpiry(this.#store.snapshot());
    if (next?.until.getTime() === this.#armed?.until.getTime()) return;
    this.#disarm();
    if (next) this.#arm(next, Math.max(0, next.until.getTime() - Date.now()));
  }

  #arm(end: { until: Date; lengthMs: number }, ms: number): void {
    this.#armed = end;
    this.#timer = setTimeout(() => this.#expire(end), ms);
    // A pending end must not keep a process alive that is otherwise done (tests, library use).
    this.#timer.unref?.();
  }

  #disarm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armed = undefined;
  }

  #expire(end: { until: Date; lengthMs: number }): void {
    this.#timer = undefined;
    this.#store.submit({ kind: "pause-expired", ...end }).catch(() => {
      // Not saved, so not made: still paused. Try again while this pause still stands.
      if (this.#armed === end && this.#unsubscribe) this.#arm(end, this.#retryMs);
    });
  }
}
