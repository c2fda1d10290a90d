/**
 * The HTTP API as one runtime-agnostic `fetch(Request) => Promise<Response>`.
 *
 *   GET|HEAD /                 the effective signal: exactly `RUN`, `PAUSE` or `STOP`
 *   POST /RUN|/PAUSE|/STOP     a manual claim (any letter case); answers the signal after it
 *   GET|HEAD /status           JSON: claims, latch, version, uptime (see status.ts)
 *
 * Unlike Krkn's server, which closes the connection without a word on an
 * unknown path, every request gets an answer: 404 or 405 (with `Allow`) and a
 * one-line reason that lists the endpoints.
 */
import { type IRequest, Router } from "itty-router";
import * as v from "valibot";
import { type Arbiter, MANUAL_SOURCE } from "./arbiter.ts";
import { errorResponse, HttpError, jsonResponse, textResponse } from "./http_response.ts";
import { DEFAULT_MAX_BODY_BYTES, readBoundedBody } from "./request_body.ts";
import { parseSignal, type Signal, SIGNALS } from "./signal.ts";
import { statusDocument } from "./status.ts";
import { issueLine, strictSection } from "./validation.ts";

/** What the runtime knows about a request beyond the `Request` itself. */
export interface RequestInfo {
  /** The client's IP address, recorded as the actor of manual claims. */
  readonly remoteAddress?: string;
}

export type FetchHandler = (request: Request, info?: RequestInfo) => Promise<Response>;

export interface HandlerOptions {
  readonly arbiter: Arbiter;
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
}

/** Longer request targets (path and query) get 414; the runtimes' own limits apply too. */
export const MAX_URL_BYTES = 8 * 1024;

const ENDPOINTS = "GET / (the signal), POST /RUN, POST /PAUSE, POST /STOP, GET /status";

/** No query parameter is accepted on the signal endpoints yet: a typo must not pass silently. */
const SetSignalQuery = strictSection({}, "no query parameters");

type Route = (request: IRequest, info: RequestInfo | undefined) => Response | Promise<Response> | undefined;

/** Dispatches on the method; any other method gets 405 with `Allow` (and the endpoint list). */
function resource(methods: Record<string, Route>): Route {
  const allow = Object.keys(methods).join(", ");
  return (request, info) => {
    const route = methods[request.method];
    if (route) return route(request, info);
    const path = showPath(new URL(request.url).pathname);
    throw new HttpError(405, `method ${request.method} is not allowed on ${path}; allowed: ${allow}; endpoints: ${ENDPOINTS}`, { allow });
  };
}

function notFound(request: IRequest): never {
  const path = new URL(request.url).pathname;
  throw new HttpError(404, `no endpoint at ${showPath(path)}; endpoints: ${ENDPOINTS}`);
}

/** Paths are echoed in errors; keep them short and on one line. */
function showPath(path: string): string {
  return path.length > 64 ? `${path.slice(0, 61)}...` : path;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch (error) {
    throw new HttpError(400, `malformed percent-encoding in path ${showPath(`/${segment}`)}; use plain /RUN, /PAUSE or /STOP`, {}, { cause: error });
  }
}

export function createHandler(options: HandlerOptions): FetchHandler {
  const { arbiter, version } = options;
  const runtime = options.runtime ?? "unknown";
  const now = options.now ?? (() => new Date());
  const startedAt = options.startedAt ?? now();
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const onError = options.onError ?? (() => {});

  const readSignal: Route = (request) => textResponse(arbiter.signal, { head: request.method === "HEAD" });

  const readStatus: Route = (request) =>
    jsonResponse(statusDocument(arbiter.snapshot(), { version, runtime, startedAt, now: now() }), {
      head: request.method === "HEAD",
    });

  const setSignal = (signal: Signal): Route => async (request, info) => {
    const query = v.safeParse(SetSignalQuery, request.query);
    if (!query.success) {
      throw new HttpError(400, issueLine(query.issues, (key) => `query parameter "${key}" of POST /${signal}`, request.query));
    }
    // Read (and bound) the body before claiming: a refused request changes nothing.
    await readBoundedBody(request, maxBodyBytes);
    const actor = info?.remoteAddress;
    const result = arbiter.claim(MANUAL_SOURCE, signal, `POST /${signal}`, {
      explicit: true,
      ...(actor === undefined ? {} : { actor }),
    });
    return textResponse(result);
  };

  const signalResources = new Map(SIGNALS.map((signal) => [signal, resource({ POST: setSignal(signal) })]));

  /** `/:name` is a signal endpoint only when the name is a signal; else it falls through to 404. */
  const signalEndpoint: Route = (request, info) => {
    const signal = parseSignal(decodeSegment(request.params.name ?? ""));
    return signal && signalResources.get(signal)!(request, info);
  };

  const router = Router<IRequest, [RequestInfo | undefined]>({
    before: [rejectLongUrl],
    catch: (error: unknown, request: IRequest) => {
      if (error instanceof HttpError) return errorResponse(error, request.method === "HEAD");
      onError(error, request);
      const reason = error instanceof Error ? error.message : String(error);
      return errorResponse(new HttpError(500, `internal error: ${reason}`), request.method === "HEAD");
    },
  });
  router
    .all("/", resource({ GET: readSignal, HEAD: readSignal }))
    .all("/status", resource({ GET: readStatus, HEAD: readStatus }))
    .all("/:name", signalEndpoint)
    .all("*", notFound);

  return async (request, info) => {
    try {
      return await router.fetch(absolute(request), info);
    } catch (error) {
      // itty-router parses the URL before its own catch is armed; nothing may escape as a runtime error page.
      onError(error, request);
      return errorResponse(new HttpError(400, `cannot read the request: ${(error as Error)?.message ?? error}`));
    }
  };
}

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
