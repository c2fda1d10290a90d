/**
 * Schemas shared by the server's settings, its auth and the plugins: one
 * place, so that plugins need not import the server's settings and auth need
 * not import the plugin API.
 */
import * as v from "valibot";

/** A whole number, given as a number or as a string of digits; outputs the number. */
export type IntegerSchema = v.GenericSchema<number | string, number>;

/** Whole numbers also arrive as strings: from flags, env and quoted YAML. */
export function integer(rule: string, min: number, max: number): IntegerSchema {
  const digits = v.pipe(v.string(rule), v.trim(), v.regex(/^\d+$/, rule), v.transform(Number));
  return v.pipe(v.union([v.number(rule), digits], rule), v.integer(rule), v.minValue(min, rule), v.maxValue(max, rule));
}

export const BODY_RULE = "an integer number of bytes from 0 to 16777216";

/** A limit on request bodies (`max_body_bytes`), server-wide or per receiver. */
/** What a request body may hold by default (`chaos_signal.max_body_bytes`). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

export const MaxBodyBytesSchema: IntegerSchema = integer(BODY_RULE, 0, 16 * 1024 * 1024);

const NAME_RULE = "a name of lower-case letters, digits, - and _ (up to 63)";

/**
 * Names of plugins and tokens: they double as source names in claims (actors) and as URL segments.
 * `manual` and `stop_latch` are the server's own sources.
 */
export const NameSchema: v.GenericSchema<string> = v.pipe(
  v.string(NAME_RULE),
  v.regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, NAME_RULE),
  v.check((name) => name !== "manual" && name !== "stop_latch", "any name but manual and stop_latch, which are taken"),
);

/** A plugin's `name:`. */
export const PluginNameSchema: v.GenericSchema<string> = NameSchema;
