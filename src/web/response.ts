/**
 * Every response the server writes goes through these helpers, so all of
 * them carry the same headers and every error has the same body shape:
 * one plain-text line that says what was wrong and what is allowed.
 */

const TEXT_HEADERS = {
  "content-type": "text/plain; charset=utf-8",
  "cache-control": "no-store",
} as const;

/** A plain-text body, byte for byte (no trailing newline: Krkn compares with `==`). */
export function textResponse(
  body: string,
  init: { status?: number; headers?: Record<string, string>; head?: boolean } = {},
): Response {
  // The runtime adds content-length for a body it knows in full; HEAD gets the GET headers and no
  // body (RFC 9110 section 9.3.2), so there it is said explicitly.
  if (!init.head) return new Response(body, { status: init.status ?? 200, headers: { ...TEXT_HEADERS, ...init.headers } });
  const length = String(new TextEncoder().encode(body).byteLength);
  return new Response(null, { status: init.status ?? 200, headers: { ...TEXT_HEADERS, "content-length": length, ...init.headers } });
}

/** A JSON body; `cache-control: no-store` because every answer is live state. */
export function jsonResponse(value: unknown, init: { status?: number; head?: boolean } = {}): Response {
  const bytes = new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n");
  return new Response(init.head ? null : bytes, {
    status: init.status ?? 200,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      "content-length": String(bytes.byteLength),
    },
  });
}

/** An HTTP error: thrown anywhere in a handler, turned into a response by the router. */
export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The one error body shape: the reason on one line, newline-terminated for terminals. */
export function errorResponse(error: HttpError, head = false): Response {
  const oneLine = error.message.replace(/[\r\n]+/g, " ");
  return textResponse(`${oneLine}\n`, { status: error.status, headers: error.headers, head });
}
