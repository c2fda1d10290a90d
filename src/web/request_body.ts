/**
 * Reads a request body with a hard size limit.
 *
 * The signal endpoints ignore what they are sent (Krkn's own example script
 * sends a chunked empty body), but they still read it: a body over the limit
 * is refused with 413 before anything changes, whether its size is declared
 * in `Content-Length` or only discovered while streaming a chunked body.
 */
import { HttpError } from "./response.ts";

/** The documented default limit for request bodies: 64 KiB. */
export { DEFAULT_MAX_BODY_BYTES } from "../config/schemas.ts";

export async function readBoundedBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new HttpError(413, `request body is larger than the limit of ${maxBytes} bytes`);
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge();
  if (!request.body) return new Uint8Array(0);

  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      let read: Awaited<ReturnType<typeof reader.read>>;
      try {
        read = await reader.read();
      } catch (error) {
        // The client closed the connection (or broke the framing) before the body ended. That is
        // the client's doing: a 400 the router answers, not an internal error that logs "failed"
        // and counts a 500 (the load tests cut 100 unfinished bodies at once).
        const reason = error instanceof Error && error.message ? `: ${error.message.split("\n")[0]}` : "";
        throw new HttpError(400, `the request body ended before it was complete${reason}`, {}, { cause: error });
      }
      const { done, value } = read;
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        // Stop reading at once: the client may be streaming without end.
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}
