/**
 * Turns valibot issues into the one-line messages users see, for config
 * keys, flags, environment variables and query parameters alike:
 *
 *   kraken.port: got 70000; allowed: an integer from 0 to 65535
 *   chaos_signal.colour: unknown key; allowed keys: max_body_bytes, ...
 *   chaos_signal.stat_file: unknown key; did you mean "state_file"? allowed keys: ...
 *
 * Schemas carry "what is allowed" as their message; this file adds the name
 * of the thing and the bad value.
 */
import * as v from "valibot";

/** Values under keys like these are never echoed in error messages. */
const SECRET_KEY = /token|password|secret|credential|auth|headers|cookie/i;

/** True when a value is, or holds under some key, something secret-like. */
function holdsSecret(value: unknown, depth = 0): boolean {
  if (typeof value !== "object" || value === null || depth > 4) return false;
  return Object.entries(value).some(([key, inner]) => SECRET_KEY.test(key) || holdsSecret(inner, depth + 1));
}

/** What `mapping` makes: an object that is not an array. */
export type MappingSchema = v.CustomSchema<Record<string, unknown>, v.ErrorMessage<v.CustomIssue> | undefined>;

/** valibot's objects accept arrays; a YAML list where a mapping belongs is an error. */
function mapping(what: string): MappingSchema {
  return v.custom<Record<string, unknown>>(
    (input) => typeof input === "object" && input !== null && !Array.isArray(input),
    what,
  );
}

/** A mapping checked key by key (`strictSection`, `looseSection`), typed by what it gives. */
export type SectionSchema<TOutput> = v.GenericSchema<Record<string, unknown>, TOutput>;

/** What `strictSection` makes: a mapping, then an object with these entries and no others. */
export type StrictSectionSchema<TEntries extends v.ObjectEntries> = v.SchemaWithPipe<
  readonly [MappingSchema, v.StrictObjectSchema<TEntries, v.ErrorMessage<v.StrictObjectIssue>>]
>;

/**
 * A mapping whose unknown keys are errors that list the allowed keys, and name the one meant
 * when the unknown key is a near miss of it (`pause_abve`: did you mean "pause_above"?).
 */
export function strictSection<const TEntries extends v.ObjectEntries>(
  entries: TEntries,
  what: string,
): StrictSectionSchema<TEntries> {
  const known = Object.keys(entries);
  const keys = known.join(", ") || "none";
  return v.pipe(
    mapping(what),
    v.strictObject(entries, (issue) => {
      if (issue.expected !== "never") return what;
      const meant = closestKey(String(issue.input), known);
      return `${meant === undefined ? "" : `did you mean "${meant}"? `}allowed keys: ${keys}`;
    }),
  );
}

/** Letter case, `-` or `_`, and camelCase do not tell keys apart for a suggestion. */
function keyShape(key: string): string {
  return key.toLowerCase().replace(/[-_\s]/g, "");
}

/**
 * The key of `known` that `key` is most likely a typo of: the same key but for letter case,
 * `-` for `_` or camelCase, or one within a few edits (a letter missing, added, changed or two
 * swapped; at most one per three letters). Undefined when none is that close.
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const typed = keyShape(key);
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const shape = keyShape(candidate);
    const allowed = Math.min(3, Math.max(1, Math.floor(shape.length / 3)));
    // Also keeps the work bounded whatever the length of what was typed.
    if (Math.abs(shape.length - typed.length) > allowed) continue;
    const distance = editDistance(typed, shape);
    if (distance <= allowed && (best === undefined || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}

/** Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`: optimal string alignment. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

/** What `looseSection` makes: a mapping, then an object with these entries and maybe others. */
export type LooseSectionSchema<TEntries extends v.ObjectEntries> = v.SchemaWithPipe<
  readonly [MappingSchema, v.LooseObjectSchema<TEntries, string>]
>;

/** A mapping whose unknown keys are ignored (another program's section). */
export function looseSection<const TEntries extends v.ObjectEntries>(
  entries: TEntries,
  what: string,
): LooseSectionSchema<TEntries> {
  return v.pipe(mapping(what), v.looseObject(entries, what));
}

/** `scheme://user:password@` (or `scheme://token@`) in any text: the part before `@` is a secret. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@"'\\]*)@/gi;

/** Replaces the password (or a lone user part, often a token) of every URL in `text` with `***`. */
export function redactUrlCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, (_, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(":");
    return `${scheme}${colon === -1 ? "***" : `${userinfo.slice(0, colon)}:***`}@`;
  });
}

/**
 * How a bad value is shown: JSON, cut short so one line stays one line, with
 * URL credentials masked. A value too deep to stringify (String() of a deeply
 * nested array overflows the stack on Bun too) is named by its type only.
 */
export function showValue(value: unknown): string {
  if (value === undefined) return "nothing";
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = Array.isArray(value) ? "(a list too deep to show)" : typeof value === "object" ? "(a mapping too deep to show)" : typeof value;
  }
  text = redactUrlCredentials(text);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * One line for the first issue. `name` maps valibot's dot path (`kraken.port`,
 * or "" for the root) to what the user typed it as (`--port`, `CHAOS_SIGNAL_PORT`).
 */
export function issueLine(
  issues: readonly v.BaseIssue<unknown>[],
  name: (path: string) => string,
  input: unknown,
): string {
  const issue = typoBehind(issues);
  const label = name(pathText(issue.path));
  if (issue.type === "strict_object" && issue.expected === "never") {
    return `${label}: unknown key; ${issue.message}`;
  }
  if (/object$/.test(issue.type) && issue.received === "undefined" && issue.path?.length) {
    return `${label}: missing; it is required`;
  }
  // Show the value as the user wrote it, not as a pipe had transformed it (" pause " -> "PAUSE"),
  // except under a key that holds a secret: error lines end up in logs.
  const written = issue.path?.length ? writtenValue(input, issue.path) : input;
  const secret = issue.path?.some((item) => SECRET_KEY.test(String(item.key))) || holdsSecret(written);
  return `${label}: got ${secret ? "(hidden)" : showValue(written)}; allowed: ${issue.message}`;
}

/**
 * The issue to report: the first, unless it is a missing key that a misspelt one stands for
 * (`pause_abve` given, `pause_above` missing): then the misspelt key, with the one meant.
 */
function typoBehind(issues: readonly v.BaseIssue<unknown>[]): v.BaseIssue<unknown> {
  const first = issues[0]!;
  const missing = first.path?.at(-1)?.key;
  if (!/object$/.test(first.type) || first.received !== "undefined" || missing === undefined) return first;
  const parent = pathText(first.path!.slice(0, -1));
  return issues.find((issue) =>
    issue.type === "strict_object" && issue.expected === "never" && pathText(issue.path?.slice(0, -1)) === parent &&
    issue.message.startsWith(`did you mean "${String(missing)}"?`)
  ) ?? first;
}

/** `chaos_signal.sources[2].name`: dots between keys, brackets around list indexes. */
function pathText(path: readonly v.IssuePathItem[] | undefined): string {
  let text = "";
  for (const item of path ?? []) {
    text += typeof item.key === "number" ? `[${item.key}]` : `${text ? "." : ""}${String(item.key)}`;
  }
  return text;
}

/** The value at `path` in the original input; checks after a transform report the transformed one. */
function writtenValue(input: unknown, path: readonly v.IssuePathItem[]): unknown {
  let value = input;
  for (const item of path) {
    if (typeof value !== "object" || value === null || !(String(item.key) in value)) return path[path.length - 1]!.value;
    value = (value as Record<string, unknown>)[String(item.key)];
  }
  return value;
}

/** What `httpUrl` makes: a string that is a URL, http(s), without credentials. */
export type HttpUrlSchema = v.SchemaWithPipe<
  readonly [
    v.StringSchema<string>,
    v.UrlAction<string, string>,
    v.RegexAction<string, string>,
    v.CheckAction<string, string>,
  ]
>;

/**
 * An http(s) URL without `user:password@`: credentials in a URL would show
 * wherever the URL does (`/status`, logs). `rule` says what to use instead.
 */
export function httpUrl(rule: string): HttpUrlSchema {
  return v.pipe(
    v.string(rule),
    v.url(rule),
    v.regex(/^https?:\/\//i, rule),
    // valibot's url() and the URL class disagree at the edges (Bun: port 99999); either refusing is "not a URL".
    v.check((url) => URL.canParse(url) && !new URL(url).username && !new URL(url).password, rule),
  );
}

/**
 * A pipe step that turns the input into something else with `parse`, or adds
 * the issue `rule` when `parse` gives `undefined`: the "transform, check,
 * cast" every hand-written parser (durations, signals) needs in a schema.
 *
 *   v.pipe(v.string(RULE), v.trim(), parsedBy(parseSignal, RULE))   // output: Signal
 */
export function parsedBy<TInput, TOutput>(
  parse: (input: TInput) => TOutput | undefined,
  rule: string,
): v.RawTransformAction<TInput, TOutput> {
  return v.rawTransform<TInput, TOutput>(({ dataset, addIssue, NEVER }) => {
    const output = parse(dataset.value);
    if (output !== undefined) return output;
    addIssue({ message: rule });
    return NEVER;
  });
}

/** Parses or throws a `ValidationError` whose message is one `issueLine`. */
export function parseWith<TSchema extends v.GenericSchema>(
  schema: TSchema,
  input: unknown,
  name: (path: string) => string,
): v.InferOutput<TSchema> {
  const result = v.safeParse(schema, input);
  if (result.success) return result.output;
  throw new ValidationError(issueLine(result.issues, name, input));
}

export class ValidationError extends Error {
  override readonly name = "ValidationError";
}
