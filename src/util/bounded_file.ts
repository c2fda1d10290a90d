/**
 * Reading a file that anyone with access to its directory may have replaced: only a regular file,
 * and only so much of it. A FIFO at the path blocks `open()` until a writer comes (holding one of
 * the runtime's few file-system threads meanwhile, which then starves every other file operation),
 * a link to `/dev/zero` never ends, and a huge file eats the memory; all of these are refused with
 * a `FileRefusedError` instead.
 */
import { constants, type Stats } from "node:fs";
import { open, stat } from "node:fs/promises";

const CHUNK_BYTES = 64 * 1024;

/** Thrown for a path that exists but is not a regular file, or is larger than allowed. */
export class FileRefusedError extends Error {
  override readonly name = "FileRefusedError";
  /** What is wrong, without the path: "is a FIFO, not a regular file". */
  readonly detail: string;

  constructor(path: string, detail: string) {
    super(`${path} ${detail}`);
    this.detail = detail;
  }
}

/** What a path is, for messages: "a FIFO", "a character device". */
function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isSocket()) return "a socket";
  return "not a regular file";
}

function refuseIrregular(path: string, stats: Stats): void {
  if (!stats.isFile()) {
    const kind = kindOf(stats);
    throw new FileRefusedError(path, kind.startsWith("not ") ? `is ${kind}` : `is ${kind}, not a regular file`);
  }
}

/**
 * At most `maxBytes + 1` bytes of a regular file (one more tells that it is larger). Throws
 * `FileRefusedError` when `path` (links followed) is anything else; the file system's own errors
 * (ENOENT, EACCES) as they are.
 */
export async function readHead(path: string, maxBytes: number): Promise<Uint8Array> {
  // Checked before opening, so that no device is ever opened (some act on open, tapes rewind) ...
  refuseIrregular(path, await stat(path));
  // ... and again on what was opened, in case the path was swapped meanwhile. Non-blocking, so
  // that a FIFO swapped in between does not block the open.
  const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    refuseIrregular(path, await file.stat());
    // In chunks, so that a small file under a large limit costs little memory.
    const chunks: Uint8Array[] = [];
    let length = 0;
    while (length <= maxBytes) {
      const chunk = new Uint8Array(Math.min(CHUNK_BYTES, maxBytes + 1 - length));
      const { bytesRead } = await file.read(chunk, 0, chunk.length, length);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      length += bytesRead;
    }
    if (chunks.length === 1) return chunks[0]!;
    const head = new Uint8Array(length);
    let offset = 0;
    for (const chunk of chunks) {
      head.set(chunk, offset);
      offset += chunk.length;
    }
    return head;
  } finally {
    await file.close();
  }
}

/**
 * The whole text of a regular file of at most `maxBytes` bytes; throws `FileRefusedError` for
 * anything else, the file system's own errors as they are.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<string> {
  const stats = await stat(path);
  refuseIrregular(path, stats);
  // A huge file is refused without reading it; one that grows meanwhile is caught by the read.
  if (stats.size > maxBytes) throw new FileRefusedError(path, `is ${stats.size} bytes, more than the ${maxBytes} allowed`);
  const head = await readHead(path, maxBytes);
  if (head.length > maxBytes) throw new FileRefusedError(path, `is more than the ${maxBytes} bytes allowed`);
  return new TextDecoder().decode(head);
}
