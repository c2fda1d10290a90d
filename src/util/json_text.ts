/**
 * JSON.parse with a nesting limit. The parsers themselves take very deep
 * nesting (50,000 levels parse on Deno and Bun), but whatever walks the
 * result afterwards (JSON.stringify, String(), a schema) recurses and
 * overflows the stack: on Bun a 500 with a stack trace per request. A scan
 * of the raw text refuses such input before anything recurses.
 */

/** The deepest nesting of arrays and objects accepted. Real payloads need under 10 levels. */
export const MAX_JSON_DEPTH = 64;

/** Why JSON text was refused: the parser's message, or the nesting limit. */
export class JsonTextError extends Error {
  override readonly name = "JsonTextError";
  /** The text may be JSON, but nested deeper than allowed. */
  readonly tooDeep: boolean;

  constructor(message: string, options: { tooDeep?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.tooDeep = options.tooDeep ?? false;
  }
}

/** True when `text` opens more than `limit` arrays or objects inside each other (brackets in strings do not count). */
export function nestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === 0x5c /* \ */) i++;
      else if (code === 0x22 /* " */) inString = false;
    } else if (code === 0x22) inString = true;
    else if (code === 0x5b /* [ */ || code === 0x7b /* { */) {
      if (++depth > limit) return true;
    } else if (code === 0x5d /* ] */ || code === 0x7d /* } */) depth--;
  }
  return false;
}

/** Parses JSON text; throws `JsonTextError` when it is not JSON or is nested deeper than `maxDepth`. */
export function parseJsonText(text: string, maxDepth: number = MAX_JSON_DEPTH): unknown {
  if (nestedDeeperThan(text, maxDepth)) {
    throw new JsonTextError(`nested deeper than ${maxDepth} levels (arrays and objects inside each other; the limit is ${maxDepth})`, { tooDeep: true });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new JsonTextError((error as Error).message, { cause: error });
  }
}
