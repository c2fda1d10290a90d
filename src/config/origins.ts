/**
 * `chaos_signal.allowed_origins`: the origins whose pages may change the signal besides this
 * server's own (http/origin_guard.ts applies them). Here, not beside the guard, so that the
 * settings never import the HTTP layer.
 */
import * as v from "valibot";

const ORIGIN_RULE = "an origin: http:// or https://, a host and an optional :port, no path (not even /), such as https://ops.example or http://localhost:3000";

/** `https://Ops.Example:443` -> `https://ops.example`: how browsers write the `Origin` header. */
export function canonicalOrigin(text: string): string | undefined {
  if (!/^https?:\/\/[^/?#\s@]+$/i.test(text)) return undefined;
  try {
    return new URL(text).origin;
  } catch {
    return undefined;
  }
}

/** One entry of `allowed_origins`, canonicalised so that it compares with what browsers send. */
export const OriginSchema = v.pipe(
  v.string(ORIGIN_RULE),
  v.trim(),
  v.check((text) => canonicalOrigin(text) !== undefined, ORIGIN_RULE),
  v.transform((text) => canonicalOrigin(text)!),
);

export const AllowedOriginsSchema = v.array(OriginSchema, "a list of origins, such as [https://ops.example]");

/** The same list as one string, from a flag or an environment variable. */
export const ALLOWED_ORIGINS_TEXT_RULE = "origins separated by commas, such as https://ops.example,http://localhost:3000";
export const AllowedOriginsTextSchema = v.pipe(
  v.string(ALLOWED_ORIGINS_TEXT_RULE),
  v.transform((text) => text.split(",").map((item) => item.trim()).filter((item) => item !== "")),
  AllowedOriginsSchema,
);
