/**
 * Bearer tokens: read from where the config says (never logged, never in
 * `/status`) and compared in constant time.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import process from "node:process";
import * as v from "valibot";
import { HttpError } from "./http_response.ts";

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
    if ("env" in source) token = process.env[source.env];
    else if ("file" in source) {
      try {
        token = readFileSync(source.file, "utf8").trim();
      } catch (error) {
        addIssue({ message: `a readable token file (${(error as { code?: string }).code ?? error})` });
        return NEVER;
      }
    } else token = source.value;
    if (!token || token.length < 8) {
      addIssue({ message: "a token of 8 or more characters (the variable or file is empty or too short)" });
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

/** Throws 401 unless the request carries `Authorization: Bearer <token>` with the right token. */
export function requireBearer(request: Request, token: string, realm = "chaos-signal"): void {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  const challenge = { "www-authenticate": `Bearer realm="${realm}"` };
  if (!match) throw new HttpError(401, "missing bearer token: send Authorization: Bearer <token>", challenge);
  if (!tokensEqual(match[1]!, token)) throw new HttpError(401, "wrong bearer token", challenge);
}
