/** `serve` on Bun: the only file that touches `Bun.*`. */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import {
  AddressInUseError,
  DEFAULT_IDLE_TIMEOUT_MS,
  type RunningServer,
  type ServeHandler,
  type ServeOptions,
  type TlsFetch,
  type TlsFiles,
} from "./types.ts";

/**
 * The slice of Bun's API used here. Deno type-checks the whole tree, and
 * bun-types' global declarations clash with Deno's own (URL, fetch, ...), so
 * this file declares what it uses instead of referencing bun-types.
 */
interface BunServer {
  readonly hostname?: string;
  readonly port?: number;
  requestIP(request: Request): { address: string } | null;
  /** Resets the idle timeout of this request's connection to `seconds` (0: none). */
  timeout(request: Request, seconds: number): void;
  stop(closeActiveConnections?: boolean): Promise<void>;
}
declare const Bun: {
  serve(options: {
    hostname: string;
    port: number;
    development: boolean;
    reusePort: boolean;
    /** Seconds, at most 255; 0: none. */
    idleTimeout: number;
    fetch(request: Request, server: BunServer): Response | Promise<Response>;
    error(error: Error): Response;
  }): BunServer;
};

export async function serve(handler: ServeHandler, options: ServeOptions): Promise<RunningServer> {
  let server: BunServer;
  try {
    server = Bun.serve({
      hostname: options.hostname,
      port: options.port,
      // Never Bun's HTML error page: it shows source code and file paths.
      development: false,
      // Two servers must not share a port: the second one has to fail (exit 1), as on Deno.
      reusePort: false,
      // Bun closes a connection quiet this long (its default is 10 s); at least 1 s, at most Bun's 255 s.
      idleTimeout: Math.min(255, Math.max(1, Math.ceil((options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS) / 1000))),
      error: (error) =>
        new Response(`internal error: ${error.message.replace(/[\r\n]+/g, " ")}\n`, {
          status: 500,
          headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
        }),
      fetch(request, self) {
        // Bun cuts a connection quiet for idleTimeout, a pending request included;
        // long-polls and event streams lift it for themselves, and everything else keeps it.
        return handler(request, new BunRequestInfo(self, request));
      },
    });
  } catch (error) {
    if ((error as { code?: string }).code === "EADDRINUSE") {
      // Bun also says EADDRINUSE ("Is port in use?") for a name it cannot resolve: look the name
      // up before blaming the port.
      const unknown = await lookupProblem(options.hostname);
      if (unknown) throw new Error(unknown, { cause: error });
      throw new AddressInUseError(options.hostname, options.port, { cause: error });
    }
    throw error;
  }
  return {
    hostname: server.hostname ?? options.hostname,
    port: server.port ?? options.port,
    close: () => server.stop(),
  };
}

/**
 * The address is looked up only when a handler asks for it (claims), not on every poll. A class,
 * not an object literal with a getter and a closure per request: that cost polls per second on
 * both runtimes (bench/http.ts).
 */
class BunRequestInfo {
  constructor(private readonly server: BunServer, private readonly request: Request) {}
  get remoteAddress(): string | undefined {
    return this.server.requestIP(this.request)?.address;
  }
  holdOpen(seconds: number): void {
    this.server.timeout(this.request, seconds);
  }
}

/** DNS on Bun: `node:dns`, as on Node. */
export { resolveDnsWithNode as resolveDns } from "./node_dns.ts";

/** `fetch` with Bun's `tls` option: trusts `files.ca` and presents `files.cert`/`files.key`. */
export function tlsFetch(files: TlsFiles): TlsFetch {
  const tls = {
    ...(files.ca === undefined ? {} : { ca: files.ca }),
    ...(files.cert === undefined ? {} : { cert: files.cert }),
    ...(files.key === undefined ? {} : { key: files.key }),
  };
  return (url, init) => fetch(url, { ...init, tls } as RequestInit);
}

/** Why `hostname` is no address to listen on, or undefined when it looks up. */
async function lookupProblem(hostname: string): Promise<string | undefined> {
  if (isIP(hostname)) return undefined;
  try {
    await lookup(hostname);
    return undefined;
  } catch (error) {
    return `${hostname} is not an address of this host (its lookup failed: ${(error as { code?: string }).code ?? error})`;
  }
}
