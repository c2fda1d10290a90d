/**
 * Named bearer tokens guarding the endpoints that change something (and, if
 * asked, the ones that read). Tokens come from the environment, a file or
 * the config; they are never logged and never shown in `/status`: only their
 * names are, as the actor of a claim.
 */
import * as v from "valibot";
import { matchBearer, TokenSourceSchema } from "../web/bearer.ts";
import { NameSchema } from "../config/schemas.ts";
import { strictSection } from "../config/validation.ts";

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

export class Auth {
  readonly #tokens: readonly NamedToken[];
  readonly protectReads: boolean;

  constructor(tokens: readonly NamedToken[], options: { protectReads?: boolean } = {}) {
    const names = new Set(tokens.map((t) => t.name));
    if (names.size !== tokens.length) throw new Error("token names must be unique");
    this.#tokens = tokens;
    this.protectReads = options.protectReads ?? false;
  }

  /** True when there is at least one token (else everything is open). */
  get enabled(): boolean {
    return this.#tokens.length > 0;
  }

  /** The name of the token the request carries; throws 401 when it carries none that is known. */
  check(request: Request): string {
    return matchBearer(request, this.#tokens);
  }
}
