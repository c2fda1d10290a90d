/**
 * Named bearer tokens guarding the endpoints that change something (and, if
 * asked, the ones that read). Tokens come from the environment, a file or
 * the config; they are never logged and never shown in `/status`: only their
 * names are, as the actor of a claim.
 */
import { matchBearer } from "../web/bearer.ts";
import type { NamedToken } from "../config/auth.ts";

export { AuthSchema } from "../config/auth.ts";
export type { AuthInput, NamedToken, ParsedAuth } from "../config/auth.ts";

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
