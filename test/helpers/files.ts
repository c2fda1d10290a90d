/** Fixture paths and temporary files that are removed when the process exits. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

export function fixture(name: string): string {
  return new URL(`../fixtures/${name}`, import.meta.url).pathname;
}

const created: string[] = [];
process.on("exit", () => {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
});

/** A new empty directory, removed at exit. */
export function tempDir(prefix = "chaos-signal-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  // The container image's server runs as its own non-root user (run_all's image runner).
  if (process.env.CHAOS_SIGNAL_UNDER_TEST === "image") chmodSync(dir, 0o777);
  return dir;
}

/** Writes `text` to a new file named `name` in a new temporary directory; returns its path. */
export function tempFile(text: string, name = "config.yaml"): string {
  const path = join(tempDir(), name);
  writeFileSync(path, text);
  return path;
}
