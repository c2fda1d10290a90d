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
 * Reads a signal name in any letter case (`pause`, `Pause`, ` STOP `).
 * Returns `undefined` for anything else, so callers decide how to complain.
 */
export function parseSignal(text: string): Signal | undefined {
  const upper = text.trim().toUpperCase();
  return (SIGNALS as readonly string[]).includes(upper) ? upper as Signal : undefined;
}
