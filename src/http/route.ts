/**
 * What every route module shares: the context it is built with, the signal it acts on, and the
 * small pieces of routing (405 with `Allow`, 404, path segments, the read guard) they all use.
 */
import type { StoreStatus } from "./status.ts";
import type { IRequest, RequestHandler, RouterType } from "itty-router";
import type { SubscriberHub } from "../push/hub.ts";
import type { PluginHost, PluginStatus } from "../plugin/host.ts";
import type { PluginDescription } from "../plugin/api.ts";
import type { History } from "../state/history.ts";
import type { SignalStore, StateHealth } from "../state/signal_store.ts";
import type { RequestInfo } from "../serve/types.ts";
import { HttpError } from "../web/response.ts";
import type { Auth } from "./auth.ts";

/**
 * A request as the routes see it. A HEAD is dispatched as a GET (http/app.ts): `received` is the
 * HEAD as it came, set only then, so that messages and metrics still name the method sent.
 */
export type RoutedRequest = IRequest & { readonly received?: Request };

export type Handler = RequestHandler<RoutedRequest, [RequestInfo | undefined]>;
export type AppRouter = RouterType<RoutedRequest, [RequestInfo | undefined]>;

/**
 * The one signal a route reads or changes, and its subscriber hub. Passed to each route as an
 * argument, never reached for, so that several named signals become one more route and a loop.
 */
export interface SignalTarget {
  /** Reads (`signal`, `snapshot()`) and changes (`submit`) go to the store; nothing else changes it. */
  readonly store: SignalStore;
  readonly events: SubscriberHub;
}

/** What the routes share, whatever signal they act on. */
export interface HttpContext {
  readonly version: string;
  readonly runtime: string;
  readonly startedAt: Date;
  readonly now: () => Date;
  readonly maxBodyBytes: number;
  readonly heartbeatMs: number;
  /** Undefined when no token is configured: everything is open. */
  readonly auth: Auth | undefined;
  readonly plugins: PluginHost | undefined;
  readonly history: History | undefined;
  readonly stateHealth: (() => StateHealth) | undefined;
  readonly storeHealth: (() => StoreStatus) | undefined;
  /** A plugin's description (its metrics and dashboard cards), looked up by its status. */
  readonly describe: (source: PluginStatus) => PluginDescription | undefined;
  /** The endpoint list every 404 and 405 names: each route adds its own as it registers. */
  readonly endpoints: Endpoints;
}

/**
 * The endpoints, in the order they were registered: `resource` adds each path it registers, so
 * the list that 404 and 405 answers name cannot miss one. Read when a request comes, by then
 * every route is registered.
 */
export class Endpoints {
  readonly #entries: string[] = [];

  add(...entries: string[]): void {
    for (const entry of entries) if (!this.#entries.includes(entry)) this.#entries.push(entry);
  }

  toString(): string {
    return this.#entries.join(", ");
  }
}

/** The method the client sent: HEAD for a HEAD dispatched as GET. */
export function methodOf(request: RoutedRequest): string {
  return request.received?.method ?? request.method;
}

/**
 * Registers a path's methods, then answers every other method with 405, `Allow` and the endpoint
 * list. A GET path answers HEAD too (dispatched as GET), so `Allow` names both.
 */
export function resource(
  router: AppRouter,
  path: string,
  methods: { GET?: Handler[]; POST?: Handler[] },
  endpoints: Endpoints,
  /** Shown after the path in the endpoint list: `GET / (the signal)`. */
  note?: string,
): void {
  const allow: string[] = [];
  const listed = note === undefined ? path : `${path} (${note})`;
  if (methods.GET) {
    router.get(path, ...methods.GET);
    allow.push("GET", "HEAD");
    endpoints.add(`GET ${listed}`);
  }
  if (methods.POST) {
    router.post(path, ...methods.POST);
    allow.push("POST");
    endpoints.add(`POST ${listed}`);
  }
  router.all(path, notAllowed(allow.join(", "), endpoints));
}

export function notAllowed(allow: string, endpoints: Endpoints): Handler {
  return (request) => {
    const path = showPath(new URL(request.url).pathname);
    throw new HttpError(405, `method ${methodOf(request)} is not allowed on ${path}; allowed: ${allow}; endpoints: ${endpoints}`, { allow });
  };
}

export function notFound(endpoints: Endpoints): Handler {
  return (request) => {
    const path = new URL(request.url).pathname;
    throw new HttpError(404, `no endpoint at ${showPath(path)}; endpoints: ${endpoints}`);
  };
}

/** Paths are echoed in errors; keep them short and on one line. */
export function showPath(path: string): string {
  return path.length > 64 ? `${path.slice(0, 61)}...` : path;
}

/** A path segment such as `:name`, decoded; 400 when its percent-encoding is malformed. */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch (error) {
    throw new HttpError(400, `malformed percent-encoding in path ${showPath(`/${segment}`)}; use plain /RUN, /PAUSE or /STOP`, {}, { cause: error });
  }
}

/** Like decodeSegment, without the 400: for labels only. */
export function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * The handlers a read endpoint starts with: none, or a guard that asks for a token when
 * `protect_reads` is on (401 before anything is read). It returns nothing, so itty goes on.
 */
export function readGuard(ctx: HttpContext): Handler[] {
  const auth = ctx.auth;
  if (!auth?.protectReads) return [];
  return [(request) => void auth.check(request)];
}

/** The token's name, checked before anything is read or changed; undefined when auth is off. */
export function authorize(ctx: HttpContext, request: Request): string | undefined {
  return ctx.auth?.check(request);
}

/** Who made a claim: the token's name and the address, as far as known. */
export function actorOf(tokenName: string | undefined, info: RequestInfo | undefined): string | undefined {
  return tokenName && info?.remoteAddress ? `${tokenName}@${info.remoteAddress}` : tokenName ?? info?.remoteAddress;
}
