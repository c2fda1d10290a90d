/** The contract every per-runtime serve file implements. */

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

export type ServeHandler = (request: Request, info: RequestInfo) => Response | Promise<Response>;

/**
 * How long a connection may stay quiet (no request coming, none being answered) before the server
 * closes it. Long enough for a client polling every few seconds to keep its keep-alive connection;
 * short enough that a client holding connections open (or a leak) gives its descriptors back
 * within half a minute. Long-polls and event streams are exempt while they last.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export interface ServeOptions {
  readonly hostname: string;
  /** 0 picks a free port; `RunningServer.port` tells which. */
  readonly port: number;
  /** See DEFAULT_IDLE_TIMEOUT_MS; Bun takes whole seconds, at most 255. */
  readonly idleTimeoutMs?: number;
  /** Told once when accepting connections starts failing (out of file descriptors) and once when it works again. */
  readonly onAcceptTrouble?: (line: string) => void;
}

export interface RunningServer {
  /** The address actually bound. */
  readonly hostname: string;
  /** The port actually bound. */
  readonly port: number;
  /** Stops accepting connections and resolves when open requests are done. */
  close(): Promise<void>;
}

/**
 * What a TLS client (the etcd client) trusts and presents, as PEM text read from the files at
 * start: `ca` the certificate authority that signed the server's certificate (besides the system
 * ones), `cert` and `key` this client's certificate and key (client-certificate auth).
 */
export interface TlsFiles {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** The `fetch` a TLS client uses: the global one with the runtime's own TLS options. */
export type TlsFetch = (url: string, init: RequestInit) => Promise<Response>;

/** Thrown by `serve` when the port is taken, on every runtime alike. */
export class AddressInUseError extends Error {
  override readonly name = "AddressInUseError";
  constructor(readonly hostname: string, readonly port: number, options?: { cause?: unknown }) {
    super(`${hostname}:${port} is already in use`, options);
  }
}

/** The DNS record types a relay's `targets_dns` asks for. */
export type DnsRecordType = "A" | "AAAA";

export interface DnsQueryOptions {
  /** The server to ask; none: the system's resolver (/etc/resolv.conf). */
  readonly nameserver?: { readonly address: string; readonly port: number } | undefined;
  /** The whole query, retries included, ends within this. */
  readonly timeoutMs: number;
}

/**
 * The addresses of `name`'s records of `type`; `[]` when the name has none (NXDOMAIN, or no record
 * of that type). Rejects when the answer is unknown: a timeout, a refusal, a server failure.
 */
export type ResolveDns = (name: string, type: DnsRecordType, options: DnsQueryOptions) => Promise<string[]>;

/** Thrown by a `ResolveDns` that does not finish in time: the runtimes' own timeouts vary. */
export function dnsTimeout(name: string, type: DnsRecordType, ms: number): Error {
  return new Error(`${type} ${name}: no answer within ${ms} ms`);
}

/**
 * Bodies known in full when their Response was made (src/web/response.ts registers its text and
 * JSON answers). A serve file may write these bytes instead of reading the body's stream: on
 * Node.js that read cost about a third of a GET / poll. A Response's body never changes.
 */
export const KNOWN_BODIES: WeakMap<Response, Uint8Array> = new WeakMap();

/**
 * An answer known in full (status, headers, bytes) that is a `Response` to whoever reads more: the
 * real one is made on first use of anything but `status`. A serve file that knows this class
 * writes `preparedHead` and `preparedBytes` as they are (Node.js: a WHATWG Response per GET / poll, with its
 * Headers and body stream, cost about as much as the rest of the poll). Deno and Bun send only
 * real Responses: give them `real()` or a real Response instead.
 */
export class PreparedResponse {
  #real: Response | undefined;
  constructor(
    readonly status: number,
    /** Header names in lower case, as a Response's Headers lists them. */
    readonly preparedHead: Readonly<Record<string, string>>,
    /** Not `bytes`: that is a method of Response. */
    readonly preparedBytes: Uint8Array<ArrayBuffer>,
  ) {}

  real(): Response {
    if (this.#real) return this.#real;
    this.#real = new Response(this.preparedBytes, { status: this.status, headers: this.preparedHead });
    KNOWN_BODIES.set(this.#real, this.preparedBytes);
    return this.#real;
  }
}
Object.setPrototypeOf(PreparedResponse.prototype, Response.prototype);
for (const key of Object.getOwnPropertyNames(Response.prototype)) {
  if (key === "constructor" || key === "status") continue;
  Object.defineProperty(PreparedResponse.prototype, key, {
    get(this: PreparedResponse) {
      const real = this.real();
      const value = (real as unknown as Record<string, unknown>)[key];
      return typeof value === "function" ? value.bind(real) : value;
    },
  });
}
