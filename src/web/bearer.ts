/**
 * Bearer tokens: read from where the config says (never logged, never in
 * `/status`) and compared in constant time.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import process from "node:process";
import * as v from "valibot";
import { HttpError } from "./response.ts";

/** Where a token comes from: inline, an environment variable or a file (Kubernetes secrets). */
export const TokenSourceSchema = v.pipe(
  v.union([
    v.strictObject({ env: v.pipe(v.string("a variable name"), v.nonEmpty("a variable name")) }),
    v.strictObject({ file: v.pipe(v.string("a file path"), v.nonEmpty("a file path")) }),
    v.strictObject({ value: v.pipe(v.string("a token"), v.minLength(8, "a token of 8 or more characters")) }),
  ], "{env: VARIABLE} or {file: PATH} or {value: TOKEN of 8 or more characters}"),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const source = dataset.value;
    let token: string | undefined;
    // Trimmed wherever it comes from: a Kubernetes secret made from a file that `echo` wrote ends
    // in a newline, and a header token never holds one, so an untrimmed token could never match.
    if ("env" in source) token = process.env[source.env]?.trim();
    else if ("file" in source) {
      try {
        token = readFileSync(source.file, "utf8").trim();
      } catch (error) {
        addIssue({ message: `a readable token file (${(error as { code?: string }).code ?? error})` });
        return NEVER;
      }
    } else token = source.value.trim();
    if (!token || token.length < 8) {
      addIssue({ message: "a token of 8 or more characters (the variable or file is empty or too short)" });
      return NEVER;
    }
    if (/\s/.test(token)) {
      addIssue({ message: "a token without blanks inside (Authorization: Bearer cannot carry them)" });
      return NEVER;
    }
    return token;
  }),
);

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
