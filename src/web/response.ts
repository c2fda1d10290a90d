/**
 * Every response the server writes goes through these helpers, so all of
 * them carry the same headers and every error has the same body shape:
 * one plain-text line that says what was wrong and what is allowed.
 *
 * Each sets `content-length` itself: a HEAD is answered by dropping the body of the GET answer
 * (http/app.ts), and the length must survive that (RFC 9110 section 9.3.2).
 */
import { StatusError } from "itty-router";
import { KNOWN_BODIES } from "../serve/types.ts";

const TEXT_HEADERS = {
  "content-type": "text/plain; charset=utf-8",
  "cache-control": "no-store",
} as const;

const encoder = new TextEncoder();

/** Tells the serve files the body's bytes, so that they need not read its stream (serve/types.ts). */
function known(bytes: Uint8Array, response: Response): Response {
  KNOWN_BODIES.set(response, bytes);
  return response;
}

/** A plain-text body, byte for byte (no trailing newline: Krkn compares with `==`). */
export function textResponse(body: string, init: { status?: number; headers?: Record<string, string> } = {}): Response {
  const bytes = encoder.encode(body);
  return known(bytes, new Response(bytes, {
    status: init.status ?? 200,
    headers: { ...TEXT_HEADERS, "content-length": String(bytes.byteLength), ...init.headers },
  }));
}

/** A JSON body; `cache-control: no-store` because every answer is live state. */
export function jsonResponse(value: unknown, init: { status?: number } = {}): Response {
  const bytes = encoder.encode(JSON.stringify(value, null, 2) + "\n");
  return known(bytes, new Response(bytes, {
    status: init.status ?? 200,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      "content-length": String(bytes.byteLength),
    },
  }));
}

/**
 * An HTTP error: thrown anywhere in a handler, turned into a response by the router's `catch`
 * stage. itty-router's own error type, with the headers the answer needs (`Allow` on a 405,
 * `WWW-Authenticate` on a 401).
 */
export class HttpError extends StatusError {
  override readonly name = "HttpError";
  constructor(
    status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(status, message);
    if (options && "cause" in options) this.cause = options.cause;
  }
}

/** The one error body shape: the reason on one line, newline-terminated for terminals. */
export function errorResponse(error: StatusError): Response {
  const oneLine = String(error.message).replace(/[\r\n]+/g, " ");
  return textResponse(`${oneLine}\n`, { status: error.status, headers: error instanceof HttpError ? error.headers : {} });
}
