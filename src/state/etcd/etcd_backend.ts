/**
 * The signal's state in etcd, shared by every replica: the snapshot JSON under
 * `<prefix>/signals/default/state` (one key per signal, room for several), its revision the key's
 * mod_revision. A commit is a transaction on that mod_revision; a watch stream tells this replica
 * of the others' commits; a periodic linearizable read proves it is current (etcd 3.4 sends watch
 * progress notifications only every 10 minutes by default).
 */
import { clearInterval, clearTimeout, setInterval, setTimeout } from "node:timers";
import type { Snapshot } from "../../core/snapshot.ts";
import { Backoff } from "../../util/backoff.ts";
import type { BackendHealth, CommitResult, Revision, StateBackend } from "../backend.ts";
import { parseStateFile, serializeState } from "../state_file.ts";
import { EtcdClient, type EtcdClientOptions, redact } from "./client.ts";

export interface EtcdBackendOptions extends EtcdClientOptions {
  /** `/chaos-signal/default`: several deployments can share one etcd. */
  readonly prefix: string;
  /** Without a successful linearizable contact for this long, the state counts as not current. @default 3000 */
  readonly maxStalenessMs?: number;
  readonly now?: () => Date;
}

export class EtcdBackend implements StateBackend {
  readonly client: EtcdClient;
  readonly key: string;
  readonly maxStalenessMs: number;
  readonly failClosed = true;
  readonly #now: () => Date;
  #lastContact: Date | null = null;
  #lastError: string | null = null;
  #revision: Revision = "0";
  readonly #abort = new AbortController();
  #probe: ReturnType<typeof setInterval> | undefined;
  #onChange: ((snapshot: Snapshot, revision: Revision) => void) | undefined;
  /** Ends the current watch stream (the loop reconnects, on the next endpoint). */
  #restartWatch: AbortController | undefined;

  constructor(options: EtcdBackendOptions) {
    this.client = new EtcdClient({ timeoutMs: Math.max(500, (options.maxStalenessMs ?? 3000) / 2), ...options });
    this.key = `${options.prefix.replace(/\/+$/, "")}/signals/default/state`;
    this.maxStalenessMs = options.maxStalenessMs ?? 3000;
    this.#now = options.now ?? (() => new Date());
  }

  get where(): string {
    return `etcd ${this.client.endpoints.map(redact).join(",")} ${this.key}`;
  }

  /** The last revision this replica knows of (committed, loaded or watched). */
  get revision(): Revision {
    return this.#revision;
  }

  async load(): Promise<{ snapshot: Snapshot | null; revision: Revision }> {
    const { kv } = await this.client.get(this.key);
    this.#contact();
    if (!kv) return { snapshot: null, revision: "0" };
    this.#seen(kv.modRevision);
    return { snapshot: parseStateFile(kv.value).snapshot, revision: kv.modRevision };
  }

  async commit(expected: Revision, next: Snapshot): Promise<CommitResult> {
    const result = await this.client.putIfRevision(this.key, expected, serializeState(next, this.#now()));
    this.#contact();
    if (result.succeeded) {
      this.#seen(result.revision);
      return { ok: true, revision: result.revision };
    }
    if (!result.current) {
      // Deleted behind our back (expected was not 0): write it again from scratch.
      return this.commit("0", next);
    }
    this.#seen(result.current.modRevision);
    return { ok: false, latest: parseStateFile(result.current.value).snapshot, revision: result.current.modRevision };
  }

  watch(onChange: (snapshot: Snapshot, revision: Revision) => void, abort: AbortSignal): void {
    const stop = AbortSignal.any([abort, this.#abort.signal]);
    this.#onChange = onChange;
    this.#startProbe(stop);
    void this.#watchLoop(stop);
  }

  health(): BackendHealth {
    const age = this.#lastContact ? this.#now().getTime() - this.#lastContact.getTime() : Infinity;
    const current = age <= this.maxStalenessMs;
    return {
      current,
      lastContact: this.#lastContact,
      ...(current ? {} : { detail: `no contact with etcd for ${Number.isFinite(age) ? `${(age / 1000).toFixed(1)} s` : "ever"}${this.#lastError ? ` (${this.#lastError})` : ""}` }),
    };
  }

  /** Stops the watch and the probe. */
  close(): void {
    this.#abort.abort();
  }

  #contact(): void {
    this.#lastContact = this.#now();
    this.#lastError = null;
  }

  #seen(revision: Revision): void {
    if (Number(revision) > Number(this.#revision)) this.#revision = revision;
  }

  /** A linearizable read every max_staleness/3: it goes through the raft leader, so it proves a quorum. */
  #startProbe(stop: AbortSignal): void {
    if (this.#probe) return;
    let running = false;
    const probe = async () => {
      if (running || stop.aborted) return;
      running = true;
      try {
        const { kv } = await this.client.get(this.key);
        this.#contact();
        if (kv && Number(kv.modRevision) > Number(this.#revision)) {
          // The watch missed a commit (its member hangs without closing the stream): deliver it
          // from here, and reconnect the watch elsewhere.
          this.#deliver(kv.value, kv.modRevision);
          this.client.rotate();
          this.#restartWatch?.abort();
        }
      } catch (error) {
        this.#lastError = (error as Error).message;
      } finally {
        running = false;
      }
    };
    this.#probe = setInterval(probe, Math.max(100, Math.floor(this.maxStalenessMs / 3)));
    this.#probe.unref?.();
    stop.addEventListener("abort", () => clearInterval(this.#probe), { once: true });
  }

  /** Tells the store of a commit made elsewhere, once, in revision order. */
  #deliver(value: string, revision: Revision): void {
    if (Number(revision) <= Number(this.#revision)) return;
    let snapshot: Snapshot;
    try {
      snapshot = parseStateFile(value).snapshot;
    } catch (error) {
      this.#lastError = `unreadable state in etcd: ${(error as Error).message}`;
      return;
    }
    this.#seen(revision);
    this.#onChange?.(snapshot, revision);
  }

  async #watchLoop(stop: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 2000 });
    while (!stop.aborted) {
      const restart = this.#restartWatch = new AbortController();
      try {
        await this.client.watch(this.key, String(Number(this.#revision) + 1), (kv) => {
          backoff.reset();
          this.#deliver(kv.value, kv.modRevision);
        }, AbortSignal.any([stop, restart.signal]));
      } catch (error) {
        this.#lastError = (error as Error).message;
      }
      if (stop.aborted) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff.next());
        stop.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }
}
