/**
 * chaos-signal's plugin API (`@chaos-signal/chaos-signal/plugin`): what a signal source, a
 * receiver or a relay is made of, and the schemas and helpers the built-in plugins share.
 * Plugins (built-in, example or third-party) import this entry point only.
 *
 * Re-exports only.
 *
 * @module
 */
export { definePlugin, isSource } from "./src/plugin/api.ts";
export type {
  CardTime,
  DashboardCard,
  DefinedPlugin,
  MetricFamilySpec,
  MetricSample,
  Plugin,
  PluginDescription,
  PluginFactory,
  RouteContext,
  RunOn,
  SourceContext,
} from "./src/plugin/api.ts";
export type { PluginStatus, SourceHealth } from "./src/plugin/host.ts";
export { messageOf } from "./src/plugin/host.ts";
export type { DnsQueryOptions, DnsRecordType, ResolveDns } from "./src/serve/types.ts";
export { claimMade, claimSaved, SAVE_WAIT_MS } from "./src/plugin/receiver.ts";

// The signal and the claims a source makes.
export { mostSevere, parseSignal, severity, SIGNALS } from "./src/core/signal.ts";
export type { Signal } from "./src/core/signal.ts";
export type { ChangeEvent } from "./src/core/events.ts";
export type { Claim } from "./src/core/snapshot.ts";
export type { ClaimOptions } from "./src/core/change.ts";

// Option schemas, with the server's wording of errors.
export { MaxBodyBytesSchema, NameSchema, PluginNameSchema } from "./src/config/schemas.ts";
export { durationSchema, formatDuration, parseDuration } from "./src/config/duration.ts";
export { httpUrl, issueLine, looseSection, parsedBy, showValue, strictSection, ValidationError } from "./src/config/validation.ts";
export { TokenSourceSchema } from "./src/web/bearer.ts";
export type { IntegerSchema } from "./src/config/schemas.ts";
export type { DurationSchema } from "./src/config/duration.ts";
export type { HttpUrlSchema, LooseSectionSchema, MappingSchema, SectionSchema, StrictSectionSchema } from "./src/config/validation.ts";
export type { TokenSource } from "./src/web/bearer.ts";
// For a schema typed by hand (as JSR wants): checks that the type is the one valibot infers.
export type { Assert, SameType } from "./src/util/same_type.ts";

// Routes (`/hooks/<name>`): bounded bodies, bearer tokens, one-line errors.
export { HttpError, jsonResponse, textResponse } from "./src/web/response.ts";
export { readJsonBody, requirePost } from "./src/web/json_body.ts";
export { DEFAULT_MAX_BODY_BYTES } from "./src/web/request_body.ts";
export { requireBearer } from "./src/web/bearer.ts";

// Waiting, fetching and reading, bounded and abortable.
export { aborted, delay } from "./src/util/timers.ts";
export { Wakeup } from "./src/util/wakeup.ts";
export { serialCheck } from "./src/util/serial.ts";
export type { SerialCheck } from "./src/util/serial.ts";
export { connectionRefused, FetchError, fetchFailure, fetchText } from "./src/util/fetch.ts";
export type { FetchedText, FetchFailure, FetchFunction, FetchTextOptions } from "./src/util/fetch.ts";
export { Backoff } from "./src/util/backoff.ts";
export type { BackoffOptions } from "./src/util/backoff.ts";
export { JsonTextError, MAX_JSON_DEPTH, parseJsonText } from "./src/util/json_text.ts";
export { FileRefusedError, readHead, readRegularFile } from "./src/util/bounded_file.ts";
