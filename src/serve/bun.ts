/** `serve` on Bun: the only file that touches `Bun.*`. */
/// <reference types="bun-types" />
import { AddressInUseError, type RunningServer, type ServeHandler, type ServeOptions } from "./types.ts";

export function serve(handler: ServeHandler, options: ServeOptions): RunningServer {
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: options.hostname,
      port: options.port,
      fetch(request, self) {
        const remoteAddress = self.requestIP(request)?.address;
        return handler(request, remoteAddress === undefined ? {} : { remoteAddress });
      },
    });
  } catch (error) {
    if ((error as { code?: string }).code === "EADDRINUSE") {
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
