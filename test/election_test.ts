/**
 * The leader election on a real 3-member etcd: one leader at a time; a leader cut off from etcd
 * stops leading before its lease can expire, and another replica leads once it has.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { EtcdClient } from "../src/state/etcd/client.ts";
import { Election } from "../src/state/etcd/election.ts";
import { type EtcdCluster, startEtcd } from "./helpers/etcd.ts";
import { waitFor } from "./helpers/wait.ts";

// etcd extends every lease when its own raft leader changes, so a takeover may take up to ~2 TTL.
const TTL_SECONDS = 2;
let etcd: EtcdCluster;

before(async () => {
  etcd = await startEtcd(3);
});

after(async () => {
  await etcd?.stop();
});

/** An election on `endpoints`, recording when it started and stopped leading. */
function candidate(id: string, endpoints: readonly string[], key: string) {
  const changes: { leading: boolean; at: number }[] = [];
  const election = new Election({
    client: new EtcdClient({ endpoints, timeoutMs: (TTL_SECONDS * 1000) / 3 }),
    key,
    replicaId: id,
    ttlSeconds: TTL_SECONDS,
    onChange: (leading) => changes.push({ leading, at: Date.now() }),
  });
  return { election, changes };
}

test("election: one leader; stop() hands the lead over at once; a leader cut off from etcd stops leading before another starts", async () => {
  const key = `/test/election/${Date.now()}/leader`;
  // a reaches etcd only through member 0; b and c through the two others.
  const a = candidate("a", [etcd.endpoints[0]!], key);
  a.election.start();
  await waitFor(() => a.election.leading, { what: "a to lead", timeoutMs: 5000 });
  const b = candidate("b", etcd.endpoints.slice(1), key);
  const c = candidate("c", etcd.endpoints.slice(1), key);
  b.election.start();
  c.election.start();
  try {
    await waitFor(() => b.election.status().leader === "a" && c.election.status().leader === "a", { what: "b and c to see a lead", timeoutMs: 5000 });
    assert.deepEqual([b.election.leading, c.election.leading], [false, false]);

    etcd.freeze(etcd.members[0]!);
    const frozenAt = Date.now();
    const next = await waitFor(() => [b, c].find((x) => x.election.leading), { what: "b or c to lead", timeoutMs: TTL_SECONDS * 1000 + 5000 });
    const stepDown = a.changes.find((change) => !change.leading);
    assert.ok(stepDown, "a stopped leading");
    const takeover = next.changes.find((change) => change.leading)!;
    console.log(`election: a stopped leading ${stepDown.at - frozenAt} ms after being cut off; the next leader started ${takeover.at - frozenAt} ms after (TTL ${TTL_SECONDS} s)`);
    assert.ok(stepDown.at < takeover.at, "never two leaders: the cut-off one stopped first");
    assert.equal([b, c].filter((x) => x.election.leading).length, 1);

    // A leader that stops gives the key up: the other takes over well within the TTL.
    const rest = next === b ? c : b;
    const stoppedAt = Date.now();
    await next.election.stop();
    await waitFor(() => rest.election.leading, { what: "the other to lead after stop()", timeoutMs: 2000 });
    console.log(`election: the next leader ${Date.now() - stoppedAt} ms after stop()`);
  } finally {
    etcd.thaw(etcd.members[0]!);
    await Promise.all([a, b, c].map((x) => x.election.stop()));
  }
});
