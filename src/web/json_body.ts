/** Reads a bounded JSON request body and validates it; every failure is a 4xx with the reason. */
import * as v from "valibot";
import { HttpError } from "./response.ts";
import { JsonTextError, parseJsonText } from "../util/json_text.ts";
import { readBoundedBody } from "./request_body.ts";
import { issueLine } from "../config/validation.ts";

export async function readJsonBody<TSchema extends v.GenericSchema>(
  request: Request,
  schema: TSchema,
  maxBytes: number,
  what: string,
): Promise<v.InferOutput<TSchema>> {
  requireJsonContentType(request);
  const bytes = await readBoundedBody(request, maxBytes);
  let document: unknown;
  try {
    document = parseJsonText(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    if (error instanceof JsonTextError && error.tooDeep) throw new HttpError(400, `body is ${error.message}; expected ${what}`);
    throw new HttpError(400, `body is not JSON: ${(error as Error).message}; expected ${what}`);
  }
  const result = v.safeParse(schema, document);
  if (!result.success) {
    throw new HttpError(400, issueLine(result.issues, (path) => `body${path ? `.${path}` : ""}`, document));
  }
  return result.output;
}

const JSON_TYPE_RULE = "application/json, or a +json type such as application/vnd.example+json";

/**
 * A JSON body must say so. A page of another site can send `text/plain` (or no type at all) to
 * any address without asking the server first (no CORS preflight); `application/json` it cannot.
 */
export function requireJsonContentType(request: Request): void {
  const header = request.headers.get("content-type");
  const type = header?.split(";")[0]!.trim().toLowerCase() ?? "";
  if (type === "application/json" || /^application\/[!#$&^_.+\w-]+\+json$/.test(type)) return;
  const got = header === null ? "no Content-Type" : `Content-Type ${header.length > 80 ? `${header.slice(0, 77)}...` : header}`;
  throw new HttpError(415, `got ${got}; the body must be sent as ${JSON_TYPE_RULE}`);
}

/** Only POST delivers to a webhook; anything else gets 405 with `Allow`. */
export function requirePost(request: Request): void {
  if (request.method !== "POST") {
    throw new HttpError(405, `method ${request.method} is not allowed on ${new URL(request.url).pathname}; allowed: POST`, {
      allow: "POST",
    });
  }
}
