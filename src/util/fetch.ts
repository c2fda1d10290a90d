/**
 * One HTTP request with one time limit over connect and body, an optional
 * cap on the body's size, and failures as a typed `FetchError` that says
 * what went wrong in a few words: the client, the relay targets and the
 * Prometheus query all fetch through it.
 */

/** The slice of `fetch` used here (tests, proxies and custom TLS replace it). */
export type FetchFunction = (url: string, init: RequestInit) => Promise<Response>;

export interface FetchTextOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: BodyInit;
  /** Bounds the whole exchange, from connect to the last byte of the body. */
  readonly timeoutMs: number;
  /** The caller's abort (shutdown, a cancelled wait): the request rejects with its `reason`, not a `FetchError`. */
  readonly abort?: AbortSignal;
  /** A larger body is a `too-large` failure, found while reading: the rest is never read. @default no cap */
  readonly maxBytes?: number;
  /** @default the global `fetch`, looked up at call time */
  readonly fetch?: FetchFunction;
}

/** An answer, whatever its status: the caller decides what a 4xx or 5xx means. */
export interface FetchedText {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: Headers;
  readonly text: string;
}

/**
 * `timeout`: no complete answer in time; `refused`: nothing listens there; `unreachable`: no
 * connection for another reason (DNS, reset, TLS); `interrupted`: the body broke off;
 * `too-large`: the body passed `maxBytes`.
 */
export type FetchFailure = "timeout" | "refused" | "unreachable" | "interrupted" | "too-large";

export class FetchError extends Error {
  override readonly name = "FetchError";
  constructor(
    readonly reason: FetchFailure,
    message: string,
    /** The answer's status when the failure came after its headers (while reading the body). */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Sends one request and reads its whole body as text; see `FetchTextOptions` for the limits. */
export async function fetchText(url: string | URL, options: FetchTextOptions): Promise<FetchedText> {
  const { abort, timeoutMs, maxBytes } = options;
  if (abort?.aborted) throw abort.reason;
  // One controller per request, aborted by the time limit or by the caller's abort: a relay sends
  // thousands of these, and `AbortSignal.any` plus a second controller cost a quarter of the CPU
  // time of a request on Deno (bench/fleet.ts).
  const controller = new AbortController();
  const signal = controller.signal;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(`no complete answer within ${timeoutMs} ms`, "TimeoutError"));
  }, timeoutMs);
  const onAbort = () => controller.abort(abort!.reason);
  abort?.addEventListener("abort", onAbort, { once: true });
  const failure = (error: unknown, status: number | undefined): unknown => {
    if (abort?.aborted) return abort.reason;
    if (error instanceof FetchError) return error;
    if (timedOut) {
      const what = status === undefined ? "no answer" : "answer not complete";
      return new FetchError("timeout", `${what} within ${timeoutMs} ms`, status, { cause: error });
    }
    if (status !== undefined) return new FetchError("interrupted", `the answer broke off: ${fetchFailure(error)}`, status, { cause: error });
    return new FetchError(connectionRefused(error) ? "refused" : "unreachable", fetchFailure(error), undefined, { cause: error });
  };
  try {
    let response: Response;
    try {
      const init: RequestInit = { method: options.method ?? "GET", signal };
      if (options.headers) init.headers = options.headers;
      if (options.body !== undefined) init.body = options.body;
      // A replaced fetch is raced with the signal as well: it may not honour it. The runtime's does.
      response = options.fetch ? await untilAborted(options.fetch(String(url), init), signal) : await fetch(String(url), init);
    } catch (error) {
      throw failure(error, undefined);
    }
    try {
      const text = await readBody(response, maxBytes, signal);
      return { status: response.status, ok: response.ok, headers: response.headers, text };
    } catch (error) {
      throw failure(error, response.status);
    }
  } finally {
    clearTimeout(timer);
    abort?.removeEventListener("abort", onAbort);
  }
}

/**
 * The body as text, read piece by piece: once it passes `maxBytes` the rest
 * is cancelled, so an endless or huge answer costs at most that much memory;
 * `signal` cancels it too, even when the runtime would not.
 */
async function readBody(response: Response, maxBytes: number | undefined, signal: AbortSignal): Promise<string> {
  const tooLarge = () => new FetchError("too-large", `answer is larger than ${maxBytes} bytes`, response.status);
  const declared = response.headers.get("content-length");
  if (maxBytes !== undefined && declared !== null && Number(declared) > maxBytes) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!response.body) return "";
  const reader = response.body.getReader();
  // A cancelled reader ends a pending read as if the body were complete: checked after each read.
  const stop = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", stop, { once: true });
  const decoder = new TextDecoder();
  let text = "";
  let total = 0;
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) break;
      total += value.byteLength;
      if (maxBytes !== undefined && total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      text += decoder.decode(value, { stream: true });
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  } finally {
    signal.removeEventListener("abort", stop);
    try {
      reader.releaseLock();
    } catch {
      // Already released by the cancel.
    }
  }
  return text + decoder.decode();
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Why a fetch failed, in a few words: the runtimes wrap the socket error
 * (ECONNREFUSED, ENOTFOUND) in a TypeError whose own message says little.
 */
export function fetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (error as Error)?.message ?? String(error);
}

/**
 * The fetch failed because nothing listens there (the host answered the
 * connect with a reset): Bun sets `code: "ECONNREFUSED"`, Node's fetch puts
 * it on `cause.code`, Deno only says so in `cause.message` ("Connection
 * refused (os error 111)", or Windows' "actively refused").
 */
export function connectionRefused(error: unknown): boolean {
  const candidates = [error, (error as { cause?: unknown })?.cause];
  return candidates.some((candidate) => {
    const { code, message } = (candidate ?? {}) as { code?: unknown; message?: unknown };
    return code === "ECONNREFUSED" || (typeof message === "string" && /ECONNREFUSED|connection refused|actively refused/i.test(message));
  });
}
