/**
 * Bearer tokens: read from where the config says (never logged, never in
 * `/status`) and compared in constant time.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { HttpError } from "./response.ts";

export { TokenSourceSchema } from "../config/tokens.ts";
export type { TokenSource } from "../config/tokens.ts";

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** Constant-time: both sides are hashed to the same length before comparing. */
export function tokensEqual(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * The name of the token the request's `Authorization: Bearer` carries; 401
 * with a Bearer challenge when there is none or it matches none. Compared
 * with every token, so the time taken does not tell which one came close.
 */
export function matchBearer(request: Request, tokens: readonly { name: string; token: string }[]): string {
  const challenge = { "www-authenticate": 'Bearer realm="chaos-signal"' };
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new HttpError(401, "missing bearer token: send Authorization: Bearer <token>", challenge);
  let found: string | undefined;
  for (const { name, token } of tokens) {
    if (tokensEqual(match[1]!, token) && found === undefined) found = name;
  }
  if (found === undefined) throw new HttpError(401, "wrong bearer token", challenge);
  return found;
}

/** Throws 401 unless the request carries `Authorization: Bearer <token>` with this token. */
export function requireBearer(request: Request, token: string): void {
  matchBearer(request, [{ name: "webhook", token }]);
}
