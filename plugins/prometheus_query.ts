/**
 * One instant query against Prometheus' HTTP API (`POST /api/v1/query`),
 * turned into plain numbers or a `QueryError` that says what went wrong in
 * words an operator can act on.
 */
import * as v from "valibot";
import {
  type FetchedText,
  FetchError,
  fetchFailure,
  fetchText,
  JsonTextError,
  parseJsonText,
} from "../plugin.ts";

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

/** Prometheus' number as a number, or an issue in the words `parseSampleValue` uses. */
const SampleValueSchema = v.pipe(
  v.unknown(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    try {
      return parseSampleValue(dataset.value);
    } catch (error) {
      addIssue({ message: (error as Error).message });
      return NEVER;
    }
  }),
);

/** A sample: `[time, "value"]`, exactly two items. */
const notAPair = (issue: v.BaseIssue<unknown>) => `sample ${JSON.stringify(issue.input)} is not [time, "value"]`;
const SampleSchema = v.pipe(
  v.array(v.unknown(), notAPair),
  v.length(2, notAPair),
  v.transform((pair) => pair[1]),
  SampleValueSchema,
);

const NOT_INSTANT = "use an instant vector or scalar expression";

/** `data` of a successful answer, by `resultType`; a matrix is read only to be refused with advice. */
const ResultSchema = v.variant("resultType", [
  v.object({
    resultType: v.literal("vector"),
    result: v.array(
      v.pipe(
        v.looseObject({ value: SampleSchema }, (issue) => `series ${JSON.stringify(issue.input)} is not {metric, value}`),
        v.transform((series) => series.value),
      ),
      "vector result is not a list",
    ),
  }),
  v.object({ resultType: v.literal("scalar"), result: v.pipe(SampleSchema, v.transform((value) => [value])) }),
  v.object({ resultType: v.literal("matrix") }),
], (issue) => `query returns a ${JSON.stringify(issue.input)} result; ${NOT_INSTANT}`);

/** Prometheus' answer to `/api/v1/query` (https://prometheus.io/docs/prometheus/latest/querying/api/). */
const QueryResponseSchema = v.pipe(
  v.looseObject({}, "answer is not a JSON object"),
  v.variant("status", [
    v.looseObject({
      status: v.literal("success"),
      // A missing `data` is an unknown result type, as an unknown `resultType` is.
      data: v.pipe(v.optional(v.unknown(), {}), ResultSchema),
      // Advisory: a malformed list is no reason to drop the values.
      warnings: v.fallback(v.array(v.pipe(v.unknown(), v.transform(String))), []),
    }),
    v.looseObject({ status: v.literal("error"), errorType: v.unknown(), error: v.unknown() }),
  ], (issue) => `answer has status ${JSON.stringify(issue.input)}, not "success"`),
);

/** Reads a query response body (already JSON-parsed) into values. */
export function readQueryResponse(body: unknown): QueryResult {
  const parsed = v.safeParse(QueryResponseSchema, body, { abortEarly: true });
  if (!parsed.success) throw new QueryError(parsed.issues[0].message);
  const response = parsed.output;
  if (response.status === "error") throw new QueryError(`query failed (${response.errorType}): ${response.error}`);
  if (response.data.resultType === "matrix") {
    throw new QueryError(`query returns a range vector; ${NOT_INSTANT} (no [5m] at the end)`);
  }
  return { values: response.data.result, warnings: response.warnings };
}

/** Runs the query; every failure is a `QueryError` (connection, timeout, HTTP status, bad JSON, error status). */
export async function runQuery(options: QueryOptions): Promise<QueryResult> {
  const endpoint = new URL("api/v1/query", options.url.endsWith("/") ? options.url : `${options.url}/`);
  let response: FetchedText;
  try {
    response = await fetchText(endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", ...options.headers },
      // Whole milliseconds: Prometheus rejects fractional durations with a unit ("0.4s").
      body: new URLSearchParams({ query: options.query, timeout: `${Math.ceil(options.timeoutMs)}ms` }),
      timeoutMs: options.timeoutMs,
      abort: options.signal,
      maxBytes: options.maxResponseBytes,
    });
  } catch (error) {
    if (options.signal.aborted) throw error;
    throw new QueryError(fetchProblem(error, endpoint.origin, options));
  }
  const { text } = response;
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

/** A failed request in an operator's words, naming the option to change where there is one. */
function fetchProblem(error: unknown, origin: string, options: QueryOptions): string {
  const message = (error as Error)?.message ?? String(error);
  if (!(error instanceof FetchError)) return `cannot reach ${origin}: ${message}`;
  switch (error.reason) {
    case "timeout":
      return error.status === undefined ? `no answer from ${origin} within ${options.timeoutMs} ms` : `answer not complete within ${options.timeoutMs} ms`;
    case "too-large":
      return `answer is larger than max_response_bytes (${options.maxResponseBytes} bytes); narrow the query or raise the limit`;
    case "interrupted":
      return `reading the answer failed: ${fetchFailure(error.cause)}`;
    default:
      return `cannot reach ${origin}: ${message}`;
  }
}
