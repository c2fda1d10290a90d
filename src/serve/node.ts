/**
 * `serve` on Node.js (20 and later): the only file that touches `node:http`.
 *
 * Hand-written on node:http rather than an adapter library: it is measured as fast as
 * `@hono/node-server` on GET / (README, "Performance"), adds no dependency, and its few
 * conversions (IncomingMessage -> Request, Response -> ServerResponse) are all here to read.
 * A response body is written chunk by chunk as the handler's stream yields it, so an event
 * stream or a long-poll flushes at once; a client that goes away aborts `request.signal`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import {
  AddressInUseError,
  DEFAULT_IDLE_TIMEOUT_MS,
  type RequestInfo,
  type RunningServer,
  type ServeHandler,
  type ServeOptions,
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
  // Aborted when the client goes away before the response is written in full: ends event
  // streams and long-polls at once.
  const abort = new AbortController();
  outgoing.once("close", () => {
    if (!outgoing.writableFinished) abort.abort();
  });
  const method = incoming.method ?? "GET";
  if (FORBIDDEN_METHODS.has(method)) {
    // Node's Request refuses to carry these: no endpoint serves them anyway.
    return plain(outgoing, 405, `method ${method} is not allowed; chaos-signal serves GET, HEAD and POST`, { allow: "GET, HEAD, POST" });
  }
  const hasBody = method !== "GET" && method !== "HEAD";
  let request: Request;
  try {
    request = new Request(urlOf(incoming), {
      method,
      headers: headersOf(incoming),
      signal: abort.signal,
      ...(hasBody ? { body: Readable.toWeb(incoming) as ReadableStream<Uint8Array>, duplex: "half" } : {}),
    } as RequestInit);
  } catch (error) {
    // A Host header or path that makes no URL: the handler never sees it.
    return plain(outgoing, 400, `bad request: ${(error as Error).message.replace(/[\r\n]+/g, " ")}`);
  }
  let response: Response;
  try {
    response = await handler(request, new NodeRequestInfo(incoming.socket));
  } catch (error) {
    response = internalError(error);
  }
  await write(response, outgoing, method === "HEAD", abort.signal);
}

async function write(response: Response, outgoing: ServerResponse, headOnly: boolean, aborted: AbortSignal): Promise<void> {
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
  const reader = body.getReader();
  try {
    let chunk = await reader.read();
    if (chunk.done) {
      writeHead(outgoing, response, headers);
      outgoing.end();
      return;
    }
    // A body made from a string or bytes (every answer but a stream) ends within this turn:
    // then one write, with its length. A stream's next chunk may take minutes: its first goes now.
    const second = reader.read();
    const next = await Promise.race([second, nextTurn()]);
    if (next !== undefined && next.done) {
      headers["content-length"] ??= String(chunk.value.byteLength);
      writeHead(outgoing, response, headers);
      outgoing.end(chunk.value);
      return;
    }
    writeHead(outgoing, response, headers);
    // Every chunk goes out as it comes (node:http sets no Nagle delay: noDelay).
    outgoing.write(chunk.value);
    chunk = next ?? await second;
    while (!chunk.done && !aborted.aborted) {
      if (!outgoing.write(chunk.value)) await drained(outgoing, aborted);
      chunk = await reader.read();
    }
    outgoing.end();
  } catch {
    // The stream failed or the client went away: the connection cannot carry a clean end.
    outgoing.destroy();
  } finally {
    reader.cancel().catch(() => {});
  }
}

const nextTurn = (): Promise<undefined> => new Promise((resolve) => setImmediate(() => resolve(undefined)));

/** The status line: the runtime's own reason phrase unless the handler gave one. */
function writeHead(outgoing: ServerResponse, response: Response, headers: Record<string, string | string[]>): void {
  if (response.statusText) outgoing.writeHead(response.status, response.statusText, headers);
  else outgoing.writeHead(response.status, headers);
}

function drained(outgoing: ServerResponse, aborted: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      outgoing.off("drain", done);
      aborted.removeEventListener("abort", done);
      resolve();
    };
    outgoing.once("drain", done);
    aborted.addEventListener("abort", done, { once: true });
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
