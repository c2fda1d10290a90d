/**
 * Third-party plugin types from `chaos_signal.plugins`: each module is imported at start, and
 * every plugin factory it exports (made with `definePlugin`) adds its `kind` as a type name that
 * `sources:` and `relays:` entries can use like the built-ins.
 *
 * A module that cannot be imported, exports no factory, or brings a type name that is already
 * taken stops the start (exit 2) with one line naming the entry: a plugin the operator asked for
 * must not silently be missing from a chaos run.
 */
import { createRequire } from "node:module";
import { isAbsolute, join, resolve } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import type { PluginModuleSetting } from "../config/settings.ts";
import { ValidationError } from "../config/validation.ts";
import type { PluginFactory } from "./api.ts";
import { BUILTIN_REGISTRY, type PluginRegistry } from "./registry.ts";
import { within } from "../util/timers.ts";

/** A module that hangs in its top-level code must not hold the start forever. */
export const MODULE_IMPORT_TIMEOUT_MS = 30_000;

/** One bad `chaos_signal.plugins` entry; a `ValidationError`, so the command line exits 2. */
export class PluginModuleError extends ValidationError {}

type AnyFactory = PluginFactory<unknown> & { readonly kind: string; readonly schema: object };

/** Duck-typed, not `instanceof`: the module may have its own copy of the plugin API. */
function isPluginFactory(value: unknown): value is AnyFactory {
  const candidate = value as { kind?: unknown; schema?: unknown };
  return typeof value === "function" && typeof candidate.kind === "string" && candidate.kind !== "" &&
    typeof candidate.schema === "object" && candidate.schema !== null;
}

/**
 * What `import()` gets for a config entry. Paths become file URLs relative to the config file. A
 * package (`npm:name` or `name`) is looked up in the `node_modules` beside the config file (or
 * above it); one not found there is left to the runtime: Deno fetches `npm:`/`jsr:` as it is set
 * up to, Bun looks from chaos-signal's own place.
 */
export function importSpecifier(specifier: string, baseDir: string, isBun = Boolean(process.versions.bun)): string {
  if (/^\.{1,2}[\\/]/.test(specifier) || isAbsolute(specifier)) return pathToFileURL(resolve(baseDir, specifier)).href;
  const isNpm = specifier.startsWith("npm:");
  // Any other URL (file:, https:, jsr:) is the runtime's to resolve.
  if (!isNpm && /^[a-z][a-z0-9+.-]*:/i.test(specifier)) return specifier;
  const name = isNpm ? specifier.slice("npm:".length) : specifier;
  try {
    return pathToFileURL(createRequire(join(baseDir, "package.json")).resolve(name)).href;
  } catch {
    return isBun ? name : specifier;
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const line = text.split("\n").find((part) => part.trim() !== "") ?? "no reason given";
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

function importWithin(url: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return within(import(url) as Promise<Record<string, unknown>>, timeoutMs, () => new Error(`not loaded within ${timeoutMs / 1000} s`));
}

/**
 * Imports each module in order and returns `registry` with their plugin types added to both
 * `sources` and `relays`. Throws `PluginModuleError` for the first bad entry.
 */
export async function loadPluginModules(
  entries: readonly PluginModuleSetting[],
  registry: PluginRegistry = BUILTIN_REGISTRY,
  options: { timeoutMs?: number } = {},
): Promise<PluginRegistry> {
  if (entries.length === 0) return registry;
  const added = new Map<string, { factory: AnyFactory; label: string }>();
  const builtIn = (kind: string) =>
    Object.hasOwn(registry.sources, kind)
      ? `${kind} source`
      : Object.hasOwn(registry.relays, kind)
      ? kind === "relay" ? "relay" : `${kind} relay`
      : undefined;
  for (const { specifier, where, baseDir } of entries) {
    const label = where.replace(/^.*: /, "");
    const fail = (problem: string): never => {
      throw new PluginModuleError(`${where} (${specifier}): ${problem}`);
    };
    let module: Record<string, unknown>;
    try {
      module = await importWithin(importSpecifier(specifier, baseDir), options.timeoutMs ?? MODULE_IMPORT_TIMEOUT_MS);
    } catch (error) {
      return fail(`cannot import it (${firstLine(error)})`);
    }
    const factories = new Map<string, AnyFactory>();
    for (const [exportName, value] of Object.entries(module)) {
      if (!isPluginFactory(value)) continue;
      const { kind } = value;
      const same = factories.get(kind);
      if (same && same !== value) fail(`type "${kind}" is exported twice (once as ${exportName})`);
      factories.set(kind, value);
    }
    if (factories.size === 0) {
      fail(`exports no plugin factory (make one with definePlugin and export it)`);
    }
    for (const [kind, factory] of factories) {
      const taken = builtIn(kind);
      if (taken) fail(`type "${kind}" is taken by the built-in ${taken}`);
      const earlier = added.get(kind);
      if (earlier && earlier.factory !== factory) fail(`type "${kind}" is also exported by ${earlier.label}`);
      added.set(kind, { factory, label: `${label} (${specifier})` });
    }
  }
  const extra = Object.fromEntries([...added].map(([kind, { factory }]) => [kind, factory]));
  return { sources: { ...registry.sources, ...extra }, relays: { ...registry.relays, ...extra } };
}
