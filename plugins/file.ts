/**
 * File watcher source: the trimmed content of a file (`RUN`, `PAUSE` or
 * `STOP`, any letter case) is its claim; a missing or empty file means no
 * objection.
 *
 * It watches the file's *directory*, not the file: editors and `mv` replace
 * a file by rename, and Kubernetes updates a mounted ConfigMap by swapping a
 * `..data` symlink, and a watch on the old inode would see none of that. A
 * periodic re-read backs the events up (some filesystems send none) and
 * re-asserts the claim after an operator forced RUN.
 */
import { type FSWatcher, statSync, watch } from "node:fs";
import { dirname, resolve } from "node:path";
import * as v from "valibot";
import {
  type Assert,
  type DefinedPlugin,
  definePlugin,
  delay,
  durationSchema,
  FileRefusedError,
  formatDuration,
  parseSignal,
  PluginNameSchema,
  readHead,
  type SameType,
  serialCheck,
  type SourceContext,
} from "../plugin.ts";
import { FifoWriter } from "./fifo_writer.ts";

export const FILE_KIND = "file";

/**
 * One more read this long after the last change event. Bun drops a change event that comes within
 * about 2 ms of the one before (measured: 43 of 100 quick successive writes went unseen until the
 * next periodic re-read, 5 s later by default); a read after the burst sees the last write.
 */
const SETTLE_MS = 25;

/** Larger files are not signal files: reading no more keeps a wrong path from eating memory. */
const MAX_FILE_BYTES = 4096;

/** A file source's options, as given (in the config: `chaos_signal.sources[]` with `type: file`). */
export interface FileSourceOptions {
  name: string;
  path: string;
  interval?: string | number | undefined;
  on_invalid?: "hold" | "pause" | undefined;
}

/** A file source's options once parsed: defaults filled in, `interval` in milliseconds. */
export interface ParsedFileSourceOptions {
  name: string;
  path: string;
  interval: number;
  on_invalid: "hold" | "pause";
}

/** The schema as valibot infers it: `FileSourceSchema` is typed by hand (JSR), and checked against it below. */
const fileSourceSchema = v.strictObject({
  /** The source's name, unique among sources. */
  name: PluginNameSchema,
  /** The file to watch; relative paths are taken from the working directory. */
  path: v.pipe(v.string("a file path"), v.nonEmpty("a file path")),
  /**
   * How often the file is read even without a filesystem event.
   * @default "5s"
   */
  interval: v.optional(durationSchema(50, 3_600_000), "5s"),
  /**
   * What content other than RUN/PAUSE/STOP does: `hold` keeps the previous
   * claim, `pause` claims PAUSE. Either way it is a warning.
   * @default "hold"
   */
  on_invalid: v.optional(v.picklist(["hold", "pause"], "hold or pause"), "hold"),
});

/** The options of a file source. */
export const FileSourceSchema: v.GenericSchema<FileSourceOptions, ParsedFileSourceOptions> = fileSourceSchema;
type _Input = Assert<SameType<v.InferInput<typeof fileSourceSchema>, FileSourceOptions>>;
type _Output = Assert<SameType<v.InferOutput<typeof fileSourceSchema>, ParsedFileSourceOptions>>;

/** Makes a file watcher source. */
export const fileSource: DefinedPlugin<typeof FileSourceSchema> = definePlugin(FILE_KIND, FileSourceSchema, (options) => {
  const path = resolve(options.path);
  const directory = dirname(path);

  /** At most MAX_FILE_BYTES + 1 bytes: one more tells that the file is too large. */
  async function readFile(): Promise<{ text: string; tooLarge: boolean }> {
    const head = await readHead(path, MAX_FILE_BYTES);
    return { text: new TextDecoder().decode(head.subarray(0, MAX_FILE_BYTES)), tooLarge: head.length > MAX_FILE_BYTES };
  }

  const fifo = new FifoWriter(path);

  async function readState(context: SourceContext): Promise<void> {
    fifo.hold();
    let head: { text: string; tooLarge: boolean };
    try {
      head = await readFile();
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ENOENT" || code === "ENOTDIR") {
        context.observe({ path, content: null });
        context.release(`${path} does not exist`);
        return;
      }
      // Not a regular file (a FIFO, a device, a directory) or not readable: its content is as
      // unknown as invalid content's, so on_invalid says what it claims.
      const why = error instanceof FileRefusedError ? `it ${error.detail}` : (error as Error)?.message ?? String(error);
      context.observe({ path, content: null, error: why });
      context.warn(`cannot read ${path}: ${why}`);
      if (options.on_invalid === "pause") context.claim("PAUSE", `cannot read ${path}`);
      return;
    }
    if (head.tooLarge) {
      context.observe({ path, content: `${head.text.slice(0, 40)}...` });
      context.warn(`${path} is larger than ${MAX_FILE_BYTES} bytes; expected RUN, PAUSE or STOP (any case), or nothing`);
      if (options.on_invalid === "pause") context.claim("PAUSE", `${path} is larger than ${MAX_FILE_BYTES} bytes`);
      return;
    }
    const text = head.text.trim();
    context.observe({ path, content: text.slice(0, 80) });
    if (text === "") {
      context.release(`${path} is empty`);
      return;
    }
    const state = parseSignal(text);
    if (state === "RUN") context.release(`${path} says RUN`);
    else if (state) context.claim(state, `${path} says ${state}`);
    else {
      context.warn(`${path} holds ${JSON.stringify(text.slice(0, 40))}; expected RUN, PAUSE or STOP (any case), or nothing`);
      if (options.on_invalid === "pause") context.claim("PAUSE", `${path} holds something other than RUN, PAUSE or STOP`);
    }
  }

  /**
   * The directory's identity: one removed and made again needs a new watch.
   * Filesystems reuse inode numbers at once (ext4 does), so the birth time counts too.
   */
  function identity(): string | undefined {
    try {
      const stats = statSync(directory);
      return stats.isDirectory() ? `${stats.dev}:${stats.ino}:${stats.birthtimeMs}` : undefined;
    } catch {
      return undefined;
    }
  }

  return {
    name: options.name,
    kind: FILE_KIND,
    async run(context) {
      // Reads never overlap: an event during a read asks for one more read after it.
      const check = serialCheck(() => readState(context), context.abort);

      let settle: ReturnType<typeof setTimeout> | undefined;
      const onChange = (): void => {
        check();
        clearTimeout(settle);
        settle = setTimeout(() => {
          settle = undefined;
          if (context.abort.aborted) return;
          // A directory removed and made again meanwhile is watched again from here on.
          rewatch();
          check();
        }, SETTLE_MS);
      };

      /**
       * Watches the directory, not the file: any change in it may be ours (a
       * rename over the file, a new file, a `..data` symlink swap), and a read
       * is cheap. A directory that is missing, or was removed (its watch then
       * goes silent, without an error), is watched again by a later call.
       */
      let watched: { watcher: FSWatcher; id: string } | undefined;
      let warned = false;
      const unwatch = () => {
        // A FIFO that appeared since the last read would block this close on Deno: hold it first.
        if (watched) fifo.hold();
        watched?.watcher.close();
        watched = undefined;
      };
      const rewatch = (): void => {
        const id = identity();
        if (watched && watched.id === id) return;
        unwatch();
        if (id === undefined) {
          if (!warned) context.warn(`cannot watch ${directory}: it does not exist; re-reading every ${formatDuration(options.interval)}`);
          warned = true;
          return;
        }
        // Starting a watch would block on Deno too, as closing one does (see FifoWriter).
        fifo.hold();
        try {
          const watcher = watch(directory, { persistent: false }, () => {
            // The directory itself went away: drop its watch now, and a later re-read watches
            // anew. (Deno never again reports events for a path made again while a watch of
            // the old one was still open.)
            if (watched?.watcher === watcher && identity() !== watched.id) unwatch();
            onChange();
          });
          // Deno reports a failed watch here, after watch() returned; drop it so a later call retries.
          watcher.on("error", (error) => {
            if (watched?.watcher === watcher) unwatch();
            context.warn(new Error(`watching ${directory} failed; re-reading every ${formatDuration(options.interval)}`, { cause: error }));
          });
          watched = { watcher, id };
          warned = false;
        } catch (error) {
          if (!warned) context.warn(new Error(`cannot watch ${directory}; re-reading every ${formatDuration(options.interval)}`, { cause: error }));
          warned = true;
        }
      };

      rewatch();
      check();
      try {
        while (!context.abort.aborted) {
          await delay(options.interval, context.abort);
          rewatch();
          check();
        }
      } catch (error) {
        if (!context.abort.aborted) throw error;
      } finally {
        unwatch();
        clearTimeout(settle);
        await check.settled();
        // A FIFO's write end stays held: letting it go would block Deno's watcher thread again
        // (its close is an event), and the watch closed above is dropped only later, behind it.
      }
    },
  };
});
