/**
 * The delay before the next attempt after failures in a row: `initialMs`,
 * then `factor` times more after each failure, never more than `maxMs`.
 * One helper for every retry loop (source restarts, relay targets, the client).
 */
export interface BackoffOptions {
  /** The delay after the first failure. */
  readonly initialMs: number;
  /** The longest delay. */
  readonly maxMs: number;
  /** How much each failure multiplies the delay. @default 2 */
  readonly factor?: number;
}

export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #factor: number;
  #failures = 0;

  constructor(options: BackoffOptions) {
    this.#initialMs = options.initialMs;
    this.#maxMs = options.maxMs;
    this.#factor = options.factor ?? 2;
  }

  /** Failures since the last `reset()`. */
  get failures(): number {
    return this.#failures;
  }

  /** Counts one more failure and returns how long to wait before the next attempt. */
  next(): number {
    const ms = Math.min(this.#initialMs * this.#factor ** this.#failures, this.#maxMs);
    this.#failures += 1;
    return ms;
  }

  /** An attempt worked: the next failure waits `initialMs` again. */
  reset(): void {
    this.#failures = 0;
  }
}
