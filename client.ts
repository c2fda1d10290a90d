/**
 * chaos-signal's client (`@chaos-signal/chaos-signal/client`): read, change and wait for the run
 * signal from a chaos runner or a script, with no server code pulled in.
 *
 * Re-exports only.
 *
 * @module
 */
export { RunStoppedError, SignalClient, SignalRequestError } from "./src/client/client.ts";
export type { FetchFunction, RequestOptions, SetOptions, SignalClientOptions, WatchOptions } from "./src/client/client.ts";
export { EventStreamParser } from "./src/client/sse_parser.ts";
export type { ServerSentEvent } from "./src/client/sse_parser.ts";
export { parseSignal, SIGNALS } from "./src/core/signal.ts";
export type { Signal } from "./src/core/signal.ts";
export { formatDuration, parseDuration } from "./src/config/duration.ts";
