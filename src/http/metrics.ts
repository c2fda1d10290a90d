/**
 * `GET /metrics` in Prometheus' text format (version 0.0.4): the signal, its
 * changes and claims by source, each source's health and last observation,
 * the families each plugin type declares of itself (the poller's value and
 * thresholds, relay targets' sync state: see `PluginDescription`), push
 * subscribers, and HTTP requests by route and code.
 *
 * Labels only take bounded values: source and relay names come from the
 * config, routes are the known ones or `other`, methods the usual ones or
 * `other`, so a scanner hitting random paths cannot grow the series.
 */
import type { SignalFeed } from "../core/events.ts";
import type { View as ArbiterSnapshot } from "../core/snapshot.ts";
import type { PluginStatus } from "../plugin/host.ts";
import type { MetricFamilySpec, PluginDescription } from "../plugin/api.ts";
import { SIGNALS } from "../core/signal.ts";
import type { StateHealth } from "../state/signal_store.ts";

export interface MetricsInfo {
  readonly snapshot: ArbiterSnapshot;
  readonly sources: readonly PluginStatus[];
  /** The sources that have not observed once yet. */
  readonly waiting?: readonly string[];
  readonly subscribers: { readonly events: number; readonly longPolls: number };
  readonly version: string;
  readonly runtime: string;
  readonly startedAt: Date;
  /** The state file's health; absent when the state is kept in memory only. */
  readonly state?: StateHealth;
  /** Where the signal is stored (file or etcd) and whether this replica is current with it; absent: memory only. */
  readonly store?: StoreMetrics;
  /** What a source's plugin says about itself (its samples); absent: none. */
  readonly describe?: (source: PluginStatus) => PluginDescription | undefined;
}

/** The store as `/metrics` shows it: `replica` and `leading` only with etcd (a leader election). */
export interface StoreMetrics {
  readonly type: "file" | "etcd";
  readonly current: boolean;
  /** The stored revision this replica stands on (a decimal string). */
  readonly revision: string;
  readonly replica?: string;
  readonly leading?: boolean;
}

/** A plugin type, such as a factory made with `definePlugin`: its families show even with no plugin of it. */
export interface DescribedKind {
  readonly kind: string;
  readonly description?: PluginDescription;
}

/** The families this file declares itself: a plugin cannot take their names. */
const CORE_FAMILIES = new Set([
  "build_info", "start_time_seconds", "signal", "stop_latched", "signal_changed_timestamp_seconds", "state_saved",
  "state_save_failures_total", "changes_total", "claims_total", "claim", "source_healthy", "source_warnings_total",
  "source_restarts_total", "source_last_observation_timestamp_seconds", "source_waiting", "subscribers", "http_requests_total",
  "store_current", "store_revision", "store_leading",
]);
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);

/** Label values escaped as the text format wants: backslash, double quote, newline. */
function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string>): string {
  const text = Object.entries(pairs).map(([key, value]) => `${key}="${label(value)}"`).join(",");
  return text ? `{${text}}` : "";
}

/** Numbers as Prometheus writes them (NaN, +Inf, -Inf). */
function number(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

class Family {
  readonly lines: string[] = [];
  constructor(readonly name: string, readonly type: "gauge" | "counter" | "histogram", readonly help: string) {}
  add(pairs: Record<string, string>, value: number, suffix = ""): this {
    this.lines.push(`${this.name}${suffix}${labels(pairs)} ${number(value)}`);
    return this;
  }
  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...this.lines].join("\n");
  }
}

export class Metrics {
  readonly #changes = new Map<string, number>();
  readonly #claims = new Map<string, number>();
  readonly #requests = new Map<string, number>();
  /** Plain `GET /` polls answered 200, kept apart from #requests: a number bump, no key to build. */
  #polls = 0;

  /** The plugin types' families, in the order the types were given (a registry's order). */
  readonly #kindFamilies: readonly MetricFamilySpec[];

  /** `kinds`: the plugin types this server knows (built-ins, modules), for their families' HELP and TYPE. */
  constructor(arbiter: SignalFeed, kinds: readonly DescribedKind[] = []) {
    this.#kindFamilies = kinds.flatMap((kind) => kind.description?.metrics ?? []);
    arbiter.subscribe((event) => {
      if (event.type === "change") bump(this.#changes, JSON.stringify([event.cause.source, event.signal]));
      else bump(this.#claims, JSON.stringify([event.claim.source, event.claim.state]));
    });
  }

  /** Counts one answered request; `route` must be a bounded label (see `routeLabel`). */
  countRequest(route: string, method: string, status: number): void {
    // On the hot path (every poll): a plain string key, split again only when rendering.
    bump(this.#requests, `${route}\n${METHODS.has(method) ? method : "other"}\n${status}`);
  }

  /** The same as countRequest("/", "GET", 200), for the poll that must be fast. */
  countPoll(): void {
    this.#polls++;
  }

  render(info: MetricsInfo): string {
    const { snapshot } = info;
    const families: Family[] = [];
    const family = (name: string, type: "gauge" | "counter" | "histogram", help: string) => {
      const created = new Family(`chaos_signal_${name}`, type, help);
      families.push(created);
      return created;
    };

    family("build_info", "gauge", "Version and runtime of this server.").add({ version: info.version, runtime: info.runtime }, 1);
    family("start_time_seconds", "gauge", "When this server started, in seconds since the epoch.").add({}, info.startedAt.getTime() / 1000);
    const signal = family("signal", "gauge", "The effective signal: 1 for the one GET / answers, 0 for the others.");
    for (const name of SIGNALS) signal.add({ signal: name }, snapshot.signal === name ? 1 : 0);
    family("stop_latched", "gauge", "1 while the STOP latch holds (until a manual POST /RUN).").add({}, snapshot.latch ? 1 : 0);
    family("signal_changed_timestamp_seconds", "gauge", "When the effective signal last changed.").add({}, snapshot.changedAt.getTime() / 1000);

    if (info.state) {
      family("state_saved", "gauge", "1 while the state file holds the current state; 0 while writes fail (they are retried).").add({}, info.state.saved ? 1 : 0);
      family("state_save_failures_total", "counter", "Writes of the state file that failed or did not finish in time.").add({}, info.state.failures);
    }

    if (info.store) {
      const { store } = info;
      const id = { store: store.type, ...(store.replica === undefined ? {} : { replica: store.replica }) };
      family("store_current", "gauge", "1 while this replica is current with its store (always for the file store); 0: GET / serves PAUSE.").add(id, store.current ? 1 : 0);
      family("store_revision", "gauge", "The store revision this replica stands on.").add(id, Number(store.revision));
      if (store.leading !== undefined) {
        family("store_leading", "gauge", "1 while this replica leads (runs the leader-only sources and relays).").add(id, store.leading ? 1 : 0);
      }
    }

    const changes = family("changes_total", "counter", "Changes of the effective signal, by the source whose claim caused them.");
    for (const [key, count] of this.#changes) {
      const [source, to] = JSON.parse(key) as [string, string];
      changes.add({ source, signal: to }, count);
    }
    const claimed = family("claims_total", "counter", "Claims that changed a source's state (and manual requests), by source and state.");
    for (const [key, count] of this.#claims) {
      const [source, state] = JSON.parse(key) as [string, string];
      claimed.add({ source, state }, count);
    }
    const claim = family("claim", "gauge", "Each source's current claim: 1 for its state, 0 for the others.");
    for (const current of snapshot.claims) {
      for (const name of SIGNALS) claim.add({ source: current.source, state: name }, current.state === name ? 1 : 0);
    }

    const healthy = family("source_healthy", "gauge", "1 while a plugin is healthy (its last report was an observation, not a problem).");
    const warnings = family("source_warnings_total", "counter", "Problems a plugin reported.");
    const restarts = family("source_restarts_total", "counter", "Times a plugin's run failed and was restarted.");
    const observed = family("source_last_observation_timestamp_seconds", "gauge", "When a plugin last observed something.");
    // Only when told which sources wait (the HTTP route tells it): renderings without it stay as they were.
    const waiting = info.waiting && family("source_waiting", "gauge", "1 while a source has not observed once yet (its fail-closed claim holds; readiness does not wait for it).");
    const waitingNames = new Set(info.waiting ?? []);
    // The plugins' own families: first the known types' (always shown), then any other a plugin declares.
    const descriptions = info.sources.map((source) => info.describe?.(source));
    const pluginFamilies = new Map<string, Family>();
    const declare = (spec: MetricFamilySpec) => {
      if (pluginFamilies.has(spec.name) || CORE_FAMILIES.has(spec.name) || !METRIC_NAME.test(spec.name)) return;
      pluginFamilies.set(spec.name, family(spec.name, spec.type, spec.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")));
    };
    for (const spec of this.#kindFamilies) declare(spec);
    for (const description of descriptions) for (const spec of description?.metrics ?? []) declare(spec);
    info.sources.forEach((source, index) => {
      const id = { source: source.name, kind: source.kind };
      healthy.add(id, source.health === "ok" ? 1 : 0);
      warnings.add(id, source.warnings);
      restarts.add(id, source.restarts);
      const observation = source.last_observation;
      if (observation) observed.add(id, Date.parse(observation.at) / 1000);
      waiting?.add(id, waitingNames.has(source.name) ? 1 : 0);
      for (const sample of samplesOf(descriptions[index], source)) {
        const target = pluginFamilies.get(sample.family);
        if (!target || !Object.keys(sample.labels).every((key) => LABEL_NAME.test(key))) continue;
        // A histogram takes only its own series; a gauge or counter none of them.
        if ((target.type === "histogram") !== (sample.suffix !== undefined) || (sample.suffix && !HISTOGRAM_SUFFIXES.has(sample.suffix))) continue;
        target.add(sample.labels, sample.value, sample.suffix);
      }
    });

    const subscribers = family("subscribers", "gauge", "Clients waiting for changes: open event streams and pending long-polls.");
    subscribers.add({ kind: "events" }, info.subscribers.events).add({ kind: "long_polls" }, info.subscribers.longPolls);
    const requests = family("http_requests_total", "counter", "HTTP requests answered, by route, method and status code.");
    const counts = new Map(this.#requests);
    if (this.#polls > 0) counts.set(POLL_KEY, (counts.get(POLL_KEY) ?? 0) + this.#polls);
    for (const [key, count] of counts) {
      const [route, method, code] = key.split("\n") as [string, string, string];
      requests.add({ route, method, code }, count);
    }
    return `${families.map((f) => f.render()).join("\n")}\n`;
  }
}

const POLL_KEY = "/\nGET\n200";
const HISTOGRAM_SUFFIXES = new Set(["_bucket", "_sum", "_count"]);

/** A plugin's samples; one that throws shows none rather than breaking the scrape. */
function samplesOf(description: PluginDescription | undefined, source: PluginStatus) {
  try {
    return description?.samples?.(source) ?? [];
  } catch {
    return [];
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
