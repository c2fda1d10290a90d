/**
 * HTTP/1.1 over raw sockets for the load and fault tests: a keep-alive
 * client that sends one request at a time on one connection and parses the
 * answer itself (so an error is the server's, never a client library's), a
 * background load of such clients that records every answer, and a small
 * seeded pseudo-random generator.
 */
import { connect, type Socket } from "node:net";

export const SIGNAL_WORDS: readonly string[] = ["RUN", "PAUSE", "STOP"];

export interface HttpAnswer {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

interface Pending {
  readonly head: boolean;
  readonly resolve: (answer: HttpAnswer) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** One keep-alive connection; reconnects (and counts it) when the server closed the last one. */
export class KeepAliveClient {
  readonly #host: string;
  readonly #port: number;
  #socket: Socket | undefined;
  #buffer: Buffer = Buffer.alloc(0);
  #pending: Pending | undefined;
  /** How many connections this client opened. */
  connects = 0;

  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  /** Sends one request and resolves with the complete answer; rejects on a closed connection or after `timeoutMs`. */
  request(
    method: string,
    path: string,
    options: { body?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<HttpAnswer> {
    if (this.#pending) return Promise.reject(new Error("KeepAliveClient: one request at a time"));
    const body = options.body ?? "";
    const headers: Record<string, string> = { host: `${this.#host}:${this.#port}`, ...options.headers };
    if (method !== "GET" && method !== "HEAD") headers["content-length"] = String(Buffer.byteLength(body));
    const text = `${method} ${path} HTTP/1.1\r\n${
      Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")
    }\r\n${body}`;
    const socket = this.#connection();
    return new Promise<HttpAnswer>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        this.#fail(
          new Error(
            `${method} ${path}: no complete answer within ${timeoutMs} ms (got ${
              JSON.stringify(this.#buffer.toString("latin1").slice(0, 120))
            })`,
          ),
        );
      }, timeoutMs);
      this.#pending = { head: method === "HEAD", resolve, reject, timer };
      socket.write(text);
    }).catch((error: Error) => {
      throw new Error(`${method} ${path}: ${error.message}`);
    });
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #connection(): Socket {
    if (this.#socket && !this.#socket.destroyed) return this.#socket;
    this.connects += 1;
    this.#buffer = Buffer.alloc(0);
    const socket = connect({ host: this.#host, port: this.#port });
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : chunk;
      this.#parse();
    });
    socket.on("error", (error) => this.#fail(new Error(`connection error: ${error.message}`)));
    socket.on("close", () => {
      if (this.#socket === socket) this.#socket = undefined;
      this.#fail(
        new Error(
          `the server closed the connection before a complete answer (got ${
            JSON.stringify(this.#buffer.toString("latin1").slice(0, 120))
          })`,
        ),
      );
    });
    this.#socket = socket;
    return socket;
  }

  #fail(error: Error): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = undefined;
    clearTimeout(pending.timer);
    this.#socket?.destroy();
    this.#socket = undefined;
    pending.reject(error);
  }

  #parse(): void {
    for (;;) {
      const pending = this.#pending;
      if (!pending) return;
      const parsed = parseResponse(this.#buffer, pending.head);
      if (parsed === "incomplete") return;
      if (parsed instanceof Error) return this.#fail(parsed);
      this.#buffer = this.#buffer.subarray(parsed.used);
      if (parsed.answer.status < 200) continue; // 100 Continue and friends: the real answer follows
      this.#pending = undefined;
      clearTimeout(pending.timer);
      if (/\bclose\b/i.test(parsed.answer.headers.connection ?? "")) this.close();
      pending.resolve(parsed.answer);
      return;
    }
  }
}

/** One response from the front of `buffer`: the answer and the bytes it took, "incomplete", or an Error. */
export function parseResponse(
  buffer: Buffer,
  head: boolean,
): { answer: HttpAnswer; used: number } | "incomplete" | Error {
  const end = buffer.indexOf("\r\n\r\n");
  if (end === -1) return buffer.length > 65_536 ? new Error("response headers over 64 KiB") : "incomplete";
  const lines = buffer.subarray(0, end).toString("latin1").split("\r\n");
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
  if (!statusLine) return new Error(`not an HTTP status line: ${JSON.stringify(lines[0])}`);
  const status = Number(statusLine[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return new Error(`not a header line: ${JSON.stringify(line)}`);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const start = end + 4;
  if (head || status < 200 || status === 204 || status === 304) {
    return { answer: { status, headers, body: "" }, used: start };
  }
  if (/\bchunked\b/i.test(headers["transfer-encoding"] ?? "")) {
    const parts: Buffer[] = [];
    let at = start;
    for (;;) {
      const lineEnd = buffer.indexOf("\r\n", at);
      if (lineEnd === -1) return "incomplete";
      const size = parseInt(buffer.subarray(at, lineEnd).toString("latin1"), 16);
      if (!Number.isFinite(size)) return new Error("bad chunk size in the response");
      if (size === 0) {
        // The last chunk, then optional trailer lines, then an empty line.
        const trailersEnd = buffer.indexOf("\r\n\r\n", lineEnd);
        if (trailersEnd === -1) return "incomplete";
        return { answer: { status, headers, body: Buffer.concat(parts).toString("utf8") }, used: trailersEnd + 4 };
      }
      if (buffer.length < lineEnd + 2 + size + 2) return "incomplete";
      parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  const length = headers["content-length"];
  if (length === undefined) {
    return new Error(`an answer with neither content-length nor chunked encoding (status ${status})`);
  }
  const size = Number(length);
  if (buffer.length < start + size) return "incomplete";
  return {
    answer: { status, headers, body: buffer.subarray(start, start + size).toString("utf8") },
    used: start + size,
  };
}

// ---------------------------------------------------------------------------
// Background load

/** One answered (or failed) request of a background load. */
export interface Sample {
  readonly request: string;
  /** performance.now() when it was sent and when its answer (or failure) came. */
  readonly sentAt: number;
  readonly doneAt: number;
  readonly answer?: HttpAnswer;
  readonly error?: string;
}

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  readonly clients: number;
  /** Picks the next request of a client: [method, path]. */
  readonly next: (client: number, sequence: number) => readonly [string, string];
  /**
   * Checks one answer; returns a problem (counted as an error) or nothing.
   * `previous` is this client's previous answer to the same path, for
   * checks of what one client sees in order.
   */
  readonly check: (
    request: readonly [string, string],
    answer: HttpAnswer,
    previous: HttpAnswer | undefined,
  ) => string | undefined;
  /** Keep every sample (for checks by time window). @default false */
  readonly keepSamples?: boolean;
  /** Per request. @default 10000 */
  readonly timeoutMs?: number;
}

export interface RunningLoad {
  /** Requests answered so far, by "METHOD path". */
  counts(): Record<string, number>;
  total(): number;
  /** Errors so far (failed requests and failed checks), the first 20 of them in full. */
  errors(): { count: number; first: string[] };
  samples(): readonly Sample[];
  /** Stops sending, waits for the requests in flight, closes the connections. */
  stop(): Promise<void>;
}

/**
 * `clients` keep-alive connections, each sending the next request as soon as
 * the previous one is answered, until `stop()`.
 */
export function startLoad(options: LoadOptions): RunningLoad {
  let running = true;
  const counts: Record<string, number> = {};
  let total = 0;
  let errorCount = 0;
  const firstErrors: string[] = [];
  const samples: Sample[] = [];
  const error = (message: string) => {
    errorCount += 1;
    if (firstErrors.length < 20) firstErrors.push(message);
  };
  const loops = Array.from({ length: options.clients }, async (_, client) => {
    const http = new KeepAliveClient(options.host, options.port);
    const previous = new Map<string, HttpAnswer>();
    try {
      for (let sequence = 0; running; sequence++) {
        const request = options.next(client, sequence);
        const [method, path] = request;
        const key = `${method} ${path}`;
        const sentAt = performance.now();
        try {
          const answer = await http.request(method, path, { timeoutMs: options.timeoutMs ?? 10_000 });
          total += 1;
          counts[key] = (counts[key] ?? 0) + 1;
          const problem = options.check(request, answer, previous.get(key));
          previous.set(key, answer);
          if (problem) error(`client ${client}, request ${sequence}, ${key}: ${problem}`);
          if (options.keepSamples) samples.push({ request: key, sentAt, doneAt: performance.now(), answer });
        } catch (failure) {
          const message = (failure as Error).message;
          error(`client ${client}, request ${sequence}: ${message}`);
          if (options.keepSamples) samples.push({ request: key, sentAt, doneAt: performance.now(), error: message });
          // Do not spin on a server that is gone: the error is counted, the test will fail.
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    } finally {
      http.close();
    }
  });
  return {
    counts: () => ({ ...counts }),
    total: () => total,
    errors: () => ({ count: errorCount, first: [...firstErrors] }),
    samples: () => samples,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** The body check every GET / answer must pass: 200 and exactly one of the three words. */
export function signalAnswerProblem(answer: HttpAnswer): string | undefined {
  if (answer.status !== 200) return `status ${answer.status}: ${JSON.stringify(answer.body.slice(0, 200))}`;
  if (!SIGNAL_WORDS.includes(answer.body)) {
    return `body ${JSON.stringify(answer.body.slice(0, 200))}, not exactly RUN, PAUSE or STOP`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Seeded randomness

/** mulberry32: a small, fast, seeded generator of numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * The lines of a server's log that report a failure of its own, the first 20: a request that
 * failed inside the handler (a 500), a state or history write, an event listener, a source
 * that crashed. A source's or a relay's warning about its upstream is not one.
 */
export function failures(output: string): string[] {
  const failure =
    / (\S+ (https?:\/\/|\/)\S*|saving \S+|listener|writing the history) failed: | source failed, restarting /;
  return output.split("\n").filter((line) => failure.test(line)).slice(0, 20);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
