/**
 * The audit history: every claim and every change of the effective signal,
 * with time, source, actor, reason and the previous value, and the notes plugins
 * write (a relay's target set changed). Newest entries
 * are kept in memory (bounded) for `GET /history`; with a log file, each entry
 * is also appended as one JSON line, and the file is rotated by size. At
 * start the log is read back, so a restart keeps the history.
 */
import { constants } from "node:fs";
import { mkdir, open, rename, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { FileRefusedError, readRegularFile } from "../util/bounded_file.ts";
import type { SignalEvent as ArbiterEvent, SignalFeed } from "../core/events.ts";
import { type Signal, SIGNALS } from "../core/signal.ts";
import * as v from "valibot";

/** A claim or a change of the effective signal. */
export interface SignalEntry {
  /** Increases by one per entry, across restarts. */
  id: number;
  at: string;
  /** `claim`: a source's claim; `change`: the effective signal changed. */
  type: "claim" | "change";
  source: string;
  /** The claim's state, or the new effective signal. */
  state: Signal;
  /** The source's previous state, or the previous effective signal (null for a first claim). */
  previous: Signal | null;
  reason: string;
  actor?: string;
}

/** An audit note a plugin wrote (`SourceContext.audit`): something that happened that is not a claim. */
export interface NoteEntry {
  id: number;
  at: string;
  type: "note";
  /** The plugin's name. */
  source: string;
  /** What the note is about, chosen by the plugin: a relay's `targets`. */
  kind: string;
  reason: string;
  /** A small JSON object (a relay: `added`, `removed`, `added_count`, `removed_count`, `targets`). */
  details?: Record<string, unknown>;
}

export type HistoryEntry = SignalEntry | NoteEntry;
export type HistoryEntryType = HistoryEntry["type"];
export const HISTORY_ENTRY_TYPES = ["claim", "change", "note"] as const satisfies readonly HistoryEntryType[];

/** An entry before it is numbered (the shared store numbers it). */
export type UnnumberedEntry = Omit<SignalEntry, "id"> | Omit<NoteEntry, "id">;

/** A note as a plugin hands it over (`SourceContext.audit`); bounded by `boundedNote`. */
export interface AuditNote {
  readonly source: string;
  readonly kind: string;
  readonly reason: string;
  readonly details?: Record<string, unknown>;
}

/**
 * Bounds of a note: every entry is kept in memory, on disk or in etcd, where the newest 2,000 are
 * read back in one range (a few MiB at most), so one note stays about the size of a claim.
 */
export const NOTE_KIND_RULE = "lower-case letters, digits and _, starting with a letter, at most 32";
const NOTE_KIND = /^[a-z][a-z0-9_]{0,31}$/;
export const MAX_NOTE_REASON = 300;
export const MAX_NOTE_DETAILS = 1024;

/**
 * The note as it is recorded: the reason cut to its bound; details that are not a JSON object
 * within MAX_NOTE_DETAILS characters are left out, and `problem` says why. A kind that breaks its
 * rule throws (a plugin's mistake, not an input's).
 */
export function boundedNote(note: AuditNote): { note: AuditNote; problem?: string } {
  if (!NOTE_KIND.test(note.kind)) throw new Error(`audit note kind ${JSON.stringify(String(note.kind).slice(0, 40))}: allowed: ${NOTE_KIND_RULE}`);
  const reason = note.reason.length > MAX_NOTE_REASON ? `${note.reason.slice(0, MAX_NOTE_REASON - 1)}\u2026` : note.reason;
  const bounded = { source: note.source, kind: note.kind, reason };
  if (note.details === undefined) return { note: bounded };
  let json: string | undefined;
  try {
    json = JSON.stringify(note.details);
  } catch (error) {
    return { note: bounded, problem: `audit note "${note.kind}": details dropped, not JSON (${(error as Error).message})` };
  }
  if (json === undefined || !json.startsWith("{")) return { note: bounded, problem: `audit note "${note.kind}": details dropped, not a JSON object` };
  if (json.length > MAX_NOTE_DETAILS) {
    return { note: bounded, problem: `audit note "${note.kind}": details dropped, ${json.length} characters as JSON, at most ${MAX_NOTE_DETAILS}` };
  }
  return { note: { ...bounded, details: JSON.parse(json) as Record<string, unknown> } };
}

export interface HistoryPage {
  entries: HistoryEntry[];
  /** Pass as `before` for the next (older) page; null when there is none. */
  next_before: number | null;
}

export interface HistoryOptions {
  /** Entries kept in memory. @default 10000 */
  readonly maxEntries?: number;
  /** Append-only JSON-lines log; none = memory only. */
  readonly logFile?: string;
  /** Rotate the log (to `<file>.1`) past this size. @default 10 MiB */
  readonly maxLogBytes?: number;
  /**
   * A log file larger than this, or not a regular file, is moved aside at load instead of read.
   * @default 4 × maxLogBytes
   */
  readonly maxReadBytes?: number;
  readonly onError?: (error: unknown) => void;
  /** Told, in one line, about a log file that was refused and moved aside at load. */
  readonly onSetAside?: (message: string) => void;
  /**
   * A shared store (etcd) keeps the history: an event made here is handed to `share` (which
   * writes it, once, for every replica), events watched from the store are not recorded, and the
   * entries come back through `adopt`, numbered by the store.
   */
  readonly share?: (entry: UnnumberedEntry) => void;
  /** Resolves when every entry handed to `share` so far is written. */
  readonly shared?: () => Promise<void>;
}

/**
 * One line of the log as written by `record`. A line that does not match (cut short by a crash,
 * edited by hand, from another program) is skipped at load: it would show in `/history` as an
 * entry that is not one, or move the next id anywhere.
 */
const SignalEntrySchema = v.object({
  id: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
  at: v.pipe(v.string(), v.isoTimestamp()),
  type: v.picklist(["claim", "change"]),
  source: v.pipe(v.string(), v.nonEmpty()),
  state: v.picklist(SIGNALS),
  previous: v.nullable(v.picklist(SIGNALS)),
  reason: v.string(),
  actor: v.exactOptional(v.string()),
});
const NoteEntrySchema = v.object({
  id: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
  at: v.pipe(v.string(), v.isoTimestamp()),
  type: v.literal("note"),
  source: v.pipe(v.string(), v.nonEmpty()),
  kind: v.pipe(v.string(), v.regex(NOTE_KIND)),
  reason: v.string(),
  details: v.exactOptional(v.record(v.string(), v.unknown())),
});
const HistoryEntrySchema = v.variant("type", [SignalEntrySchema, NoteEntrySchema]);

/** The entry on one line of the log, or undefined for a line that is not one. */
export function parseHistoryLine(line: string): HistoryEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const parsed = v.safeParse(HistoryEntrySchema, value, { abortEarly: true });
  return parsed.success ? parsed.output : undefined;
}

function entryOf(event: ArbiterEvent, id: number): SignalEntry {
  if (event.type === "change") {
    return {
      id,
      at: event.at.toISOString(),
      type: "change",
      source: event.cause.source,
      state: event.signal,
      previous: event.previous,
      reason: event.cause.reason,
      ...(event.cause.actor === undefined ? {} : { actor: event.cause.actor }),
    };
  }
  return {
    id,
    at: event.at.toISOString(),
    type: "claim",
    source: event.claim.source,
    state: event.claim.state,
    previous: event.previous,
    reason: event.claim.reason,
    ...(event.claim.actor === undefined ? {} : { actor: event.claim.actor }),
  };
}

export class History {
  readonly #entries: HistoryEntry[] = [];
  readonly #maxEntries: number;
  readonly #logFile: string | undefined;
  readonly #maxLogBytes: number;
  readonly #maxReadBytes: number;
  readonly #onError: (error: unknown) => void;
  readonly #onSetAside: (message: string) => void;
  #nextId = 1;
  #writes: Promise<void> = Promise.resolve();
  readonly #share: ((entry: UnnumberedEntry) => void) | undefined;
  readonly #shared: (() => Promise<void>) | undefined;

  constructor(options: HistoryOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#logFile = options.logFile;
    this.#maxLogBytes = options.maxLogBytes ?? 10 * 1024 * 1024;
    this.#maxReadBytes = options.maxReadBytes ?? 4 * this.#maxLogBytes;
    this.#onError = options.onError ?? (() => {});
    this.#onSetAside = options.onSetAside ?? (() => {});
    this.#share = options.share;
    this.#shared = options.shared;
  }

  /**
   * Reads the log back (the rotated file first); lines that are not entries are skipped. A file
   * that is not a regular one (a FIFO would hang the start, a link to /dev/zero never end) or is
   * larger than maxReadBytes is moved aside (`<file>.corrupt-<time>`) unread, like a corrupt line
   * is skipped: the history is the audit trail, not the signal, so the start goes on.
   */
  async load(): Promise<number> {
    if (!this.#logFile) return 0;
    for (const file of [`${this.#logFile}.1`, this.#logFile]) {
      let text: string;
      try {
        text = await readRegularFile(file, this.#maxReadBytes);
      } catch (error) {
        if (error instanceof FileRefusedError) await this.#setAside(file, error);
        continue;
      }
      for (const line of text.split("\n")) {
        // A line cut short by a crash is skipped: the rest of the log still counts.
        const entry = parseHistoryLine(line);
        if (entry) this.#keep(entry);
      }
    }
    return this.#entries.length;
  }

  /** Records every event of `arbiter` from now on. */
  follow(arbiter: SignalFeed): () => void {
    return arbiter.subscribe((event) => this.#follow(event));
  }

  /** Records `event` here; with `share`, hands an event made here to the shared store instead. */
  #follow(event: ArbiterEvent): void {
    if (!this.#share) {
      this.record(event);
      return;
    }
    // Recorded by the replica that made it; the others hear of it from the store.
    if (!event.local) return;
    const { id: _, ...entry } = entryOf(event, 0);
    this.#share(entry);
  }

  record(event: ArbiterEvent): SignalEntry {
    return this.#add(entryOf(event, this.#nextId));
  }

  /**
   * Records a plugin's note (bounded by the caller: see `boundedNote`), now; with `share`, hands
   * it to the shared store (the plugin runs on one replica: the note is written once).
   */
  note(note: AuditNote, at: Date = new Date()): void {
    const entry: Omit<NoteEntry, "id"> = {
      at: at.toISOString(),
      type: "note",
      source: note.source,
      kind: note.kind,
      reason: note.reason,
      ...(note.details === undefined ? {} : { details: note.details }),
    };
    if (this.#share) this.#share(entry);
    else this.#add({ id: this.#nextId, ...entry });
  }

  #add<T extends HistoryEntry>(entry: T): T {
    this.#keep(entry);
    if (this.#logFile) {
      const file = this.#logFile;
      this.#writes = this.#writes.then(() => this.#append(file, entry)).catch(this.#onError);
    }
    return entry;
  }

  /** An entry as a shared store numbered it: kept in id order, once. */
  adopt(entry: HistoryEntry): void {
    let i = this.#entries.length;
    while (i > 0 && this.#entries[i - 1]!.id > entry.id) i--;
    if (i > 0 && this.#entries[i - 1]!.id === entry.id) return;
    if (i === 0 && this.#entries.length >= this.#maxEntries) return;
    this.#entries.splice(i, 0, entry);
    if (this.#entries.length > this.#maxEntries) this.#entries.splice(0, this.#entries.length - this.#maxEntries);
    this.#nextId = Math.max(this.#nextId, entry.id + 1);
  }

  /** Forgets every entry (a shared history reloads them). */
  clear(): void {
    this.#entries.length = 0;
  }

  get maxEntries(): number {
    return this.#maxEntries;
  }

  /** Newest first; `before` an id for older pages; `source` and `type` to filter. */
  page(options: { limit: number; before?: number; source?: string; type?: HistoryEntryType }): HistoryPage {
    const entries: HistoryEntry[] = [];
    for (let i = this.#entries.length - 1; i >= 0 && entries.length <= options.limit; i--) {
      const entry = this.#entries[i]!;
      if (options.before !== undefined && entry.id >= options.before) continue;
      if (options.source !== undefined && entry.source !== options.source) continue;
      if (options.type !== undefined && entry.type !== options.type) continue;
      entries.push(entry);
    }
    const more = entries.length > options.limit;
    if (more) entries.pop();
    return { entries, next_before: more ? entries.at(-1)!.id : null };
  }

  /** Resolves when every entry so far is in the log (or, with `share`, in the shared store). */
  flushed(): Promise<void> {
    return this.#shared ? Promise.all([this.#writes, this.#shared()]).then(() => {}) : this.#writes;
  }

  #keep(entry: HistoryEntry): void {
    this.#entries.push(entry);
    if (this.#entries.length > this.#maxEntries) this.#entries.splice(0, this.#entries.length - this.#maxEntries);
    this.#nextId = Math.max(this.#nextId, entry.id + 1);
  }

  async #setAside(file: string, error: FileRefusedError): Promise<void> {
    const aside = `${file}.corrupt-${Date.now()}`;
    try {
      await rename(file, aside);
      this.#onSetAside(`${error.message}: history not read from it; the file was moved to ${aside}`);
    } catch (renameError) {
      this.#onSetAside(`${error.message}: history not read from it, and it could not be moved aside (${(renameError as { code?: string }).code ?? renameError})`);
    }
  }

  async #append(file: string, entry: HistoryEntry): Promise<void> {
    await mkdir(dirname(file), { recursive: true });
    const size = await stat(file).then((s) => s.size, () => 0);
    if (size > this.#maxLogBytes) await rename(file, `${file}.1`);
    // Non-blocking: a FIFO put at the path fails the write (ENXIO) instead of holding a
    // file-system thread until a reader comes; anything but a regular file is not written to.
    const handle = await open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK, 0o666);
    try {
      if (!(await handle.stat()).isFile()) throw new FileRefusedError(file, "is not a regular file");
      await handle.writeFile(`${JSON.stringify(entry)}\n`);
    } finally {
      await handle.close();
    }
  }
}
