/**
 * Runs the plugins: gives each a context bound to the signal's store, keeps its
 * health for `/status`, restarts a source whose `run` fails (with backoff),
 * tells hooks of every change, and stops them all on shutdown.
 */
import type { ChangeEvent } from "../core/events.ts";
import type { Claim } from "../core/snapshot.ts";
import type { ClaimOptions } from "../core/change.ts";
import type { Signal } from "../core/signal.ts";
import type { SignalStore } from "../state/signal_store.ts";
import { isSource, type Plugin, type SourceContext } from "./api.ts";
import { Backoff } from "../util/backoff.ts";
import { delay } from "../util/timers.ts";
import { RepeatedFailures } from "../util/repeated_failures.ts";
import type { ResolveDns } from "../serve/types.ts";
import { type AuditNote, boundedNote } from "../state/history.ts";

/** `standby`: a leader-only source on a replica that does not lead (another replica runs it). */
export type SourceHealth = "starting" | "ok" | "warning" | "failed" | "stopped" | "standby";

export interface PluginStatus {
  name: string;
  kind: string;
  /** `starting` until the first observation; `warning` after a warning until the next observation. */
  health: SourceHealth;
  last_observation: ({ at: string } & Record<string, unknown>) | null;
  last_warning: { at: string; message: string } | null;
  warnings: number;
  restarts: number;
  /** The plugin's HTTP route, if it has one. */
  route?: string;
}

export interface PluginHostOptions {
  readonly log?: (line: string) => void;
  readonly now?: () => Date;
  /** First restart delay after a failed `run`; doubles up to `maxRestartDelayMs`. @default 1000 */
  readonly restartDelayMs?: number;
  /** @default 30000 */
  readonly maxRestartDelayMs?: number;
  /**
   * The claims restored at start (from the state file), behind `SourceContext.restored()`.
   * @default the store's claims when the host is built
   */
  readonly restored?: readonly Claim[];
  /**
   * The plugins whose `run` goes only while this replica leads (see `lead`): with several replicas
   * on one store, work done once. @default none: every plugin runs from `start` to `stop`
   */
  readonly leaderOnly?: (plugin: Plugin) => boolean;
  /**
   * Behind `SourceContext.resolveDns`: the runtime's resolver (runtime-specific, so handed in by
   * the composition root). @default none: a query fails, naming what is missing
   */
  readonly resolveDns?: ResolveDns;
  /**
   * Behind `SourceContext.audit`: records a plugin's note (bounded) in the audit history.
   * @default none: notes are dropped (a plugin logs what it notes)
   */
  readonly audit?: (note: AuditNote) => void;
}

const noResolver: ResolveDns = () =>
  Promise.reject(new Error("DNS discovery needs the runtime's resolver (PluginHostOptions.resolveDns; createServer passes it)"));

/** A memo is kept in the state file, written on every save: a larger one is dropped (with a warning). */
export const MAX_MEMO_BYTES = 1024 * 1024;

interface Entry {
  readonly plugin: Plugin;
  readonly status: PluginStatus;
  /** A live observation (`observe(() => ...)`): called when a status is asked for. */
  live?: (() => Record<string, unknown>) | undefined;
  /** Rebuilt at each start of a leader-only plugin, with that run's abort signal. */
  context: SourceContext;
  readonly leaderOnly: boolean;
  /** Ends this one run (a leader-only plugin on losing the lead); the host's abort ends them all. */
  controller?: AbortController | undefined;
  running?: Promise<void>;
}

export function messageOf(problem: unknown): string {
  if (problem instanceof Error) {
    const cause = problem.cause instanceof Error ? `: ${problem.cause.message}` : "";
    return `${problem.message}${cause}`;
  }
  return String(problem);
}

export class PluginHost {
  readonly #store: SignalStore;
  readonly #entries = new Map<string, Entry>();
  readonly #controller = new AbortController();
  readonly #log: (line: string) => void;
  readonly #now: () => Date;
  readonly #restartDelayMs: number;
  readonly #maxRestartDelayMs: number;
  readonly #resolveDns: ResolveDns;
  readonly #audit: ((note: AuditNote) => void) | undefined;
  /** The claims the store held when the host was built: at start, those restored from the state file. */
  readonly #restored: ReadonlyMap<string, Claim>;
  #unsubscribe: (() => void) | undefined;
  /** Called after every observation until the sources are ready. */
  readonly #readyWaiters = new Set<() => void>();
  #started = false;
  #leading = false;

  constructor(store: SignalStore, plugins: readonly Plugin[], options: PluginHostOptions = {}) {
    this.#store = store;
    this.#log = options.log ?? (() => {});
    this.#now = options.now ?? (() => new Date());
    this.#restartDelayMs = options.restartDelayMs ?? 1000;
    this.#maxRestartDelayMs = options.maxRestartDelayMs ?? 30_000;
    this.#resolveDns = options.resolveDns ?? noResolver;
    this.#audit = options.audit;
    this.#restored = new Map((options.restored ?? store.snapshot().claims).map((claim) => [claim.source, claim]));
    for (const plugin of plugins) {
      if (this.#entries.has(plugin.name)) throw new Error(`two plugins are named "${plugin.name}"; names must be unique`);
      const status: PluginStatus = {
        name: plugin.name,
        kind: plugin.kind,
        health: plugin.run ? "starting" : "ok",
        last_observation: null,
        last_warning: null,
        warnings: 0,
        restarts: 0,
        ...(plugin.fetch ? { route: `/hooks/${plugin.name}` } : {}),
      };
      const leaderOnly = plugin.run !== undefined && (options.leaderOnly?.(plugin) ?? false);
      if (leaderOnly) status.health = "standby";
      const entry: Entry = { plugin, status, leaderOnly, context: undefined as unknown as SourceContext };
      entry.context = this.#contextFor(plugin, entry, this.#controller.signal);
      this.#entries.set(plugin.name, entry);
    }
  }

  /** Starts every source's `run` and subscribes the hooks. */
  start(): void {
    this.#unsubscribe = this.#store.subscribe((event) => {
      if (event.type === "change") this.#notify(event);
    });
    this.#started = true;
    for (const entry of this.#entries.values()) {
      if (entry.plugin.run && (!entry.leaderOnly || this.#leading)) this.#run(entry);
    }
  }

  /**
   * This replica leads, or no longer does: starts the leader-only plugins, or aborts them at once
   * (their claims stay in the store, for the next leader's to re-observe).
   */
  lead(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    if (!this.#started || this.#controller.signal.aborted) return;
    for (const entry of this.#entries.values()) {
      if (!entry.leaderOnly) continue;
      if (leading) this.#run(entry);
      else {
        entry.controller?.abort(new Error("this replica no longer leads"));
        entry.controller = undefined;
        entry.status.health = "standby";
        entry.status.last_observation = null;
        entry.live = undefined;
      }
    }
  }

  #run(entry: Entry): void {
    if (entry.leaderOnly) {
      entry.controller = new AbortController();
      const signal = AbortSignal.any([this.#controller.signal, entry.controller.signal]);
      entry.context = this.#contextFor(entry.plugin, entry, signal);
      entry.status.health = "starting";
    }
    // A run still ending (lost lead, regained at once) finishes before the next begins. A first
    // run starts now, in this turn: a source's first claim (a poller's fail-closed PAUSE) is in
    // place before the server listens.
    const context = entry.context;
    const previous = entry.running;
    entry.running = previous ? previous.then(() => this.#supervise(entry, context)) : this.#supervise(entry, context);
  }

  /** Aborts every source and waits (at most `graceMs`) for them to finish. */
  async stop(graceMs = 1000): Promise<void> {
    this.#unsubscribe?.();
    this.#controller.abort(new Error("chaos-signal is shutting down"));
    const running = [...this.#entries.values()].map((entry) => entry.running).filter(Boolean);
    await Promise.race([Promise.allSettled(running), delay(graceMs)]);
    for (const entry of this.#entries.values()) entry.status.health = "stopped";
    this.#started = false;
  }

  plugin(name: string): { plugin: Plugin; context: SourceContext } | undefined {
    const entry = this.#entries.get(name);
    return entry && { plugin: entry.plugin, context: entry.context };
  }

  /** Names of the plugins that have HTTP routes. */
  routes(): string[] {
    return [...this.#entries.values()].filter((e) => e.plugin.fetch).map((e) => `/hooks/${e.plugin.name}`);
  }

  statuses(): PluginStatus[] {
    return [...this.#entries.values()].map((entry) => {
      const status = structuredClone(entry.status);
      if (entry.live && status.last_observation) {
        try {
          Object.assign(status.last_observation, entry.live(), { at: status.last_observation.at });
        } catch (error) {
          Object.assign(status.last_observation, { error: `the live observation failed: ${messageOf(error)}` });
        }
      }
      return status;
    });
  }

  /**
   * The sources (see `isSource`) that have not observed once yet: the one definition of waiting,
   * behind `/status` sources_waiting, `ready` and `SourceContext.sourcesReady()` (not readiness: `/readyz`).
   */
  waitingFor(): string[] {
    return [...this.#entries.values()]
      .filter((e) => isSource(e.plugin) && e.status.last_observation === null && e.status.health !== "standby")
      .map((e) => e.plugin.name);
  }

  /** True once every source has observed once. */
  get ready(): boolean {
    return this.waitingFor().length === 0;
  }

  #whenSourcesReady(timeoutMs: number): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#readyWaiters.delete(check);
        this.#controller.signal.removeEventListener("abort", done);
        resolve();
      };
      const check = () => {
        if (this.ready) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#controller.signal.addEventListener("abort", done, { once: true });
      this.#readyWaiters.add(check);
    });
  }

  #contextFor(plugin: Plugin, entry: Entry, abort: AbortSignal): SourceContext {
    const store = this.#store;
    const status = entry.status;
    const log = (message: string) => this.#log(`${plugin.kind} "${plugin.name}": ${message}`);
    const repeats = new RepeatedFailures();
    // The claim goes through whatever happens to its memo: a claim is never held back for it.
    const bounded = (options: ClaimOptions | undefined): ClaimOptions | undefined => {
      if (options?.memo === undefined) return options;
      let bytes: number;
      try {
        bytes = JSON.stringify(options.memo)?.length ?? 0;
      } catch (error) {
        bytes = Number.POSITIVE_INFINITY;
        context.warn(`memo dropped: not JSON (${messageOf(error)})`);
      }
      if (bytes <= MAX_MEMO_BYTES) return options;
      if (Number.isFinite(bytes)) context.warn(`memo dropped: ${bytes} characters, at most ${MAX_MEMO_BYTES} are kept`);
      const { memo: _dropped, ...rest } = options;
      return rest;
    };
    // A source that ignores the promise must not leave a rejection unhandled: it is warned of.
    const submitted = (made: Promise<Signal>): Promise<Signal> => {
      made.catch((error) => context.warn(`claim not made: ${messageOf(error)}`));
      return made;
    };
    // A leader-only run that was ended (the lead lost) no longer speaks for the plugin's status.
    const ended = () => abort !== this.#controller.signal && abort.aborted;
    const context: SourceContext = {
      name: plugin.name,
      abort,
      claim: (state, reason, options) => submitted(store.claim(plugin.name, state, reason, bounded(options))),
      release: (reason, options) => submitted(store.release(plugin.name, reason, bounded(options))),
      warn: (problem) => {
        if (ended()) return;
        const message = messageOf(problem);
        status.warnings += 1;
        status.last_warning = { at: this.#now().toISOString(), message };
        if (status.health !== "failed") status.health = "warning";
        // A source re-checks on an interval and says the same problem each time (a bad file, a
        // Prometheus that is down): /status counts every one, the log says it once a minute.
        const line = repeats.line(message, this.#now().getTime());
        if (line !== undefined) log(`warning: ${line}`);
      },
      observe: (observation) => {
        if (ended()) return;
        if (typeof observation === "function") {
          entry.live = observation;
          status.last_observation = { at: this.#now().toISOString() };
        } else {
          entry.live = undefined;
          status.last_observation = { at: this.#now().toISOString(), ...observation };
        }
        status.health = "ok";
        for (const check of [...this.#readyWaiters]) check();
      },
      log,
      audit: (kind, reason, details) => {
        // A run that was ended (the lead lost) writes no more: the next leader's speaks.
        if (ended()) return;
        const { note, problem } = boundedNote({ source: plugin.name, kind, reason, ...(details === undefined ? {} : { details }) });
        if (problem !== undefined) context.warn(problem);
        this.#audit?.(note);
      },
      current: () => store.signal,
      sourcesReady: (timeoutMs) => this.#whenSourcesReady(timeoutMs),
      restored: () => this.#restored.get(plugin.name),
      saved: () => store.flush(),
      resolveDns: this.#resolveDns,
    };
    return context;
  }

  /** Runs a source; on failure reports it and restarts after a growing delay. */
  async #supervise(entry: Entry, context: SourceContext): Promise<void> {
    const signal = context.abort;
    const backoff = new Backoff({ initialMs: this.#restartDelayMs, maxMs: this.#maxRestartDelayMs });
    while (!signal.aborted) {
      try {
        await entry.plugin.run!(context);
        if (signal.aborted) return;
        throw new Error("run() returned before shutdown");
      } catch (error) {
        if (signal.aborted) return;
        const wait = backoff.next();
        context.warn(new Error(`source failed, restarting in ${wait} ms`, { cause: error }));
        entry.status.health = "failed";
        entry.status.restarts += 1;
        await delay(wait, signal).catch(() => {});
      }
    }
  }

  #notify(event: ChangeEvent): void {
    for (const entry of this.#entries.values()) {
      if (!entry.plugin.onChange) continue;
      try {
        entry.plugin.onChange(event);
      } catch (error) {
        entry.context.warn(error);
      }
    }
  }
}
