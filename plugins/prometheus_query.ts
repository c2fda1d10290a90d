/**
 * One instant query against Prometheus' HTTP API (`POST /api/v1/query`),
 * turned into plain numbers or a `QueryError` that says what went wrong in
 * words an operator can act on.
 */
import { fetchFailure, JsonTextError, parseJsonText } from "../plugin.ts";

/** The default `max_response_bytes`: a vector of ~30,000 series fits; 50 MB took Deno to 1.3 GB. */
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export interface QueryResult {
  /** One value per series (a scalar result gives one). May hold NaN and ±Infinity. */
  readonly values: number[];
  /** Prometheus' own warnings (partial data and the like). */
  readonly warnings: string[];
}

export class QueryError extends Error {
  override readonly name = "QueryError";
}

export interface QueryOptions {
  readonly url: string;
  readonly query: string;
  readonly timeoutMs: number;
  readonly headers: Record<string, string>;
  readonly signal: AbortSignal;
  /** A larger answer is a `QueryError`, found while reading: the rest is never read. */
  readonly maxResponseBytes: number;
}

/** Prometheus writes sample values as strings, with its own spelling of the special ones. */
export function parseSampleValue(text: unknown): number {
  if (text === "NaN") return Number.NaN;
  if (text === "+Inf" || text === "Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (typeof text !== "string" || text.trim() === "" || Number.isNaN(Number(text))) {
    throw new QueryError(`sample value ${JSON.stringify(text)} is not a number`);
  }
  return Number(text);
}

function sampleOf(pair: unknown): number {
  if (!Array.isArray(pair) || pair.length !== 2) throw new QueryError(`sample ${JSON.stringify(pair)} is not [time, "value"]`);
  return parseSampleValue(pair[1]);
}

/** Reads a query response body (already JSON-parsed) into values. */
export function readQueryResponse(body: unknown): QueryResult {
  const response = body as {
    status?: unknown;
    data?: { resultType?: unknown; result?: unknown };
    errorType?: unknown;
    error?: unknown;
    warnings?: unknown;
  };
  if (typeof response !== "object" || response === null) throw new QueryError("answer is not a JSON object");
  if (response.status === "error") throw new QueryError(`query failed (${response.errorType}): ${response.error}`);
  if (response.status !== "success") throw new QueryError(`answer has status ${JSON.stringify(response.status)}, not "success"`);
  const warnings = Array.isArray(response.warnings) ? response.warnings.map(String) : [];
  const { resultType, result } = response.data ?? {};
  switch (resultType) {
    case "vector":
      if (!Array.isArray(result)) throw new QueryError("vector result is not a list");
      return { values: result.map((series: { value?: unknown }) => sampleOf(series?.value)), warnings };
    case "scalar":
      return { values: [sampleOf(result)], warnings };
    case "matrix":
      throw new QueryError("query returns a range vector; use an instant vector or scalar expression (no [5m] at the end)");
    default:
      throw new QueryError(`query returns a ${JSON.stringify(resultType)} result; use an instant vector or scalar expression`);
  }
}

/** Runs the query; every failure is a `QueryError` (connection, timeout, HTTP status, bad JSON, error status). */
export async function runQuery(options: QueryOptions): Promise<QueryResult> {
  const endpoint = new URL("api/v1/query", options.url.endsWith("/") ? options.url : `${options.url}/`);
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([options.signal, timeout]);
  let response: Response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", ...options.headers },
      // Whole milliseconds: Prometheus rejects fractional durations with a unit ("0.4s").
      body: new URLSearchParams({ query: options.query, timeout: `${Math.ceil(options.timeoutMs)}ms` }),
      signal,
    });
  } catch (error) {
    if (options.signal.aborted) throw error;
    if (timeout.aborted) throw new QueryError(`no answer from ${endpoint.origin} within ${options.timeoutMs} ms`);
    throw new QueryError(`cannot reach ${endpoint.origin}: ${fetchFailure(error)}`);
  }
  let text: string;
  try {
    text = await readCapped(response, options.maxResponseBytes);
  } catch (error) {
    if (options.signal.aborted) throw error;
    if (error instanceof QueryError) throw error;
    throw new QueryError(timeout.aborted ? `answer not complete within ${options.timeoutMs} ms` : `reading the answer failed: ${fetchFailure(error)}`);
  }
  let body: unknown;
  try {
    body = parseJsonText(text);
  } catch (error) {
    if (error instanceof JsonTextError && error.tooDeep) throw new QueryError(`HTTP ${response.status}, and the answer is ${error.message}`);
    throw new QueryError(`HTTP ${response.status}, and the body is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (!response.ok) {
    const { errorType, error } = (body ?? {}) as { errorType?: unknown; error?: unknown };
    throw new QueryError(`HTTP ${response.status}${errorType ? ` (${errorType})` : ""}: ${error ?? text.slice(0, 80)}`);
  }
  return readQueryResponse(body);
}


/**
 * The body as text, read piece by piece: once it passes `maxBytes` the rest
 * is cancelled, so an endless or huge answer costs at most that much memory.
 */
async function readCapped(response: Response, maxBytes: number): Promise<string> {
  const tooLarge = () => new QueryError(`answer is larger than max_response_bytes (${maxBytes} bytes); narrow the query or raise the limit`);
  const declared = response.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!response.body) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
  return text + decoder.decode();
}
