/**
 * The long-poll form of `GET /`: `GET /?wait=30s&since=RUN` answers at once
 * when the signal differs from `since`, else when it changes or when the wait
 * ends (then with the current signal, equal to `since`). The answer is the
 * plain `GET /` answer, byte for byte.
 *
 * Plain `GET /` ignores query parameters (cache busters); only when `wait` or
 * `since` is present are both required and validated, so a typo in either
 * is a 400 instead of a silent plain read.
 */
import * as v from "valibot";
import { formatDuration, parseDuration } from "../config/duration.ts";
import type { SubscriberHub } from "./hub.ts";
import { HttpError } from "../web/response.ts";
import { parseSignal, type Signal } from "../core/signal.ts";
import { issueLine, looseSection, parsedBy } from "../config/validation.ts";

/**
 * The longest wait. Bun cuts a quiet request after its idle timeout, which
 * takes at most 255 s; the serve file lifts it to the wait plus a margin.
 * Proxies have their own read timeouts (nginx: 60 s): clients should ask for
 * less than those.
 */
export const MAX_WAIT_MS = 240_000;

const WAIT_RULE = `a duration from 0s to ${formatDuration(MAX_WAIT_MS)}, such as 500ms, 30s or 2m (or a number of seconds)`;
const SINCE_RULE = "RUN, PAUSE or STOP in any letter case";
const BOTH_RULE = `a long-poll needs both wait, a duration up to ${formatDuration(MAX_WAIT_MS)}, and since, ${SINCE_RULE}`;

// durationSchema's examples go up to hours; this one names what fits under the cap.
const WaitSchema = v.pipe(
  v.string(WAIT_RULE),
  parsedBy((text: string) => {
    const ms = parseDuration(text);
    return ms !== undefined && ms <= MAX_WAIT_MS ? ms : undefined;
  }, WAIT_RULE),
);
const SinceSchema = v.pipe(v.string(SINCE_RULE), parsedBy(parseSignal, SINCE_RULE));

const LongPollQuery = looseSection({
  wait: v.optional(WaitSchema),
  since: v.optional(SinceSchema),
}, "query parameters");

export interface LongPoll {
  readonly waitMs: number;
  readonly since: Signal;
}

function parameter(key: string): string {
  return `query parameter "${key}" of GET /`;
}

/** The long-poll asked for, `undefined` for a plain read; throws 400 when `wait` or `since` is wrong or alone. */
export function longPollFromQuery(query: Record<string, unknown>): LongPoll | undefined {
  if (!("wait" in query) && !("since" in query)) return undefined;
  const parsed = v.safeParse(LongPollQuery, query);
  if (!parsed.success) throw new HttpError(400, issueLine(parsed.issues, parameter, query));
  const { wait, since } = parsed.output;
  // Each needs the other: a wait without `since` would race with the change it waits for.
  if (wait === undefined) throw new HttpError(400, `${parameter("wait")}: missing; ${BOTH_RULE}`);
  if (since === undefined) throw new HttpError(400, `${parameter("since")}: missing; ${BOTH_RULE}`);
  return { waitMs: wait, since };
}

/**
 * Resolves with the current signal as soon as it differs from `since`, or
 * when `waitMs` has passed, the hub closes (shutdown) or `abort` fires (the
 * client went away). Never rejects.
 */
export function waitForChange(events: SubscriberHub, poll: LongPoll, abort?: AbortSignal): Promise<Signal> {
  return new Promise((resolve) => {
    const current = events.current().signal;
    if (current !== poll.since || poll.waitMs === 0 || events.closed || abort?.aborted) return resolve(current);
    let unsubscribe = () => {};
    const finish = () => {
      clearTimeout(timer);
      unsubscribe();
      abort?.removeEventListener("abort", finish);
      // The signal now, not the one of the change: changes in a burst coalesce into the latest.
      resolve(events.current().signal);
    };
    const timer = setTimeout(finish, poll.waitMs);
    unsubscribe = events.subscribe("longPoll", { change: finish, close: finish });
    abort?.addEventListener("abort", finish, { once: true });
  });
}
