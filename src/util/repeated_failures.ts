/**
 * Which failure lines reach the log. A source re-checks on an interval and a relay retries a
 * target that is down, saying the same problem each time: the log says each problem at once,
 * then at most once per interval with how often it came meanwhile, so that it stays readable
 * through a long outage (`/status` counts every one). Problems are told apart by their text, so
 * several at once (a relay's targets, each down its own way) do not reset each other.
 */

/** How often the same failure is logged again while it keeps coming. */
export const REPEAT_LOG_INTERVAL_MS = 60_000;

/** Distinct problems remembered: the least recently logged is forgotten first. */
const MAX_PROBLEMS = 64;

export class RepeatedFailures {
  readonly #seen = new Map<string, { loggedAt: number; suppressed: number }>();

  constructor(private readonly intervalMs: number = REPEAT_LOG_INTERVAL_MS) {}

  /** The line to log for this failure, or undefined to keep it out of the log. */
  line(message: string, nowMs: number): string | undefined {
    const seen = this.#seen.get(message);
    if (seen && nowMs - seen.loggedAt < this.intervalMs) {
      seen.suppressed += 1;
      return undefined;
    }
    const repeated = seen && seen.suppressed > 0
      ? ` (${seen.suppressed} more time${seen.suppressed === 1 ? "" : "s"} since it was last logged)`
      : "";
    // Re-inserted, so that the map's order is the order of logging.
    this.#seen.delete(message);
    this.#seen.set(message, { loggedAt: nowMs, suppressed: 0 });
    if (this.#seen.size > MAX_PROBLEMS) this.#seen.delete(this.#seen.keys().next().value!);
    return message + repeated;
  }
}
