/**
 * The state file's format (version 1): the claims and the STOP latch as JSON, read back with a
 * schema so that a hand-edited or damaged file is refused with a line that names what is wrong.
 */
import * as v from "valibot";
import { parseSignal, type Signal } from "../core/signal.ts";
import { DEFAULT_SIGNAL, MANUAL_SOURCE, settle, type Snapshot, STOP_LATCH } from "../core/snapshot.ts";
import { issueLine } from "../config/validation.ts";

export const STATE_FILE_VERSION = 1;

export class StateFileError extends Error {
  override readonly name = "StateFileError";
}

const Time = v.pipe(
  v.string("a time (ISO 8601)"),
  v.transform((text) => new Date(text)),
  v.check((date) => !Number.isNaN(date.getTime()), "a time (ISO 8601)"),
);

const ClaimSchema = v.looseObject({
  source: v.pipe(v.string("a source name"), v.nonEmpty("a source name")),
  state: v.pipe(
    v.string("RUN, PAUSE or STOP"),
    v.transform(parseSignal),
    v.check((state) => state !== undefined, "RUN, PAUSE or STOP"),
    v.transform((state) => state as Signal),
  ),
  reason: v.string("a reason"),
  since: Time,
  updated: Time,
  actor: v.optional(v.unknown()),
  until: v.optional(Time),
  // The source's own JSON, checked by the source when it reads it back; older files have none.
  memo: v.optional(v.unknown()),
}, "a claim");

export const StateDocumentSchema = v.looseObject({
  version: v.literal(STATE_FILE_VERSION, `${STATE_FILE_VERSION}`),
  saved_at: Time,
  stop_latch: v.nullish(v.looseObject({ since: Time, source: v.unknown(), reason: v.unknown() }, "a latch or null")),
  claims: v.array(ClaimSchema, "a list of claims"),
}, "a JSON object");

export function serializeState(snapshot: Snapshot, savedAt: Date = new Date()): string {
  return JSON.stringify({
    version: STATE_FILE_VERSION,
    saved_at: savedAt.toISOString(),
    signal: snapshot.signal,
    stop_latch: snapshot.latch && { ...snapshot.latch, since: snapshot.latch.since.toISOString() },
    claims: snapshot.claims.map((claim) => ({
      ...claim,
      since: claim.since.toISOString(),
      updated: claim.updated.toISOString(),
      ...(claim.until ? { until: claim.until.toISOString() } : {}),
    })),
  }, null, 2) + "\n";
}

/** Reads a state file's text; throws `StateFileError` saying what is wrong with it. */
export function parseStateFile(text: string): { snapshot: Snapshot; savedAt: Date } {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new StateFileError(`not JSON (${(error as Error).message})`);
  }
  const parsed = v.safeParse(StateDocumentSchema, document);
  if (!parsed.success) throw new StateFileError(issueLine(parsed.issues, (path) => path || "the file", document));
  const { output } = parsed;
  const claims = output.claims.map((raw) => ({
    source: raw.source,
    state: raw.state,
    reason: raw.reason,
    since: raw.since,
    updated: raw.updated,
    ...(typeof raw.actor === "string" ? { actor: raw.actor } : {}),
    ...(raw.until === undefined ? {} : { until: raw.until }),
    ...(raw.memo === undefined ? {} : { memo: raw.memo }),
  }));
  const latch = output.stop_latch
    ? { since: output.stop_latch.since, source: String(output.stop_latch.source), reason: String(output.stop_latch.reason) }
    : null;
  // A file without claims (written by hand) is a latch at most: the restore settles it with the manual claim.
  const snapshot: Snapshot = claims.length
    ? settle(DEFAULT_SIGNAL, claims, latch, null, output.saved_at)
    : { name: DEFAULT_SIGNAL, claims, latch, override: null, signal: latch ? "STOP" : "RUN", decidedBy: latch ? STOP_LATCH : MANUAL_SOURCE };
  return { snapshot, savedAt: output.saved_at };
}
