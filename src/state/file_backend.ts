/**
 * Durable state in one JSON file, so that a crash of the signal server never turns a PAUSE or a
 * STOP into RUN.
 *
 * Every write goes to a temporary file that is fsynced, renamed over the old one, and then the
 * directory is fsynced: `kill -9` at any moment leaves either the old file or the new one, never
 * half of one. One server writes the file, so a commit never meets a conflict; the store runs
 * one commit at a time, so two writes never share the temporary file.
 */
import { mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import { FileRefusedError, readRegularFile } from "../util/bounded_file.ts";
import type { Snapshot } from "../core/snapshot.ts";
import type { BackendHealth, CommitResult, Revision, StateBackend } from "./backend.ts";
import { parseStateFile, serializeState, StateFileError } from "./state_file.ts";

/**
 * A larger state file was not written by chaos-signal (one claim per source and the latch take a
 * few KiB): it is refused like a corrupt one rather than read into memory.
 */
export const STATE_FILE_MAX_BYTES = 16 * 1024 * 1024;

export class FileBackend implements StateBackend {
  readonly path: string;
  #revision = 0;
  #lastWritten: Snapshot | null = null;
  #lastContact: Date | null = null;

  constructor(path: string) {
    this.path = path;
  }

  get where(): string {
    return this.path;
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
   * The saved state, null when there is none yet (`savedAt` says when it was written); throws
   * `StateFileError` for a bad file, and for anything but a regular file of at most
   * STATE_FILE_MAX_BYTES (a FIFO would hang the start, a link to /dev/zero exhaust the memory).
   */
  async load(): Promise<{ snapshot: Snapshot | null; revision: Revision; savedAt?: Date }> {
    let text: string;
    try {
      text = await readRegularFile(this.path, STATE_FILE_MAX_BYTES);
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return { snapshot: null, revision: String(this.#revision) };
      if (error instanceof FileRefusedError) throw new StateFileError(`it ${error.detail}`);
      throw new StateFileError(`cannot read it (${(error as { code?: string }).code ?? error})`);
    }
    const { snapshot, savedAt } = parseStateFile(text);
    this.#lastWritten = snapshot;
    return { snapshot, revision: String(this.#revision), savedAt };
  }

  /** Keeps a bad file for inspection instead of overwriting it. */
  async setAside(): Promise<string> {
    const aside = `${this.path}.corrupt-${Date.now()}`;
    await rename(this.path, aside);
    return aside;
  }

  async commit(expected: Revision, next: Snapshot): Promise<CommitResult> {
    // One writer: a wrong revision is a bug of the caller, answered like a replicated store would.
    if (expected !== String(this.#revision) && this.#lastWritten) {
      return { ok: false, latest: this.#lastWritten, revision: String(this.#revision) };
    }
    await this.#write(serializeState(next));
    this.#lastWritten = next;
    this.#lastContact = new Date();
    return { ok: true, revision: String(++this.#revision) };
  }

  /** Nobody else writes the file. */
  watch(): void {}

  health(): BackendHealth {
    return { current: true, lastContact: this.#lastContact };
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
