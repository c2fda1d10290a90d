/**
 * Alertmanager webhook source: `POST /hooks/<name>` takes Alertmanager's
 * webhook payload (version 4). Firing alerts that match a rule give that
 * rule's claim (PAUSE unless the rule says STOP); the claim is released
 * when every matching alert is resolved.
 *
 * Alerts are tracked by fingerprint, so a group that resolves one alert of
 * two keeps the claim for the other. A resolve can come late or never (a
 * receiver down, `send_resolved: false`), so an alert not re-sent within
 * `max_age` is dropped; Alertmanager re-sends firing alerts every
 * `repeat_interval`, so set `max_age` above it.
 *
 * The tracked alerts are kept in the state file with the claim (its memo): Alertmanager does not
 * say again what it said before a restart until `repeat_interval`, so after one the source picks
 * up its alerts and their ages where they were, instead of starting from "nothing is firing".
 */
import * as v from "valibot";
import {
  type Assert,
  type Claim,
  claimMade,
  claimSaved,
  type DefinedPlugin,
  definePlugin,
  delay,
  durationSchema,
  formatDuration,
  jsonResponse,
  looseSection,
  MaxBodyBytesSchema,
  messageOf,
  mostSevere,
  PluginNameSchema,
  readJsonBody,
  requireBearer,
  requirePost,
  type SameType,
  type Signal,
  type SourceContext,
  type TokenSource,
  TokenSourceSchema,
} from "../plugin.ts";
import { type Matcher, MatcherError, parseMatcher } from "./alert_matchers.ts";

export const ALERTMANAGER_KIND = "alertmanager";

/** Alertmanager sends every alert of a group with its annotations: allow large groups. */
const DEFAULT_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024;

const MatcherSchema = v.pipe(
  v.string('a label matcher such as severity="critical"'),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    try {
      return parseMatcher(dataset.value);
    } catch (error) {
      // issueLine prints "got <value>; allowed: <message>": the message says what is allowed.
      addIssue({ message: error instanceof MatcherError ? error.allowed : (error as Error).message });
      return NEVER;
    }
  }),
);

const RuleSchema = v.strictObject({
  /** Every matcher must match; none = every alert. */
  match: v.optional(v.array(MatcherSchema, "a list of label matchers"), []),
  /** @default "PAUSE" */
  claim: v.optional(v.picklist(["PAUSE", "STOP"], "PAUSE or STOP"), "PAUSE"),
});

/** An Alertmanager source's options, as given (in the config: `chaos_signal.sources[]` with `type: alertmanager`). */
export interface AlertmanagerSourceOptions {
  name: string;
  rules?: AlertRuleOptions[] | undefined;
  max_age?: string | number | undefined;
  max_body_bytes?: number | string | undefined;
  token?: TokenSource | undefined;
}

/** One of `rules`, as given: label matchers such as `severity="critical"`, and the claim. */
export interface AlertRuleOptions {
  match?: string[] | undefined;
  claim?: "PAUSE" | "STOP" | undefined;
}

/**
 * An Alertmanager source's options once parsed: defaults filled in, matchers parsed, the token
 * read, `max_age` in milliseconds.
 */
export interface ParsedAlertmanagerSourceOptions {
  name: string;
  rules: ParsedAlertRule[];
  max_age: number;
  max_body_bytes: number;
  token?: string | undefined;
}

/** One of `rules` once parsed. */
export interface ParsedAlertRule {
  match: Matcher[];
  claim: "PAUSE" | "STOP";
}

/** The schema as valibot infers it: `AlertmanagerSourceSchema` is typed by hand (JSR), and checked against it below. */
const alertmanagerSourceSchema = v.strictObject({
  /** The source's name; the route is `/hooks/<name>`. */
  name: PluginNameSchema,
  /**
   * Which alerts count and what they claim; the first rule that matches an
   * alert decides, and alerts no rule matches are ignored.
   * @default [{ match: [], claim: "PAUSE" }] (every alert pauses)
   */
  rules: v.optional(v.pipe(v.array(RuleSchema, "a list of {match, claim} rules"), v.minLength(1, "at least one rule")), [{}]),
  /** An alert not re-sent within this long is dropped. @default "6h" (Alertmanager's repeat_interval is 4h) */
  max_age: v.optional(durationSchema(1000, 30 * 86_400_000), "6h"),
  /** Larger payloads get 413 and change nothing. @default 4194304 (4 MiB) */
  max_body_bytes: v.optional(MaxBodyBytesSchema, DEFAULT_MAX_PAYLOAD_BYTES),
  /** Require `Authorization: Bearer <token>` (Alertmanager's `http_config.authorization`). */
  token: v.optional(TokenSourceSchema),
});

/** The options of an Alertmanager source. */
export const AlertmanagerSourceSchema: v.GenericSchema<AlertmanagerSourceOptions, ParsedAlertmanagerSourceOptions> =
  alertmanagerSourceSchema;
type _Input = Assert<SameType<v.InferInput<typeof alertmanagerSourceSchema>, AlertmanagerSourceOptions>>;
type _Output = Assert<SameType<v.InferOutput<typeof alertmanagerSourceSchema>, ParsedAlertmanagerSourceOptions>>;

const LABELS_RULE = "an object of label names to strings";

/** Alertmanager's webhook payload, version 4; unknown fields (newer versions) are tolerated, arrays for objects are not. */
const AlertSchema = looseSection({
  status: v.picklist(["firing", "resolved"], "firing or resolved"),
  labels: v.pipe(
    // valibot's record takes an array as an object with keys "0", "1", ...
    v.custom<Record<string, unknown>>((input) => typeof input === "object" && input !== null && !Array.isArray(input), LABELS_RULE),
    // Without its own message the value schema would answer valibot's "Invalid type: ...".
    v.record(v.string(), v.string("a string (label values are strings)"), LABELS_RULE),
  ),
  // annotations, startsAt, generatorURL, ... are not read, so not checked either.
  fingerprint: v.optional(v.string("a string")),
  // Kept for /status after a restart when it is a string; anything else is left out.
  startsAt: v.optional(v.unknown()),
}, "an alert object");

const PayloadSchema = looseSection({
  version: v.optional(v.string('a string such as "4"')),
  status: v.optional(v.picklist(["firing", "resolved"], "firing or resolved")),
  alerts: v.array(AlertSchema, "a list of alerts"),
  truncatedAlerts: v.optional(v.number("a number")),
}, "Alertmanager's webhook payload (a JSON object with an alerts list)");

interface TrackedAlert {
  readonly name: string;
  readonly claim: Signal;
  readonly lastSeen: number;
  readonly labels?: Record<string, string>;
  readonly startsAt?: string;
}

/** At most this many alerts are kept in the state file, the most severe first. */
export const MAX_REMEMBERED_ALERTS = 1000;

/** The tracked alerts as the claim's memo keeps them. */
const RememberedAlertsSchema = v.object({
  alerts: v.array(v.object({
    fingerprint: v.string(),
    name: v.string(),
    claim: v.picklist(["PAUSE", "STOP"]),
    last_seen: v.pipe(v.string(), v.isoTimestamp()),
    starts_at: v.optional(v.string()),
    labels: v.optional(v.record(v.string(), v.string())),
  })),
});

/** Stands for a restored claim whose alerts are unknown (a state file from before memos, or a memo too large to keep). */
const RESTORED_CLAIM = "(restored claim)";

/** Alertmanager's fingerprint, or one made from the sorted labels when a sender omits it. */
function fingerprintOf(alert: { fingerprint?: string | undefined; labels: Record<string, string> }): string {
  if (alert.fingerprint) return alert.fingerprint;
  return JSON.stringify(Object.entries(alert.labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Names for a reason: each once, at most three, then a count. */
function listed(names: readonly string[]): string {
  const unique = [...new Set(names)];
  return unique.length > 3 ? `${unique.slice(0, 3).join(", ")} and ${unique.length - 3} more` : unique.join(", ");
}

/** Makes an Alertmanager webhook source (`POST /hooks/<name>`). */
export const alertmanagerSource: DefinedPlugin<typeof AlertmanagerSourceSchema> = definePlugin(ALERTMANAGER_KIND, AlertmanagerSourceSchema, (options) => {
  const rules = options.rules.map((rule) => ({ matchers: rule.match as Matcher[], claim: rule.claim as Signal }));
  const tracked = new Map<string, TrackedAlert>();
  let deliveries = 0;
  let pickedUp = false;

  /**
   * Once: seeds the tracked alerts from the claim restored from the state file. Without a usable
   * memo a restored PAUSE or STOP still stands, as one entry that ages from the claim's last update.
   */
  function pickUpRestored(context: SourceContext): Claim | undefined {
    if (pickedUp) return undefined;
    pickedUp = true;
    const restored = context.restored();
    if (!restored || restored.state === "RUN") return undefined;
    const memo = v.safeParse(RememberedAlertsSchema, restored.memo);
    if (memo.success && memo.output.alerts.length) {
      for (const alert of memo.output.alerts) {
        tracked.set(alert.fingerprint, {
          name: alert.name,
          claim: alert.claim,
          lastSeen: new Date(alert.last_seen).getTime(),
          ...(alert.labels ? { labels: alert.labels } : {}),
          ...(alert.starts_at ? { startsAt: alert.starts_at } : {}),
        });
      }
    } else {
      if (restored.memo !== undefined) context.warn("the alerts kept in the state file are unreadable: the restored claim stands until max_age");
      tracked.set(RESTORED_CLAIM, { name: RESTORED_CLAIM, claim: restored.state, lastSeen: restored.updated.getTime() });
    }
    return restored;
  }

  /** The tracked alerts for the state file: bounded, the most severe (then the latest) first. */
  function memo() {
    const alerts = [...tracked].filter(([fingerprint]) => fingerprint !== RESTORED_CLAIM)
      .sort(([, a], [, b]) => (a.claim === b.claim ? b.lastSeen - a.lastSeen : a.claim === "STOP" ? -1 : 1))
      .slice(0, MAX_REMEMBERED_ALERTS)
      .map(([fingerprint, alert]) => ({
        fingerprint,
        name: alert.name,
        claim: alert.claim,
        last_seen: new Date(alert.lastSeen).toISOString(),
        ...(alert.startsAt ? { starts_at: alert.startsAt } : {}),
        ...(alert.labels ? { labels: alert.labels } : {}),
      }));
    return { alerts };
  }

  function ruleFor(labels: Record<string, string>) {
    return rules.find((rule) => rule.matchers.every((matcher) => matcher.matches(labels)));
  }

  /** Drops alerts not re-sent within max_age; returns their names, for the claim's reason. */
  function expire(context: SourceContext): string[] {
    const now = Date.now();
    const dropped: string[] = [];
    for (const [fingerprint, alert] of tracked) {
      if (now - alert.lastSeen >= options.max_age) {
        tracked.delete(fingerprint);
        dropped.push(alert.name);
        context.log(`alert ${alert.name} (${fingerprint}) not re-sent within max_age ${formatDuration(options.max_age)}: dropped`);
      }
    }
    return dropped;
  }

  /** Reports the claim the tracked alerts add up to. */
  function settle(context: SourceContext, actor?: string, dropped: readonly string[] = []): Promise<Signal> {
    const claimOptions = actor === undefined ? {} : { actor };
    context.observe({ deliveries, firing: [...tracked.values()].map((alert) => alert.name) });
    if (tracked.size === 0) {
      const why = dropped.length ? `; ${listed(dropped)} not re-sent within max_age ${formatDuration(options.max_age)}` : "";
      return context.release(`no matching alert is firing${why}`, claimOptions);
    }
    let state: Signal = "RUN";
    for (const alert of tracked.values()) state = mostSevere(state, alert.claim);
    const names = [...tracked.values()].map((alert) => alert.name);
    return context.claim(state, `${tracked.size} alert${tracked.size === 1 ? "" : "s"} firing: ${listed(names)}`, { ...claimOptions, memo: memo() });
  }

  return {
    name: options.name,
    kind: ALERTMANAGER_KIND,
    authenticates: options.token !== undefined,
    async run(context) {
      // A restored PAUSE or STOP stands as it was (claiming it again would only renew its time);
      // anything else starts from "nothing is firing".
      if (pickUpRestored(context)) {
        context.observe({ deliveries, firing: [...tracked.values()].map((alert) => alert.name), restored: tracked.size });
      } else if (!tracked.size) {
        await settle(context).catch(() => {});
      }
      const every = Math.max(200, Math.min(options.max_age / 10, 60_000));
      /** A release that could not be saved (a RUN is made only once saved): tried again next tick. */
      let unsettled = false;
      while (!context.abort.aborted) {
        await delay(every, context.abort).catch(() => {});
        // Claim again only when an alert expired: re-claiming on every tick would undo an
        // operator's forced RUN within seconds, long before Alertmanager sends anything new.
        const dropped = context.abort.aborted ? [] : expire(context);
        if (dropped.length || unsettled) {
          unsettled = await settle(context, undefined, dropped).then(() => false, () => true);
          // The state may be unchanged (another alert still fires): save the shorter list anyway.
          context.saved().catch((error) => context.warn(`saving the tracked alerts failed: ${messageOf(error)}`));
        }
      }
    },
    async fetch(request, { source, remoteAddress }) {
      requirePost(request);
      if (options.token !== undefined) requireBearer(request, options.token);
      const payload = await readJsonBody(request, PayloadSchema, options.max_body_bytes, "Alertmanager's webhook payload");
      pickUpRestored(source);
      const now = Date.now();
      for (const alert of payload.alerts) {
        const rule = ruleFor(alert.labels);
        if (!rule) continue;
        const fingerprint = fingerprintOf(alert);
        if (alert.status === "firing") {
          tracked.set(fingerprint, {
            name: alert.labels.alertname ?? fingerprint,
            claim: rule.claim,
            lastSeen: now,
            labels: alert.labels,
            ...(typeof alert.startsAt === "string" ? { startsAt: alert.startsAt.slice(0, 64) } : {}),
          });
        } else {
          tracked.delete(fingerprint);
        }
      }
      deliveries += 1;
      // The 2xx goes out only after the claim is applied and saved: Alertmanager retries on 5xx.
      const signal = await claimMade(settle(source, remoteAddress, expire(source)));
      // After settle, whose observation would otherwise mark the source healthy again at once.
      if (payload.truncatedAlerts) {
        source.warn(`Alertmanager left out ${payload.truncatedAlerts} alerts (max_alerts): claims may be incomplete`);
      }
      await claimSaved(source);
      return jsonResponse({ signal, source: options.name, firing: tracked.size });
    },
  };
});
