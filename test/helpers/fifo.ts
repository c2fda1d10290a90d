/** FIFOs for the tests of paths that are not regular files. */
import { execFileSync } from "node:child_process";
import { closeSync, constants, linkSync, openSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./files.ts";

/** Makes a FIFO at `path` (node:fs cannot). */
export function makeFifo(path: string): void {
  execFileSync("mkfifo", [path]);
}

/**
 * Makes a FIFO at `path` and returns its clean-up: it removes the FIFO (if still at `path`, or at
 * `movedTo`) and
 * then opens it for writing a moment (through a second name outside the directory), which
 * releases any reader blocked in open(): the bug under test, and Deno's file watcher thread
 * (see plugins/fifo_writer.ts), so that the tests after it do not hang.
 */
export function makeReleasableFifo(path: string): (movedTo?: string) => void {
  makeFifo(path);
  const keep = join(tempDir(), "fifo");
  linkSync(path, keep);
  return (movedTo = path) => {
    try {
      if (statSync(movedTo).ino === statSync(keep).ino) rmSync(movedTo);
    } catch {
      // Gone already.
    }
    try {
      closeSync(openSync(keep, constants.O_RDWR | constants.O_NONBLOCK));
    } catch {
      // Nothing to release.
    }
  };
}
