/**
 * `serve` on Node.js (20 and later): the only file that touches `node:http`.
 *
 * Hand-written on node:http rather than an adapter library: no new dependency, and its few
 * conversions (IncomingMessage -> Request, Response -> ServerResponse) are all here to read.
 * A GET / poll comes back as a PreparedResponse (serve/types.ts) and is written as it is, with no
 * WHATWG Response made: within 1.1-1.2x the CPU time of bare node:http (README, "On Node.js").
 * A response body is written chunk by chunk as the handler's stream yields it, so an event
 * stream or a long-poll flushes at once; a client that goes away aborts `request.signal`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { rootCertificates } from "node:tls";
import type { Socket } from "node:net";
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import {
  AddressInUseError,
  DEFAULT_IDLE_TIMEOUT_MS,
  KNOWN_BODIES,
  PreparedResponse,
  type RequestInfo,
  type RunningServer,
  type ServeHandler,
  type ServeOptions,
  type TlsFetch,
  type TlsFiles,
} from "./types.ts";

/** close(): open responses get this long to finish before their connections are cut. */
const CLOSE_GRACE_MS = 1000;

function internalError(error: unknown): Response {
  return new Response(`internal error: ${String((error as Error)?.message ?? error).replace(/[\r\n]+/g, " ")}\n`, {
    status: 500,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

export function serve(handler: ServeHandler, options: ServeOptions): Promise<RunningServer> {
  const idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const server = createServer({ noDelay: true, keepAliveTimeout: idleMs }, (incoming, outgoing) => {
    answer(handler, incoming, outgoing).catch(() => outgoing.destroy());
  });
  // A connection quiet this long (no request coming, none being answered) is closed; long-polls
  // and event streams lift it for their own connection (holdOpen).
  server.timeout = idleMs;
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      reject(error.code === "EADDRINUSE" ? new AddressInUseError(options.hostname, options.port, { cause: error }) : error);
    };
    server.once("error", failed);
    server.listen({ host: options.hostname, port: options.port, exclusive: true }, () => {
      server.off("error", failed);
      // After listening, an error is an `accept` that failed (EMFILE, when libuv's reserve
      // descriptor does not cover it): the listener stays open and accepts again.
      let lastTrouble = 0;
      server.on("error", (error: Error) => {
        if (Date.now() - lastTrouble < 60_000) return;
        lastTrouble = Date.now();
        options.onAcceptTrouble?.(`accepting connections failed (${error.message}); Node.js accepts again as descriptors free up`);
      });
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address : { address: options.hostname, port: options.port };
      resolve(new NodeServer(server, bound.address, bound.port));
    });
  });
}

class NodeServer implements RunningServer {
  constructor(private readonly server: Server, readonly hostname: string, readonly port: number) {}

  close(): Promise<void> {
    const server = this.server;
    return new Promise((resolve) => {
      // Stops accepting; quiet keep-alive connections close now, open responses are finished first.
      server.close(() => resolve());
      server.closeIdleConnections();
      // Finished responses leave their connection idle: close it too rather than keep it alive.
      server.on("request", (_incoming: IncomingMessage, outgoing: ServerResponse) => outgoing.shouldKeepAlive = false);
      const idle = setInterval(() => server.closeIdleConnections(), 50);
      const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
      server.once("close", () => {
        clearInterval(idle);
        clearTimeout(cut);
      });
    });
  }
}

/** Methods the WHATWG Request refuses to carry (the fetch standard's forbidden methods). */
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);

/** A one-line plain-text answer written here, for what never reaches the handler. */
function plain(outgoing: ServerResponse, status: number, line: string, headers: Record<string, string> = {}): void {
  const body = `${line}\n`;
  outgoing.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
    "content-length": String(Buffer.byteLength(body)),
    ...headers,
  });
  outgoing.end(body);
}

/** The URL the handler sees: the Host header names the authority, as on Deno and Bun. */
function urlOf(incoming: IncomingMessage): string {
  const host = incoming.headers.host || "localhost";
  return `http://${host}${incoming.url ?? "/"}`;
}

function headersOf(incoming: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = incoming.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  return headers;
}

async function answer(handler: ServeHandler, incoming: IncomingMessage, outgoing: ServerResponse): Promise<void> {
  const method = incoming.method ?? "GET";
  if (FORBIDDEN_METHODS.has(method)) {
    // Node's Request refuses to carry these: no endpoint serves them anyway.
    return plain(outgoing, 405, `method ${method} is not allowed; chaos-signal serves GET, HEAD and POST`, { allow: "GET, HEAD, POST" });
  }
  const url = urlOf(incoming);
  if (!URL.canParse(url)) {
    // A Host header or path that makes no URL: the handler never sees it.
    return plain(outgoing, 400, `bad request: the Host header and path make no URL`);
  }
  const request = new NodeRequest(method, url, incoming);
  let response: Response | Promise<Response>;
  try {
    response = handler(request as unknown as Request, new NodeRequestInfo(incoming.socket));
  } catch (error) {
    response = internalError(error);
  }
  // A poll answered at once is written at once: no listener, no await (a third of what is left of a poll's cost).
  if (response instanceof PreparedResponse) return writePrepared(response, outgoing, method === "HEAD");
  // The client went away before the response was written in full: event streams and long-polls end at once.
  // (Registered after the handler's synchronous part: no close event can come in between.)
  outgoing.once("close", () => {
    if (!outgoing.writableFinished) request.clientGone();
  });
  try {
    response = await response;
  } catch (error) {
    response = internalError(error);
  }
  await write(response, outgoing, method === "HEAD", request);
}

/**
 * The request the handler gets: `method` and `url` at once, everything else (headers, body,
 * signal) from a real `Request` made on first use. A poll of GET / reads only the method and
 * the URL, and a `Request` with its Headers and AbortController cost as much again as the rest of
 * the poll (the @hono/node-server adapter does the same). It is a `Request` to `instanceof`.
 */
class NodeRequest {
  #real: Request | undefined;
  #abort: AbortController | undefined;
  #gone = false;
  constructor(readonly method: string, readonly url: string, private readonly incoming: IncomingMessage) {}

  get gone(): boolean {
    return this.#gone;
  }

  clientGone(): void {
    this.#gone = true;
    this.#abort?.abort();
  }

  real(): Request {
    if (this.#real) return this.#real;
    this.#abort = new AbortController();
    if (this.#gone) this.#abort.abort();
    const hasBody = this.method !== "GET" && this.method !== "HEAD";
    this.#real = new Request(this.url, {
      method: this.method,
      headers: headersOf(this.incoming),
      signal: this.#abort.signal,
      ...(hasBody ? { body: Readable.toWeb(this.incoming) as ReadableStream<Uint8Array>, duplex: "half" } : {}),
    } as RequestInit);
    return this.#real;
  }
}
Object.setPrototypeOf(NodeRequest.prototype, Request.prototype);
for (const key of Object.getOwnPropertyNames(Request.prototype)) {
  if (key === "constructor" || key === "method" || key === "url") continue;
  Object.defineProperty(NodeRequest.prototype, key, {
    get(this: NodeRequest) {
      const real = this.real();
      const value = (real as unknown as Record<string, unknown>)[key];
      return typeof value === "function" ? value.bind(real) : value;
    },
  });
}

async function write(response: Response, outgoing: ServerResponse, headOnly: boolean, request: NodeRequest): Promise<void> {
  if (response instanceof PreparedResponse) return writePrepared(response, outgoing, headOnly);
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length) headers["set-cookie"] = cookies;
  const body = response.body;
  if (body === null || headOnly) {
    writeHead(outgoing, response, headers);
    outgoing.end();
    await body?.cancel().catch(() => {});
    return;
  }
  if (headers["content-length"] !== undefined) {
    // A body of known length (every answer but an event stream): written at once, its stream
    // read only when the bytes are not known already.
    const bytes = KNOWN_BODIES.get(response) ?? new Uint8Array(await response.arrayBuffer());
    writeHead(outgoing, response, headers);
    outgoing.end(bytes);
    return;
  }
  // A stream: every chunk goes out as it comes (node:http sets no Nagle delay: noDelay), until
  // it ends or the client goes away.
  writeHead(outgoing, response, headers);
  outgoing.flushHeaders();
  const reader = body.getReader();
  const stop = () => reader.cancel().catch(() => {});
  outgoing.once("close", stop);
  try {
    for (let chunk = await reader.read(); !chunk.done && !request.gone; chunk = await reader.read()) {
      if (!outgoing.write(chunk.value)) await drained(outgoing);
    }
    outgoing.end();
  } catch {
    // The stream failed: the connection cannot carry a clean end.
    outgoing.destroy();
  } finally {
    outgoing.off("close", stop);
    stop();
  }
}

/** A poll of GET /: its status, headers and bytes as they are, no WHATWG Response made. */
function writePrepared(response: PreparedResponse, outgoing: ServerResponse, headOnly: boolean): void {
  outgoing.writeHead(response.status, response.preparedHead);
  outgoing.end(headOnly ? undefined : response.preparedBytes);
}

/** The status line: the runtime's own reason phrase unless the handler gave one. */
function writeHead(outgoing: ServerResponse, response: Response, headers: Record<string, string | string[]>): void {
  if (response.statusText) outgoing.writeHead(response.status, response.statusText, headers);
  else outgoing.writeHead(response.status, headers);
}

/** Resolves when the socket takes more, or when it closes (the client went away). */
function drained(outgoing: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      outgoing.off("drain", done);
      outgoing.off("close", done);
      resolve();
    };
    outgoing.once("drain", done);
    outgoing.once("close", done);
  });
}

/** The address is looked up only when a handler asks for it (claims), as on the other runtimes. */
class NodeRequestInfo implements RequestInfo {
  constructor(private readonly socket: Socket) {}
  get remoteAddress(): string | undefined {
    const address = this.socket.remoteAddress;
    // An IPv4 client of a dual-stack listener: its own address, as Deno and Bun report it.
    return address?.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
  }
  /** Sets this connection's quiet limit to `seconds` (0: none) while the response lasts. */
  holdOpen(seconds: number): void {
    // node:http sets the keep-alive timeout once the response is done, and server.timeout again
    // on the next request: nothing to restore afterwards.
    this.socket.setTimeout(seconds * 1000);
  }
}

/** DNS on Node.js: `node:dns`, as on Bun. */
export { resolveDnsWithNode as resolveDns } from "./node_dns.ts";

/**
 * `fetch` trusting `files.ca` and presenting `files.cert`/`files.key`. Node's global fetch takes
 * no TLS options (only an undici dispatcher, which Node does not export), so this is `node:https`
 * behind the same signature: the body streams, `init.signal` aborts it.
 */
export function tlsFetch(files: TlsFiles): TlsFetch {
  // A `ca` replaces Node's trusted CAs: keep them, as the other runtimes do.
  const ca = files.ca === undefined ? {} : { ca: [...rootCertificates, files.ca] };
  const agent = new HttpsAgent({ keepAlive: true, ...files, ...ca });
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const headers = Object.fromEntries(new Headers(init.headers).entries());
      const outgoing = httpsRequest(url, { method: init.method ?? "GET", headers, agent, ...(init.signal ? { signal: init.signal } : {}) }, (incoming) => {
        const answer = new Headers();
        for (const [name, value] of Object.entries(incoming.headers)) {
          for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value]) answer.append(name, one);
        }
        const status = incoming.statusCode ?? 502;
        const empty = status === 204 || status === 304 || init.method === "HEAD";
        if (empty) incoming.resume();
        resolve(new Response(empty ? null : Readable.toWeb(incoming) as ReadableStream<Uint8Array>, { status, headers: answer }));
      });
      outgoing.on("error", reject);
      const body = init.body;
      if (body === undefined || body === null) outgoing.end();
      else if (typeof body === "string" || body instanceof Uint8Array) outgoing.end(body);
      else reject(new TypeError("tlsFetch on Node.js sends string or byte bodies only"));
    });
}
