/** `chaos_signal.auth`: named bearer tokens, and whether reads need one too. */
import * as v from "valibot";
import { NameSchema } from "./schemas.ts";
import { TokenSourceSchema } from "./tokens.ts";
import { strictSection } from "./validation.ts";
import type { Assert, SameType } from "../util/same_type.ts";

/** What `chaos_signal.auth` may be given as: a mapping, checked key by key. */
export type AuthInput = Record<string, unknown>;

/** `chaos_signal.auth` once parsed. */
export interface ParsedAuth {
  tokens: { name: string; token: string }[];
  protect_reads: boolean;
}

/** The schema as valibot infers it: `AuthSchema` is typed by hand (JSR), and checked against it below. */
const authSchema = strictSection({
  /** Named tokens; any of them is accepted. */
  tokens: v.pipe(
    v.array(strictSection({ name: NameSchema, token: TokenSourceSchema }, "a mapping with name: and token:"), "a list of {name, token}"),
    v.minLength(1, "at least one token"),
  ),
  /** Also require a token to read (GET /, /status, /events, /metrics). Krkn's runner sends none. @default false */
  protect_reads: v.optional(v.boolean("true or false"), false),
}, "a mapping with tokens: and protect_reads:");

/** `chaos_signal.auth`: named bearer tokens, and whether reads need one too. */
export const AuthSchema: v.GenericSchema<AuthInput, ParsedAuth> = authSchema;
type _Input = Assert<SameType<v.InferInput<typeof authSchema>, AuthInput>>;
type _Output = Assert<SameType<v.InferOutput<typeof authSchema>, ParsedAuth>>;

export interface NamedToken {
  readonly name: string;
  readonly token: string;
}
