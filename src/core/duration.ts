/**
 * Durations in config and query parameters, in Prometheus' notation
 * (`500ms`, `15s`, `1m30s`, `2h`, `1d`), or a bare number of seconds: parsing and formatting,
 * which the core needs for reasons (a timed pause's length) and config for its schemas.
 */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;

/** Milliseconds, or `undefined` when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  if (trimmed === "") return undefined;
  PART.lastIndex = 0;
  let total = 0;
  let match: RegExpExecArray | null;
  while ((match = PART.exec(trimmed))) {
    total += Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
    if (PART.lastIndex === trimmed.length) return total;
  }
  return undefined;
}

/** How a duration reads in logs and `/status`: `90s` -> `1m30s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    const count = Math.floor(rest / size);
    if (count) parts.push(`${count}${unit}`);
    rest -= count * size;
  }
  if (rest) parts.push(`${rest}ms`);
  return parts.join("");
}

