/**
 * Plugin types by name, and the plugins a config file asks for: its sources
 * (by `type`) and its relays. The built-ins come from plugins/mod.ts; modules
 * named in `chaos_signal.plugins` add theirs (src/plugin/modules.ts).
 */
import type { SourceSetting } from "../config/settings.ts";
import type { Plugin, PluginFactory } from "./api.ts";
import { showValue, ValidationError } from "../config/validation.ts";
import { BUILTIN_RELAYS, BUILTIN_SOURCES } from "../../plugins/mod.ts";

/** Plugin factories by type name. */
export type PluginFactories = Readonly<Record<string, PluginFactory<unknown>>>;

/** The factories that `sources:` and `relays:` entries may name. */
export interface PluginRegistry {
  readonly sources: PluginFactories;
  readonly relays: PluginFactories;
}

/** The built-in plugins only. */
export const BUILTIN_REGISTRY: PluginRegistry = { sources: BUILTIN_SOURCES, relays: BUILTIN_RELAYS };

/**
 * Builds the plugins of a config file: its sources (by `type`) and its
 * relays. Each plugin validates its own options; errors name the file, the
 * entry and the key. Names must be unique across all of them.
 *
 * `registry` is either a whole `PluginRegistry` or, as before, the source
 * factories by type (relays are then the built-in one).
 */
export function pluginsFromConfig(
  settings: { readonly sources?: readonly SourceSetting[]; readonly relays?: readonly SourceSetting[] },
  registry: PluginRegistry | PluginFactories = BUILTIN_REGISTRY,
): Plugin[] {
  const { sources, relays } = isRegistry(registry) ? registry : { sources: registry, relays: BUILTIN_RELAYS as PluginFactories };
  const taken = new Map<string, string>();
  const build = (factories: PluginFactories) => ({ where, entry }: SourceSetting) => {
    const { type, run_on: runOn, ...options } = entry;
    const factory = Object.hasOwn(factories, type) ? factories[type] : undefined;
    if (!factory) {
      throw new ValidationError(`${where}.type: got ${showValue(type)}; allowed: one of ${Object.keys(factories).join(", ")}`);
    }
    if (runOn !== undefined && runOn !== "leader" && runOn !== "every_replica") {
      throw new ValidationError(`${where}.run_on: got ${showValue(runOn)}; allowed: leader or every_replica`);
    }
    const plugin = factory(options, where);
    if (runOn === "leader" && plugin.fetch) {
      throw new ValidationError(`${where}.run_on: got "leader"; allowed: every_replica (a receiver answers on every replica)`);
    }
    if (runOn !== undefined) Object.assign(plugin, { runOn });
    const first = taken.get(plugin.name);
    if (first) throw new ValidationError(`${where}.name: got "${plugin.name}"; allowed: a name no other plugin has (${first} has it)`);
    taken.set(plugin.name, where);
    return plugin;
  };
  return [...(settings.sources ?? []).map(build(sources)), ...(settings.relays ?? []).map(build(relays))];
}

/** The sources of a config file (see `pluginsFromConfig`). */
export function sourcesFromConfig(settings: readonly SourceSetting[], registry: PluginRegistry | PluginFactories = BUILTIN_REGISTRY): Plugin[] {
  return pluginsFromConfig({ sources: settings }, registry);
}

function isRegistry(value: PluginRegistry | PluginFactories): value is PluginRegistry {
  const { sources, relays } = value as Partial<Record<string, unknown>>;
  return typeof sources === "object" && sources !== null && typeof relays === "object" && relays !== null;
}
