/** Waiting for something asynchronous to become true, with a failure message that says what and why. */

export interface WaitOptions {
  /** What is awaited, for the failure message: "GET / to answer PAUSE". */
  readonly what: string;
  /** @default 30000 */
  readonly timeoutMs?: number;
  /** @default 100 */
  readonly intervalMs?: number;
  /** Extra text for the failure message (the processes' logs, /status). */
  readonly diagnose?: () => string | Promise<string>;
  /** Checked before each try: a reason to give up at once (a process exited). */
  readonly giveUpIf?: () => string | false | undefined;
}

/**
 * Calls `check` until it returns something other than `undefined`, `null` or
 * `false`, and returns that. Throws after `timeoutMs` with what was awaited,
 * the last value or error seen, and `diagnose()`.
 */
export async function waitFor<T>(
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  what: string | WaitOptions,
  timeoutMs_?: number,
  everyMs?: number,
): Promise<T> {
  const options: WaitOptions = typeof what === "string" ? { what, timeoutMs: timeoutMs_ ?? 10_000, intervalMs: everyMs ?? 20 } : what;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const started = Date.now();
  let last: unknown = "(never checked)";
  let gaveUp: string | false | undefined;
  for (;;) {
    gaveUp = options.giveUpIf?.();
    if (gaveUp) break;
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value;
      last = value;
    } catch (error) {
      last = error instanceof Error ? `error: ${error.message}` : error;
    }
    if (Date.now() - started >= timeoutMs) break;
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
  let extra = "";
  if (options.diagnose) {
    try {
      extra = `\n${await options.diagnose()}`;
    } catch (error) {
      extra = `\n(diagnose failed: ${error})`;
    }
  }
  const shown = typeof last === "string" ? last : JSON.stringify(last);
  const failure = gaveUp ? `gave up after ${Date.now() - started} ms` : `timed out after ${timeoutMs} ms`;
  throw new Error(`${failure} waiting for ${options.what}; ${gaveUp ? gaveUp : `last check: ${shown}`}${extra}`);
}
