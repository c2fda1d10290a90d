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
import type { ChangeEvent, Claim, ClaimOptions } from "../core/arbiter.ts";
import type { Signal } from "../core/signal.ts";
import { parseWith } from "../config/validation.ts";

/** What a plugin gets to talk to the server. */
export interface SourceContext {
  /** The plugin's name: its claims appear under it in `/status`. */
  readonly name: string;
  /** Aborted on shutdown: pass it to fetch, timers and watchers. */
  readonly signal: AbortSignal;
  /** Reports this source's opinion; returns the effective signal afterwards. */
  claim(state: Signal, reason: string, options?: ClaimOptions): Signal;
  /** Back to "no objection". */
  release(reason: string, options?: ClaimOptions): Signal;
  /** A non-fatal problem: logged and shown in `/status`; the source keeps running. */
  warn(problem: unknown): void;
  /** What the source last saw (a value, a file's content), shown in `/status`; marks it healthy. */
  observe(observation: Record<string, unknown>): void;
  /** One log line, prefixed with the plugin's name. */
  log(message: string): void;
  /** The effective signal right now (what `GET /` answers): relay targets push it. */
  current(): Signal;
  /**
   * Resolves once every source (a plugin with `run` and no `onChange`) has
   * observed once, or after `timeoutMs`: a relay waits for it, so that a
   * restart does not push the bare `signal_state` before the sources claim.
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
   * A source's main loop: runs until `context.signal` aborts. A rejection
   * means the source failed: it is reported and restarted with backoff.
   */
  run?(context: SourceContext): Promise<void>;
  /** The route checks a token of its own, so the server's tokens do not apply to it. */
  readonly authenticates?: boolean;
  /** Routes mounted at `/hooks/<name>` (a webhook receiver). */
  fetch?(request: Request, context: RouteContext): Response | Promise<Response>;
  /** Called on every change of the effective signal (relay targets). */
  onChange?(event: ChangeEvent): void;
}

export { PluginNameSchema } from "../config/schemas.ts";

/**
 * A plugin factory: validates its options with `schema` (errors name the
 * plugin and the key) and builds the plugin. `where` says where the options
 * came from, for config files: `chaos_signal.sources[2]`.
 */
export type PluginFactory<TInput> = (options: TInput, where?: string) => Plugin;

export function definePlugin<TSchema extends v.GenericSchema<unknown, { name: string }>>(
  kind: string,
  schema: TSchema,
  build: (options: v.InferOutput<TSchema>) => Plugin,
): PluginFactory<v.InferInput<TSchema>> & { readonly kind: string; readonly schema: TSchema } {
  const factory = (input: v.InferInput<TSchema>, where?: string) => {
    const label = (path: string) => {
      const name = typeof (input as { name?: unknown })?.name === "string" ? ` "${(input as { name: string }).name}"` : "";
      const origin = where ? `${where} (${kind}${name})` : `${kind}${name}`;
      return path ? `${origin}: ${path}` : origin;
    };
    return build(parseWith(schema, input, label));
  };
  return Object.assign(factory, { kind, schema });
}
