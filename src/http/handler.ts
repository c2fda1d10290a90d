/**
 * The HTTP API as one runtime-agnostic `fetch(Request) => Promise<Response>`.
 *
 *   GET|HEAD /                 the effective signal: exactly `RUN`, `PAUSE` or `STOP`
 *   GET /?wait=30s&since=RUN   the same, long-polled: answers when the signal differs from `since`
 *   GET /events                the signal as Server-Sent Events: now, then every change
 *   POST /RUN|/PAUSE|/STOP     a manual claim (any letter case); answers the signal after it
 *   GET|HEAD /status           JSON: claims, sources, latch, version, uptime (see status.ts)
 *   POST /RUN?force=true       an operator's override: RUN past every automatic claim
 *   GET|HEAD /ui               the web dashboard (one self-contained HTML page, see ui_page.ts)
 *   /hooks/<name>              a plugin's own route (webhook receivers)
 *
 * Unlike Krkn's server, which closes the connection without a word on an
 * unknown path, every request gets an answer: 404 or 405 (with `Allow`) and a
 * one-line reason that lists the endpoints.
 */
import { type IRequest, Router } from "itty-router";
import * as v from "valibot";
import { MANUAL_SOURCE } from "../core/snapshot.ts";
import { type Change, towardSafety } from "../core/change.ts";
import type { SignalStore, StateHealth } from "../state/signal_store.ts";
import type { PluginHost, PluginStatus } from "../plugin/host.ts";
import { errorResponse, HttpError, jsonResponse, textResponse } from "../web/response.ts";
import { DEFAULT_MAX_BODY_BYTES, readBoundedBody } from "../web/request_body.ts";
import { SignalEvents, type SubscriberCounts } from "../push/hub.ts";
import { DEFAULT_HEARTBEAT_MS, eventStreamResponse } from "../push/event_stream.ts";
import { longPollFromQuery, waitForChange } from "../push/long_poll.ts";
import { parseSignal, type Signal, SIGNALS } from "../core/signal.ts";
import { statusDocument } from "./status.ts";
import { issueLine, strictSection } from "../config/validation.ts";
import { type DescribedKind, Metrics } from "./metrics.ts";
import type { History } from "../state/history.ts";
import { durationSchema } from "../config/duration.ts";
import { MAX_PAUSE_MS } from "../state/expiry.ts";
import type { Auth } from "./auth.ts";
import { uiResponse } from "./ui_page.ts";
import { OriginGuard } from "./origin_guard.ts";

/** What the runtime knows about a request beyond the `Request` itself. */
export interface RequestInfo {
  /** The client's IP address, recorded as the actor of manual claims. */
  readonly remoteAddress?: string | undefined;
  /**
   * Lets this request stay quiet for `seconds` (0: no limit) before the
   * idle timeout cuts it: long-polls and event streams are quiet on purpose.
   * Bun's serve file sets Bun's timeout for the connection; Deno's exempts the
   * connection until the response is delivered.
   */
  readonly holdOpen?: (seconds: number) => void;
}

export type FetchHandler = (request: Request, info?: RequestInfo) => Response | Promise<Response>;

/** The handler, plus what a server needs to see and end its open streams. */
export interface SignalHandler extends FetchHandler {
  /** Open event streams and pending long-polls right now. */
  subscribers(): SubscriberCounts;
  /**
   * Ends every event stream and answers every pending long-poll now, so that
   * the server's graceful shutdown does not wait for them. Later `/events`
   * requests get 503; later long-polls answer at once.
   */
  close(): void;
}

export interface HandlerOptions {
  /** The signal: read by GET, changed by POST (each change a `Change` submitted to it). */
  readonly store: SignalStore;
  /** chaos-signal's version, shown in `/status`. */
  readonly version: string;
  /** The runtime's name and version, shown in `/status`. @default "unknown" */
  readonly runtime?: string;
  /** @default the time createHandler is called */
  readonly startedAt?: Date;
  /** Larger request bodies get 413. @default 65536 */
  readonly maxBodyBytes?: number;
  /** Clock, replaceable in tests. @default () => new Date() */
  readonly now?: () => Date;
  /** Told of unexpected errors (answered with 500). @default ignore */
  readonly onError?: (error: unknown, request: Request) => void;
  /** Whether the state file holds the current state, shown in `/status` and `/metrics`. */
  readonly stateHealth?: () => StateHealth;
  /** The audit history behind `GET /history`. */
  readonly history?: History;
  /** Named bearer tokens; without them (or with none) every endpoint is open. */
  readonly auth?: Auth;
  /** The plugins: their routes are mounted at `/hooks/<name>`, their health shown in `/status`. */
  readonly plugins?: PluginHost;
  /**
   * Origins (`https://ops.example`) whose pages may change the signal besides this server's own;
   * a browser's request from any other origin gets 403 on every method but GET and HEAD.
   * @default none
   */
  readonly allowedOrigins?: readonly string[];
  /** How often `GET /events` sends a keep-alive comment. @default 15000 */
  readonly heartbeatMs?: number;
  /** The plugin types this server knows (a registry's factories): their metric families always show. */
  readonly pluginTypes?: readonly DescribedKind[];
}

/**
 * How long a change toward safety waits for its save before it is answered anyway: it is made
 * already, and a disk that hangs must not hold up the answer either (`/status` shows it unsaved).
 */
export const SAFE_SAVE_WAIT_MS = 1000;

/** Longer request targets (path and query) get 414; the runtimes' own limits apply too. */
export const MAX_URL_BYTES = 8 * 1024;

const CORE_ENDPOINTS = "GET / (the signal), POST /RUN, POST /PAUSE, POST /STOP, GET /status, GET /events";

/** `GET /history?limit=&before=&source=`. */
const HISTORY_LIMIT_RULE = "an integer from 1 to 1000";
const HistoryQuery = strictSection({
  limit: v.optional(v.pipe(v.string(HISTORY_LIMIT_RULE), v.regex(/^\d+$/, HISTORY_LIMIT_RULE), v.transform(Number), v.minValue(1, HISTORY_LIMIT_RULE), v.maxValue(1000, HISTORY_LIMIT_RULE)), "100"),
  before: v.optional(v.pipe(v.string("an entry id"), v.regex(/^\d+$/, "an entry id"), v.transform(Number))),
  source: v.optional(v.pipe(v.string("a source name"), v.nonEmpty("a source name"))),
}, "limit, before and source");

/**
 * Query parameters of the signal endpoints: every other one is an error, so
 * a typo (`?forse=true`) must not pass silently.
 */
const FLAG_RULE = "true or false";
const SetSignalQuery = {
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

type Route = (request: IRequest, info: RequestInfo | undefined) => Response | Promise<Response> | undefined;

/** Dispatches on the method; any other method gets 405 with `Allow` (and the endpoint list). */
function resource(methods: Record<string, Route>, endpoints: string): Route {
  const allow = Object.keys(methods).join(", ");
  return (request, info) => {
    const route = methods[request.method];
    if (route) return route(request, info);
    const path = showPath(new URL(request.url).pathname);
    throw new HttpError(405, `method ${request.method} is not allowed on ${path}; allowed: ${allow}; endpoints: ${endpoints}`, { allow });
  };
}

function notFound(endpoints: string): Route {
  return (request) => {
    const path = new URL(request.url).pathname;
    throw new HttpError(404, `no endpoint at ${showPath(path)}; endpoints: ${endpoints}`);
  };
}

/** Paths are echoed in errors; keep them short and on one line. */
function showPath(path: string): string {
  return path.length > 64 ? `${path.slice(0, 61)}...` : path;
}

/** Like decodeSegment, without the 400: for labels only. */
function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch (error) {
    throw new HttpError(400, `malformed percent-encoding in path ${showPath(`/${segment}`)}; use plain /RUN, /PAUSE or /STOP`, {}, { cause: error });
  }
}

export function createHandler(options: HandlerOptions): SignalHandler {
  const { store, version } = options;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  if (!Number.isFinite(heartbeatMs) || heartbeatMs < 1) throw new RangeError(`heartbeatMs: got ${heartbeatMs}; allowed: a number of milliseconds, 1 or more`);
  const events = new SignalEvents(store);
  const runtime = options.runtime ?? "unknown";
  const now = options.now ?? (() => new Date());
  const startedAt = options.startedAt ?? now();
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const onError = options.onError ?? (() => {});
  const plugins = options.plugins;
  const auth = options.auth?.enabled ? options.auth : undefined;
  const originGuard = new OriginGuard(options.allowedOrigins);
  /** Before routing: a page of another site changes nothing, whatever the route or its body. */
  const refuseCrossOrigin = (request: IRequest): undefined => void originGuard.check(request);

  /** The token's name, checked before anything is read or changed; undefined when auth is off. */
  const authorize = (request: Request): string | undefined => auth?.check(request);

  /** A read endpoint: open, unless `protect_reads` asks for a token there too. */
  const reading = (route: Route): Route => (request, info) => {
    if (auth?.protectReads) authorize(request);
    return route(request, info);
  };

  /** Who made a claim: the token's name and the address, as far as known. */
  const actorOf = (tokenName: string | undefined, info: RequestInfo | undefined): string | undefined =>
    tokenName && info?.remoteAddress ? `${tokenName}@${info.remoteAddress}` : tokenName ?? info?.remoteAddress;
  const hookRoutes = plugins?.routes() ?? [];
  const endpoints = [CORE_ENDPOINTS, ...hookRoutes.map((route) => `POST ${route}`)].join(", ");

  const readSignal: Route = async (request, info) => {
    const head = request.method === "HEAD";
    const poll = longPollFromQuery(request.query);
    if (!poll) return textResponse(store.signal, { head });
    // The wait plus a margin: a client that went away is noticed through request.signal, but the
    // keep-alive connection keeps this idle timeout after the answer, so it must stay bounded.
    info?.holdOpen?.(Math.ceil(poll.waitMs / 1000) + 10);
    return textResponse(await waitForChange(events, poll, request.signal), { head });
  };

  const streamEvents: Route = (request, info) => {
    if (events.closed) throw new HttpError(503, "the server is shutting down; reconnect to another instance or later");
    const head = request.method === "HEAD";
    // Each heartbeat resets the runtime's idle timer; a client that stops reading stops them, and is cut.
    if (!head) info?.holdOpen?.(2 * Math.ceil(heartbeatMs / 1000) + 10);
    return eventStreamResponse(events, { lastEventId: request.headers.get("last-event-id"), heartbeatMs, head, abort: request.signal });
  };

  const metrics = new Metrics(store, options.pluginTypes);
  const describe = (source: PluginStatus) => plugins?.plugin(source.name)?.plugin.description;
  const readMetrics: Route = (request) =>
    textResponse(
      metrics.render({
        snapshot: store.snapshot(),
        sources: plugins?.statuses() ?? [],
        describe,
        subscribers: events.counts(),
        version,
        runtime,
        startedAt,
        ...(options.stateHealth ? { state: options.stateHealth() } : {}),
      }),
      { head: request.method === "HEAD", headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } },
    );

  const readHistory: Route = (request) => {
    const query = v.safeParse(HistoryQuery, request.query);
    if (!query.success) {
      throw new HttpError(400, issueLine(query.issues, (key) => `query parameter "${key}" of GET /history`, request.query));
    }
    const page = options.history?.page({
      limit: query.output.limit,
      ...(query.output.before === undefined ? {} : { before: query.output.before }),
      ...(query.output.source === undefined ? {} : { source: query.output.source }),
    }) ?? { entries: [], next_before: null };
    return jsonResponse(page, { head: request.method === "HEAD" });
  };

  /** Liveness: the process answers. */
  const healthz: Route = (request) => textResponse("ok\n", { head: request.method === "HEAD" });

  const ui: Route = (request) => uiResponse(request.method === "HEAD");

  /** Readiness: every source has reported at least once (until then the signal may lack a claim). */
  const readyz: Route = (request) => {
    const waiting = plugins?.waitingFor() ?? [];
    if (waiting.length === 0) return textResponse("ready\n", { head: request.method === "HEAD" });
    throw new HttpError(503, `not ready: waiting for the first observation of ${waiting.join(", ")}`);
  };

  const readStatus: Route = (request) =>
    jsonResponse(
      statusDocument(store.snapshot(), {
        version,
        runtime,
        startedAt,
        now: now(),
        sources: plugins?.statuses() ?? [],
        describe,
        subscribers: events.counts(),
        ...(options.stateHealth ? { state: options.stateHealth() } : {}),
      }),
      { head: request.method === "HEAD" },
    );

  const setSignal = (signal: Signal): Route => async (request, info) => {
    const query = v.safeParse(SetSignalQuery[signal], request.query);
    if (!query.success) {
      throw new HttpError(400, issueLine(query.issues, (key) => `query parameter "${key}" of POST /${signal}`, request.query));
    }
    const tokenName = authorize(request);
    // Read (and bound) the body before claiming: a refused request changes nothing.
    await readBoundedBody(request, maxBodyBytes);
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
      await settledWithin(store.flush(), SAFE_SAVE_WAIT_MS);
      return textResponse(result);
    }
    try {
      // Toward RUN: committed first, then made. Nobody (GET /, events, relays) ever sees a RUN
      // that fails to save, and a refused change has nothing to undo.
      return textResponse(await store.submit(change));
    } catch (error) {
      throw new HttpError(503, `the change was not saved, so it was not made: ${(error as Error)?.message ?? error}`, {}, { cause: error });
    }
  };

  const signalResources = new Map(SIGNALS.map((signal) => [signal, resource({ POST: setSignal(signal) }, endpoints)]));

  /** `/:name` is a signal endpoint only when the name is a signal; else it falls through to 404. */
  const signalEndpoint: Route = (request, info) => {
    const signal = parseSignal(decodeSegment(request.params.name ?? ""));
    return signal && signalResources.get(signal)!(request, info);
  };

  /** `/hooks/<name>`: the plugin's own route, given a context to claim through. */
  const hookEndpoint: Route = (request, info) => {
    const found = plugins?.plugin(decodeSegment(request.params.name ?? ""));
    if (!found?.plugin.fetch) return undefined;
    const tokenName = found.plugin.authenticates ? undefined : authorize(request);
    const remoteAddress = actorOf(tokenName, info);
    return found.plugin.fetch(request, { source: found.context, ...(remoteAddress === undefined ? {} : { remoteAddress }) });
  };

  const router = Router<IRequest, [RequestInfo | undefined]>({
    before: [rejectLongUrl, refuseCrossOrigin],
    catch: (error: unknown, request: IRequest) => {
      if (error instanceof HttpError) return errorResponse(error, request.method === "HEAD");
      onError(error, request);
      const reason = error instanceof Error ? error.message : String(error);
      return errorResponse(new HttpError(500, `internal error: ${reason}`), request.method === "HEAD");
    },
  });
  router
    .all("/", resource({ GET: reading(readSignal), HEAD: reading(readSignal) }, endpoints))
    .all("/status", resource({ GET: reading(readStatus), HEAD: reading(readStatus) }, endpoints))
    .all("/events", resource({ GET: reading(streamEvents), HEAD: reading(streamEvents) }, endpoints))
    .all("/metrics", resource({ GET: reading(readMetrics), HEAD: reading(readMetrics) }, endpoints))
    .all("/history", resource({ GET: reading(readHistory), HEAD: reading(readHistory) }, endpoints))
    .all("/healthz", resource({ GET: healthz, HEAD: healthz }, endpoints))
    .all("/readyz", resource({ GET: readyz, HEAD: readyz }, endpoints))
    // Open even with protect_reads: a browser cannot send a token when it navigates; the page holds no data.
    .all("/ui", resource({ GET: ui, HEAD: ui }, endpoints))
    .all("/hooks/:name", hookEndpoint)
    .all("/:name", signalEndpoint)
    .all("*", notFound(endpoints));

  /** A bounded label for the metrics: the known routes by name, everything else `other`. */
  const routeLabel = (request: IRequest): string => {
    const name = request.params?.name;
    switch (request.route) {
      case "/:name": {
        const signal = name === undefined ? undefined : parseSignal(safeDecode(name));
        return signal ? `/${signal}` : "other";
      }
      case "/hooks/:name":
        return name !== undefined && plugins?.plugin(safeDecode(name)) ? `/hooks/${safeDecode(name)}` : "other";
      case "": // itty-router normalises "/" to ""
        return "/";
      case undefined:
      case "*":
        return "other";
      default:
        return request.route;
    }
  };

  const routed = async (request: Request, info: RequestInfo | undefined): Promise<Response> => {
    const routed = absolute(request) as IRequest;
    let response: Response;
    try {
      response = await router.fetch(routed, info);
    } catch (error) {
      // itty-router parses the URL before its own catch is armed; nothing may escape as a runtime error page.
      onError(error, request);
      response = errorResponse(new HttpError(400, `cannot read the request: ${(error as Error)?.message ?? error}`));
    }
    metrics.countRequest(routeLabel(routed), request.method, response.status);
    return response;
  };

  const handler: FetchHandler = (request, info) => {
    // Krkn's runner polls a plain GET / all run long: answer it at once, without routing or parsing the URL.
    if (request.method === "GET" && !auth?.protectReads && isPlainRoot(request.url)) {
      metrics.countPoll();
      return SIGNAL_RESPONSES[store.signal].clone();
    }
    return routed(request, info);
  };
  return Object.assign(handler, { subscribers: () => events.counts(), close: () => events.close() });
}

/** Waits for `promise` to settle, at most `ms`; never rejects. */
function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  return Promise.race([promise.then(() => {}, () => {}), late]).finally(() => clearTimeout(timer));
}

/** `http://host:port/` or `/`, with no query: the poll that must be fast. */
function isPlainRoot(url: string): boolean {
  if (url === "/") return true;
  const pathStart = url.indexOf("/", url.indexOf("//") + 2);
  return pathStart === url.length - 1;
}

/**
 * The three possible answers to GET /, built once and cloned per poll: a clone shares the body and
 * the header list, which measured 10 to 20 % more polls per second than a new Response on both
 * runtimes (bench/http.ts). The originals are never sent, so their bodies are never read.
 */
const SIGNAL_RESPONSES = Object.fromEntries(SIGNALS.map((signal) => [signal, textResponse(signal)])) as Record<Signal, Response>;

/**
 * Bun hands over a path-only URL when a request has no Host header (HTTP/1.0
 * clients, Krkn's own tools); Krkn's server answers those, so we do too.
 */
function absolute(request: Request): Request {
  if (!request.url.startsWith("/")) return request;
  return new Request(new URL(request.url, "http://localhost"), request);
}

function rejectLongUrl(request: IRequest): undefined {
  const url = new URL(request.url);
  const bytes = new TextEncoder().encode(url.pathname + url.search).byteLength;
  if (bytes > MAX_URL_BYTES) {
    throw new HttpError(414, `request target is ${bytes} bytes; the limit is ${MAX_URL_BYTES}`);
  }
  return undefined;
}
