/**
 * Generic webhook source: `POST /hooks/<name>` with
 * `{"state": "PAUSE", "reason": "..."}` sets this source's claim
 * (`RUN` releases it). Optionally a claim expires when not refreshed within
 * `max_age`, for senders that may die without saying RUN.
 *
 * The claim is kept in the state file: after a restart it stands as it was, and `max_age` still
 * counts from when it was last made. The 2xx goes out once the claim is on disk.
 */
import * as v from "valibot";
import {
  aborted,
  type Assert,
  claimMade,
  claimSaved,
  DEFAULT_MAX_BODY_BYTES,
  type DefinedPlugin,
  definePlugin,
  delay,
  durationSchema,
  formatDuration,
  jsonResponse,
  looseSection,
  MaxBodyBytesSchema,
  parsedBy,
  parseSignal,
  PluginNameSchema,
  readJsonBody,
  requireBearer,
  requirePost,
  type SameType,
  type Signal,
  SIGNALS,
  type SourceContext,
  type TokenSource,
  TokenSourceSchema,
} from "../plugin.ts";

export const WEBHOOK_KIND = "webhook";

/** A webhook source's options, as given (in the config: `chaos_signal.sources[]` with `type: webhook`). */
export interface WebhookSourceOptions {
  name: string;
  token?: TokenSource | undefined;
  max_age?: string | number | undefined;
  max_body_bytes?: number | string | undefined;
}

/** A webhook source's options once parsed: defaults filled in, the token read, `max_age` in milliseconds. */
export interface ParsedWebhookSourceOptions {
  name: string;
  token?: string | undefined;
  max_age?: number | undefined;
  max_body_bytes: number;
}

/** The schema as valibot infers it: `WebhookSourceSchema` is typed by hand (JSR), and checked against it below. */
const webhookSourceSchema = v.strictObject({
  /** The source's name; the route is `/hooks/<name>`. */
  name: PluginNameSchema,
  /** Require `Authorization: Bearer <token>`. @default no token */
  token: v.optional(TokenSourceSchema),
  /** A claim not refreshed within this long is released. @default never */
  max_age: v.optional(durationSchema(1000, 30 * 86_400_000)),
  /** Larger bodies get 413 and change nothing. @default 65536 */
  max_body_bytes: v.optional(MaxBodyBytesSchema, DEFAULT_MAX_BODY_BYTES),
});

/** The options of a webhook source. */
export const WebhookSourceSchema: v.GenericSchema<WebhookSourceOptions, ParsedWebhookSourceOptions> =
  webhookSourceSchema;
type _Input = Assert<SameType<v.InferInput<typeof webhookSourceSchema>, WebhookSourceOptions>>;
type _Output = Assert<SameType<v.InferOutput<typeof webhookSourceSchema>, ParsedWebhookSourceOptions>>;

const STATE_RULE = `one of ${SIGNALS.join(", ")} (any letter case)`;

/** The body: tolerant of extra fields, strict about the ones it reads (and no array for an object). */
const WebhookBody = looseSection({
  // parseSignal folds ASCII case only: toUpperCase() would read "ſtop" (long s) as STOP.
  state: v.pipe(v.string(STATE_RULE), v.trim(), parsedBy(parseSignal, STATE_RULE)),
  reason: v.optional(
    v.pipe(
      v.string("a string of up to 500 characters"),
      v.maxLength(500, "a string of up to 500 characters"),
      // Reasons end up in one-line log entries.
      // deno-lint-ignore no-control-regex
      v.transform((reason) => reason.replace(/[\u0000-\u001f\u007f]+/g, " ").trim()),
    ),
  ),
}, 'a JSON object such as {"state": "PAUSE", "reason": "deploying"}');

/** Makes a webhook source (`POST /hooks/<name>`). */
export const webhookSource: DefinedPlugin<typeof WebhookSourceSchema> = definePlugin(WEBHOOK_KIND, WebhookSourceSchema, (options) => {
  let received = 0;
  /** When the standing claim was last made; 0 when there is none to expire. */
  let lastClaimAt = 0;
  let pickedUp = false;

  /** Once: a PAUSE or STOP from before a restart ages from when it was made, not from the restart. */
  function pickUpRestored(context: SourceContext): void {
    if (pickedUp) return;
    pickedUp = true;
    const restored = context.restored();
    if (restored && restored.state !== "RUN" && lastClaimAt === 0) lastClaimAt = restored.updated.getTime();
  }

  return {
    name: options.name,
    kind: WEBHOOK_KIND,
    authenticates: options.token !== undefined,
    async run(context: SourceContext) {
      pickUpRestored(context);
      context.observe({ received });
      const maxAge = options.max_age;
      if (maxAge === undefined) return await aborted(context.abort);
      // Check often enough that a claim outlives max_age by at most a tenth of it (or a second).
      const every = Math.max(200, Math.min(maxAge / 10, 1000));
      while (!context.abort.aborted) {
        await delay(every, context.abort).catch(() => {});
        const claimedAt = lastClaimAt;
        if (claimedAt && Date.now() - claimedAt >= maxAge) {
          // Forgotten only once released (a RUN is made once saved): else the next check tries again.
          await context.release(`no refresh within max_age ${formatDuration(maxAge)}`).then(() => {
            if (lastClaimAt === claimedAt) lastClaimAt = 0;
          }, () => {});
        }
      }
    },
    async fetch(request, { source, remoteAddress }) {
      requirePost(request);
      if (options.token !== undefined) requireBearer(request, options.token);
      const body = await readJsonBody(request, WebhookBody, options.max_body_bytes, '{"state": "RUN" | "PAUSE" | "STOP", "reason": "..."}');
      // An empty reason would leave /status and the log without a why.
      const reason = body.reason || `webhook said ${body.state}`;
      const claimOptions = { explicit: true, ...(remoteAddress === undefined ? {} : { actor: remoteAddress }) };
      pickUpRestored(source);
      const signal = await claimMade(body.state === "RUN" ? source.release(reason, claimOptions) : source.claim(body.state, reason, claimOptions));
      lastClaimAt = body.state === "RUN" ? 0 : Date.now();
      received += 1;
      source.observe({ received, state: body.state, reason });
      await claimSaved(source);
      return jsonResponse({ signal, source: options.name, state: body.state });
    },
  };
});
