/**
 * The built-in plugins by type name, as config files name them
 * (`chaos_signal.sources[].type`, `chaos_signal.relays[]`).
 */
import type { PluginFactory } from "../plugin.ts";
import { alertmanagerSource } from "./alertmanager.ts";
import { fileSource } from "./file.ts";
import { prometheusSource } from "./prometheus.ts";
import { relay } from "./relay.ts";
import { webhookSource } from "./webhook.ts";

export { alertmanagerSource, fileSource, prometheusSource, relay, webhookSource };
export { AlertmanagerSourceSchema } from "./alertmanager.ts";
export { FileSourceSchema } from "./file.ts";
export { PrometheusSourceSchema } from "./prometheus.ts";
export { RelaySchema } from "./relay.ts";
export { WebhookSourceSchema } from "./webhook.ts";
export type { ParsedRelayOptions, RelayOptions } from "./relay.ts";
export type { DnsTargetsOptions } from "./relay_dns.ts";
export type { Matcher } from "./alert_matchers.ts";
export type { RelayTargetStatus } from "./relay_target.ts";
export type { AlertmanagerSourceOptions, AlertRuleOptions, ParsedAlertmanagerSourceOptions, ParsedAlertRule } from "./alertmanager.ts";
export type { FileSourceOptions, ParsedFileSourceOptions } from "./file.ts";
export type { ParsedPrometheusSourceOptions, PrometheusBasicAuth, PrometheusSourceOptions } from "./prometheus.ts";
export type { ParsedWebhookSourceOptions, WebhookSourceOptions } from "./webhook.ts";

// deno-lint-ignore no-explicit-any
export const BUILTIN_SOURCES: Readonly<Record<string, PluginFactory<any>>> = {
  file: fileSource,
  webhook: webhookSource,
  alertmanager: alertmanagerSource,
  prometheus: prometheusSource,
};

/** What `chaos_signal.relays[]` entries are built with. */
// deno-lint-ignore no-explicit-any
export const BUILTIN_RELAYS: Readonly<Record<string, PluginFactory<any>>> = {
  relay,
};
