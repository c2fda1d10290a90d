/**
 * The run signal of a chaos run and its severity order.
 *
 * Krkn's runner compares the body of `GET /` byte for byte with `"PAUSE"` and
 * `"STOP"`, so these three upper-case words are the whole wire format.
 */

/** The three signals, least severe first. */
export const SIGNALS = ["RUN", "PAUSE", "STOP"] as const;

/** `RUN`, `PAUSE` or `STOP`. */
export type Signal = (typeof SIGNALS)[number];

/** Severity rank: STOP (2) > PAUSE (1) > RUN (0). */
export function severity(signal: Signal): number {
  return SIGNALS.indexOf(signal);
}

/** The more severe of two signals (the first one on a tie). */
export function mostSevere(a: Signal, b: Signal): Signal {
  return severity(b) > severity(a) ? b : a;
}

/**
 * Reads a signal name in any letter case (`pause`, `Pause`), and nothing
 * else: no blanks around it, so `/%20STOP%0A` is not a signal endpoint.
 * Callers that read files trim first. Returns `undefined` for anything else,
 * so callers decide how to complain.
 */
export function parseSignal(text: string): Signal | undefined {
  // ASCII case only: toUpperCase() would turn "ſtop" (long s) into "STOP".
  return /^(run|pause|stop)$/i.test(text) ? text.toUpperCase() as Signal : undefined;
}
