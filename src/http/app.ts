/**
 * The HTTP API as one runtime-agnostic `fetch(Request) => Promise<Response>`: itty-router's
 * stages around one small module per route (routes/*.ts).
 *
 *   before    414 for a long request target, 403 for a page of another site
 *   routes    / (signal), /status, /events, /metrics, /history, /healthz, /readyz, /ui,
 *             /hooks/<name>, /RUN|/PAUSE|/STOP, then 404 for anything else
 *   catch     an HttpError (itty's StatusError) becomes its answer; anything else a 500
 *   finally   a HEAD's body is dropped; the request is counted for /metrics
 *
 * HEAD is handled once, here: it is dispatched as a GET and its answer sent without the body
 * (every response helper sets content-length). Unlike Krkn's server, which closes the connection
 * without a word on an unknown path, every request gets an answer: 404 or 405 (with `Allow`) and
 * a one-line reason that lists the endpoints.
 */
import type { StoreStatus } from "./status.ts";
import { type IRequest, Router, StatusError } from "itty-router";
import { parseSignal, type Signal, SIGNALS } from "../core/signal.ts";
import type { PluginHost } from "../plugin/host.ts";
import { SubscriberHub, type SubscriberCounts } from "../push/hub.ts";
import { DEFAULT_HEARTBEAT_MS } from "../push/event_stream.ts";
import type { History } from "../state/history.ts";
import type { SignalStore, StateHealth } from "../state/signal_store.ts";
import { KNOWN_BODIES, PreparedResponse, type RequestInfo } from "../serve/types.ts";
import { DEFAULT_MAX_BODY_BYTES } from "../web/request_body.ts";
import { errorResponse, HttpError, textResponse } from "../web/response.ts";
import type { Auth } from "./auth.ts";
import { type DescribedKind, Metrics } from "./metrics.ts";
import { OriginGuard } from "./origin_guard.ts";
import { type AppRouter, Endpoints, type HttpContext, methodOf, notFound, type RoutedRequest, safeDecode, type SignalTarget } from "./route.ts";
import { readSignalRoute, setSignalRoute } from "./routes/signal.ts";
import { statusRoute } from "./routes/status.ts";
import { eventsRoute } from "./routes/events.ts";
import { metricsRoute } from "./routes/metrics.ts";
import { historyRoute } from "./routes/history.ts";
import { healthRoutes } from "./routes/health.ts";
import { uiRoute } from "./routes/ui.ts";
import { hooksRoute } from "./routes/hooks.ts";

export type { RequestInfo } from "../serve/types.ts";
export { SAFE_SAVE_WAIT_MS, SAVED_HEADER } from "./routes/signal.ts";

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
  /** A shared store (etcd): shown in `/status`; `/readyz` is 503 while it is not current. */
  readonly storeHealth?: () => StoreStatus;
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
  /**
   * Answer each plain `GET /` with a new PreparedResponse (serve/types.ts: a Response made only
   * when read) instead of a clone of a prepared Response. Node.js (undici) tees the body of a
   * clone: cloning one template poll after poll chains tees without end, and time and memory per
   * poll grow; and a new WHATWG Response costs Node a third of a poll. Only for a serve file that
   * writes a PreparedResponse itself (Node's). @default false (Deno and Bun clone fastest)
   */
  readonly freshResponses?: boolean;
}

/** Longer request targets (path and query) get 414; the runtimes' own limits apply too. */
export const MAX_URL_BYTES = 8 * 1024;

export function createHandler(options: HandlerOptions): SignalHandler {
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  if (!Number.isFinite(heartbeatMs) || heartbeatMs < 1) throw new RangeError(`heartbeatMs: got ${heartbeatMs}; allowed: a number of milliseconds, 1 or more`);
  const { store, plugins } = options;
  const now = options.now ?? (() => new Date());
  const onError = options.onError ?? (() => {});
  const auth = options.auth?.enabled ? options.auth : undefined;
  const ctx: HttpContext = {
    version: options.version,
    runtime: options.runtime ?? "unknown",
    startedAt: options.startedAt ?? now(),
    now,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    heartbeatMs,
    auth,
    plugins,
    history: options.history,
    stateHealth: options.stateHealth,
    storeHealth: options.storeHealth,
    describe: (source) => plugins?.plugin(source.name)?.plugin.description,
    endpoints: new Endpoints(),
  };
  // The one signal this server holds today: every route that reads or changes it is given it.
  const target: SignalTarget = { store, events: new SubscriberHub(store) };
  const metrics = new Metrics(store, options.pluginTypes);
  const originGuard = new OriginGuard(options.allowedOrigins);

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

  const router: AppRouter = Router<RoutedRequest, [RequestInfo | undefined]>({
    before: [
      rejectLongUrl,
      // A page of another site changes nothing, whatever the route or its body.
      (request) => void originGuard.check(request),
    ],
    catch: (error: unknown, request) => {
      if (error instanceof StatusError) return errorResponse(error);
      onError(error, request.received ?? request);
      const reason = error instanceof Error ? error.message : String(error);
      return errorResponse(new HttpError(500, `internal error: ${reason}`));
    },
    finally: [
      (response: Response, request) => request.received ? withoutBody(response) : response,
      (response: Response, request) => void metrics.countRequest(routeLabel(request), methodOf(request), response.status),
    ],
  });
  // In this order: `/:name` only after the fixed paths, 404 last.
  readSignalRoute(router, ctx, target);
  statusRoute(router, ctx, target);
  eventsRoute(router, ctx, target);
  metricsRoute(router, ctx, target, metrics);
  historyRoute(router, ctx);
  healthRoutes(router, ctx);
  uiRoute(router, ctx);
  hooksRoute(router, ctx);
  setSignalRoute(router, ctx, target);
  router.all("*", notFound(ctx.endpoints));

  const routed = async (request: Request, info: RequestInfo | undefined): Promise<Response> => {
    try {
      return await router.fetch(dispatched(request), info);
    } catch (error) {
      // itty-router parses the URL before its own catch is armed; nothing may escape as a runtime error page.
      onError(error, request);
      const response = errorResponse(new HttpError(400, `cannot read the request: ${(error as Error)?.message ?? error}`));
      metrics.countRequest("other", request.method, response.status);
      return request.method === "HEAD" ? withoutBody(response) : response;
    }
  };

  const cloneTemplates = !options.freshResponses;
  const handler: FetchHandler = (request, info) => {
    // Krkn's runner polls a plain GET / all run long: answer it at once, without routing or parsing the URL.
    if (request.method === "GET" && !auth?.protectReads && isPlainRoot(request.url)) {
      metrics.countPoll();
      return cloneTemplates ? SIGNAL_RESPONSES[store.signal].clone() : preparedSignal(store.signal);
    }
    return routed(request, info);
  };
  return Object.assign(handler, { subscribers: () => target.events.counts(), close: () => target.events.close() });
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
const SIGNAL_RESPONSES = Object.fromEntries(
  SIGNALS.map((signal) => [signal, textResponse(signal)]),
) as Record<Signal, Response>;

/** The same answer as SIGNAL_RESPONSES, as a PreparedResponse: its headers and bytes taken once. */
function preparedSignal(signal: Signal): Response {
  const { head, bytes } = SIGNAL_PREPARED[signal];
  return new PreparedResponse(200, head, bytes) as unknown as Response;
}
const SIGNAL_PREPARED = Object.fromEntries(SIGNALS.map((signal) => {
  const template = SIGNAL_RESPONSES[signal];
  const head: Record<string, string> = {};
  template.headers.forEach((value, name) => (head[name] = value));
  return [signal, { head, bytes: KNOWN_BODIES.get(template)! as Uint8Array<ArrayBuffer> }];
})) as Record<Signal, { head: Record<string, string>; bytes: Uint8Array<ArrayBuffer> }>;

/**
 * The request the router sees. A HEAD becomes a GET, carrying the HEAD as `received`, so that
 * every GET route answers HEAD with no code of its own. Bun hands over a path-only URL when a
 * request has no Host header (HTTP/1.0 clients, Krkn's own tools); Krkn's server answers those,
 * so we do too.
 */
function dispatched(request: Request): RoutedRequest {
  const received = request.url.startsWith("/") ? new Request(new URL(request.url, "http://localhost"), request) : request;
  if (received.method !== "HEAD") return received as RoutedRequest;
  const get = new Request(received.url, { method: "GET", headers: received.headers, signal: received.signal });
  return Object.assign(get, { received }) as unknown as RoutedRequest;
}

/**
 * The answer to a HEAD: the GET answer's status and headers (content-length included), no body.
 * Cancelling the body ends what produces it: an `/events` stream unsubscribes at once.
 */
function withoutBody(response: Response): Response {
  response.body?.cancel().catch(() => {});
  return new Response(null, { status: response.status, statusText: response.statusText, headers: inWriteOrder(response.headers) });
}

/**
 * Deno writes headers in the order they were set, but a copied Headers object lists them sorted.
 * Every answer here starts with content-type and cache-control: kept first, a HEAD writes the
 * header bytes its GET writes.
 */
function inWriteOrder(headers: Headers): [string, string][] {
  const first = FIRST_HEADERS.flatMap((name): [string, string][] => {
    const value = headers.get(name);
    return value === null ? [] : [[name, value]];
  });
  return [...first, ...[...headers].filter(([name]) => !FIRST_HEADERS.includes(name))];
}
const FIRST_HEADERS = ["content-type", "cache-control"];

function rejectLongUrl(request: IRequest): undefined {
  const url = new URL(request.url);
  const bytes = new TextEncoder().encode(url.pathname + url.search).byteLength;
  if (bytes > MAX_URL_BYTES) {
    throw new HttpError(414, `request target is ${bytes} bytes; the limit is ${MAX_URL_BYTES}`);
  }
  return undefined;
}
