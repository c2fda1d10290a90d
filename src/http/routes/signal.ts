/**
 * The signal itself:
 *
 *   GET /                      the effective signal: exactly `RUN`, `PAUSE` or `STOP`
 *   GET /?wait=30s&since=RUN   the same, long-polled (its query schema: push/long_poll.ts)
 *   POST /RUN|/PAUSE|/STOP     a manual claim (any letter case); answers the signal after it
 *   POST /RUN?force=true       an operator's override: RUN past every automatic claim
 *   POST /PAUSE?for=10m        a timed pause
 *
 * Every change a request makes happens here, in `setSignal`: toward safety at once, toward RUN
 * committed first (`store.submit` decides which). The plain `GET /` of Krkn's poll never gets here (http/app.ts).
 */
import * as v from "valibot";
import { MANUAL_SOURCE, STOP_LATCH } from "../../core/snapshot.ts";
import { describeDecision } from "../../util/log.ts";
import { type Change, towardSafety } from "../../core/change.ts";
import { parseSignal, type Signal, SIGNALS } from "../../core/signal.ts";
import { durationSchema } from "../../config/duration.ts";
import { issueLine, strictSection } from "../../config/validation.ts";
import { longPollFromQuery, waitForChange } from "../../push/long_poll.ts";
import { MAX_PAUSE_MS } from "../../state/expiry.ts";
import { readBoundedBody } from "../../web/request_body.ts";
import { within } from "../../util/timers.ts";
import { HttpError, textResponse } from "../../web/response.ts";
import { actorOf, type AppRouter, authorize, decodeSegment, type Handler, type HttpContext, notAllowed, readGuard, resource, type SignalTarget } from "../route.ts";

/**
 * How long a change toward safety waits for its save before it is answered anyway: it is made
 * already, and a disk that hangs must not hold up the answer either (`/status` shows it unsaved).
 */
export const SAFE_SAVE_WAIT_MS = 1000;

/**
 * Set on a `202 Accepted` to a change that is in effect here but not saved yet (`pending; <why>`):
 * a 200 promises the change is saved (on disk, or committed by etcd's quorum) with its history
 * entry; a 202 only that this replica serves it and retries the save. The body is the same.
 * A STOP or PAUSE is answered 202 when its save takes over SAFE_SAVE_WAIT_MS; a RUN, saved before
 * it is made, when its history entry does.
 */
export const SAVED_HEADER = "chaos-signal-saved";

/**
 * Query parameters of the signal endpoints: every other one is an error, so
 * a typo (`?forse=true`) must not pass silently.
 */
const FLAG_RULE = "true or false";
export const SetSignalQuery = {
  RUN: strictSection({
    /** Force RUN past every automatic claim (they re-assert on their next observation). */
    force: v.optional(v.picklist(["true", "false", "1", "0"], FLAG_RULE)),
  }, "force=true or nothing"),
  PAUSE: strictSection({
    /** A timed pause: RUN again by itself after this long. */
    for: v.optional(durationSchema(1000, MAX_PAUSE_MS)),
  }, "for=DURATION or nothing"),
  STOP: strictSection({}, "no query parameters"),
} as const;

/** `GET /`, plain or long-polled. */
export function readSignalRoute(router: AppRouter, ctx: HttpContext, target: SignalTarget): void {
  const readSignal: Handler = async (request, info) => {
    const poll = longPollFromQuery(request.query);
    if (!poll) return textResponse(target.store.signal);
    // The wait plus a margin: a client that went away is noticed through request.signal, but the
    // keep-alive connection keeps this idle timeout after the answer, so it must stay bounded.
    info?.holdOpen?.(Math.ceil(poll.waitMs / 1000) + 10);
    return textResponse(await waitForChange(target.events, poll, request.signal));
  };
  resource(router, "/", { GET: [...readGuard(ctx), readSignal] }, ctx.endpoints, "the signal");
  // Listed next, though registered last (`/:name` must come after the fixed paths): they are what a client looks for.
  ctx.endpoints.add(...SIGNALS.map((signal) => `POST /${signal}`));
}

/** `POST /RUN|/PAUSE|/STOP` at `/:name`; any other name falls through (to 404). */
export function setSignalRoute(router: AppRouter, ctx: HttpContext, target: SignalTarget): void {
  const { store } = target;
  const refuse = notAllowed("POST", ctx.endpoints);

  const setSignal = async (signal: Signal, request: Parameters<Handler>[0], info: Parameters<Handler>[1]): Promise<Response> => {
    const query = v.safeParse(SetSignalQuery[signal], request.query);
    if (!query.success) {
      throw new HttpError(400, issueLine(query.issues, (key) => `query parameter "${key}" of POST /${signal}`, request.query));
    }
    const tokenName = authorize(ctx, request);
    // Read (and bound) the body before claiming: a refused request changes nothing.
    await readBoundedBody(request, ctx.maxBodyBytes);
    const actor = actorOf(tokenName, info);
    const by = actor === undefined ? {} : { actor };
    const force = "force" in query.output && (query.output.force === "true" || query.output.force === "1");
    const pauseFor = "for" in query.output ? query.output.for : undefined;
    const change: Change = force
      ? { kind: "force-run", reason: "POST /RUN?force=true", ...by }
      : pauseFor !== undefined
      ? { kind: "timed-pause", ms: pauseFor, ...by }
      : { kind: "claim", source: MANUAL_SOURCE, state: signal, reason: `POST /${signal}`, explicit: true, ...by };
    if (towardSafety(change)) {
      // Made at once, whatever the backend does; saved after, and the answer waits for that only
      // briefly. A save that fails is retried by the store.
      const result = await store.submit(change);
      return answer(signal, result, force, await unsavedWithin(Promise.all([store.flush(), historySaved()]), SAFE_SAVE_WAIT_MS));
    }
    let result: Signal;
    try {
      // Toward RUN: committed first, then made. Nobody (GET /, events, relays) ever sees a RUN
      // that fails to save, and a refused change has nothing to undo.
      result = await store.submit(change);
    } catch (error) {
      throw new HttpError(503, `the change was not saved, so it was not made: ${(error as Error)?.message ?? error}`, {}, { cause: error });
    }
    return answer(signal, result, force, await unsavedWithin(historySaved(), SAFE_SAVE_WAIT_MS, "its history entry"));
  };
  /** The history entries of the change just made (handed over synchronously as it was made) are written. */
  const historySaved = () => ctx.history?.flushed() ?? Promise.resolve();

  /**
   * The body is the signal alone (Krkn's scripts and other chaos-signals read it). 200 when the
   * change is saved, else 202 and a header saying why not yet (`unsaved`); when the signal is not
   * the one posted, a header says what holds it and, for a plain RUN, how to force it.
   */
  const answer = (posted: Signal, result: Signal, forced: boolean, unsaved: string | null): Response => {
    const headers: Record<string, string> = {};
    if (unsaved !== null) headers[SAVED_HEADER] = `pending; ${headerText(unsaved)}`;
    if (result !== posted) {
      const snapshot = store.snapshot();
      const howToForce = posted === "RUN" && !forced && snapshot.decidedBy !== STOP_LATCH && snapshot.decidedBy !== MANUAL_SOURCE
        ? `; a plain POST /RUN does not outvote a source: POST /RUN?force=true sets every source's claim to RUN once and opens the STOP latch, until each source claims again on its next observation`
        : "";
      headers[REASON_HEADER] = headerText(`${result} held by ${describeDecision(snapshot)}${howToForce}`);
    }
    return textResponse(result, { status: unsaved === null ? 200 : 202, headers });
  };

  router.all("/:name", (request, info) => {
    const signal = parseSignal(decodeSegment(request.params.name ?? ""));
    if (!signal) return undefined;
    return request.method === "POST" ? setSignal(signal, request, info) : refuse(request, info);
  });
}

/** The header of a POST answered with another signal than the one posted: what holds it (see `answer`). */
export const REASON_HEADER = "chaos-signal-reason";

/** Waits for the save `promise`, at most `ms`: null once it is saved, else why not (never rejects). */
function unsavedWithin(promise: Promise<unknown>, ms: number, what = ""): Promise<string | null> {
  return within(promise, ms, () => new Error(`${what ? `${what} ` : ""}not saved within ${ms / 1000} s`)).then(
    () => null,
    (error) => String((error as Error)?.message ?? error),
  );
}

/** Reasons come from outside (alert names, file contents): a header value takes one line of printable ASCII, bounded. */
function headerText(text: string): string {
  const ascii = text.replace(/[^\x20-\x7e]/g, "?");
  return ascii.length > 600 ? `${ascii.slice(0, 597)}...` : ascii;
}
