/**
 * Keeps a FIFO at a watched path open for writing while it is there.
 *
 * Deno's file watcher opens every path it reports an event for (to compare it with the watched
 * one), on its one watcher thread, holding a lock that closing or starting a watch needs: a FIFO
 * in the watched directory blocks that open until a writer comes, and then closing the watch
 * (at shutdown) blocks the main thread for good. With a writer held, those opens return at once.
 * Opened non-blocking: it fails (ENXIO) when nobody is waiting to read, and then nothing is stuck.
 */
import { closeSync, constants, fstatSync, openSync, statSync } from "node:fs";

export class FifoWriter {
  readonly #path: string;
  #held: { fd: number; id: string } | undefined;

  constructor(path: string) {
    this.#path = path;
  }

  /** Holds a write end of the FIFO at the path, if there is one; lets go of one that is gone. */
  hold(): void {
    const id = fifoId(this.#path);
    if (this.#held && this.#held.id === id) return;
    this.release();
    if (id === undefined) return;
    try {
      const fd = openSync(this.#path, constants.O_WRONLY | constants.O_NONBLOCK);
      const stats = fstatSync(fd);
      if (stats.isFIFO()) this.#held = { fd, id: `${stats.dev}:${stats.ino}` };
      else closeSync(fd);
    } catch {
      // ENXIO: no reader is waiting, so nothing is blocked on it.
    }
  }

  release(): void {
    if (!this.#held) return;
    try {
      closeSync(this.#held.fd);
    } catch {
      // Already closed.
    }
    this.#held = undefined;
  }
}

/** The FIFO's identity, or undefined when the path (links followed) is not a FIFO. */
function fifoId(path: string): string | undefined {
  try {
    const stats = statSync(path);
    return stats.isFIFO() ? `${stats.dev}:${stats.ino}` : undefined;
  } catch {
    return undefined;
  }
}
