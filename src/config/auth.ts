/** `chaos_signal.auth`: named bearer tokens, and whether reads need one too. */
import * as v from "valibot";
import { NameSchema } from "./schemas.ts";
import { TokenSourceSchema } from "./tokens.ts";
import { strictSection } from "./validation.ts";

export const AuthSchema = strictSection({
  /** Named tokens; any of them is accepted. */
  tokens: v.pipe(
    v.array(strictSection({ name: NameSchema, token: TokenSourceSchema }, "a mapping with name: and token:"), "a list of {name, token}"),
    v.minLength(1, "at least one token"),
  ),
  /** Also require a token to read (GET /, /status, /events, /metrics). Krkn's runner sends none. @default false */
  protect_reads: v.optional(v.boolean("true or false"), false),
}, "a mapping with tokens: and protect_reads:");

export type AuthInput = v.InferInput<typeof AuthSchema>;

export interface NamedToken {
  readonly name: string;
  readonly token: string;
}
