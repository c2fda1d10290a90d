/** The contract every per-runtime serve file implements. */
import type { RequestInfo } from "../handler.ts";

export type ServeHandler = (request: Request, info: RequestInfo) => Response | Promise<Response>;

export interface ServeOptions {
  readonly hostname: string;
  /** 0 picks a free port; `RunningServer.port` tells which. */
  readonly port: number;
}

export interface RunningServer {
  /** The address actually bound. */
  readonly hostname: string;
  /** The port actually bound. */
  readonly port: number;
  /** Stops accepting connections and resolves when open requests are done. */
  close(): Promise<void>;
}

/** Thrown by `serve` when the port is taken, on every runtime alike. */
export class AddressInUseError extends Error {
  override readonly name = "AddressInUseError";
  constructor(readonly hostname: string, readonly port: number, options?: { cause?: unknown }) {
    super(`${hostname}:${port} is already in use`, options);
  }
}
