/**
 * A sleep that something else can cut short: a relay target waits for its
 * next reconcile, but a change of the signal must wake it at once.
 */
export class Wakeup {
  #wake: (() => void) | undefined;
  #pending = false;

  /** Ends the current (or the next) `sleep` early. */
  wake(): void {
    this.#pending = true;
    this.#wake?.();
  }

  /** Resolves after `ms`, on `wake()`, or on abort; never rejects. */
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (this.#pending || signal.aborted) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.#wake = undefined;
        this.#pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      this.#wake = done;
    });
  }
}
