/**
 * The plugin API: signal sources (things that claim) and hooks (things told
 * of every change of the effective signal). One plugin may be both.
 *
 * A source reports its whole opinion on every observation (level-triggered):
 * `claim(PAUSE)` while the load is high, `release()` when it is not. Repeats
 * are cheap, and they are how a source re-asserts itself after an operator
 * forced RUN.
 */
import * as v from "valibot";
import type { ChangeEvent } from "../core/events.ts";
import type { Claim } from "../core/snapshot.ts";
import type { ClaimOptions } from "../core/change.ts";
import type { Signal } from "../core/signal.ts";
import { parseWith } from "../config/validation.ts";
import type { PluginStatus } from "./host.ts";
import type { DnsQueryOptions, DnsRecordType } from "../serve/types.ts";

// Helpers plugins share (plugins import only this module): one retry delay, one bounded fetch,
// one "parse or name the rule" pipe step.
export { Backoff, type BackoffOptions } from "../util/backoff.ts";
export {
  type FetchedText,
  FetchError,
  type FetchFailure,
  fetchFailure,
  type FetchFunction,
  fetchText,
  type FetchTextOptions,
} from "../util/fetch.ts";
export { parsedBy } from "../config/validation.ts";

/** What a plugin gets to talk to the server. */
export interface SourceContext {
  /** The plugin's name: its claims appear under it in `/status`. */
  readonly name: string;
  /** Aborted on shutdown: pass it to fetch, timers and watchers. */
  readonly abort: AbortSignal;
  /**
   * Reports this source's opinion; resolves with the effective signal afterwards. A PAUSE or STOP
   * is in effect before this returns; a RUN once it is saved (it rejects when it could not be:
   * the source's next observation says it again). An ignored rejection is only logged.
   */
  claim(state: Signal, reason: string, options?: ClaimOptions): Promise<Signal>;
  /** Back to "no objection": a claim of RUN. */
  release(reason: string, options?: ClaimOptions): Promise<Signal>;
  /** A non-fatal problem: logged and shown in `/status`; the source keeps running. */
  warn(problem: unknown): void;
  /**
   * What the source last saw (a value, a file's content), shown in `/status`; marks it healthy.
   * A function is a live view, called each time `/status` or `/metrics` is built: a plugin with a
   * large state (a relay's fleet) reports often at O(1) and sums itself up only when asked.
   */
  observe(observation: Record<string, unknown> | (() => Record<string, unknown>)): void;
  /** One log line, prefixed with the plugin's name. */
  log(message: string): void;
  /**
   * Writes a note into the audit history (`/history`, type `note`, under this plugin's name):
   * something that happened and is not a claim (a relay's target set changed). `kind`: lower-case
   * letters, digits and `_` (at most 32); `reason`: one line, cut past 300 characters; `details`:
   * a JSON object of at most 1 KiB (larger ones are left out, with a warning). Not for repeats:
   * every note is an entry.
   */
  audit(kind: string, reason: string, details?: Record<string, unknown>): void;
  /** The effective signal right now (what `GET /` answers): relay targets push it. */
  current(): Signal;
  /**
   * Resolves once every source (see `isSource`) has observed once, or after
   * `timeoutMs`: a relay waits for it, so that a restart does not push the
   * bare `signal_state` before the sources claim.
   */
  sourcesReady(timeoutMs: number): Promise<void>;
  /**
   * The claim this source held when the server started, as restored from the state file
   * (`memo` included), or undefined. A source that is told of its state (a receiver) picks it up
   * from here instead of starting from "no objection": what it was told is not told again soon.
   */
  restored(): Claim | undefined;
  /**
   * Resolves once the state as it is now, this source's claim included, is durably written (at
   * once without a state file); rejects when the write failed. A route answers 2xx only after it.
   */
  saved(): Promise<void>;
  /**
   * DNS through the runtime's resolver (a relay's `targets_dns`): the addresses of `name`'s records
   * of `type`, `[]` when it has none; rejects when the answer is unknown (timeout, refusal).
   */
  resolveDns(name: string, type: DnsRecordType, options: DnsQueryOptions): Promise<string[]>;
}

/** What a plugin's HTTP route gets besides the request. */
export interface RouteContext {
  readonly source: SourceContext;
  /** The client's address, for the actor of claims. */
  readonly remoteAddress?: string;
}

export interface Plugin {
  /** Unique; lower-case letters, digits, `-` and `_`. */
  readonly name: string;
  /** The plugin type, such as `file` or `prometheus`. */
  readonly kind: string;
  /**
   * A source's main loop: runs until `context.abort` aborts. A rejection
   * means the source failed: it is reported and restarted with backoff.
   */
  run?(context: SourceContext): Promise<void>;
  /** The route checks a token of its own, so the server's tokens do not apply to it. */
  readonly authenticates?: boolean;
  /** Routes mounted at `/hooks/<name>` (a webhook receiver). */
  fetch?(request: Request, context: RouteContext): Response | Promise<Response>;
  /** Called on every change of the effective signal (relay targets). */
  onChange?(event: ChangeEvent): void;
  /** What the plugin shows of itself in `/metrics` and on the dashboard (set by `definePlugin`). */
  readonly description?: PluginDescription;
  /**
   * With several replicas (store: etcd), where `run` goes: on the one leader, or on every replica
   * (config `run_on`). @default leader for a plugin without a route, every_replica for a receiver
   */
  readonly runOn?: RunOn;
}

export type RunOn = "leader" | "every_replica";

/** Whether the plugin's `run` goes only on the leader replica (see `Plugin.runOn`). */
export function runsOnLeader(plugin: Plugin): boolean {
  return plugin.runOn === undefined ? plugin.fetch === undefined : plugin.runOn === "leader";
}

/** A metric family a plugin type adds to `/metrics`; `name` without the `chaos_signal_` prefix. */
export interface MetricFamilySpec {
  readonly name: string;
  readonly type: "gauge" | "counter" | "histogram";
  readonly help: string;
}

/** One sample of a declared family. Label values must be bounded (names from the config, not from inputs). */
export interface MetricSample {
  readonly family: string;
  /** A histogram's series: `_bucket` (with an `le` label), `_sum` or `_count`. */
  readonly suffix?: "_bucket" | "_sum" | "_count";
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A time, shown in the viewer's locale with how long ago it was, and what happened then. */
export interface CardTime {
  readonly at: string;
  readonly text?: string;
}

/** One card on the dashboard, under a section of its own (the relay's targets). Shown as text only. */
export interface DashboardCard {
  /** `id`: lower-case letters, digits and `-`; cards of every plugin with the same id share the section. */
  readonly section: { readonly id: string; readonly title: string };
  readonly title: string;
  readonly badge?: { readonly text: string; readonly tone: "ok" | "warn" | "bad" };
  readonly fields: readonly (readonly [string, string | number | boolean | null | CardTime])[];
}

/** What a plugin type says about itself, so that the server's core knows no plugin by name. */
export interface PluginDescription {
  /** Its metric families: their HELP and TYPE lines appear even before there is a sample. */
  readonly metrics?: readonly MetricFamilySpec[];
  /** Its samples, from its status (`last_observation`); an exception drops them, not the page. */
  samples?(status: PluginStatus): readonly MetricSample[];
  /** Its dashboard cards, from its status; served in `/status` as the source's `cards`. */
  cards?(status: PluginStatus): readonly DashboardCard[];
  /**
   * Its full state, paged, at `GET /status/<kind>s/<name>` (a relay: `/status/relays/<name>`), for
   * what is too large for `/status`. `query` is the request's; throw `HttpError(400, ...)` for a
   * bad one. Set on the plugin's own description (it needs the instance), not the type's.
   */
  page?(status: PluginStatus, query: URLSearchParams): unknown;
}

/**
 * A source claims on its own: it has a `run` loop and is not a hook (no `onChange`; a relay has
 * both). What waits for a first observation (`PluginHost.waitingFor`, `/status` sources_waiting, `sourcesReady`) counts sources only:
 * a hook or a route-only plugin may never observe anything before it is told of a change.
 */
export function isSource(plugin: Plugin): boolean {
  return plugin.run !== undefined && plugin.onChange === undefined;
}

export { PluginNameSchema } from "../config/schemas.ts";

/**
 * A plugin factory: validates its options with `schema` (errors name the
 * plugin and the key) and builds the plugin. `where` says where the options
 * came from, for config files: `chaos_signal.sources[2]`.
 */
export type PluginFactory<TInput> = (options: TInput, where?: string) => Plugin;

/** What `definePlugin` makes: a plugin factory that also tells its type name, schema and description. */
export type DefinedPlugin<TSchema extends v.GenericSchema<unknown, { name: string }>> =
  & PluginFactory<v.InferInput<TSchema>>
  & {
    readonly kind: string;
    readonly schema: TSchema;
    readonly description?: PluginDescription;
  };

export function definePlugin<TSchema extends v.GenericSchema<unknown, { name: string }>>(
  kind: string,
  schema: TSchema,
  build: (options: v.InferOutput<TSchema>) => Plugin,
  description?: PluginDescription,
): DefinedPlugin<TSchema> {
  const factory = (input: v.InferInput<TSchema>, where?: string) => {
    const label = (path: string) => {
      const name = typeof (input as { name?: unknown })?.name === "string" ? ` "${(input as { name: string }).name}"` : "";
      const origin = where ? `${where} (${kind}${name})` : `${kind}${name}`;
      return path ? `${origin}: ${path}` : origin;
    };
    const plugin = build(parseWith(schema, input, label));
    if (!description || plugin.description) return plugin;
    return Object.isExtensible(plugin) ? Object.assign(plugin, { description }) : { ...plugin, description };
  };
  return Object.assign(factory, { kind, schema }, description ? { description } : {});
}
