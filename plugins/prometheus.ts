/**
 * Prometheus load poller: runs a PromQL query every `interval` and pauses
 * the chaos while the result is above a threshold ("pause the chaos while
 * node load is above 4"). The decisions live in thresholds.ts; this file
 * does the polling, the options and the reporting.
 */
import { readFileSync } from "node:fs";
import * as v from "valibot";
import {
  type Assert,
  type DefinedPlugin,
  definePlugin,
  delay,
  durationSchema,
  formatDuration,
  httpUrl,
  type MetricSample,
  type PluginDescription,
  PluginNameSchema,
  type SameType,
  type SectionSchema,
  strictSection,
  ValidationError,
} from "../plugin.ts";
import { DEFAULT_MAX_RESPONSE_BYTES, QueryError, runQuery } from "./prometheus_query.ts";
import { type Observation, ThresholdGate } from "./thresholds.ts";

export const PROMETHEUS_KIND = "prometheus";

const URL_RULE = "an http(s) URL without user:password@ (credentials would show in logs; use basic_auth)";
const RESPONSE_BYTES_RULE = "an integer number of bytes from 1024 to 268435456";
const finite = (what: string) => v.pipe(v.number(what), v.finite(what));
const count = (what: string) => v.pipe(v.number(what), v.integer(what), v.minValue(1, what), v.maxValue(1000, what));

const BasicAuthSchema = strictSection({
  username: v.string("a user name"),
  password: v.optional(v.string("a password")),
  password_file: v.optional(v.string("a file path")),
}, "a mapping with username: and password: or password_file:");

/**
 * A Prometheus source's options, as given (in the config: `chaos_signal.sources[]` with
 * `type: prometheus`): a mapping, checked key by key (see `PrometheusSourceSchema`).
 */
export type PrometheusSourceOptions = Record<string, unknown>;

/** A Prometheus source's options once parsed: defaults filled in, durations in milliseconds. */
export interface ParsedPrometheusSourceOptions {
  name: string;
  url: string;
  query: string;
  pause_above: number;
  stop_above?: number | undefined;
  resume_below?: number | undefined;
  interval: number;
  timeout?: number | undefined;
  max_response_bytes: number;
  initial_delay: number;
  consecutive_breaches: number;
  consecutive_recoveries: number;
  consecutive_errors: number;
  on_error: "pause" | "hold" | "ignore";
  on_empty: "pause" | "hold" | "run";
  combine: "max" | "min" | "avg" | "sum";
  on_nan: "ignore" | "error";
  bearer_token?: string | undefined;
  bearer_token_file?: string | undefined;
  basic_auth?: PrometheusBasicAuth | undefined;
  headers: Record<string, string>;
}

/** `basic_auth`: the password inline or read from a file. */
export interface PrometheusBasicAuth {
  username: string;
  password?: string | undefined;
  password_file?: string | undefined;
}

/** The schema as valibot infers it: `PrometheusSourceSchema` is typed by hand (JSR), and checked against it below. */
const prometheusSourceSchema = v.pipe(
  strictSection({
    /** The source's name, unique among sources. */
    name: PluginNameSchema,
    /** Prometheus' base URL, such as http://prometheus:9090 (the API path is added). */
    url: httpUrl(URL_RULE),
    /** A PromQL instant query: its value is compared with the thresholds. */
    query: v.pipe(v.string("a PromQL expression"), v.trim(), v.nonEmpty("a PromQL expression")),
    /** Above this, claim PAUSE. */
    pause_above: finite("a number"),
    /** Above this, claim STOP (optional; must be above pause_above). */
    stop_above: v.optional(finite("a number")),
    /** Below this, release (hysteresis). @default pause_above */
    resume_below: v.optional(finite("a number")),
    /** @default "15s" */
    interval: v.optional(durationSchema(10, 86_400_000), "15s"),
    /** Per query; must not exceed interval. @default "10s", or interval if shorter */
    timeout: v.optional(durationSchema(10, 3_600_000)),
    /** A larger answer is a failed query (on_error applies); reading stops there. @default 4194304 (4 MiB) */
    max_response_bytes: v.optional(
      v.pipe(v.number(RESPONSE_BYTES_RULE), v.integer(RESPONSE_BYTES_RULE), v.minValue(1024, RESPONSE_BYTES_RULE), v.maxValue(256 * 1024 * 1024, RESPONSE_BYTES_RULE)),
      DEFAULT_MAX_RESPONSE_BYTES,
    ),
    /** Wait before the first query. @default "0s" */
    initial_delay: v.optional(durationSchema(0, 86_400_000), "0s"),
    /** Observations above a threshold in a row before claiming. @default 1 */
    consecutive_breaches: v.optional(count("an integer from 1 to 1000"), 1),
    /** Observations below resume_below in a row before releasing. @default 1 */
    consecutive_recoveries: v.optional(count("an integer from 1 to 1000"), 1),
    /** Failed queries in a row before on_error applies. @default 3 */
    consecutive_errors: v.optional(count("an integer from 1 to 1000"), 3),
    /** After consecutive_errors: `pause` (no chaos while load is unknown), `hold` the claim, or `ignore` (release). @default "pause" */
    on_error: v.optional(v.picklist(["pause", "hold", "ignore"], "pause, hold or ignore"), "pause"),
    /** An empty result: `pause`, `hold` the claim, or `run` (for queries like `node_load1 > 4` that are empty when all is well). @default "pause" */
    on_empty: v.optional(v.picklist(["pause", "hold", "run"], "pause, hold or run"), "pause"),
    /** How the values of several series combine. @default "max" */
    combine: v.optional(v.picklist(["max", "min", "avg", "sum"], "max, min, avg or sum"), "max"),
    /** A NaN sample: `ignore` it (all NaN = empty), or treat it as an `error`. ±Inf compare as numbers. @default "ignore" */
    on_nan: v.optional(v.picklist(["ignore", "error"], "ignore or error"), "ignore"),
    /** `Authorization: Bearer` for Prometheus behind a proxy. */
    bearer_token: v.optional(v.pipe(v.string("a token"), v.nonEmpty("a token"))),
    /** The same, read from a file at start (a Kubernetes service account token). */
    bearer_token_file: v.optional(v.pipe(v.string("a file path"), v.nonEmpty("a file path"))),
    basic_auth: v.optional(BasicAuthSchema),
    /** Extra request headers, such as a tenant header. */
    headers: v.optional(v.record(v.string(), v.string("a string")), {}),
  }, "a mapping of the prometheus source's options"),
  v.forward(v.check((o) => o.stop_above === undefined || o.stop_above > o.pause_above, "a number above pause_above"), ["stop_above"]),
  v.forward(v.check((o) => o.resume_below === undefined || o.resume_below <= o.pause_above, "a number not above pause_above"), ["resume_below"]),
  v.forward(v.check((o) => o.timeout === undefined || o.timeout <= o.interval, "a duration not longer than interval"), ["timeout"]),
  v.forward(v.check((o) => !(o.bearer_token && o.bearer_token_file), "only one of bearer_token and bearer_token_file"), ["bearer_token_file"]),
  v.forward(v.check((o) => !((o.bearer_token || o.bearer_token_file) && o.basic_auth), "either a bearer token or basic_auth, not both"), ["basic_auth"]),
);

/** The options of a Prometheus source. */
export const PrometheusSourceSchema: SectionSchema<ParsedPrometheusSourceOptions> = prometheusSourceSchema;
type _Input = Assert<SameType<v.InferInput<typeof prometheusSourceSchema>, PrometheusSourceOptions>>;
type _Output = Assert<SameType<v.InferOutput<typeof prometheusSourceSchema>, ParsedPrometheusSourceOptions>>;

function readSecret(path: string, key: string, name: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (error) {
    throw new ValidationError(`prometheus "${name}": ${key}: cannot read ${path} (${(error as { code?: string }).code ?? error})`);
  }
}

function combine(values: number[], how: "max" | "min" | "avg" | "sum"): number {
  // Loops, not Math.max(...values): spreading 100k+ series overflows the call stack on Deno.
  switch (how) {
    case "max":
      return values.reduce((a, b) => (b > a ? b : a), Number.NEGATIVE_INFINITY);
    case "min":
      return values.reduce((a, b) => (b < a ? b : a), Number.POSITIVE_INFINITY);
    case "sum":
      return values.reduce((a, b) => a + b, 0);
    case "avg":
      return values.reduce((a, b) => a + b, 0) / values.length;
  }
}

/** The observation shows ±Inf as strings (JSON has no Infinity); read them back. */
function numeric(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (value === "+Inf") return Number.POSITIVE_INFINITY;
  if (value === "-Inf") return Number.NEGATIVE_INFINITY;
  return undefined;
}

/** In `/metrics`: the last value and the thresholds, from the observation. */
export const PROMETHEUS_DESCRIPTION: PluginDescription = {
  metrics: [
    { name: "prometheus_value", type: "gauge", help: "The Prometheus poller's last value." },
    { name: "prometheus_threshold", type: "gauge", help: "The Prometheus poller's thresholds." },
  ],
  samples({ name, last_observation: observation }) {
    if (!observation) return [];
    const samples: MetricSample[] = [];
    const last = numeric(observation.value);
    if (last !== undefined) samples.push({ family: "prometheus_value", labels: { source: name }, value: last });
    for (const key of ["pause_above", "stop_above", "resume_below"]) {
      const bound = numeric(observation[key]);
      if (bound !== undefined) samples.push({ family: "prometheus_threshold", labels: { source: name, threshold: key }, value: bound });
    }
    return samples;
  },
};

/** Makes a Prometheus load poller source. */
export const prometheusSource: DefinedPlugin<typeof PrometheusSourceSchema> = definePlugin(PROMETHEUS_KIND, PrometheusSourceSchema, (options) => {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.bearer_token ?? (options.bearer_token_file && readSecret(options.bearer_token_file, "bearer_token_file", options.name));
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.basic_auth) {
    const { username, password, password_file } = options.basic_auth;
    const secret = password ?? (password_file ? readSecret(password_file, "basic_auth.password_file", options.name) : "");
    headers.authorization = `Basic ${btoa(`${username}:${secret}`)}`;
  }
  const timeoutMs = options.timeout ?? Math.min(10_000, options.interval);
  const thresholds = {
    pause_above: options.pause_above,
    ...(options.stop_above === undefined ? {} : { stop_above: options.stop_above }),
    resume_below: options.resume_below ?? options.pause_above,
  };

  return {
    name: options.name,
    kind: PROMETHEUS_KIND,
    async run(context) {
      const gate = new ThresholdGate({
        pauseAbove: options.pause_above,
        stopAbove: options.stop_above,
        resumeBelow: options.resume_below ?? options.pause_above,
        consecutiveBreaches: options.consecutive_breaches,
        consecutiveRecoveries: options.consecutive_recoveries,
        consecutiveErrors: options.consecutive_errors,
        onError: options.on_error,
        onEmpty: options.on_empty,
      });
      const report = () => {
        const { state, reason } = gate.decision;
        if (state === "RUN") context.release(reason);
        else context.claim(state, reason);
      };
      report(); // fail closed until the first answer (with on_error: pause)

      /** One query, as an observation; failures are warnings, and the poller goes on. */
      const query = async (): Promise<{ observation: Observation; series: number }> => {
        try {
          const result = await runQuery({
            url: options.url,
            query: options.query,
            timeoutMs,
            headers,
            signal: context.abort,
            maxResponseBytes: options.max_response_bytes,
          });
          for (const warning of result.warnings) context.warn(`Prometheus warns: ${warning}`);
          const nan = result.values.filter(Number.isNaN).length;
          if (nan && options.on_nan === "error") throw new QueryError(`${nan} of ${result.values.length} series are NaN (on_nan: error)`);
          const values = result.values.filter((value) => !Number.isNaN(value));
          const combined = values.length ? combine(values, options.combine) : Number.NaN;
          // +Inf and -Inf summed or averaged give NaN: that is no value, never "inside the band".
          if (values.length && Number.isNaN(combined)) {
            throw new QueryError(`${options.combine} of the ${values.length} series is NaN (+Inf and -Inf together)`);
          }
          const observation: Observation = values.length ? { kind: "value", value: combined } : { kind: "empty" };
          return { observation, series: result.values.length };
        } catch (error) {
          if (context.abort.aborted) throw error;
          context.warn(error);
          return { observation: { kind: "error", message: (error as Error).message }, series: 0 };
        }
      };

      try {
        if (options.initial_delay > 0) await delay(options.initial_delay, context.abort);
        context.log(`polling ${options.url} every ${formatDuration(options.interval)}: ${options.query}`);
        while (!context.abort.aborted) {
          const started = Date.now();
          const { observation, series } = await query();
          const decision = gate.observe(observation);
          if (observation.kind !== "error") {
            // JSON has no Infinity: show ±Inf the way Prometheus writes them.
            const value = observation.kind !== "value"
              ? null
              : Number.isFinite(observation.value)
              ? observation.value
              : observation.value > 0
              ? "+Inf"
              : "-Inf";
            context.observe({ value, series, claim: decision.state, query: options.query, ...thresholds, ...gate.counters });
          }
          report();
          await delay(Math.max(0, options.interval - (Date.now() - started)), context.abort);
        }
      } catch (error) {
        if (!context.abort.aborted) throw error;
      }
    },
  };
}, PROMETHEUS_DESCRIPTION);
