/**
 * Durable state: the claims and the STOP latch in one JSON file, so that a
 * crash of the signal server never turns a PAUSE or a STOP into RUN.
 *
 * Every write goes to a temporary file that is fsynced, renamed over the old
 * one, and then the directory is fsynced: `kill -9` at any moment leaves
 * either the old file or the new one, never half of one. Writes are
 * serialised and each writes the state as it is when its turn comes, so the
 * file ends on the latest state.
 */
import { mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import { clearTimeout, setTimeout } from "node:timers";
import { FileRefusedError, readRegularFile } from "../util/bounded_file.ts";
import type { ArbiterSnapshot, Claim, PlannedChange, StopLatch } from "../core/arbiter.ts";
import { parseSignal } from "../core/signal.ts";

export const STATE_FILE_VERSION = 1;

/**
 * A larger state file was not written by chaos-signal (one claim per source and the latch take a
 * few KiB): it is refused like a corrupt one rather than read into memory.
 */
export const STATE_FILE_MAX_BYTES = 16 * 1024 * 1024;

/** The state as restored at start. */
export interface RestoredState {
  readonly claims: readonly Claim[];
  readonly latch: StopLatch | null;
  readonly savedAt: Date;
}

export class StateFileError extends Error {
  override readonly name = "StateFileError";
}

function serialize(snapshot: ArbiterSnapshot): string {
  return JSON.stringify({
    version: STATE_FILE_VERSION,
    saved_at: new Date().toISOString(),
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

function date(value: unknown, what: string): Date {
  const parsed = typeof value === "string" ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(parsed.getTime())) throw new StateFileError(`${what} is not a time: ${JSON.stringify(value)}`);
  return parsed;
}

/** Reads a state file's text; throws `StateFileError` saying what is wrong with it. */
export function parseStateFile(text: string): RestoredState {
  let document: {
    version?: unknown;
    saved_at?: unknown;
    stop_latch?: { since?: unknown; source?: unknown; reason?: unknown } | null;
    claims?: unknown;
  };
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new StateFileError(`not JSON (${(error as Error).message})`);
  }
  if (typeof document !== "object" || document === null) throw new StateFileError("not a JSON object");
  if (document.version !== STATE_FILE_VERSION) throw new StateFileError(`version ${JSON.stringify(document.version)}, expected ${STATE_FILE_VERSION}`);
  if (!Array.isArray(document.claims)) throw new StateFileError("claims is not a list");
  const claims = document.claims.map((raw: Record<string, unknown>, index: number): Claim => {
    const state = typeof raw?.state === "string" ? parseSignal(raw.state) : undefined;
    if (!state || typeof raw.source !== "string" || !raw.source || typeof raw.reason !== "string") {
      throw new StateFileError(`claims[${index}] is not a claim`);
    }
    return {
      source: raw.source,
      state,
      reason: raw.reason,
      since: date(raw.since, `claims[${index}].since`),
      updated: date(raw.updated, `claims[${index}].updated`),
      ...(typeof raw.actor === "string" ? { actor: raw.actor } : {}),
      ...(raw.until === undefined ? {} : { until: date(raw.until, `claims[${index}].until`) }),
      // The source's own JSON, checked by the source when it reads it back; older files have none.
      ...(raw.memo === undefined ? {} : { memo: raw.memo }),
    };
  });
  const latch = document.stop_latch;
  return {
    claims,
    latch: latch
      ? { since: date(latch.since, "stop_latch.since"), source: String(latch.source), reason: String(latch.reason) }
      : null,
    savedAt: date(document.saved_at, "saved_at"),
  };
}

/** How long a change toward RUN may wait for its write (turn in the queue included) before it is refused. */
export const DEFAULT_SAVE_TIMEOUT_MS = 5000;

export interface StateStoreOptions {
  /** See DEFAULT_SAVE_TIMEOUT_MS; also when a write that has not finished counts as failed. @default 5000 */
  readonly timeoutMs?: number;
  /** The first retry after a failed write; each further failure doubles it, up to `maxRetryMs`. @default 500 */
  readonly retryMs?: number;
  /** @default 10000 */
  readonly maxRetryMs?: number;
  /** Told of every failed (or overdue) write; the caller decides how often to log it. */
  readonly onFailure?: (error: Error) => void;
  /** Told when a write succeeds after failures. */
  readonly onRecovery?: (failures: number, since: Date) => void;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

/** Whether the file holds the current state, for `/status` and `/metrics`. */
export interface StateHealth {
  readonly file: string;
  /** False from a failed (or overdue) write until a write succeeds. */
  readonly saved: boolean;
  /** The last failure while unsaved. */
  readonly error: string | null;
  /** When writes started failing; null while saved. */
  readonly since: Date | null;
  /** Failed writes since the start. */
  readonly failures: number;
}

/** A change toward RUN whose write did not finish in time: refused, never made. */
export class StateSaveTimeout extends Error {
  override readonly name = "StateSaveTimeout";
}

export class StateStore {
  readonly path: string;
  readonly timeoutMs: number;
  readonly #options: StateStoreOptions;
  readonly #now: () => Date;
  #queue: Promise<void> = Promise.resolve();
  #committing = false;
  /** The state to write: given by `save`, used by the retries. */
  #current: (() => ArbiterSnapshot) | undefined;
  /** A save queued but not started yet: later saves share it (it writes the state as it is then). */
  #pending: Promise<void> | undefined;
  #saved = true;
  #error: string | null = null;
  #since: Date | null = null;
  #failures = 0;
  #failuresInARow = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;

  constructor(path: string, options: StateStoreOptions = {}) {
    this.path = path;
    this.#options = options;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SAVE_TIMEOUT_MS;
    this.#now = options.now ?? (() => new Date());
  }

  health(): StateHealth {
    return { file: this.path, saved: this.#saved, error: this.#error, since: this.#since, failures: this.#failures };
  }

  /**
   * Removes the temporary files of writes that never finished (a kill -9 mid-write leaves
   * `<file>.<pid>.tmp`; the state file itself is whole). Returns their names.
   */
  async removeUnfinishedWrites(): Promise<string[]> {
    const directory = dirname(this.path);
    const prefix = `${basename(this.path)}.`;
    const unfinished = (name: string) => name.startsWith(prefix) && /^\d+\.tmp$/.test(name.slice(prefix.length));
    const names = (await readdir(directory).catch(() => [] as string[])).filter(unfinished);
    await Promise.all(names.map((name) => rm(join(directory, name), { force: true })));
    return names;
  }

  /**
   * The saved state, `undefined` when there is none yet; throws `StateFileError` for a bad file,
   * and for anything but a regular file of at most STATE_FILE_MAX_BYTES (a FIFO would hang the
   * start, a link to /dev/zero or a huge file exhaust the memory).
   */
  async load(): Promise<RestoredState | undefined> {
    let text: string;
    try {
      text = await readRegularFile(this.path, STATE_FILE_MAX_BYTES);
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return undefined;
      if (error instanceof FileRefusedError) throw new StateFileError(`it ${error.detail}`);
      throw new StateFileError(`cannot read it (${(error as { code?: string }).code ?? error})`);
    }
    return parseStateFile(text);
  }

  /** Keeps a bad file for inspection instead of overwriting it. */
  async setAside(): Promise<string> {
    const aside = `${this.path}.corrupt-${Date.now()}`;
    await rename(this.path, aside);
    return aside;
  }

  /**
   * Writes `current()` durably once every earlier write is done (a change already made: toward
   * safety, or a source's claim). Resolves when this write is on disk; rejects when it failed. A
   * failed write is retried with backoff, each retry writing the state as it is then, until one
   * succeeds; `health()` says so meanwhile.
   */
  save(current: () => ArbiterSnapshot): Promise<void> {
    this.#current = current;
    // Asked for by the events of a change being committed: that state is on disk already.
    if (this.#committing) return Promise.resolve();
    if (this.#pending) return this.#pending;
    const pending = this.#enqueue(async () => {
      this.#pending = undefined;
      await this.#tracked(serialize(this.#current!()));
    });
    this.#pending = pending;
    return pending;
  }

  /**
   * Write-ahead, for a change toward RUN: once every earlier write is done, plans the change (on
   * the state as it is then), writes the planned state durably, commits the change and resolves
   * with its result. The commit runs in the same turn as the write, before any later write takes
   * its snapshot, so no later write can put back a state from before it. When the write fails, or
   * has not finished within `timeoutMs` of the call (a hung disk, earlier writes hanging), nothing
   * is committed and the promise rejects.
   */
  commit<T>(plan: () => PlannedChange<T>): Promise<T> {
    let abandoned = false;
    const done = this.#enqueue(async () => {
      if (abandoned) throw new StateSaveTimeout("abandoned before its turn");
      const planned = plan();
      await this.#tracked(serialize(planned.snapshot));
      if (abandoned) {
        // The file now holds a change that was refused: put the state as it is back.
        if (this.#current) this.save(this.#current).catch(() => {});
        throw new StateSaveTimeout("written after it was refused");
      }
      this.#committing = true;
      try {
        return planned.commit();
      } finally {
        this.#committing = false;
      }
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abandoned = true;
        reject(new StateSaveTimeout(`${this.path} could not be written within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      timer.unref();
    });
    return Promise.race([done, late]).finally(() => clearTimeout(timer));
  }

  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    const done = this.#queue.then(job);
    this.#queue = done.then(() => {}, () => {});
    return done;
  }

  /** A write whose outcome is recorded in `health()`; a failure schedules a retry. */
  async #tracked(text: string): Promise<void> {
    // A write that hangs (a lost NFS mount) keeps later ones waiting, so that two never share
    // the temporary file; it shows as failed once overdue.
    const overdue = setTimeout(() => this.#failed(new Error(`a write has not finished after ${this.timeoutMs / 1000} s`), false), this.timeoutMs);
    overdue.unref();
    try {
      await this.#write(text);
    } catch (error) {
      this.#failed(error instanceof Error ? error : new Error(String(error)), true);
      throw error;
    } finally {
      clearTimeout(overdue);
    }
    this.#succeeded();
  }

  #failed(error: Error, retry: boolean): void {
    this.#failures += 1;
    if (this.#saved) this.#since = this.#now();
    this.#saved = false;
    this.#error = error.message;
    this.#options.onFailure?.(error);
    if (!retry || this.#retry || !this.#current) return;
    const base = this.#options.retryMs ?? 500;
    const delay = Math.min(base * 2 ** this.#failuresInARow, this.#options.maxRetryMs ?? 10_000);
    this.#failuresInARow += 1;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#current) this.save(this.#current).catch(() => {});
    }, delay);
    // A pending retry must not keep a process alive that is otherwise done.
    this.#retry.unref();
  }

  #succeeded(): void {
    if (!this.#saved) this.#options.onRecovery?.(this.#failures, this.#since!);
    this.#saved = true;
    this.#error = null;
    this.#since = null;
    this.#failuresInARow = 0;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
  }

  async #write(text: string): Promise<void> {
    const directory = dirname(this.path);
    await mkdir(directory, { recursive: true });
    const temporary = `${this.path}.${process.pid}.tmp`;
    const file = await open(temporary, "w");
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    // The rename itself is durable only once the directory is. Opened before the rename, so that
    // running out of file handles fails the write before the new state is in place, not after.
    const dir = await open(directory, "r");
    try {
      await rename(temporary, this.path);
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
