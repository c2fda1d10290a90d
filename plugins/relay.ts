/**
 * Relay: pushes every change of the effective signal to downstream signal
 * endpoints, so a stock Krkn run (which polls only the server it embeds)
 * follows chaos-signal. One `RelayTarget` loop per URL; their state is the
 * relay's observation in `/status`.
 */
import * as v from "valibot";
import {
  aborted,
  type DashboardCard,
  definePlugin,
  durationSchema,
  httpUrl,
  type MetricSample,
  type PluginDescription,
  PluginNameSchema,
  strictSection,
  TokenSourceSchema,
} from "../plugin.ts";
import { failureLine, RelayTarget, type RelayTargetStatus } from "./relay_target.ts";
import { describeTargetChange, DISCOVERY_ENTRIES, hasTargetKind, NO_TARGET_KIND, TargetDiscovery } from "./relay_discovery.ts";

export const RELAY_KIND = "relay";

const URL_RULE = "an http(s) URL without user:password@ (credentials would show in /status and logs; use token)";
const UrlSchema = httpUrl(URL_RULE);

export const RelaySchema = v.pipe(strictSection({
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
}, "a mapping of the relay's options"), v.check((options) => hasTargetKind(options), NO_TARGET_KIND));

export type RelayOptions = v.InferInput<typeof RelaySchema>;

/** The targets' states, as the relay observes them (an older observation may have none). */
function targetsOf(observation: Record<string, unknown> | null): readonly RelayTargetStatus[] {
  return observation && Array.isArray(observation.targets) ? observation.targets as RelayTargetStatus[] : [];
}

/** In `/metrics`: each target's sync state; on the dashboard: a card per target. */
export const RELAY_DESCRIPTION: PluginDescription = {
  metrics: [
    { name: "relay_target_in_sync", type: "gauge", help: "1 while a relay target is known to hold the latest signal." },
    { name: "relay_target_failures", type: "gauge", help: "Failed requests in a row to a relay target." },
  ],
  samples({ name, last_observation }) {
    return targetsOf(last_observation).flatMap((target): MetricSample[] => [
      { family: "relay_target_in_sync", labels: { relay: name, target: target.url }, value: target.in_sync ? 1 : 0 },
      { family: "relay_target_failures", labels: { relay: name, target: target.url }, value: target.failures },
    ]);
  },
  cards({ name, last_observation }) {
    const signalAt = (event: { signal: string; at: string } | null) => event && { at: event.at, text: event.signal };
    return targetsOf(last_observation).map((target): DashboardCard => ({
      section: { id: "relays", title: "Relay targets" },
      title: target.url,
      badge: target.in_sync ? { text: "in sync", tone: "ok" } : { text: "out of sync", tone: "bad" },
      fields: [
        ["relay", name],
        ["last pushed", signalAt(target.last_pushed)],
        ["last seen", signalAt(target.last_seen)],
        ["last error", target.last_error && { at: target.last_error.at, text: target.last_error.message }],
        ["failures", target.failures],
      ],
    }));
  },
};

export const relay = definePlugin(RELAY_KIND, RelaySchema, (options) => {
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const newTarget = (url: string) =>
    new RelayTarget({
      url,
      intervalMs: options.interval,
      timeoutMs: options.timeout,
      backoffMs: Math.min(250, options.max_backoff),
      maxBackoffMs: options.max_backoff,
      refusedRetryMs: options.refused_retry,
      headers,
    });
  const discovery = new TargetDiscovery(options);
  /** The targets pushed to now, by URL, each with what ends its loop. */
  const targets = new Map<string, { target: RelayTarget; stop: AbortController }>();
  return {
    name: options.name,
    kind: RELAY_KIND,
    onChange() {
      for (const { target } of targets.values()) target.wake();
    },
    async run(context) {
      const report = (_target?: RelayTarget, error?: Error) => {
        const statuses = [...targets.values()].map(({ target }) => target.status());
        const found = discovery.status();
        context.observe({ in_sync: statuses.length > 0 && statuses.every((s) => s.in_sync), targets: statuses, ...(found ? { discovery: found } : {}) });
        // Health covers every target: one that works must not hide one that is down.
        const down = statuses.find((s) => s.failures > 0 && s.last_error);
        const failing = error?.message ?? (down && failureLine(down.url, down.last_error!.message)) ?? discovery.problem();
        if (failing) context.warn(failing);
      };
      const running = new Set<Promise<void>>();
      /**
       * Replaces the target set: a new target gets the current signal at once (its loop starts
       * with a push), a removed one is pushed no more and leaves `/status`; the log says both.
       */
      const setTargets = (urls: readonly string[]) => {
        const wanted = new Set(urls);
        const removed = [...targets.keys()].filter((url) => !wanted.has(url));
        const added = urls.filter((url) => !targets.has(url));
        for (const url of removed) {
          targets.get(url)!.stop.abort(new Error(`${url} is no longer a target`));
          targets.delete(url);
        }
        for (const url of added) {
          const entry = { target: newTarget(url), stop: new AbortController() };
          targets.set(url, entry);
          const loop: Promise<void> = entry.target
            .run({ ...context, abort: AbortSignal.any([context.abort, entry.stop.signal]) }, report)
            .catch((error) => context.warn(error))
            .finally(() => running.delete(loop));
          running.add(loop);
        }
        if (discovery.dynamic && (added.length || removed.length)) {
          discovery.noteChange(added, removed);
          context.log(describeTargetChange(added, removed));
        }
      };
      // A restarted run starts from the set it finds, not from the loops of the one that failed.
      for (const { stop } of targets.values()) stop.abort();
      targets.clear();
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
      await Promise.all([discovering, aborted(context.abort)]);
      await Promise.allSettled([...running]);
    },
  };
}, RELAY_DESCRIPTION);
