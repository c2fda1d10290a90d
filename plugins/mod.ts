/**
 * The built-in plugins by type name, as config files name them
 * (`chaos_signal.sources[].type`).
 */
import type { SourceSetting } from "../src/config/settings.ts";
import type { Plugin, PluginFactory } from "../src/plugin/api.ts";
import { showValue, ValidationError } from "../src/config/validation.ts";
import { alertmanagerSource } from "./alertmanager.ts";
import { fileSource } from "./file.ts";
import { prometheusSource } from "./prometheus.ts";
import { relay } from "./relay.ts";
import { webhookSource } from "./webhook.ts";

export { alertmanagerSource, fileSource, prometheusSource, relay, webhookSource };
export type { RelayOptions } from "./relay.ts";
export type { RelayTargetStatus } from "./relay_target.ts";
export type { AlertmanagerSourceOptions } from "./alertmanager.ts";
export type { FileSourceOptions } from "./file.ts";
export type { PrometheusSourceOptions } from "./prometheus.ts";
export type { WebhookSourceOptions } from "./webhook.ts";

// deno-lint-ignore no-explicit-any
export const BUILTIN_SOURCES: Readonly<Record<string, PluginFactory<any>>> = {
  file: fileSource,
  webhook: webhookSource,
  alertmanager: alertmanagerSource,
  prometheus: prometheusSource,
};

/**
 * Builds the plugins of a config file: its sources (by `type`) and its
 * relays. Each plugin validates its own options; errors name the file, the
 * entry and the key. Names must be unique across all of them.
 */
export function pluginsFromConfig(
  settings: { readonly sources?: readonly SourceSetting[]; readonly relays?: readonly SourceSetting[] },
  registry: Readonly<Record<string, PluginFactory<unknown>>> = BUILTIN_SOURCES,
): Plugin[] {
  const taken = new Map<string, string>();
  const build = (factories: Readonly<Record<string, PluginFactory<unknown>>>) => ({ where, entry }: SourceSetting) => {
    const { type, ...options } = entry;
    const factory = factories[type];
    if (!factory) {
      throw new ValidationError(`${where}.type: got ${showValue(type)}; allowed: one of ${Object.keys(factories).join(", ")}`);
    }
    const plugin = factory(options, where);
    const first = taken.get(plugin.name);
    if (first) throw new ValidationError(`${where}.name: got "${plugin.name}"; allowed: a name no other plugin has (${first} has it)`);
    taken.set(plugin.name, where);
    return plugin;
  };
  return [
    ...(settings.sources ?? []).map(build(registry)),
    ...(settings.relays ?? []).map(build({ relay: relay as PluginFactory<unknown> })),
  ];
}

/** The sources of a config file (see `pluginsFromConfig`). */
export function sourcesFromConfig(
  settings: readonly SourceSetting[],
  registry: Readonly<Record<string, PluginFactory<unknown>>> = BUILTIN_SOURCES,
): Plugin[] {
  return pluginsFromConfig({ sources: settings }, registry);
}
