/**
 * `targets_file`: one target URL a line, `#` starts a comment; re-read when its directory changes
 * (a rename over the file, an in-place rewrite, a ConfigMap's `..data` swap) and every few seconds.
 *
 * Read as the file source reads its file (a regular file only, at most MAX_FILE_BYTES: a FIFO or
 * a device at the path is refused unopened). A file with a bad line is refused whole, naming the
 * lines, and the last set stays: half a list is a fleet that silently lost runs. A content is used
 * only once two reads a moment apart agree, so a rewrite in place is not taken half-written.
 */
import { type FSWatcher, statSync, watch } from "node:fs";
import { dirname, resolve } from "node:path";
import * as v from "valibot";
import { delay, FileRefusedError, readRegularFile, serialCheck, type SourceContext } from "../plugin.ts";
import { FifoWriter } from "./fifo_writer.ts";
import { KnownTargets, MAX_DISCOVERED_TARGETS, TARGET_URL_RULE, TargetUrlSchema } from "./relay_known_targets.ts";

/** 10,000 URLs of a hundred bytes, with room for comments. */
const MAX_FILE_BYTES = 2 * 1024 * 1024;
/** How often the file is read even without an event (some filesystems send none). */
const RECHECK_MS = 5_000;
/** The second read, this long after the first, must agree with it. */
const SETTLE_MS = 50;
/** A refusal names this many bad lines at most. */
const MAX_NAMED_LINES = 5;

/** A relay's `targets_file`: a path. */
export const TargetsFileSchema: v.GenericSchema<string> = v.pipe(v.string("a file path"), v.nonEmpty("a file path"));

/** The URLs of a targets file, or what is wrong with it (by line number). */
export function parseTargetsFile(text: string): { urls: string[] } | { error: string } {
  const urls: string[] = [];
  const bad: string[] = [];
  let badCount = 0;
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    // `#` at the start or after a blank begins a comment (a URL's own `#fragment` has no blank before it).
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (line === "") continue;
    if (v.safeParse(TargetUrlSchema, line).success) {
      urls.push(line);
      continue;
    }
    badCount += 1;
    if (bad.length < MAX_NAMED_LINES) bad.push(`line ${index + 1}: ${JSON.stringify(line.slice(0, 80))}`);
  }
  if (badCount > 0) {
    const more = badCount > bad.length ? ` and ${badCount - bad.length} more` : "";
    return { error: `${bad.join(", ")}${more} ${badCount === 1 ? "is not" : "are not"} ${TARGET_URL_RULE}; the file is not used` };
  }
  const unique = [...new Set(urls)];
  if (unique.length > MAX_DISCOVERED_TARGETS) return { error: `${unique.length} targets, more than the ${MAX_DISCOVERED_TARGETS} allowed; the file is not used` };
  return { urls: unique };
}

export class FileTargets {
  readonly known: KnownTargets;
  readonly #path: string;
  readonly #directory: string;
  readonly #fifo: FifoWriter;

  constructor(path: string) {
    this.#path = resolve(path);
    this.#directory = dirname(this.#path);
    this.#fifo = new FifoWriter(this.#path);
    this.known = new KnownTargets("targets_file", this.#path);
  }

  async #read(): Promise<string> {
    this.#fifo.hold();
    return await readRegularFile(this.#path, MAX_FILE_BYTES);
  }

  /** One look at the file: its URLs once two reads agree, or the last set stays. */
  async #check(abort: AbortSignal): Promise<"done" | "again"> {
    let first: string;
    let second: string;
    try {
      first = await this.#read();
      await delay(SETTLE_MS, abort);
      second = await this.#read();
    } catch (error) {
      if (abort.aborted) return "done";
      const code = (error as { code?: string }).code;
      const why = error instanceof FileRefusedError
        ? `it ${error.detail}`
        : code === "ENOENT" || code === "ENOTDIR"
        ? "it does not exist"
        : `cannot read it (${code ?? (error as Error)?.message ?? error})`;
      this.known.fail(why);
      return "done";
    }
    // Still being written: look again once it settles.
    if (first !== second) return "again";
    const parsed = parseTargetsFile(second);
    if ("error" in parsed) this.known.fail(parsed.error);
    else this.known.accept(parsed.urls, "it lists no URL");
    return "done";
  }

  /** The directory's identity: one removed and made again needs a new watch (see the file source). */
  #identity(): string | undefined {
    try {
      const stats = statSync(this.#directory);
      return stats.isDirectory() ? `${stats.dev}:${stats.ino}:${stats.birthtimeMs}` : undefined;
    } catch {
      return undefined;
    }
  }

  async run(context: SourceContext, changed: () => void): Promise<void> {
    const { abort } = context;
    // Checks never overlap: an event during one asks for one more after it.
    const check = serialCheck(async () => {
      if ((await this.#check(abort)) === "again") check();
      else changed();
    }, abort);

    // The directory is watched, not the file: a rename over the file replaces its inode.
    let watched: { watcher: FSWatcher; id: string } | undefined;
    const unwatch = () => {
      // A FIFO at the path would block this close on Deno: hold its write end first (see FifoWriter).
      if (watched) this.#fifo.hold();
      watched?.watcher.close();
      watched = undefined;
    };
    const rewatch = (): void => {
      const id = this.#identity();
      if (watched && watched.id === id) return;
      unwatch();
      if (id === undefined) return; // no directory: the periodic re-read notices it coming back
      this.#fifo.hold();
      try {
        const watcher = watch(this.#directory, { persistent: false }, () => check());
        watcher.on("error", () => {
          if (watched?.watcher === watcher) unwatch();
        });
        watched = { watcher, id };
      } catch {
        // Not watchable: the periodic re-read still sees every change.
      }
    };

    rewatch();
    check();
    try {
      while (!abort.aborted) {
        await delay(RECHECK_MS, abort);
        rewatch();
        check();
      }
    } catch (error) {
      if (!abort.aborted) throw error;
    } finally {
      unwatch();
      await check.settled();
      // A FIFO's write end stays held, as in the file source: letting go would block Deno's watcher.
    }
  }
}
