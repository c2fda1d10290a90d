/**
 * chaos-signal: the run signal of a chaos run (RUN, PAUSE, STOP), served the
 * way Krkn's runner reads it.
 *
 * As a library this module only re-exports. Run directly
 * (`deno run -A mod.ts`, `bun run mod.ts`) it is the command-line program.
 *
 * @module
 */
export { parseSignal, severity, mostSevere, SIGNALS } from "./src/core/signal.ts";
export type { Signal } from "./src/core/signal.ts";
export { MANUAL_SOURCE, STOP_LATCH } from "./src/core/snapshot.ts";
export type { Claim, Override, StopLatch } from "./src/core/snapshot.ts";
export type { ChangeEvent, ClaimEvent } from "./src/core/events.ts";
export type { ClaimOptions } from "./src/core/change.ts";
export { createServer, StateWriteError } from "./src/server.ts";
export type { ChaosSignalServer, ServerOptions } from "./src/server.ts";
export { PauseExpiry } from "./src/state/expiry.ts";
export { DEFAULT_SIGNAL, initialSnapshot } from "./src/core/snapshot.ts";
export type { Snapshot, SignalName, View } from "./src/core/snapshot.ts";
export { towardSafety } from "./src/core/change.ts";
export type { Change } from "./src/core/change.ts";
export { nextExpiry, transition } from "./src/core/transition.ts";
export type { Transition } from "./src/core/transition.ts";
export { eventsBetween } from "./src/core/events.ts";
export type { EventDraft, SignalEvent, SignalFeed, SignalListener } from "./src/core/events.ts";
export { DEFAULT_SAVE_TIMEOUT_MS, NotSavedError, SignalStore } from "./src/state/signal_store.ts";
export type { SignalStoreOptions, StateHealth } from "./src/state/signal_store.ts";
export type { BackendHealth, CommitResult, Revision, StateBackend } from "./src/state/backend.ts";
export { MemoryBackend } from "./src/state/memory_backend.ts";
export { FileBackend } from "./src/state/file_backend.ts";
export { createHandler, MAX_URL_BYTES } from "./src/http/app.ts";
export type { FetchHandler, HandlerOptions, RequestInfo, SignalHandler } from "./src/http/app.ts";
export type { SignalVersion, SubscriberCounts } from "./src/push/hub.ts";
export { DEFAULT_HEARTBEAT_MS, RETRY_MS } from "./src/push/event_stream.ts";
export { MAX_WAIT_MS } from "./src/push/long_poll.ts";
export { RunStoppedError, SignalClient, SignalRequestError } from "./src/client/client.ts";
export type { FetchFunction, RequestOptions, SetOptions, SignalClientOptions, WatchOptions } from "./src/client/client.ts";
export { EventStreamParser } from "./src/client/sse_parser.ts";
export type { ServerSentEvent } from "./src/client/sse_parser.ts";
export { statusDocument } from "./src/http/status.ts";
export type { ClaimStatus, SourceStatus, StatusDocument } from "./src/http/status.ts";
export { DEFAULT_SETTINGS, ENV_CONFIG_FILE, ENV_VARS, mergeSettings, settingsFromConfig, settingsFromEnv } from "./src/config/settings.ts";
export type { Settings, SettingsLayer, SourceSetting } from "./src/config/settings.ts";
export { loadConfigFile } from "./src/config/config_file.ts";
export { DEFAULT_MAX_BODY_BYTES } from "./src/web/request_body.ts";
export { AddressInUseError, runtime, serve } from "./src/serve/mod.ts";
export type { RunningServer, Runtime, ServeHandler, ServeOptions } from "./src/serve/mod.ts";
export { looseSection, strictSection, ValidationError } from "./src/config/validation.ts";
export { Auth, AuthSchema } from "./src/http/auth.ts";
export type { NamedToken } from "./src/http/auth.ts";
export { definePlugin } from "./src/plugin/api.ts";
export { MaxBodyBytesSchema, NameSchema, PluginNameSchema } from "./src/config/schemas.ts";
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
  SourceContext,
} from "./src/plugin/api.ts";
export { PluginHost } from "./src/plugin/host.ts";
export type { PluginHostOptions, PluginStatus, SourceHealth } from "./src/plugin/host.ts";
export { durationSchema, formatDuration, parseDuration } from "./src/config/duration.ts";
export { HttpError, jsonResponse, textResponse } from "./src/web/response.ts";
export { readJsonBody } from "./src/web/json_body.ts";
export { delay } from "./src/util/timers.ts";
export { alertmanagerSource, BUILTIN_RELAYS, BUILTIN_SOURCES, fileSource, prometheusSource, relay, webhookSource } from "./plugins/mod.ts";
export { BUILTIN_REGISTRY, pluginsFromConfig, sourcesFromConfig } from "./src/plugin/registry.ts";
export type { PluginRegistry } from "./src/plugin/registry.ts";
export { loadPluginModules, PluginModuleError } from "./src/plugin/modules.ts";
export type {
  AlertmanagerSourceOptions,
  AlertRuleOptions,
  DnsTargetsOptions,
  Matcher,
  FileSourceOptions,
  ParsedAlertmanagerSourceOptions,
  ParsedAlertRule,
  ParsedFileSourceOptions,
  ParsedPrometheusSourceOptions,
  ParsedRelayOptions,
  ParsedWebhookSourceOptions,
  PrometheusBasicAuth,
  PrometheusSourceOptions,
  RelayOptions,
  RelayTargetStatus,
  WebhookSourceOptions,
} from "./plugins/mod.ts";
export { AlertmanagerSourceSchema, FileSourceSchema, PrometheusSourceSchema, RelaySchema, WebhookSourceSchema } from "./plugins/mod.ts";
export { VERSION } from "./src/version.ts";

// Types that the exports above refer to, so that their documentation can link them.
export type { AuthInput, ParsedAuth } from "./src/http/auth.ts";
export type { RunOn } from "./src/plugin/api.ts";
export type { PluginFactories } from "./src/plugin/registry.ts";
export type { History, HistoryEntry, HistoryPage } from "./src/state/history.ts";
export type { RevisionFeed } from "./src/core/events.ts";
export type { StatusInfo, StoreStatus } from "./src/http/status.ts";
export type { DescribedKind } from "./src/http/metrics.ts";
export type { Logger } from "./src/util/log.ts";
export type { PluginModuleSetting } from "./src/config/settings.ts";
export type { TlsFetch, TlsFiles } from "./src/serve/mod.ts";
export type { TokenSource } from "./src/web/bearer.ts";
export type { DurationSchema } from "./src/config/duration.ts";
export type { IntegerSchema } from "./src/config/schemas.ts";
export type { LooseSectionSchema, MappingSchema, SectionSchema, StrictSectionSchema } from "./src/config/validation.ts";

if (import.meta.main) {
  const { runCli } = await import("./src/main.ts");
  await runCli();
}
