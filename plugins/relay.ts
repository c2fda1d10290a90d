/**
 * Relay: pushes every change of the effective signal to downstream signal
 * endpoints, so a stock Krkn run (which polls only the server it embeds)
 * follows chaos-signal. One `RelayTarget` loop per URL; their state is the
 * relay's observation in `/status`.
 */
import * as v from "valibot";
import {
  definePlugin,
  durationSchema,
  httpUrl,
  PluginNameSchema,
  strictSection,
  TokenSourceSchema,
} from "../plugin.ts";
import { RelayTarget } from "./relay_target.ts";

export const RELAY_KIND = "relay";

const URL_RULE = "an http(s) URL without user:password@ (credentials would show in /status and logs; use token)";
const UrlSchema = httpUrl(URL_RULE);

export const RelaySchema = strictSection({
  /** The relay's name, unique among plugins. */
  name: PluginNameSchema,
  /** Base URLs of the signal endpoints to keep in step, such as Krkn's http://10.0.0.7:8081. */
  targets: v.pipe(v.array(UrlSchema, "a list of URLs"), v.minLength(1, "at least one URL")),
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
}, "a mapping of the relay's options");

export type RelayOptions = v.InferInput<typeof RelaySchema>;

export const relay = definePlugin(RELAY_KIND, RelaySchema, (options) => {
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const targets = options.targets.map((url) =>
    new RelayTarget({
      url,
      intervalMs: options.interval,
      timeoutMs: options.timeout,
      backoffMs: Math.min(250, options.max_backoff),
      maxBackoffMs: options.max_backoff,
      refusedRetryMs: options.refused_retry,
      headers,
    })
  );
  return {
    name: options.name,
    kind: RELAY_KIND,
    onChange() {
      for (const target of targets) target.wake();
    },
    async run(context) {
      const report = (_target: RelayTarget, error?: Error) => {
        const statuses = targets.map((t) => t.status());
        context.observe({ in_sync: statuses.every((s) => s.in_sync), targets: statuses });
        // Health covers every target: one that works must not hide one that is down.
        const failing = error ?? statuses.find((s) => s.failures > 0)?.last_error?.message;
        if (failing) context.warn(failing);
      };
      // At start, the sources' first claims come before the first push: otherwise a restart
      // would push the bare signal_state (RUN) into Krkn for a moment.
      await context.sourcesReady(options.interval);
      await Promise.all(targets.map((target) => target.run(context, report)));
    },
  };
});
