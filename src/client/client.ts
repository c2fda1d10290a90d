/**
 * A client of chaos-signal, and of Krkn's own signal server, for chaos
 * runners written in TypeScript (any runtime with `fetch`).
 *
 *   const client = new SignalClient("http://chaos-signal.chaos:8090");
 *   await client.waitUntilRunnable();   // resolves on RUN, throws RunStoppedError on STOP
 *   await client.set("PAUSE");
 *
 * Waiting follows pushes: `GET /events` (Server-Sent Events) first; when the
 * server has no event stream (Krkn's server closes the connection on
 * unknown paths, older servers answer 404) it long-polls `GET /?wait=&since=`,
 * and when that is not honoured either it polls `GET /`. It tries the event
 * stream again every minute, reconnects when a stream drops or goes quiet,
 * and retries with backoff while the server is unreachable: a runner waits
 * through a restart of the signal server instead of failing.
 */
import * as v from "valibot";
import { formatDuration } from "../config/duration.ts";
import { type Signal, SIGNALS } from "../core/signal.ts";
import { EventStreamParser } from "./sse_parser.ts";
import { delay } from "../util/timers.ts";
import { parseWith, strictSection } from "../config/validation.ts";
import { Backoff } from "../util/backoff.ts";
import { fetchText, type FetchFunction } from "../util/fetch.ts";

/** `waitUntilRunnable` found the signal at STOP: the chaos run is over. */
export class RunStoppedError extends Error {
  override readonly name = "RunStoppedError";
  constructor(readonly url: string, options?: { cause?: unknown }) {
    super(`the chaos run was stopped: ${url} answers STOP`, options);
  }
}

/** A request that got no usable answer: an HTTP error (`status`), no answer at all, or a body that is not a signal. */
export class SignalRequestError extends Error {
  override readonly name = "SignalRequestError";
  constructor(message: string, readonly status?: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const positiveMs = (what: string) => v.pipe(v.number(what), v.minValue(1, what), v.finite(what));

const ClientOptionsSchema = strictSection({
  token: v.optional(v.pipe(v.string("a non-empty string"), v.nonEmpty("a non-empty string"))),
  fetch: v.optional(v.function("a fetch function")),
  timeoutMs: v.optional(positiveMs("a number of milliseconds, 1 or more")),
}, "an object");

const WatchOptionsSchema = v.object({
  signal: v.optional(v.instance(AbortSignal, "an AbortSignal")),
  pollIntervalMs: v.optional(positiveMs("a number of milliseconds, 1 or more")),
  longPollMs: v.optional(v.pipe(positiveMs("a number of milliseconds from 1 to 240000"), v.maxValue(240_000, "a number of milliseconds from 1 to 240000"))),
  streamIdleMs: v.optional(positiveMs("a number of milliseconds, 1 or more")),
  onError: v.optional(v.function("a function")),
}, "an object");

const BaseUrlSchema = v.pipe(
  v.string("an http:// or https:// URL"),
  v.url("an http:// or https:// URL"),
  v.check((url) => /^https?:\/\//i.test(url), "an http:// or https:// URL"),
);

/** The slice of `fetch` the client uses. */
export type { FetchFunction };

export interface SignalClientOptions {
  /** Sent as `Authorization: Bearer <token>` with every request. */
  readonly token?: string;
  /** Replaces the global `fetch` (tests, proxies, custom TLS); the global one fits. */
  readonly fetch?: FetchFunction;
  /** Bounds each request until its answer; a long-poll gets its wait on top. @default 10000 */
  readonly timeoutMs?: number;
}

export interface RequestOptions {
  /** Aborts the request: it rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

export interface SetOptions extends RequestOptions {
  /** `POST /RUN?force=true`: RUN past every automatic claim (RUN only). */
  readonly force?: boolean;
}

export interface WatchOptions extends RequestOptions {
  /** Between two `GET /` when the server can neither push nor long-poll (Krkn's server). @default 2000 */
  readonly pollIntervalMs?: number;
  /** How long one long-poll waits at the server; keep it below your proxies' read timeouts. @default 25000 */
  readonly longPollMs?: number;
  /** An event stream quiet for this long is taken for dead and reopened (the server sends heartbeats every 15 s). @default 45000 */
  readonly streamIdleMs?: number;
  /** Told of each failed attempt (server down, bad answer); waiting goes on, retried with backoff. */
  readonly onError?: (error: unknown) => void;
}

/** After falling back, the event stream is tried again this often (a server upgraded, a proxy mended). */
const UPGRADE_AFTER_MS = 60_000;
/** The server's `retry:` is honoured up to this. */
const MAX_RECONNECT_MS = 30_000;
const MAX_BACKOFF_MS = 5_000;
/** A signal is a few bytes, an error page a few more: a longer answer is not from a signal server. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** Statuses that mean "this server has no such endpoint". */
const NOT_SUPPORTED = new Set([404, 405, 501]);

type Transport = "events" | "longPoll" | "poll";

/** What the watch knows so far, shared by the transports it switches between. */
class Cursor {
  last: Signal | undefined;
  lastEventId = "";
  reconnectMs = 1000;
  polledAt = 0;

  /** Records `signal`; true when it differs from the last one (only changes are yielded). */
  update(signal: Signal): boolean {
    const changed = signal !== this.last;
    this.last = signal;
    return changed;
  }
}

interface Settings {
  readonly signal: AbortSignal | undefined;
  readonly pollIntervalMs: number;
  readonly longPollMs: number;
  readonly streamIdleMs: number;
  readonly onError: (error: unknown) => void;
}

export class SignalClient {
  /** The server's base URL, without a trailing slash. */
  readonly baseUrl: string;
  readonly #token: string | undefined;
  readonly #fetch: FetchFunction;
  readonly #timeoutMs: number;

  constructor(baseUrl: string | URL, options: SignalClientOptions = {}) {
    this.baseUrl = parseWith(BaseUrlSchema, String(baseUrl), () => "SignalClient base URL").replace(/\/+$/, "");
    const parsed = parseWith(ClientOptionsSchema, options, (key) => `SignalClient option ${key || "object"}`);
    this.#token = parsed.token;
    // Looked up at call time, so that a replaced global fetch is honoured.
    this.#fetch = options.fetch ?? ((url, init) => fetch(url, init));
    this.#timeoutMs = parsed.timeoutMs ?? 10_000;
  }

  /** The effective signal: `GET /`. */
  async get(options: RequestOptions = {}): Promise<Signal> {
    const text = await this.#request("GET", "/", options.signal, this.#timeoutMs);
    return this.#signalFrom(text, "GET /");
  }

  /**
   * `POST /<STATE>`; resolves with the effective signal after it, which can
   * differ from `state` (a STOP latch, another source's claim). Krkn's own
   * server answers with an empty body: then the posted state is returned.
   */
  async set(state: Signal, options: SetOptions = {}): Promise<Signal> {
    if (!SIGNALS.includes(state)) throw new TypeError(`SignalClient.set: got ${JSON.stringify(state)}; allowed: RUN, PAUSE or STOP`);
    if (options.force && state !== "RUN") throw new TypeError(`SignalClient.set: force is for RUN only, not ${state}`);
    const path = `/${state}${options.force ? "?force=true" : ""}`;
    const text = await this.#request("POST", path, options.signal, this.#timeoutMs);
    return text === "" ? state : this.#signalFrom(text, `POST ${path}`);
  }

  /**
   * Resolves as soon as the signal is RUN; rejects with `RunStoppedError` when
   * it is STOP, and with `signal.reason` when `options.signal` aborts. While
   * the signal is PAUSE (or the server unreachable) it waits.
   */
  async waitUntilRunnable(options: WatchOptions = {}): Promise<void> {
    for await (const signal of this.watch(options)) {
      if (signal === "RUN") return;
      if (signal === "STOP") throw new RunStoppedError(this.baseUrl);
    }
  }

  /**
   * The signal now, then every change, for as long as the caller iterates
   * (`break` closes the connection) or until `options.signal` aborts (the
   * iteration rejects with its reason). Failures are retried, never thrown.
   */
  async *watch(options: WatchOptions = {}): AsyncGenerator<Signal, never, undefined> {
    const parsed = parseWith(WatchOptionsSchema, options, (key) => `SignalClient watch option ${key || "object"}`);
    const settings: Settings = {
      signal: options.signal,
      pollIntervalMs: parsed.pollIntervalMs ?? 2000,
      longPollMs: parsed.longPollMs ?? 25_000,
      streamIdleMs: parsed.streamIdleMs ?? 45_000,
      onError: options.onError ?? (() => {}),
    };
    const abort = settings.signal;
    const cursor = new Cursor();
    let transport: Transport = "events";
    let longPollWorks = true;
    let upgradeAt = 0;
    const backoff = new Backoff({ initialMs: 250, maxMs: MAX_BACKOFF_MS });
    for (;;) {
      if (abort?.aborted) throw abort.reason;
      try {
        if (transport !== "events" && Date.now() >= upgradeAt) transport = "events";
        if (transport === "events") {
          const outcome = yield* this.#fromEvents(cursor, settings);
          backoff.reset();
          if (outcome === "unavailable") {
            transport = longPollWorks ? "longPoll" : "poll";
            upgradeAt = Date.now() + UPGRADE_AFTER_MS;
          } else {
            await delay(cursor.reconnectMs, abort);
          }
        } else if (transport === "longPoll") {
          const outcome = yield* this.#fromLongPoll(cursor, settings);
          backoff.reset();
          if (outcome === "unavailable") {
            longPollWorks = false;
            transport = "poll";
          }
        } else {
          yield* this.#fromPolling(cursor, settings);
          backoff.reset();
        }
      } catch (error) {
        if (abort?.aborted) throw abort.reason;
        settings.onError(error);
        await delay(backoff.next(), abort);
      }
    }
  }

  /**
   * One connection to `GET /events`: yields the signals it pushes; returns
   * "ended" when the server ends the stream, "unavailable" when the server
   * has no event stream (after reading the signal with `GET /` instead).
   */
  async *#fromEvents(cursor: Cursor, settings: Settings): AsyncGenerator<Signal, "ended" | "unavailable", undefined> {
    const url = `${this.baseUrl}/events`;
    const connection = new AbortController();
    const signal = settings.signal ? AbortSignal.any([settings.signal, connection.signal]) : connection.signal;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expectWithin = (ms: number, what: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => connection.abort(new SignalRequestError(`GET ${url}: ${what} within ${ms} ms`)), ms);
    };
    try {
      expectWithin(this.#timeoutMs, "no answer");
      let response: Response;
      try {
        const headers = { accept: "text/event-stream", ...(cursor.lastEventId ? { "last-event-id": cursor.lastEventId } : {}) };
        response = await this.#fetch(url, { headers: this.#headers(headers), signal });
      } catch (error) {
        if (settings.signal?.aborted) throw settings.signal.reason;
        // No answer at all: Krkn's server closes the connection on unknown paths, and a server
        // that is down refuses it. GET / tells them apart (and throws when the server is down).
        const current = await this.#probe(cursor, settings, connection.signal.aborted ? connection.signal.reason : error);
        if (cursor.update(current)) yield current;
        return "unavailable";
      }
      const type = response.headers.get("content-type") ?? "";
      if (!response.ok || !/^text\/event-stream\b/i.test(type)) {
        const text = await response.text().catch(() => "");
        if (response.ok || NOT_SUPPORTED.has(response.status)) {
          const current = await this.get({ ...(settings.signal ? { signal: settings.signal } : {}) });
          if (cursor.update(current)) yield current;
          return "unavailable";
        }
        throw new SignalRequestError(`GET ${url} answered ${response.status}: ${firstLine(text)}`, response.status);
      }
      const parser = new EventStreamParser();
      const reader = response.body!.getReader();
      try {
        for (;;) {
          expectWithin(settings.streamIdleMs, "no event or heartbeat");
          const { done, value } = await reader.read();
          if (done) return "ended";
          for (const event of parser.push(value)) {
            if (event.type !== "signal") continue;
            const current = this.#signalFrom(event.data, "GET /events");
            cursor.lastEventId = event.lastEventId;
            if (!cursor.update(current)) continue;
            // The caller may take its time with the value: that is not the stream going quiet.
            clearTimeout(timer);
            yield current;
          }
          if (parser.retry !== undefined) cursor.reconnectMs = Math.min(parser.retry, MAX_RECONNECT_MS);
        }
      } finally {
        // Reached on every way out, the caller's `break` included: the connection must not linger.
        reader.cancel().catch(() => {});
      }
    } catch (error) {
      if (settings.signal?.aborted) throw settings.signal.reason;
      if (error instanceof SignalRequestError) throw error;
      throw new SignalRequestError(`GET ${url}: the stream broke: ${(error as Error)?.message ?? error}`, undefined, { cause: error });
    } finally {
      clearTimeout(timer);
      connection.abort();
    }
  }

  /**
   * One long-poll, `GET /?wait=&since=`; the first call of a watch reads the
   * signal plainly. Returns "unavailable" when the server does not long-poll.
   */
  async *#fromLongPoll(cursor: Cursor, settings: Settings): AsyncGenerator<Signal, "ok" | "unavailable", undefined> {
    const since = cursor.last;
    if (since === undefined) {
      const current = await this.get(settings.signal ? { signal: settings.signal } : {});
      if (cursor.update(current)) yield current;
      return "ok";
    }
    const path = `/?wait=${formatDuration(settings.longPollMs)}&since=${since}`;
    const started = Date.now();
    let answer: Signal;
    try {
      const text = await this.#request("GET", path, settings.signal, settings.longPollMs + this.#timeoutMs);
      answer = this.#signalFrom(text, `GET ${path}`);
    } catch (error) {
      if (settings.signal?.aborted) throw settings.signal.reason;
      // Krkn's server only answers the path "/" exactly, and is silent on "/?wait=..."; a 4xx
      // (a server with a shorter cap) means no long-poll here either. A 5xx is a failure to retry.
      if (error instanceof SignalRequestError && error.status !== undefined && error.status >= 500) throw error;
      const current = await this.#probe(cursor, settings, error);
      if (cursor.update(current)) yield current;
      return "unavailable";
    }
    if (cursor.update(answer)) yield answer;
    // A server that ignores `wait` (chaos-signal before long-polls) answers at once with the same
    // signal: polling it like this would be a busy loop.
    return answer === since && Date.now() - started < settings.longPollMs / 2 ? "unavailable" : "ok";
  }

  /** One `GET /`, at least `pollIntervalMs` after the previous read. */
  async *#fromPolling(cursor: Cursor, settings: Settings): AsyncGenerator<Signal, void, undefined> {
    const wait = cursor.polledAt + settings.pollIntervalMs - Date.now();
    if (wait > 0) await delay(wait, settings.signal);
    cursor.polledAt = Date.now();
    const current = await this.get(settings.signal ? { signal: settings.signal } : {});
    if (cursor.update(current)) yield current;
  }

  /** `GET /` after a push endpoint failed without an answer; throws (the server is down) with both failures. */
  async #probe(cursor: Cursor, settings: Settings, pushError: unknown): Promise<Signal> {
    try {
      const current = await this.get(settings.signal ? { signal: settings.signal } : {});
      cursor.polledAt = Date.now();
      return current;
    } catch (error) {
      if (settings.signal?.aborted) throw settings.signal.reason;
      throw new SignalRequestError(`${(error as Error).message} (the push endpoint failed too: ${(pushError as Error)?.message ?? pushError})`, undefined, { cause: error });
    }
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...extra, ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}) };
  }

  /** One request, bounded by `timeoutMs` from connect to the last byte; resolves with the body of a 2xx answer. */
  async #request(method: string, path: string, signal: AbortSignal | undefined, timeoutMs: number): Promise<string> {
    const url = `${this.baseUrl}${path}`;
    let answer;
    try {
      answer = await fetchText(url, {
        method,
        headers: this.#headers(),
        timeoutMs,
        maxBytes: MAX_ANSWER_BYTES,
        fetch: this.#fetch,
        ...(signal ? { abort: signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new SignalRequestError(`${method} ${url} failed: ${(error as Error)?.message ?? error}`, undefined, { cause: error });
    }
    if (!answer.ok) throw new SignalRequestError(`${method} ${url} answered ${answer.status}: ${firstLine(answer.text)}`, answer.status);
    return answer.text;
  }

  /** The body must be exactly a signal: anything else is an error, so a runner never runs on a misread. */
  #signalFrom(text: string, what: string): Signal {
    if ((SIGNALS as readonly string[]).includes(text)) return text as Signal;
    throw new SignalRequestError(`${what} at ${this.baseUrl} answered ${JSON.stringify(text.slice(0, 40))}; expected exactly RUN, PAUSE or STOP`);
  }
}

function firstLine(text: string): string {
  const line = text.split(/\r?\n/, 1)[0] ?? "";
  return line.length > 200 ? `${line.slice(0, 197)}...` : line || "(empty body)";
}
