/**
 * A small etcd v3 client over etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/watch`)
 * with `fetch`: it runs unchanged on Deno, Bun and the compiled binary, with no native code.
 * Every call is bounded in time and tries the endpoints in turn, starting with the last that answered.
 */
import { Buffer } from "node:buffer";
import { fetchText, type FetchFunction } from "../../util/fetch.ts";

/** One key as etcd returns it, decoded. */
export interface EtcdKeyValue {
  readonly key: string;
  readonly value: string;
  readonly modRevision: string;
}

export interface EtcdClientOptions {
  /** `http://10.0.0.11:2379`, … */
  readonly endpoints: readonly string[];
  /** Each request's bound (per endpoint tried). @default 2000 */
  readonly timeoutMs?: number;
  readonly username?: string;
  readonly password?: string;
  /** Bounds a response body (a value is one snapshot of a few KiB). @default 4 MiB */
  readonly maxBytes?: number;
  /** How to fetch: a runtime's TLS fetch for `https://` endpoints with their own CA or a client certificate. @default the global fetch */
  readonly fetch?: FetchFunction;
}

export class EtcdError extends Error {
  override readonly name = "EtcdError";
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const unb64 = (text: string | undefined) => Buffer.from(text ?? "", "base64").toString("utf8");

/** An endpoint without its credentials, for messages. */
export function redact(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = "";
    url.password = "";
    return url.origin;
  } catch {
    return "(not a URL)";
  }
}

interface RawKv {
  key?: string;
  value?: string;
  mod_revision?: string;
}

function decodeKv(kv: RawKv): EtcdKeyValue {
  return { key: unb64(kv.key), value: unb64(kv.value), modRevision: kv.mod_revision ?? "0" };
}

export type TxnResult =
  | { readonly succeeded: true; readonly revision: string }
  | { readonly succeeded: false; readonly current: EtcdKeyValue | null; readonly revision: string };

export class EtcdClient {
  readonly endpoints: readonly string[];
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #username: string | undefined;
  readonly #password: string | undefined;
  readonly #fetch: FetchFunction;
  #preferred = 0;
  #token: string | undefined;

  constructor(options: EtcdClientOptions) {
    if (options.endpoints.length === 0) throw new EtcdError("no etcd endpoints");
    this.endpoints = options.endpoints.map((e) => e.replace(/\/+$/, ""));
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    this.#username = options.username;
    this.#password = options.password;
    this.#fetch = options.fetch ?? ((url, init) => fetch(url, init));
  }

  /** The key (linearizable read unless `serializable`), null when absent; and the store's revision. */
  async get(key: string, options: { serializable?: boolean } = {}): Promise<{ kv: EtcdKeyValue | null; revision: string }> {
    const body = await this.call("/v3/kv/range", { key: b64(key), ...(options.serializable ? { serializable: true } : {}) });
    const kvs = (body.kvs ?? []) as RawKv[];
    return { kv: kvs[0] ? decodeKv(kvs[0]) : null, revision: headerRevision(body) };
  }

  /**
   * The newest `limit` keys under `prefix` (by mod_revision, newest first), and the store's
   * revision; `countOnly` answers only how many there are.
   */
  async rangePrefix(prefix: string, options: { limit?: number; oldestFirst?: boolean; keysOnly?: boolean } = {}): Promise<{ kvs: EtcdKeyValue[]; count: number; revision: string }> {
    const body = await this.call("/v3/kv/range", {
      key: b64(prefix),
      range_end: prefixEnd(prefix),
      sort_target: "MOD",
      sort_order: options.oldestFirst ? "ASCEND" : "DESCEND",
      ...(options.limit === undefined ? {} : { limit: options.limit }),
      ...(options.keysOnly ? { keys_only: true } : {}),
    });
    const kvs = ((body.kvs ?? []) as RawKv[]).map(decodeKv);
    return { kvs, count: Number(body.count ?? kvs.length), revision: headerRevision(body) };
  }

  /** Puts `value` at `key`; returns the revision it was written at. */
  async put(key: string, value: string): Promise<string> {
    return headerRevision(await this.call("/v3/kv/put", { key: b64(key), value: b64(value) }));
  }

  /**
   * Creates `key` with `value` unless it exists; returns the key's mod_revision either way. A
   * retry after a write that timed out but was applied finds it there and writes nothing again.
   */
  async createOnce(key: string, value: string): Promise<string> {
    const k = b64(key);
    const body = await this.call("/v3/kv/txn", {
      compare: [{ key: k, target: "CREATE", result: "EQUAL", create_revision: "0" }],
      success: [{ request_put: { key: k, value: b64(value) } }],
      failure: [{ request_range: { key: k } }],
    });
    if (body.succeeded === true) return headerRevision(body);
    const responses = (body.responses ?? []) as { response_range?: { kvs?: RawKv[] } }[];
    return responses[0]?.response_range?.kvs?.[0]?.mod_revision ?? headerRevision(body);
  }

  /** Deletes `keys` in one transaction. */
  async deleteKeys(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.call("/v3/kv/txn", { success: keys.map((key) => ({ request_delete_range: { key: b64(key) } })) });
  }

  /** Puts `value` if the key's mod_revision is still `expected` ("0": absent); otherwise returns what is there. */
  async putIfRevision(key: string, expected: string, value: string): Promise<TxnResult> {
    const k = b64(key);
    const body = await this.call("/v3/kv/txn", {
      compare: [{ key: k, target: "MOD", result: "EQUAL", mod_revision: expected }],
      success: [{ request_put: { key: k, value: b64(value) } }],
      failure: [{ request_range: { key: k } }],
    });
    const revision = headerRevision(body);
    if (body.succeeded === true) return { succeeded: true, revision };
    const responses = (body.responses ?? []) as { response_range?: { kvs?: RawKv[] } }[];
    const kv = responses[0]?.response_range?.kvs?.[0];
    return { succeeded: false, current: kv ? decodeKv(kv) : null, revision };
  }

  /**
   * Watches `key` from `startRevision`, calling `onEvent` for each put, until `abort` or the
   * stream ends (resolves) or fails (rejects). `onProgress` is told of every message received.
   */
  async watch(
    key: string,
    startRevision: string,
    onEvent: (kv: EtcdKeyValue) => void,
    abort: AbortSignal,
    onProgress: () => void = () => {},
    options: { readonly prefix?: boolean } = {},
  ): Promise<void> {
    const endpoint = this.endpoints[this.#preferred]!;
    const headers = await this.#headers(endpoint, abort);
    const connect = AbortSignal.any([abort, AbortSignal.timeout(this.#timeoutMs)]);
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    connect.addEventListener("abort", onAbort, { once: true });
    let response: Response;
    try {
      response = await this.#fetch(`${endpoint}/v3/watch`, {
        method: "POST",
        headers,
        body: JSON.stringify({ create_request: { key: b64(key), ...(options.prefix ? { range_end: prefixEnd(key) } : {}), start_revision: startRevision, progress_notify: true } }),
        signal: controller.signal,
      });
    } catch (error) {
      this.rotate();
      throw new EtcdError(`${redact(endpoint)}: ${describe(error)}`);
    }
    // Connected: from now on only the caller's abort ends the stream.
    connect.removeEventListener("abort", onAbort);
    abort.addEventListener("abort", onAbort, { once: true });
    if (!response.ok || !response.body) {
      this.rotate();
      await response.body?.cancel().catch(() => {});
      throw new EtcdError(`${redact(endpoint)}: watch answered ${response.status}`);
    }
    const decoder = new TextDecoder();
    let buffered = "";
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        if (buffered.length > this.#maxBytes) throw new EtcdError(`${redact(endpoint)}: a watch message over ${this.#maxBytes} bytes`);
        for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          const message = JSON.parse(line) as { result?: { canceled?: boolean; cancel_reason?: string; events?: { type?: string; kv?: RawKv }[] }; error?: { message?: string } };
          if (message.error) throw new EtcdError(`${redact(endpoint)}: ${message.error.message ?? "watch error"}`);
          const result = message.result ?? {};
          if (result.canceled) throw new EtcdError(`${redact(endpoint)}: watch canceled (${result.cancel_reason ?? "compacted?"})`);
          onProgress();
          for (const event of result.events ?? []) {
            if (event.type !== "DELETE" && event.kv) onEvent(decodeKv(event.kv));
          }
        }
      }
    } catch (error) {
      if (abort.aborted) return;
      this.rotate();
      throw error instanceof EtcdError ? error : new EtcdError(`${redact(endpoint)}: ${describe(error)}`);
    } finally {
      abort.removeEventListener("abort", onAbort);
    }
  }

  /** POSTs `request` to `path` on each endpoint in turn until one answers. */
  async call(path: string, request: unknown, abort?: AbortSignal): Promise<Record<string, unknown>> {
    const failures: string[] = [];
    for (let tried = 0; tried < this.endpoints.length; tried++) {
      const endpoint = this.endpoints[this.#preferred]!;
      try {
        return await this.#post(endpoint, path, request, await this.#headers(endpoint, abort), abort);
      } catch (error) {
        if (abort?.aborted) throw error;
        failures.push(`${redact(endpoint)}: ${describe(error)}`);
        this.rotate();
      }
    }
    throw new EtcdError(failures.join("; "));
  }

  /** Moves to the next endpoint (after a failure, or a stream that went quiet). */
  rotate(): void {
    this.#preferred = (this.#preferred + 1) % this.endpoints.length;
  }

  async #headers(endpoint: string, abort?: AbortSignal): Promise<Record<string, string>> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.#username === undefined) return headers;
    if (this.#token === undefined) {
      const body = await this.#post(endpoint, "/v3/auth/authenticate", { name: this.#username, password: this.#password ?? "" }, headers, abort);
      this.#token = String(body.token ?? "");
    }
    return { ...headers, authorization: this.#token };
  }

  async #post(endpoint: string, path: string, request: unknown, headers: Record<string, string>, abort?: AbortSignal): Promise<Record<string, unknown>> {
    // Bounded in time (connect to last byte) and size: the project's one way to fetch.
    const response = await fetchText(`${endpoint}${path}`, {
      method: "POST",
      headers,
      body: JSON.stringify(request),
      timeoutMs: this.#timeoutMs,
      maxBytes: this.#maxBytes,
      fetch: this.#fetch,
      ...(abort ? { abort } : {}),
    });
    const text = response.text;
    if (!response.ok) {
      // An expired token: authenticate again next time.
      if (response.status === 401) this.#token = undefined;
      throw new EtcdError(`${path} answered ${response.status}: ${text.slice(0, 200)}`);
    }
    return JSON.parse(text) as Record<string, unknown>;
  }
}

/** The end of the key range of every key that starts with `prefix` (its last byte plus one), base64. */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, "utf8");
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = end[i]! + 1;
      return end.toString("base64");
    }
  }
  return Buffer.from([0]).toString("base64");
}

function headerRevision(body: Record<string, unknown>): string {
  return String((body.header as { revision?: string } | undefined)?.revision ?? "0");
}

function describe(error: unknown): string {
  const e = error as { name?: string; message?: string };
  if (e?.name === "TimeoutError") return "timed out";
  return e?.message ?? String(error);
}
