/**
 * Keeps one downstream signal endpoint (a Krkn run's embedded server, or
 * another chaos-signal) on the latest effective signal.
 *
 * One loop per target, one request at a time: Krkn's server is a
 * single-threaded HTTP/1.0 `HTTPServer`, and a strict order is what keeps a
 * target from ending on an older signal than the latest. After each push the
 * loop looks at the signal again and pushes once more if it moved meanwhile.
 * Every `interval` it reads the target back (`GET /`) and pushes again when
 * the target changed behind its back: a restarted Krkn starts over from its
 * `signal_state`. Another chaos-signal as a target (it answers a push with
 * its signal) gets only the changes: it changes by claims of its own, and a
 * RUN pushed into it again would be a person's RUN that opens its latch.
 *
 * A fleet has thousands of these: a report costs O(1) (the target says what it holds now and
 * whether it fails; the relay keeps the counts), and its status is built only when asked for.
 */
import { Backoff, FetchError, fetchText, parseSignal, type Signal, type SourceContext, Wakeup } from "../plugin.ts";
import type { Slots } from "./relay_slots.ts";

export interface RelayTargetOptions {
  /** Base URL; `POST <url>/<SIGNAL>` and `GET <url>/` are sent to it. */
  readonly url: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** First retry delay after a failure; doubles up to `maxBackoffMs` (a refused connect waits at most `refusedRetryMs`). */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  /** The longest wait after a refused connect: nothing listens yet, and asking again costs nothing. */
  readonly refusedRetryMs: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The relay's request slots: a request is sent only while holding one. */
  readonly slots: Slots;
}

export interface RelayTargetStatus {
  url: string;
  /** The target is known to hold the latest effective signal. */
  in_sync: boolean;
  last_pushed: { signal: Signal; at: string } | null;
  last_seen: { signal: Signal; at: string } | null;
  last_error: { message: string; at: string } | null;
  /** Failed requests in a row (0 when the last one worked). */
  failures: number;
}

/** What the relay counts of a target: the signal it is known to hold, and whether its last request failed. */
export interface TargetState {
  readonly held: Signal | undefined;
  readonly failing: boolean;
}

/** Told after every attempt, with the target's state before it: O(1) work expected. */
export type TargetReport = (target: RelayTarget, before: TargetState, error?: Error) => void;

interface SignalAt {
  signal: Signal;
  at: number;
}

export class RelayTarget {
  readonly url: string;
  readonly #options: RelayTargetOptions;
  readonly #base: string;
  readonly #wakeup = new Wakeup();
  readonly #stopped = new AbortController();
  /** The last signal pushed successfully; undefined after a failure (the target's state is unknown). */
  #pushed: Signal | undefined;
  /** What the target said it holds after that push (a chaos-signal may hold something else). */
  #answer: Signal | undefined;
  /** Krkn's server answers a push with an empty body; another chaos-signal with its signal. */
  #plainTarget = true;
  #lastPushed: SignalAt | null = null;
  #lastSeen: SignalAt | null = null;
  #lastError: { message: string; at: number } | null = null;
  #failures = 0;

  constructor(options: RelayTargetOptions) {
    this.#options = options;
    this.url = options.url;
    this.#base = options.url.replace(/\/+$/, "");
  }

  /** The signal changed: push without waiting for the next reconcile. */
  wake(): void {
    this.#wakeup.wake();
  }

  /** Ends this target's loop (it left the fleet); a request in flight is aborted. */
  stop(): void {
    this.#stopped.abort(new Error(`${this.url} is no longer a target`));
  }

  /** The signal the target is known to hold (undefined: unknown), and whether it fails. */
  state(): TargetState {
    if (this.#failures > 0) return { held: undefined, failing: true };
    return { held: this.#plainTarget ? this.#answer : this.#lastSeen?.signal, failing: false };
  }

  status(current: Signal | undefined): RelayTargetStatus {
    const iso = (event: SignalAt | null) => event && { signal: event.signal, at: new Date(event.at).toISOString() };
    return {
      url: this.url,
      in_sync: current !== undefined && this.state().held === current,
      last_pushed: iso(this.#lastPushed),
      last_seen: iso(this.#lastSeen),
      last_error: this.#lastError && { message: this.#lastError.message.slice(0, MAX_MESSAGE_CHARS), at: new Date(this.#lastError.at).toISOString() },
      failures: this.#failures,
    };
  }

  /** Runs until `context.abort` aborts or `stop()`; `report` is called after every attempt. */
  async run(context: SourceContext, report: TargetReport): Promise<void> {
    const abort = AbortSignal.any([context.abort, this.#stopped.signal]);
    const backoff = new Backoff({ initialMs: this.#options.backoffMs, maxMs: this.#options.maxBackoffMs });
    let reconcileAt = 0;
    while (!abort.aborted) {
      if (this.#pushed === context.current() && Date.now() < reconcileAt) {
        await this.#wakeup.sleep(reconcileAt - Date.now(), abort);
        continue;
      }
      // What to push is decided only once a slot is ours: a wait never ends in an older signal.
      const release = await this.#options.slots.take(abort);
      if (abort.aborted) {
        release();
        break;
      }
      const before = this.state();
      try {
        const wanted = context.current();
        if (this.#pushed !== wanted) {
          await this.#push(wanted, abort);
        } else {
          const seen = await this.#read(abort);
          // Only Krkn's server (it answers a push with an empty body) is pushed again when it
          // changed behind our back: a restarted Krkn is back at its signal_state. Another
          // chaos-signal changes by its own claims; a RUN pushed into it would count as a
          // person's RUN and could open its STOP latch, so it is only reported out of sync.
          if (this.#plainTarget && seen !== this.#answer) {
            const latest = context.current(); // not `wanted`: the read took time
            context.log(`${this.url} holds ${seen}, not ${this.#answer} as after our push (restarted?): pushing ${latest}`);
            await this.#push(latest, abort);
          }
        }
        release();
        reconcileAt = Date.now() + this.#options.intervalMs;
        backoff.reset();
        this.#failures = 0;
        report(this, before);
      } catch (error) {
        release();
        if (abort.aborted) break;
        this.#pushed = this.#answer = undefined;
        // The backoff still grows while refused: once the target listens but fails, it backs off fully.
        const wait = backoff.next();
        this.#failures = backoff.failures;
        const problem = error instanceof Error ? error : new Error(String(error));
        this.#lastError = { message: problem.message, at: Date.now() };
        // A refused connect is retried often: a Krkn run that starts late comes up at its
        // signal_state (RUN by default) and runs chaos until the next attempt reaches it.
        const refused = problem.cause instanceof FetchError && problem.cause.reason === "refused";
        const delay = refused ? Math.min(wait, this.#options.refusedRetryMs) : wait;
        report(this, before, new Error(failureLine(this.url, problem.message)));
        await this.#wakeup.sleep(delay, abort);
      }
    }
  }

  async #push(wanted: Signal, abort: AbortSignal): Promise<void> {
    // Krkn answers 200 with an empty body; another chaos-signal with its effective signal,
    // which may differ from what we pushed (its own sources): that answer is what it holds.
    const body = await this.#request("POST", `/${wanted}`, abort);
    const answer = body === "" ? wanted : parseSignal(body);
    if (!answer) throw new Error(`POST /${wanted} answered ${JSON.stringify(body.slice(0, 40))}, not RUN, PAUSE, STOP or nothing`);
    this.#plainTarget = body === "";
    this.#pushed = wanted;
    this.#answer = answer;
    const at = Date.now();
    this.#lastPushed = { signal: wanted, at };
    this.#lastSeen = { signal: answer, at };
  }

  async #read(abort: AbortSignal): Promise<Signal> {
    const body = await this.#request("GET", "/", abort);
    const seen = parseSignal(body);
    if (!seen) throw new Error(`GET / answered ${JSON.stringify(body.slice(0, 40))}, not RUN, PAUSE or STOP`);
    this.#lastSeen = { signal: seen, at: Date.now() };
    return seen;
  }

  async #request(method: "GET" | "POST", path: string, abort: AbortSignal): Promise<string> {
    let answer;
    try {
      answer = await fetchText(`${this.#base}${path}`, {
        method,
        headers: this.#options.headers,
        timeoutMs: this.#options.timeoutMs,
        abort,
        maxBytes: MAX_ANSWER_BYTES,
      });
    } catch (error) {
      if (abort.aborted) throw error;
      throw new Error(`${method} ${path}: ${(error as Error)?.message ?? error}`, { cause: error });
    }
    if (!answer.ok) throw new Error(`${method} ${path} answered ${answer.status}: ${answer.text.trim().slice(0, 80)}`);
    return answer.text;
  }
}

/**
 * How a target's failure is told (log and `/status`): the same words for the same problem, not
 * the retry's growing delay, so that the log says it once a minute with a count, as a source's.
 */
export function failureLine(url: string, problem: string): string {
  return `${url}: ${problem}; retrying`;
}

/** An error as `/status` lists it: enough to tell what failed, small enough for 50 of them. */
const MAX_MESSAGE_CHARS = 200;
/** A signal endpoint answers a few bytes (an error page a few more): anything past this is not one. */
const MAX_ANSWER_BYTES = 64 * 1024;
