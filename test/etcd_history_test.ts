/**
 * The shared history's copy on a replica (EtcdHistory) after its watch broke: the range read
 * that follows must not lose entries written meanwhile, its own or another replica's. Found by
 * the history checker (etcd_history_check_test.ts, CHECK_SEED=873389783): an acknowledged STOP
 * in etcd but missing from the /history of the replica that took it.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { EtcdClient, EtcdError, type EtcdKeyValue } from "../src/state/etcd/client.ts";
import { EtcdHistory } from "../src/state/etcd/etcd_history.ts";
import { History } from "../src/state/history.ts";
import { type EtcdCluster, startEtcd } from "./helpers/etcd.ts";
import { waitFor } from "./helpers/wait.ts";

let etcd: EtcdCluster;
before(async () => {
  etcd = await startEtcd(1);
});
after(async () => {
  await etcd?.stop();
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

/** A client whose first watch breaks on cue, and whose next range answers late (on cue) what it read. */
class CuedClient extends EtcdClient {
  readonly breakWatch = deferred();
  /** Armed: the next range is read, then held until `hold` resolves. */
  stale: { readonly read: ReturnType<typeof deferred>; readonly hold: Promise<void> } | undefined;
  #watches = 0;

  override async watch(...args: Parameters<EtcdClient["watch"]>): Promise<void> {
    if (++this.#watches === 1) {
      await this.breakWatch.promise;
      throw new EtcdError("the member went away");
    }
    return await super.watch(...args);
  }

  override async rangePrefix(...args: Parameters<EtcdClient["rangePrefix"]>): Promise<{ kvs: EtcdKeyValue[]; count: number; revision: string }> {
    const result = await super.rangePrefix(...args);
    const stale = this.stale;
    if (stale) {
      this.stale = undefined;
      stale.read.resolve();
      await stale.hold;
    }
    return result;
  }
}

const entry = (state: "PAUSE" | "STOP", reason: string) => ({ at: new Date().toISOString(), type: "claim" as const, source: "manual", state, previous: null, reason });

test("EtcdHistory: entries written while the range after a broken watch is under way (its own and another replica's) are kept", async () => {
  const prefix = `/history-test/${Date.now()}`;
  const client = new CuedClient({ endpoints: etcd.endpoints, timeoutMs: 2000 });
  const history = new History({ maxEntries: 100 });
  const shared = new EtcdHistory({ client, prefix, history });
  const other = new EtcdHistory({ client: new EtcdClient({ endpoints: etcd.endpoints }), prefix, history: new History({ maxEntries: 100 }) });
  try {
    await shared.start();
    await other.start();
    const hold = deferred();
    client.stale = { read: deferred(), hold: hold.promise };
    const read = client.stale.read.promise;
    // The watch breaks; the range that follows has read etcd but not answered yet when…
    client.breakWatch.resolve();
    await read;
    // …another replica writes an entry, then this one writes its own (a STOP it took).
    other.share(entry("PAUSE", "the other replica's"));
    await other.flushed();
    shared.share(entry("STOP", "this replica's"));
    await shared.flushed();
    assert.ok(history.page({ limit: 10 }).entries.some((e) => e.reason === "this replica's"), "its own entry, once written");
    hold.resolve();
    const reasons = () => history.page({ limit: 10 }).entries.map((e) => e.reason).sort();
    await waitFor(() => reasons().length === 2, { what: "both entries in the replica's copy", timeoutMs: 3000 }).catch(() => {});
    assert.deepEqual(reasons(), ["the other replica's", "this replica's"]);
  } finally {
    shared.close();
    other.close();
  }
});

/** A client whose first put is applied, but its answer lost (a time-out while etcd elects a leader). */
class LostAnswerClient extends EtcdClient {
  #lost = 0;
  override async call(path: string, request: unknown, abort?: AbortSignal): Promise<Record<string, unknown>> {
    const answer = await super.call(path, request, abort);
    if ((path === "/v3/kv/put" || path === "/v3/kv/txn") && this.#lost++ === 0) throw new EtcdError("timed out");
    return answer;
  }
}

test("EtcdHistory: a write retried after a lost answer is one entry, on every replica", async () => {
  const prefix = `/history-test/${Date.now()}-lost`;
  const writerCopy = new History({ maxEntries: 100 });
  const readerCopy = new History({ maxEntries: 100 });
  const writer = new EtcdHistory({ client: new LostAnswerClient({ endpoints: etcd.endpoints }), prefix, history: writerCopy });
  const reader = new EtcdHistory({ client: new EtcdClient({ endpoints: etcd.endpoints }), prefix, history: readerCopy });
  try {
    await writer.start();
    await reader.start();
    writer.share(entry("STOP", "once"));
    await writer.flushed();
    await waitFor(() => readerCopy.page({ limit: 10 }).entries.length > 0, { what: "the entry on the other replica", timeoutMs: 3000 });
    // Time for a second version of it to arrive, were there one.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ids = (h: History) => h.page({ limit: 10 }).entries.map((e) => e.id);
    assert.equal(ids(readerCopy).length, 1, `the other replica's copy: ${JSON.stringify(readerCopy.page({ limit: 10 }).entries)}`);
    assert.deepEqual(ids(writerCopy), ids(readerCopy));
  } finally {
    writer.close();
    reader.close();
  }
});

test("EtcdHistory: a plugin's note (History.note) is written once and read back on every replica, details and all", async () => {
  const prefix = `/history-test/${Date.now()}-note`;
  let writer: EtcdHistory | undefined;
  const writerCopy = new History({ maxEntries: 100, share: (e) => writer?.share(e), shared: () => writer?.flushed() ?? Promise.resolve() });
  const readerCopy = new History({ maxEntries: 100 });
  writer = new EtcdHistory({ client: new EtcdClient({ endpoints: etcd.endpoints }), prefix, history: writerCopy });
  const reader = new EtcdHistory({ client: new EtcdClient({ endpoints: etcd.endpoints }), prefix, history: readerCopy });
  try {
    await writer.start();
    await reader.start();
    const details = { added: [], removed: ["http://127.0.0.9:8081"], added_count: 0, removed_count: 1, targets: 2 };
    writerCopy.note({ source: "fleet", kind: "targets", reason: "targets: 1 removed, no longer pushed; 2 now", details });
    await writerCopy.flushed();
    await waitFor(() => readerCopy.page({ limit: 10 }).entries.length > 0, { what: "the note on the other replica", timeoutMs: 3000 });
    const [note] = readerCopy.page({ limit: 10, type: "note" }).entries;
    assert.deepEqual(note, { id: note!.id, at: note!.at, type: "note", source: "fleet", kind: "targets", reason: "targets: 1 removed, no longer pushed; 2 now", details });
    assert.deepEqual(writerCopy.page({ limit: 10 }).entries, [note]);
  } finally {
    writer.close();
    reader.close();
  }
});
