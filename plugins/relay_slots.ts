/**
 * At most `limit` requests of one relay in flight; the others wait their turn in order. A waiter
 * is a target, not a signal: it asks what to push only once it holds a slot, so a queue never
 * holds an older signal (a STOP is never sent behind a line of RUNs; the newest signal wins).
 */
interface Waiter {
  granted: boolean;
  cancelled: boolean;
  wake: () => void;
}

export class Slots {
  readonly #limit: number;
  #busy = 0;
  #waiting: Waiter[] = [];
  #head = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /**
   * Resolves once a slot is ours (at once when one is free) with its release, to be called once.
   * On abort it resolves without a slot (the release does nothing): the caller checks `abort`.
   */
  async take(abort: AbortSignal): Promise<() => void> {
    if (this.#busy < this.#limit && this.#head === this.#waiting.length) {
      this.#busy += 1;
      return this.#releaser();
    }
    const waiter: Waiter = { granted: false, cancelled: false, wake: NOOP };
    await new Promise<void>((resolve) => {
      const cancel = () => {
        waiter.cancelled = true;
        resolve();
      };
      waiter.wake = () => {
        abort.removeEventListener("abort", cancel);
        resolve();
      };
      if (abort.aborted) return cancel();
      abort.addEventListener("abort", cancel, { once: true });
      this.#waiting.push(waiter);
    });
    return waiter.granted ? this.#releaser() : NOOP;
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#busy -= 1;
      this.#next();
    };
  }

  /** Hands free slots to the waiters in order, skipping those that gave up. */
  #next(): void {
    while (this.#busy < this.#limit && this.#head < this.#waiting.length) {
      const waiter = this.#waiting[this.#head++]!;
      if (waiter.cancelled) continue;
      waiter.granted = true;
      this.#busy += 1;
      waiter.wake();
    }
    // Drop the served prefix now and then, so the array does not grow without end.
    if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
  }
}

const NOOP = () => {};
