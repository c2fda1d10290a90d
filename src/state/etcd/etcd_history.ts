/**
 * The audit history of a shared signal, in etcd: one key per entry under
 * `<prefix>/signals/default/history/`, written once by the replica that made the change; every
 * replica keeps the newest entries in its `History` from a range read at start and a watch on
 * the key range, so `/history` is the same on all. An entry's id is the revision it was written
 * at. The replica that writes trims the oldest keys past the history's bound.
 */
import { clearTimeout, setTimeout } from "node:timers";
import { Backoff } from "../../util/backoff.ts";
import { type History, parseHistoryLine, type UnnumberedEntry } from "../history.ts";
import type { EtcdClient, EtcdKeyValue } from "./client.ts";

/** Entries waiting for etcd (it is unreachable): past this the oldest are dropped, and said so. */
const MAX_UNWRITTEN = 1000;

/**
 * Entries kept in etcd (and in each replica's copy): read back in one range at start, which must
 * stay well under the client's 4 MiB body bound (an entry is about 0.5 KiB in the JSON gateway).
 */
export const SHARED_HISTORY_MAX_ENTRIES = 2000;

/** Own writes between two trims of the oldest keys. */
const TRIM_EVERY = 50;

export interface EtcdHistoryOptions {
  readonly client: EtcdClient;
  /** `/chaos-signal/default`. */
  readonly prefix: string;
  readonly history: History;
  readonly onError?: (message: string) => void;
}

export class EtcdHistory {
  readonly keyPrefix: string;
  readonly #client: EtcdClient;
  readonly #history: History;
  readonly #onError: (message: string) => void;
  readonly #abort = new AbortController();
  readonly #instance = crypto.randomUUID().slice(0, 8);
  #written = 0;
  /** Entries handed to `share` so far, and those written (or dropped) so far: `flushed` waits for the first count. */
  #shared = 0;
  #settled = 0;
  #waiters: { readonly until: number; readonly resolve: () => void }[] = [];
  #unwritten: UnnumberedEntry[] = [];
  #writing: Promise<void> | undefined;
  /**
   * Where the watch resumes: the revision up to which every entry has been read (from the range or
   * the watch). Never moved by this replica's own writes: an entry another replica wrote before
   * one of ours would be skipped.
   */
  #revision = "0";

  constructor(options: EtcdHistoryOptions) {
    this.keyPrefix = `${options.prefix.replace(/\/+$/, "")}/signals/default/history/`;
    this.#client = options.client;
    this.#history = options.history;
    this.#onError = options.onError ?? (() => {});
  }

  /** Reads the newest entries, then keeps them current from a watch until `close`. */
  async start(): Promise<void> {
    await this.#reload();
    void this.#watchLoop();
  }

  /** Writes an entry made here (in order, retried until etcd has it). */
  share(entry: UnnumberedEntry): void {
    this.#unwritten.push(entry);
    this.#shared += 1;
    if (this.#unwritten.length > MAX_UNWRITTEN) {
      this.#settle(this.#unwritten.length - MAX_UNWRITTEN);
      this.#unwritten.splice(0, this.#unwritten.length - MAX_UNWRITTEN);
      this.#onError(`history: etcd unreachable, more than ${MAX_UNWRITTEN} entries waiting; the oldest were dropped`);
    }
    this.#writing ??= this.#drain().finally(() => this.#writing = undefined);
  }

  /**
   * Resolves when every entry shared so far is written (or the history is closed): not later
   * ones, so that a steady stream of changes does not hold it up.
   */
  flushed(): Promise<void> {
    if (this.#settled >= this.#shared || this.#abort.signal.aborted) return Promise.resolve();
    const until = this.#shared;
    return new Promise((resolve) => this.#waiters.push({ until, resolve }));
  }

  close(): void {
    this.#abort.abort();
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
  }

  #settle(count: number): void {
    this.#settled += count;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.until > this.#settled) return true;
      waiter.resolve();
      return false;
    });
  }

  async #drain(): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
    while (this.#unwritten.length && !this.#abort.signal.aborted) {
      const entry = this.#unwritten[0]!;
      const key = `${this.keyPrefix}${String(Date.parse(entry.at)).padStart(15, "0")}-${this.#instance}-${this.#written}`;
      try {
        // Created once: a put that timed out may still have been applied, and a second one would
        // give the entry a second revision (the others' watches would show it twice).
        const revision = await this.#client.createOnce(key, JSON.stringify(entry));
        this.#unwritten.shift();
        this.#written += 1;
        this.#settle(1);
        backoff.reset();
        // Shown at once; the watch delivers it again (adopt keeps an id once).
        this.#adopt({ key, value: JSON.stringify(entry), modRevision: revision }, false);
        if (this.#written % TRIM_EVERY === 0) await this.#trim().catch((error) => this.#onError(`history: trimming etcd failed: ${(error as Error).message}`));
      } catch (error) {
        this.#onError(`history: writing to etcd failed (${(error as Error).message}); retried`);
        await this.#sleep(backoff.next());
      }
    }
  }

  /** Deletes the oldest keys past the bound (any replica may; deleting twice is harmless). */
  async #trim(): Promise<void> {
    const { count } = await this.#client.rangePrefix(this.keyPrefix, { keysOnly: true, limit: 1 });
    const surplus = count - this.#history.maxEntries;
    if (surplus <= 0) return;
    const { kvs } = await this.#client.rangePrefix(this.keyPrefix, { keysOnly: true, oldestFirst: true, limit: Math.min(surplus, 1000) });
    await this.#client.deleteKeys(kvs.map((kv) => kv.key));
  }

  /** `read`: it came from the range or the watch, which have read everything up to its revision. */
  #adopt(kv: EtcdKeyValue, read = true): void {
    if (read && Number(kv.modRevision) > Number(this.#revision)) this.#revision = kv.modRevision;
    const entry = parseHistoryLine(JSON.stringify({ ...JSON.parse(kv.value || "null"), id: Number(kv.modRevision) }));
    if (entry) this.#history.adopt(entry);
  }

  /**
   * Adds the newest entries to the copy. Merged, not replacing it: entries adopted while the range
   * was under way (this replica's own writes) are not in its answer, and must stay.
   */
  async #reload(): Promise<void> {
    const { kvs, revision } = await this.#client.rangePrefix(this.keyPrefix, { limit: this.#history.maxEntries });
    for (const kv of kvs.reverse()) {
      try {
        this.#adopt(kv);
      } catch { /* not an entry: skipped, as a bad log line is */ }
    }
    if (Number(revision) > Number(this.#revision)) this.#revision = revision;
  }

  async #watchLoop(): Promise<void> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 2000 });
    while (!this.#abort.signal.aborted) {
      try {
        await this.#client.watch(this.keyPrefix, String(Number(this.#revision) + 1), (kv) => {
          backoff.reset();
          try {
            this.#adopt(kv);
          } catch { /* not an entry */ }
        }, this.#abort.signal, () => {}, { prefix: true });
      } catch (error) {
        this.#onError(`history: watching etcd failed (${(error as Error).message})`);
      }
      if (this.#abort.signal.aborted) return;
      await this.#sleep(backoff.next());
      // The watch may have missed entries (compacted, another member): read them again.
      await this.#reload().catch(() => {});
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#abort.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }
}
