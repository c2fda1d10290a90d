/**
 * Relay: pushes every change of the effective signal to downstream signal
 * endpoints, so a stock Krkn run (which polls only the server it embeds)
 * follows chaos-signal. One `RelayTarget` loop per URL, in a `Fleet` that
 * keeps the counts; `/status` shows the counts and the targets out of sync
 * (at most 50), `GET /status/relays/<name>` pages through all of them.
 */
import * as v from "valibot";
import {
  aborted,
  type Assert,
  type DashboardCard,
  type DefinedPlugin,
  definePlugin,
  durationSchema,
  HttpError,
  httpUrl,
  issueLine,
  type MetricSample,
  type PluginDescription,
  PluginNameSchema,
  type PluginStatus,
  type SameType,
  type SectionSchema,
  strictSection,
  TokenSourceSchema,
} from "../plugin.ts";
import type { DnsTargetsOptions } from "./relay_dns.ts";
import { describeTargetChange, DISCOVERY_ENTRIES, hasTargetKind, NO_TARGET_KIND, TargetDiscovery, targetChangeNote } from "./relay_discovery.ts";
import { Fleet, type FleetCounts, type LastChange, REACH_ALL_BUCKETS } from "./relay_fleet.ts";
import { Slots } from "./relay_slots.ts";
import type { RelayTargetStatus } from "./relay_target.ts";

export const RELAY_KIND = "relay";
/** Requests of one relay in flight at most: see the README's "Drive a fleet" for the measurement. */
export const DEFAULT_CONCURRENCY = 32;
/** Targets not in sync listed in `/status`; the rest are counted, and paged at `/status/relays/<name>`. */
export const MAX_LISTED_TARGETS = 50;
/** Of those, the ones with a dashboard card of their own (the counts card says how many more). */
export const MAX_TARGET_CARDS = 20;

const CONCURRENCY_RULE = "a whole number from 1 to 4096";
const URL_RULE = "an http(s) URL without user:password@ (credentials would show in /status and logs; use token)";
const UrlSchema = httpUrl(URL_RULE);

/**
 * A relay's options, as given (in the config: `chaos_signal.relays[]`): a mapping, checked key
 * by key (see `RelaySchema`).
 */
export type RelayOptions = Record<string, unknown>;

/** A relay's options once parsed: defaults filled in, the token read, durations in milliseconds. */
export interface ParsedRelayOptions {
  name: string;
  targets?: string[] | undefined;
  targets_dns?: DnsTargetsOptions | undefined;
  targets_file?: string | undefined;
  interval: number;
  timeout: number;
  max_backoff: number;
  refused_retry: number;
  token?: string | undefined;
  concurrency: number;
  per_target_metrics: boolean;
}

/** The schema as valibot infers it: `RelaySchema` is typed by hand (JSR), and checked against it below. */
const relaySchema = v.pipe(strictSection({
  /** The relay's name, unique among plugins. */
  name: PluginNameSchema,
  /** Base URLs of the signal endpoints to keep in step, such as Krkn's http://10.0.0.7:8081. */
  targets: v.optional(v.pipe(v.array(UrlSchema, "a list of URLs"), v.minLength(1, "at least one URL"))),
  /** Targets found by DNS or in a file, beside `targets` (relay_discovery.ts). */
  ...DISCOVERY_ENTRIES,
  /** How often each target is read back and corrected. @default "10s" */
  interval: v.optional(durationSchema(50, 3_600_000), "10s"),
  /** Per request. @default "2s" */
  timeout: v.optional(durationSchema(10, 60_000), "2s"),
  /** The longest wait between retries to a target that is down. @default "30s" */
  max_backoff: v.optional(durationSchema(10, 600_000), "30s"),
  /** The longest wait between retries to a target that refuses connections (nothing listens yet). @default "1s" */
  refused_retry: v.optional(durationSchema(10, 600_000), "1s"),
  /** Sent as `Authorization: Bearer` (to another chaos-signal that requires one). */
  token: v.optional(TokenSourceSchema),
  /** Requests in flight at most, over all targets (measured: bench/fleet.ts). @default 128 */
  concurrency: v.optional(v.pipe(v.number(CONCURRENCY_RULE), v.integer(CONCURRENCY_RULE), v.minValue(1, CONCURRENCY_RULE), v.maxValue(4096, CONCURRENCY_RULE)), DEFAULT_CONCURRENCY),
  /** Also a series per target in `/metrics` (one per URL: mind the cardinality). @default false */
  per_target_metrics: v.optional(v.boolean("true or false"), false),
}, "a mapping of the relay's options"), v.check((options) => hasTargetKind(options), NO_TARGET_KIND));

/** The options of a relay. */
export const RelaySchema: SectionSchema<ParsedRelayOptions> = relaySchema;
type _Input = Assert<SameType<v.InferInput<typeof relaySchema>, RelayOptions>>;
type _Output = Assert<SameType<v.InferOutput<typeof relaySchema>, ParsedRelayOptions>>;

/** What `/status` shows of a relay (its `last_observation`, besides `at`). */
export type RelayObservation = {
  counts: FleetCounts;
  last_change: LastChange | null;
  /** Targets not in sync, the failing ones first: at most MAX_LISTED_TARGETS. */
  unsynced: RelayTargetStatus[];
  /** Where every target is listed, paged. */
  targets_page: string;
};

function observationOf(status: PluginStatus): Partial<RelayObservation> {
  return (status.last_observation ?? {}) as Partial<RelayObservation>;
}

const AGGREGATES = [
  { name: "relay_targets", type: "gauge", help: "Targets of a relay." },
  { name: "relay_targets_in_sync", type: "gauge", help: "Targets of a relay known to hold the latest signal." },
  { name: "relay_targets_failing", type: "gauge", help: "Targets of a relay whose last request failed." },
  { name: "relay_change_reach_all_seconds", type: "histogram", help: "Time for a change of the signal to reach every target of a relay." },
] as const;
const PER_TARGET = [
  { name: "relay_target_in_sync", type: "gauge", help: "1 while a relay target is known to hold the latest signal (per_target_metrics)." },
  { name: "relay_target_failures", type: "gauge", help: "Failed requests in a row to a relay target (per_target_metrics)." },
] as const;

/** The counts, from the status alone (the type's description: no instance needed). */
function aggregateSamples(status: PluginStatus): MetricSample[] {
  const counts = observationOf(status).counts;
  if (!counts) return [];
  const relay = { relay: status.name };
  return [
    { family: "relay_targets", labels: relay, value: counts.targets },
    { family: "relay_targets_in_sync", labels: relay, value: counts.in_sync },
    { family: "relay_targets_failing", labels: relay, value: counts.failing },
  ];
}

/** On the dashboard: one card with the relay's counts, then one per target not in sync. */
function relayCards(status: PluginStatus): DashboardCard[] {
  const { counts, last_change: change, unsynced = [], targets_page: page } = observationOf(status);
  if (!counts) return [];
  const shown = unsynced.slice(0, MAX_TARGET_CARDS);
  const more = counts.targets - counts.in_sync - shown.length;
  const section = { id: "relays", title: "Relays" };
  const badge = counts.failing > 0
    ? { text: `${counts.failing} failing`, tone: "bad" as const }
    : counts.out_of_sync > 0
    ? { text: `${counts.out_of_sync} out of sync`, tone: "warn" as const }
    : { text: "all in sync", tone: "ok" as const };
  const reached = change && (change.reached_all_ms === null ? `${change.signal}, not everywhere yet` : `${change.signal}, at all in ${change.reached_all_ms} ms`);
  const signalAt = (event: { signal: string; at: string } | null) => event && { at: event.at, text: event.signal };
  return [
    {
      section,
      title: `relay ${status.name}`,
      badge,
      fields: [
        ["targets", counts.targets],
        ["in sync", counts.in_sync],
        ["out of sync", counts.out_of_sync],
        ["failing", counts.failing],
        ["last change", change ? { at: change.at, text: reached! } : null],
        ...(more > 0 ? [["not in sync, without a card", `${more}: see ${page}`] as const] : []),
      ],
    },
    // Short cards: a fleet's /status stays small with 50 targets down.
    ...shown.map((target): DashboardCard => ({
      section,
      title: target.url,
      badge: target.failures > 0 ? { text: `failing (${target.failures})`, tone: "bad" } : { text: "out of sync", tone: "warn" },
      fields: target.last_error && target.failures > 0
        ? [["last error", { at: target.last_error.at, text: target.last_error.message }]]
        : [["last seen", signalAt(target.last_seen)]],
    })),
  ];
}

/** In `/metrics`: each relay's counts (and, from the instance, its histogram); on the dashboard: its counts and the targets not in sync. */
export const RELAY_DESCRIPTION: PluginDescription = {
  metrics: [...AGGREGATES, ...PER_TARGET],
  samples: aggregateSamples,
  cards: relayCards,
};

const LIMIT_RULE = "a whole number from 1 to 1000 (default 100)";
const PageQuerySchema = strictSection({
  limit: v.optional(v.pipe(v.string(), v.regex(/^[1-9]\d{0,3}$/, LIMIT_RULE), v.transform(Number), v.maxValue(1000, LIMIT_RULE)), "100"),
  /** A cursor: the targets whose URL sorts after it (the previous page's `next`). */
  after: v.optional(v.pipe(v.string(), v.maxLength(2048, "a target URL of at most 2048 characters (the previous page's next)"))),
}, "limit and after only");

/** `GET /status/relays/<name>?limit=&after=`: the query, or a 400 that names the parameter, the value and the rule. */
function pageQuery(query: URLSearchParams, name: string): { limit: number; after: string | undefined } {
  const keys = [...query.keys()];
  const repeated = keys.find((key, index) => keys.indexOf(key) !== index);
  const where = (key: string) => `query parameter "${key}" of GET /status/relays/${name}`;
  if (repeated) throw new HttpError(400, `${where(repeated)}: given twice; give it once`);
  const given = Object.fromEntries(query);
  const parsed = v.safeParse(PageQuerySchema, given);
  if (!parsed.success) throw new HttpError(400, issueLine(parsed.issues, where, given));
  return { limit: Number(parsed.output.limit), after: parsed.output.after };
}

/** Makes a relay: every change of the signal pushed to other signal endpoints. */
export const relay: DefinedPlugin<typeof RelaySchema> = definePlugin(RELAY_KIND, RelaySchema, (options) => {
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const discovery = new TargetDiscovery(options);
  const fleet = new Fleet({
    intervalMs: options.interval,
    timeoutMs: options.timeout,
    backoffMs: Math.min(250, options.max_backoff),
    maxBackoffMs: options.max_backoff,
    refusedRetryMs: options.refused_retry,
    headers,
    slots: new Slots(options.concurrency),
  }, discovery.urls());
  const discoveryStatus = () => {
    const found = discovery.status();
    return found ? { discovery: found } : {};
  };
  const observation = (): RelayObservation => ({
    counts: fleet.counts(),
    last_change: fleet.lastChange(),
    unsynced: fleet.unsynced(MAX_LISTED_TARGETS),
    targets_page: `/status/relays/${encodeURIComponent(options.name)}`,
    ...discoveryStatus(),
  });
  const description: PluginDescription = {
    ...RELAY_DESCRIPTION,
    samples(status) {
      const relayLabel = { relay: status.name };
      const histogram = fleet.histogram();
      const samples: MetricSample[] = [
        ...aggregateSamples(status),
        ...histogram.buckets.map((count, index): MetricSample => ({
          family: "relay_change_reach_all_seconds",
          suffix: "_bucket",
          labels: { ...relayLabel, le: index < REACH_ALL_BUCKETS.length ? String(REACH_ALL_BUCKETS[index]) : "+Inf" },
          value: count,
        })),
        { family: "relay_change_reach_all_seconds", suffix: "_sum", labels: relayLabel, value: histogram.sum },
        { family: "relay_change_reach_all_seconds", suffix: "_count", labels: relayLabel, value: histogram.count },
      ];
      if (!options.per_target_metrics) return samples;
      for (let page = fleet.page(undefined, 1000);; page = fleet.page(page.next, 1000)) {
        for (const target of page.targets) {
          const labels = { relay: status.name, target: target.url };
          samples.push({ family: "relay_target_in_sync", labels, value: target.in_sync ? 1 : 0 });
          samples.push({ family: "relay_target_failures", labels, value: target.failures });
        }
        if (page.next === null) return samples;
      }
    },
    page(status, query) {
      const { limit, after } = pageQuery(query, status.name);
      const { targets, next } = fleet.page(after, limit);
      const { counts } = observationOf(status);
      return { relay: status.name, counts: counts ?? fleet.counts(), targets, next };
    },
  };
  return {
    name: options.name,
    kind: RELAY_KIND,
    description,
    onChange(event) {
      fleet.changed(event.signal, event.at.getTime());
    },
    async run(context) {
      /**
       * Replaces the target set (DNS, a file): a new target gets the current signal at once, a
       * removed one is pushed no more and leaves `/status`; the log and the audit history say both.
       */
      const setTargets = (urls: readonly string[]) => {
        const { added, removed } = fleet.set(urls);
        if (discovery.dynamic && (added.length || removed.length)) {
          discovery.noteChange(added, removed);
          context.log(describeTargetChange(added, removed));
          const note = targetChangeNote(added, removed, fleet.counts().targets);
          context.audit("targets", note.reason, note.details);
        }
      };
      let observed = false;
      const report = (_target?: unknown, error?: Error) => {
        // Healthy only while no target fails and discovery works: one that works must not hide
        // one that is down. The observation is live (counts on request), so the first report of
        // any kind sets it.
        if (!observed) context.observe(observation);
        observed = true;
        const failing = fleet.counts().failing > 0;
        const problem = error?.message ?? (failing ? undefined : discovery.problem());
        if (problem) context.warn(problem);
        else if (!failing) context.observe(observation);
      };
      let ready = false;
      const discovering = discovery.run(context, () => {
        if (ready) setTargets(discovery.urls());
        report();
      });
      // At start, the sources' first claims come before the first push: otherwise a restart
      // would push the bare signal_state (RUN) into Krkn for a moment.
      await context.sourcesReady(options.interval);
      ready = true;
      setTargets(discovery.urls());
      report();
      await Promise.all([discovering, fleet.run(context, report)]);
    },
  };
}, RELAY_DESCRIPTION);
