import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { initialSnapshot, MANUAL_SOURCE } from "../mod.ts";
import { transition } from "../src/core/transition.ts";
import { EtcdBackend } from "../src/state/etcd/etcd_backend.ts";
import { type EtcdCluster, startEtcd } from "./helpers/etcd.ts";
import { waitFor } from "./helpers/wait.ts";

let etcd: EtcdCluster;
before(async () => {
  etcd = await startEtcd(1);
});
after(async () => {
  await etcd?.stop();
});

let prefixes = 0;
function backendPair() {
  const prefix = `/test/${Date.now()}-${++prefixes}`;
  return [0, 1].map(() => new EtcdBackend({ endpoints: etcd.endpoints, prefix, maxStalenessMs: 1500 }));
}

const paused = (at = new Date()) =>
  transition(initialSnapshot("RUN", at), { kind: "claim", source: MANUAL_SOURCE, state: "PAUSE", reason: "test" }, at).next;

test("EtcdBackend: load of nothing, commit, conflict returns the latest, the other replica loads it", async () => {
  const [a, b] = backendPair();
  assert.deepEqual(await a!.load(), { snapshot: null, revision: "0" });
  const first = await a!.commit("0", paused());
  assert.ok(first.ok);
  const conflict = await b!.commit("0", initialSnapshot("RUN", new Date()));
  assert.equal(conflict.ok, false);
  assert.ok(!conflict.ok && conflict.latest.signal === "PAUSE" && conflict.revision === first.revision);
  const loaded = await b!.load();
  assert.equal(loaded.snapshot?.signal, "PAUSE");
  assert.equal(loaded.revision, first.revision);
  assert.ok(a!.health().current, "a commit is a contact");
});

test("EtcdBackend: watch tells of the other replica's commits; health turns current with the probe", async () => {
  const [a, b] = backendPair();
  const seen: string[] = [];
  const abort = new AbortController();
  b!.watch((snapshot, revision) => seen.push(`${snapshot.signal}@${revision}`), abort.signal);
  try {
    const first = await a!.commit("0", paused());
    assert.ok(first.ok);
    await waitFor(() => seen.length === 1, "the watch to tell of the commit", 5000);
    assert.deepEqual(seen, [`PAUSE@${first.revision}`]);
    await waitFor(() => b!.health().current, "b's probe to make contact", 5000);
  } finally {
    abort.abort();
  }
});

test("EtcdBackend: no endpoint answers → a commit rejects within its bound, health is not current", async () => {
  const backend = new EtcdBackend({ endpoints: ["http://127.0.0.1:9"], prefix: "/test/none", maxStalenessMs: 600 });
  await assert.rejects(backend.commit("0", paused()));
  assert.equal(backend.health().current, false);
  assert.match(backend.health().detail ?? "", /no contact with etcd/);
});

test("EtcdBackend: a watch stream that goes quiet (its member hangs) misses nothing: the periodic read delivers the commit", async () => {
  // An "etcd member" that opens the watch stream and then says nothing more, and never answers a read.
  const hung = createServer((request, response) => {
    if (request.url === "/v3/watch") {
      response.writeHead(200, { "content-type": "application/json" });
      response.write('{"result":{"header":{"revision":"1"},"created":true}}\n');
    }
  });
  await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
  const port = (hung.address() as AddressInfo).port;
  const prefix = `/test/quiet-${Date.now()}`;
  const writer = new EtcdBackend({ endpoints: etcd.endpoints, prefix, maxStalenessMs: 1500 });
  const reader = new EtcdBackend({ endpoints: [`http://127.0.0.1:${port}`, ...etcd.endpoints], prefix, maxStalenessMs: 1500 });
  const seen: string[] = [];
  const abort = new AbortController();
  reader.watch((snapshot) => seen.push(snapshot.signal), abort.signal);
  try {
    const committed = await writer.commit("0", paused());
    assert.ok(committed.ok);
    await waitFor(() => seen.length > 0, "the reader to learn of the commit", 5000);
    assert.deepEqual(seen, ["PAUSE"]);
  } finally {
    abort.abort();
    reader.close();
    hung.closeAllConnections?.();
    hung.close();
  }
});
