/**
 * Durations in config and query parameters: the valibot schema over the core's parser.
 */
import * as v from "valibot";
import { formatDuration, parseDuration } from "../core/duration.ts";
import { parsedBy } from "./validation.ts";

export { formatDuration, parseDuration };

/** A duration, given as a string (`15s`) or a number of seconds; outputs milliseconds. */
export type DurationSchema = v.GenericSchema<string | number, number>;

/**
 * A valibot schema for a duration between `minMs` and `maxMs`, given as a
 * string (`15s`) or a number of seconds; outputs milliseconds.
 */
export function durationSchema(minMs: number, maxMs: number): DurationSchema {
  const rule = `a duration from ${formatDuration(minMs)} to ${formatDuration(maxMs)}, such as 500ms, 15s, 1m30s or 2h`;
  const inRange = (input: string | number): number | undefined => {
    const ms = typeof input === "number" ? input * 1000 : parseDuration(input);
    return ms !== undefined && Number.isFinite(ms) && ms >= minMs && ms <= maxMs ? ms : undefined;
  };
  return v.pipe(v.union([v.string(rule), v.number(rule)], rule), parsedBy(inRange, rule));
}
