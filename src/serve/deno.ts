/** `serve` on Deno: the only file that touches `Deno.*`. */
import { AddressInUseError, type RunningServer, type ServeHandler, type ServeOptions } from "./types.ts";

export function serve(handler: ServeHandler, options: ServeOptions): RunningServer {
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      // Silence Deno's own "Listening on" line: the CLI prints its own.
      { hostname: options.hostname, port: options.port, onListen: () => {} },
      (request, info) => handler(request, new DenoRequestInfo(info)),
    );
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new AddressInUseError(options.hostname, options.port, { cause: error });
    }
    throw error;
  }
  return {
    hostname: server.addr.hostname,
    port: server.addr.port,
    close: () => server.shutdown(),
  };
}

/**
 * The address is looked up only when a handler asks for it (claims), not on every poll. A class,
 * not an object literal with a getter: the literal cost a third of the polls per second on Deno
 * and grew the heap under load (bench/http.ts, 59 -> 145 MiB RSS).
 */
class DenoRequestInfo {
  constructor(private readonly info: Deno.ServeHandlerInfo<Deno.NetAddr>) {}
  get remoteAddress(): string {
    return this.info.remoteAddr.hostname;
  }
}
