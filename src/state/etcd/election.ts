/**
 * One leader among the replicas: the replica whose lease holds `<prefix>/leader` leads. A candidate
 * creates the key with its lease in a txn that succeeds only while the key is absent
 * (create_revision == 0), keeps the lease alive every TTL/3, and reads the key every TTL/3 to see
 * who leads. When a leader dies or is cut off, its lease expires and etcd deletes the key: the next
 * replica to look takes it, within TTL + TTL/3.
 *
 * Why not `/v3/election/campaign`: through the JSON gateway it is one request held open until this
 * replica leads, which a time limit on every call cannot bound; the txn is a short call like every
 * other one of the client, and the periodic read doubles as the followers' view of the leader.
 */
import { Buffer } from "node:buffer";
import { clearTimeout, setTimeout } from "node:timers";
import type { EtcdClient } from "./client.ts";

export interface ElectionOptions {
  readonly client: EtcdClient;
  /** The key that names the leader: `<prefix>/leader`. */
  readonly key: string;
  /** This replica's id, the key's value while it leads. */
  readonly replicaId: string;
  /** The lease's time to live, in seconds (etcd's unit). @default 3 */
  readonly ttlSeconds?: number;
  /** Told when this replica starts or stops leading. */
  readonly onChange?: (leading: boolean) => void;
  readonly log?: (line: string) => void;
}

export interface ElectionStatus {
  /** The leader's id as last read, null when none (or unknown). */
  readonly leader: string | null;
  readonly replica: string;
  readonly leading: boolean;
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const unb64 = (text: string | undefined) => Buffer.from(text ?? "", "base64").toString("utf8");

export class Election {
  readonly #client: EtcdClient;
  readonly #key: string;
  readonly replicaId: string;
  readonly #ttlMs: number;
  readonly #ttlSeconds: number;
  readonly #onChange: (leading: boolean) => void;
  readonly #log: (line: string) => void;
  #lease: string | undefined;
  /** Until when the lease surely holds: from the send time of the last keepalive etcd answered. */
  #leaseHoldsUntil = 0;
  #leading = false;
  #leader: string | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Steps down before the lease may expire, however long a round takes. */
  #deadline: ReturnType<typeof setTimeout> | undefined;
  #stopped = true;
  readonly #abort = new AbortController();

  constructor(options: ElectionOptions) {
    this.#client = options.client;
    this.#key = options.key;
    this.replicaId = options.replicaId;
    this.#ttlSeconds = options.ttlSeconds ?? 3;
    this.#ttlMs = this.#ttlSeconds * 1000;
    this.#onChange = options.onChange ?? (() => {});
    this.#log = options.log ?? (() => {});
  }

  get leading(): boolean {
    return this.#leading;
  }

  status(): ElectionStatus {
    return { leader: this.#leader, replica: this.replicaId, leading: this.#leading };
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    void this.#tick();
  }

  /** Stops campaigning; a leader steps down and gives the key up at once (revokes its lease). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#abort.abort();
    this.#setLeading(false);
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease !== undefined) await this.#client.call("/v3/lease/revoke", { ID: lease }).catch(() => {});
  }

  /** One round, every TTL/3: keep the lease, see who leads, take the key if nobody holds it. */
  async #tick(): Promise<void> {
    const interval = this.#interval;
    try {
      await this.#round();
    } catch (error) {
      if (this.#stopped) return;
      this.#log(`leader election: ${(error as Error).message}`);
    }
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), interval);
    this.#timer.unref?.();
  }

  get #interval(): number {
    return Math.max(100, Math.floor(this.#ttlMs / 3));
  }

  /**
   * Cut off, a leader cannot know whether its lease still holds: it stops leading one interval
   * before the lease may expire, so that its leader-only work has ended before another replica's starts.
   */
  #armDeadline(): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    if (!this.#leading) return;
    this.#deadline = setTimeout(() => {
      if (this.#leading && !this.#stopped) this.#stepDown("its lease was not renewed in time");
    }, Math.max(0, this.#leaseHoldsUntil - this.#interval - Date.now()));
    this.#deadline.unref?.();
  }

  async #round(): Promise<void> {
    // Each call is bounded by the client's own time limit (per endpoint); this ends them on stop.
    const timeout = this.#abort.signal;
    if (this.#lease !== undefined) {
      const sentAt = Date.now();
      const body = await this.#client.call("/v3/lease/keepalive", { ID: this.#lease }, timeout);
      const ttl = Number((body.result as { TTL?: string } | undefined)?.TTL ?? 0);
      if (ttl > 0) {
        this.#leaseHoldsUntil = sentAt + ttl * 1000;
        this.#armDeadline();
      } else {
        // Expired (etcd deleted our key with it): start over with a new lease.
        this.#lease = undefined;
        if (this.#leading) this.#stepDown("its lease expired");
      }
    }
    if (this.#lease === undefined) {
      const sentAt = Date.now();
      const granted = await this.#client.call("/v3/lease/grant", { TTL: this.#ttlSeconds }, timeout);
      this.#lease = String(granted.ID);
      this.#leaseHoldsUntil = sentAt + Number(granted.TTL ?? this.#ttlSeconds) * 1000;
    }
    const key = b64(this.#key);
    const body = await this.#client.call("/v3/kv/txn", {
      compare: [{ key, target: "CREATE", result: "EQUAL", create_revision: "0" }],
      success: [{ request_put: { key, value: b64(this.replicaId), lease: this.#lease } }],
      failure: [{ request_range: { key } }],
    }, timeout);
    if (this.#stopped) return;
    if (body.succeeded === true) {
      this.#leader = this.replicaId;
      this.#setLeading(true);
      return;
    }
    const responses = (body.responses ?? []) as { response_range?: { kvs?: { value?: string; lease?: string }[] } }[];
    const kv = responses[0]?.response_range?.kvs?.[0];
    this.#leader = kv ? unb64(kv.value) : null;
    // Ours while our lease holds it (a restart with the same id but another lease is not us).
    const ours = kv !== undefined && this.#leader === this.replicaId && String(kv.lease) === this.#lease;
    if (ours) this.#setLeading(true);
    else if (this.#leading) this.#stepDown(`the key names ${this.#leader ?? "nobody"}`);
  }

  #stepDown(why: string): void {
    this.#log(`leader election: ${this.replicaId} stops leading: ${why}`);
    this.#setLeading(false);
  }

  #setLeading(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    if (leading) this.#log(`leader election: ${this.replicaId} leads`);
    this.#armDeadline();
    try {
      this.#onChange(leading);
    } catch (error) {
      this.#log(`leader election: a listener failed: ${(error as Error).message}`);
    }
  }
}
