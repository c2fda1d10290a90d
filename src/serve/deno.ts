/**
 * `serve` on Deno: the only file that touches `Deno.*`.
 *
 * `Deno.serve` accepts connections in Rust, ends for good when `accept` fails (EMFILE: out of
 * file descriptors, and the process exits), and never closes a quiet connection, so one client
 * can hold every descriptor. Here chaos-signal accepts connections itself and hands each to
 * Deno's HTTP server for one connection (`serveHttpOnConnection`, the internal that backs
 * `node:http2`): a failed `accept` is retried after a pause, and a connection quiet for the idle
 * timeout is closed. GET / over keep-alive connections is as fast as with `Deno.serve`; new
 * connections are accepted one at a time (README, "Runtime differences").
 * Should a Deno release drop that internal, `Deno.serve` is used, restarted when it ends.
 */
import type { RequestInfo, TlsFetch, TlsFiles } from "./types.ts";
import {
  AddressInUseError,
  DEFAULT_IDLE_TIMEOUT_MS,
  type DnsQueryOptions,
  type DnsRecordType,
  dnsTimeout,
  type RunningServer,
  type ServeHandler,
  type ServeOptions,
} from "./types.ts";

/** How long to wait before accepting again after `accept` failed (descriptors run out). */
const ACCEPT_RETRY_MS = 100;
/** The idle sweep runs this many times per idle timeout: a quiet connection goes after 1 to 1.25 times it. */
const SWEEPS_PER_TIMEOUT = 4;

type DenoHandler = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;
type ServeOnConnection = (
  connection: Deno.Conn,
  signal: AbortSignal,
  handler: DenoHandler,
  onError: (error: unknown) => Response,
  onListen: (scheme: string) => void,
) => Deno.HttpServer<Deno.NetAddr>;

function serveOnConnectionInternal(): ServeOnConnection | undefined {
  const deno = Deno as unknown as Record<symbol, Record<string, unknown> | undefined> & { internal?: symbol };
  const found = deno.internal === undefined ? undefined : deno[deno.internal]?.serveHttpOnConnection;
  return typeof found === "function" ? found as ServeOnConnection : undefined;
}

function internalError(error: unknown): Response {
  return new Response(`internal error: ${String((error as Error)?.message ?? error).replace(/[\r\n]+/g, " ")}\n`, {
    status: 500,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function serve(handler: ServeHandler, options: ServeOptions): RunningServer {
  const serveOnConnection = serveOnConnectionInternal();
  return listening(options, () =>
    serveOnConnection
      ? new ConnectionServer(
        Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" }),
        handler,
        serveOnConnection,
        options,
      )
      : serveRestarting(handler, options));
}

function listening<T>(options: ServeOptions, listen: () => T): T {
  try {
    return listen();
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new AddressInUseError(options.hostname, options.port, { cause: error });
    }
    throw error;
  }
}

/** One accepted connection: counts its requests so that the sweep sees whether it was quiet. */
class Connection {
  requests = 0;
  seen = 0;
  quietSweeps = 0;
  /** Long-polls and event streams being answered on it: never quiet while they last. */
  held = 0;
  readonly abort = new AbortController();
  server: Deno.HttpServer<Deno.NetAddr> | undefined;
}

class ConnectionServer implements RunningServer {
  readonly hostname: string;
  readonly port: number;
  readonly #connections = new Set<Connection>();
  readonly #sweep: ReturnType<typeof setInterval>;
  #closing = false;

  constructor(
    private readonly listener: Deno.TcpListener,
    private readonly handler: ServeHandler,
    private readonly serveOnConnection: ServeOnConnection,
    private readonly options: ServeOptions,
  ) {
    this.hostname = listener.addr.hostname;
    this.port = listener.addr.port;
    const idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#sweep = setInterval(() => this.#closeQuiet(), Math.max(10, idleMs / SWEEPS_PER_TIMEOUT));
    this.#acceptLoop();
  }

  async #acceptLoop(): Promise<void> {
    let failing = false;
    while (!this.#closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.listener.accept();
      } catch (error) {
        if (this.#closing) return;
        // Out of descriptors (EMFILE) or a connection reset before it was accepted: the listener
        // is still good. Pending connections wait in the backlog (or are refused when it is
        // full) until quiet connections are closed and descriptors free up.
        if (!failing) this.options.onAcceptTrouble?.(`accepting connections failed (${(error as Error).message}); retrying every ${ACCEPT_RETRY_MS} ms`);
        failing = true;
        await sleep(ACCEPT_RETRY_MS);
        continue;
      }
      if (failing) this.options.onAcceptTrouble?.(`accepting connections works again (${this.#connections.size} open)`);
      failing = false;
      this.#serve(conn);
    }
  }

  #serve(conn: Deno.TcpConn): void {
    const connection = new Connection();
    const handler = this.handler;
    this.#connections.add(connection);
    try {
      connection.server = this.serveOnConnection(conn, connection.abort.signal, (request, info) => {
        connection.requests++;
        return handler(request, new DenoRequestInfo(info, connection));
      }, internalError, () => {});
    } catch {
      this.#connections.delete(connection);
      conn.close();
      return;
    }
    // A connection reset by the client ends here too: nothing to report.
    connection.server.finished.catch(() => {}).finally(() => this.#connections.delete(connection));
  }

  #closeQuiet(): void {
    for (const connection of this.#connections) {
      if (connection.held > 0 || connection.requests !== connection.seen) {
        connection.seen = connection.requests;
        connection.quietSweeps = 0;
      } else if (++connection.quietSweeps > SWEEPS_PER_TIMEOUT) {
        connection.abort.abort();
      }
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#sweep);
    this.listener.close();
    // Graceful: quiet keep-alive connections close now, open responses are finished first.
    await Promise.allSettled([...this.#connections].map((connection) => connection.server?.shutdown()));
  }
}

/** The fallback without the internal: `Deno.serve`, started again whenever its accept loop ends. */
function serveRestarting(handler: ServeHandler, options: ServeOptions): RunningServer {
  const start = (port: number) =>
    Deno.serve(
      // Silence Deno's own "Listening on" line: the CLI prints its own.
      { hostname: options.hostname, port, onListen: () => {}, onError: internalError },
      (request, info) => handler(request, new DenoRequestInfo(info)),
    );
  let server = start(options.port);
  let closing = false;
  const port = server.addr.port;
  (async () => {
    for (;;) {
      await server.finished.catch((error) => options.onAcceptTrouble?.(`the server stopped (${(error as Error).message}); restarting it`));
      while (!closing) {
        await sleep(ACCEPT_RETRY_MS);
        try {
          server = start(port);
          break;
        } catch {
          // Still no descriptor for the listener: try again.
        }
      }
      if (closing) return;
    }
  })();
  return {
    hostname: server.addr.hostname,
    port,
    close: () => {
      closing = true;
      return server.shutdown();
    },
  };
}

/**
 * The address is looked up only when a handler asks for it (claims), not on every poll. A class,
 * not an object literal with a getter: the literal cost a third of the polls per second on Deno
 * and grew the heap under load (bench/http.ts, 59 -> 145 MiB RSS).
 */
class DenoRequestInfo implements RequestInfo {
  constructor(
    private readonly info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    private readonly connection?: Connection,
  ) {}
  get remoteAddress(): string {
    return this.info.remoteAddr.hostname;
  }
  /** Exempts the connection from the idle sweep until this response is delivered or abandoned. */
  holdOpen(): void {
    const connection = this.connection;
    if (!connection) return;
    connection.held++;
    const release = () => {
      connection.held--;
      connection.quietSweeps = 0;
    };
    this.info.completed.then(release, release);
  }
}

/**
 * DNS on Deno: `Deno.resolveDns`, with the nameserver given and a deadline. Deno reports a name
 * without records (NXDOMAIN, no record of the type) as `NotFound`: an answer, `[]`.
 */
export async function resolveDns(name: string, type: DnsRecordType, options: DnsQueryOptions): Promise<string[]> {
  const { nameserver } = options;
  try {
    return await Deno.resolveDns(name, type, {
      signal: AbortSignal.timeout(options.timeoutMs),
      ...(nameserver ? { nameServer: { ipAddr: nameserver.address, port: nameserver.port } } : {}),
    });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    if ((error as Error)?.name === "TimeoutError") throw dnsTimeout(name, type, options.timeoutMs);
    throw error;
  }
}

/** `fetch` through a Deno HTTP client that trusts `files.ca` and presents `files.cert`/`files.key`. */
export function tlsFetch(files: TlsFiles): TlsFetch {
  const client = Deno.createHttpClient({
    ...(files.ca === undefined ? {} : { caCerts: [files.ca] }),
    ...(files.cert === undefined || files.key === undefined ? {} : { cert: files.cert, key: files.key }),
  });
  return (url, init) => fetch(url, { ...init, client });
}
