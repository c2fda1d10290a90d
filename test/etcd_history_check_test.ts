/**
 * The history checker (issue 11, test 5): a seeded random run on three replicas (Deno and Bun
 * mixed) and a 3-member etcd: 1,000 changes from ten clients while etcd members (one at a time)
 * and replicas are killed (kill -9) and restarted. The record of every request and read is then
 * checked: answers are 200, 202 or 503 within a bound, no RUN is served after an acknowledged
 * STOP unless a RUN may have followed it, and every acknowledged change is in the shared history
 * (in etcd, and in `/history` on every replica). The seed is printed; `CHECK_SEED=<n>` replays a
 * run's choices (the interleaving still depends on timing), `CHECK_CHANGES=<n>` sets the count.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import process from "node:process";
import { after, before, test } from "node:test";
import { runtime } from "../src/serve/mod.ts";
import { type EtcdCluster, etcdStoreConfig, startEtcd } from "./helpers/etcd.ts";
import { tempFile } from "./helpers/files.ts";
import { type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const MAX_STALENESS_MS = 1500;
/** Above the server's own bound on a change (a RUN's commit: 5 s): no answer by then is a hang. */
const REQUEST_BOUND_MS = 8000;
/** How long another replica may still serve what it had before a change: its watch, or failing that max_staleness. */
const PROPAGATION_GRACE_MS = MAX_STALENESS_MS + 500;
/** The load ends here at the latest, however many changes were sent (1,000 take about 10 s). */
const MAX_LOAD_MS = 25_000;
const CLIENTS = 10;
const CHANGES = Number(process.env.CHECK_CHANGES ?? 1000);
const SEED = Number(process.env.CHECK_SEED ?? Math.floor(Math.random() * 2 ** 31));
const here = runtime().name;
const other = here === "deno" ? "bun" : "deno";
const kinds = [here, other, here] as const;
const states = ["RUN", "PAUSE", "STOP"] as const;
type State = typeof states[number];

/** mulberry32: a small seeded generator, so that a seed replays the same choices. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let etcd: EtcdCluster;
let config: string;
let prefix: string;
/** A slot per replica; undefined while it is killed. */
const replicas: (ServerProcess | undefined)[] = [];
/** Bumped at each kill: a request that spans a kill of its replica may get no answer. */
const lives = [0, 0, 0];
const stopped: ServerProcess[] = [];

before(async () => {
  console.log(`etcd history check: CHECK_SEED=${SEED}`);
  etcd = await startEtcd(3);
  prefix = `/check/${Date.now()}`;
  config = tempFile(
    etcdStoreConfig(etcd.endpoints, prefix, MAX_STALENESS_MS),
  );
  replicas.push(...await Promise.all(kinds.map((r) => startServer(["--config", config], { runtime: r }))));
});

after(async () => {
  await Promise.all([...replicas, ...stopped].map((r) => r?.stop("SIGKILL")));
  await etcd?.stop();
});

interface Change {
  client: number;
  replica: number;
  life: number;
  /** The replica's life when the answer (or the error) came: another one if it was killed meanwhile. */
  lifeAtDone: number;
  state: State;
  sent: number;
  done: number;
  /** Wall clock around the request, to compare with history times. */
  sentAt: number;
  doneAt: number;
  status: number | string;
  body: string;
  /** The `Chaos-Signal-Saved` header (on a 202). */
  saved: string | null;
}

interface Read {
  replica: number;
  life: number;
  lifeAtDone: number;
  sent: number;
  done: number;
  signal: string;
}

interface Entry {
  id: number;
  /** In etcd: the key under the history prefix (its time, the writer's instance, its count). */
  key?: string;
  reason?: string;
  at: string;
  type: string;
  source: string;
  state: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const diagnose = () => replicas.map((r, i) => `replica ${i}:\n${r?.output().slice(-1500) ?? "(down)"}`).join("\n");
const signalOf = async (r: ServerProcess) => (await fetch(`${r.url}/`, { signal: AbortSignal.timeout(2000) })).text();

/** The whole shared history, page by page (newest first). */
async function history(r: ServerProcess): Promise<Entry[]> {
  const all: Entry[] = [];
  let before: number | undefined;
  for (let page = 0; page < 20; page++) {
    const response = await fetch(`${r.url}/history?limit=1000${before === undefined ? "" : `&before=${before}`}`, { signal: AbortSignal.timeout(5000) });
    const body = await response.json() as { entries: Entry[]; next_before?: number | null };
    all.push(...body.entries);
    if (body.next_before === undefined || body.next_before === null || body.entries.length === 0) break;
    before = body.next_before;
  }
  return all;
}

/** The history as stored in etcd (every member answers the same: a linearizable range), newest first. */
async function etcdHistory(cluster: EtcdCluster, keyPrefix: string): Promise<Entry[]> {
  const key = `${keyPrefix}/signals/default/history/`;
  const end = key.slice(0, -1) + String.fromCharCode(key.charCodeAt(key.length - 1) + 1);
  const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
  for (const member of cluster.members) {
    const response = await fetch(`${member.clientUrl}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: b64(key), range_end: b64(end), sort_target: "MOD", sort_order: "DESCEND" }),
      signal: AbortSignal.timeout(3000),
    }).catch(() => null);
    if (!response?.ok) continue;
    const body = await response.json() as { kvs?: { key: string; value: string; mod_revision: string }[] };
    const text = (b: string) => Buffer.from(b, "base64").toString("utf8");
    return (body.kvs ?? []).map((kv) => ({ ...JSON.parse(text(kv.value)), id: Number(kv.mod_revision), key: text(kv.key).slice(key.length) }) as Entry);
  }
  throw new Error("no etcd member answered the history range");
}

test(`a seeded random run with etcd members and replicas killed and restarted → 200/202/503 only, no RUN after an acknowledged STOP, every acknowledged change in /history`, async () => {
  const random = generator(SEED);
  // Every choice is drawn up front, so that the run's timing does not change what a seed means.
  const plan = Array.from({ length: CHANGES }, () => ({ replica: Math.floor(random() * 3), state: states[Math.floor(random() * 3)]!, pause: 10 + Math.floor(random() * 30) }));
  const etcdFaults = [0, 1].map((k) => ({ at: 1000 + k * 4000 + Math.floor(random() * 2500), member: Math.floor(random() * 3), downMs: 800 + Math.floor(random() * 1500) }));
  const firstVictim = Math.floor(random() * 3);
  const replicaFaults = [0, 1].map((k) => ({
    at: 1500 + k * 4000 + Math.floor(random() * 2500),
    // The second kill takes another replica: over runs both runtimes are killed.
    replica: k === 0 ? firstVictim : (firstVictim + 1 + Math.floor(random() * 2)) % 3,
    downMs: 300 + Math.floor(random() * 1500),
  }));

  const changes: Change[] = [];
  const reads: Read[] = [];
  const began = performance.now();
  const loadEnd = began + MAX_LOAD_MS;
  let next = 0;

  const client = async (client: number) => {
    while (performance.now() < loadEnd && next < plan.length) {
      const step = plan[next++]!;
      // A killed replica's share goes to the next live one.
      let replica = step.replica;
      for (let k = 0; k < 3 && !replicas[replica]; k++) replica = (replica + 1) % 3;
      const server = replicas[replica];
      if (!server) {
        await sleep(step.pause);
        continue;
      }
      const life = lives[replica]!;
      const sent = performance.now();
      const sentAt = Date.now();
      let status: number | string;
      let body = "";
      let saved: string | null = null;
      try {
        const response = await fetch(`${server.url}/${step.state}`, { method: "POST", signal: AbortSignal.timeout(REQUEST_BOUND_MS) });
        status = response.status;
        saved = response.headers.get("chaos-signal-saved");
        body = (await response.text()).trim();
      } catch (error) {
        status = String(error);
      }
      changes.push({ client, replica, life, lifeAtDone: lives[replica]!, state: step.state, sent, done: performance.now(), sentAt, doneAt: Date.now(), status, body, saved });
      await sleep(step.pause);
    }
  };
  const reader = async (replica: number) => {
    while (performance.now() < loadEnd && next < plan.length) {
      const server = replicas[replica];
      if (server) {
        const life = lives[replica]!;
        const sent = performance.now();
        const signal = await signalOf(server).catch((error) => `error: ${error}`);
        reads.push({ replica, life, lifeAtDone: lives[replica]!, sent, done: performance.now(), signal });
      }
      await sleep(15);
    }
  };
  const etcdKiller = async () => {
    for (const fault of etcdFaults) {
      await sleep(Math.max(0, began + fault.at - performance.now()));
      const member = etcd.members[fault.member]!;
      const gone = new Promise((resolve) => member.child.once("exit", resolve));
      process.kill(member.child.pid!, "SIGKILL");
      await gone;
      await sleep(fault.downMs);
      member.restart();
    }
  };
  const kills: { replica: number; at: number }[] = [];
  const replicaKiller = async () => {
    for (const fault of replicaFaults) {
      await sleep(Math.max(0, began + fault.at - performance.now()));
      const victim = replicas[fault.replica]!;
      replicas[fault.replica] = undefined;
      lives[fault.replica]!++;
      kills.push({ replica: fault.replica, at: performance.now() });
      await victim.stop("SIGKILL");
      stopped.push(victim);
      await sleep(fault.downMs);
      replicas[fault.replica] = await startServer(["--config", config], { runtime: kinds[fault.replica]! });
    }
  };
  await Promise.all([...Array.from({ length: CLIENTS }, (_, i) => client(i)), ...[0, 1, 2].map(reader), etcdKiller(), replicaKiller()]);
  const loadMs = performance.now() - began;
  const at = (t: number) => `${(t - began).toFixed(0)} ms`;
  console.log(`etcd history check: seed ${SEED}; etcd members ${etcdFaults.map((f) => `m${f.member} killed at ${f.at} ms for ${f.downMs} ms`).join(", ")}; replicas ${replicaFaults.map((f) => `${f.replica} (${kinds[f.replica]}) killed at ${f.at} ms for ${f.downMs} ms`).join(", ")}`);
  const replay = `(replay: CHECK_SEED=${SEED})`;

  // (c) A change is answered 200, 202 (made, but it or its history entry not saved within 1 s) or
  // 503 (a RUN not committed, so not made), within the bound; a request to a replica killed
  // before it answered may get no answer.
  const killedDuring = (c: { life: number; lifeAtDone: number }) => c.life !== c.lifeAtDone;
  const answered = (c: Change) =>
    c.status === 200 || (c.status === 202 && /^pending; /.test(c.saved ?? "")) || (c.status === 503 && c.state === "RUN") ||
    (typeof c.status === "string" && killedDuring(c) && !c.status.includes("TimeoutError"));
  assert.deepEqual(changes.filter((c) => !answered(c)), [], `answers other than 200/202/503, or hung requests ${replay}:\n${diagnose()}`);
  assert.deepEqual(reads.filter((r) => !states.includes(r.signal as State) && !killedDuring(r)), [], `GET / failed ${replay}`);
  const acked = changes.filter((c) => c.status === 200);
  assert.ok(acked.length >= CHANGES / 10, `only ${acked.length} changes acknowledged ${replay}`);

  // (a) No RUN served after an acknowledged STOP (a STOP or PAUSE answered 200 STOP: committed)
  // unless a RUN that may have been committed after it was sent: answered 200 or 202 (made), or
  // unanswered because its replica was killed. A 200 means committed, so a replica killed after it excuses nothing.
  const stops = acked.filter((c) => c.state !== "RUN" && c.body === "STOP");
  const runs = changes.filter((c) => c.state === "RUN" && (c.status === 200 || c.status === 202 || (typeof c.status === "string" && killedDuring(c))));
  for (const read of reads.filter((r) => r.signal === "RUN")) {
    for (const stop of stops) {
      const grace = stop.replica === read.replica ? 0 : PROPAGATION_GRACE_MS;
      if (stop.done + grace >= read.sent) continue;
      const undone = runs.some((run) => run.done > stop.sent && run.sent < read.done);
      if (undone) continue;
      const around = changes.filter((c) => c.done > stop.sent - 300 && c.sent < read.done).map((c) => `${c.replica}/${c.life} ${c.state}→${c.body} ${c.status} ${at(c.sent)}..${at(c.done)}`);
      const stored = await etcdHistory(etcd, prefix).catch(() => []);
      const wall = (t: number) => Date.now() - (performance.now() - t);
      const entries = stored.filter((e) => Date.parse(e.at) > wall(stop.sent) - 1500 && Date.parse(e.at) < wall(read.done) + 300).reverse()
        .map((e) => `${e.id} ${e.at.slice(11)} ${e.type} ${e.source} ${e.state} ${e.reason ?? ""} (${e.key})`);
      const nearby = reads.filter((r) => r.replica === read.replica && r.sent > stop.sent - 500 && r.sent < read.done + 300).map((r) => `${at(r.sent)} ${r.signal}`);
      assert.ok(undone, `${around.join("\n")}\nstored entries around:\n${entries.join("\n")}\nreads of replica ${read.replica}: ${nearby.join(", ")}\nrefused or unanswered: ${changes.filter((c) => c.status !== 200 && c.status !== 202).map((c) => `${c.replica}/${c.life} ${c.state} ${c.status} ${at(c.sent)}..${at(c.done)}`).join(", ")}\nreplica ${read.replica} served RUN at ${at(read.sent)}, after a STOP acknowledged by replica ${stop.replica} at ${at(stop.done)} and no RUN after it ${replay}`);
    }
  }

  // (b) Every acknowledged change is a claim of source manual in the shared history, in etcd and
  // on every replica: matched one to one, each to an entry of its state made within its
  // send..answer window (a little slack for clocks read in two processes), earliest answer first.
  // A RUN waits its turn to be committed, and a later change of the same source on that replica
  // meanwhile stands instead (answered 200, no claim: signal_store's "that later word stands"):
  // a RUN that overlaps another change on its replica may have no entry.
  const superseded = (run: Change) => run.state === "RUN" && changes.some((c) => c !== run && c.replica === run.replica && c.sent < run.done && c.done > run.sent);
  const expected = acked.filter((c) => !superseded(c));
  const live = replicas.filter((r): r is ServerProcess => r !== undefined);
  for (const r of live) await waitFor(async () => (await fetch(`${r.url}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, { what: "every replica ready", timeoutMs: 10_000, diagnose });
  const slackMs = 50;
  const unmatchedIn = (entries: Entry[]): Change[] => {
    const claims = entries.filter((e) => e.type === "claim" && e.source === "manual");
    const times = new Map(states.map((s) => [s, claims.filter((e) => e.state === s).map((e) => Date.parse(e.at)).sort((x, y) => x - y)]));
    const used = new Map(states.map((s) => [s, times.get(s)!.map(() => false)]));
    const unmatched: Change[] = [];
    for (const change of [...expected].sort((x, y) => x.doneAt - y.doneAt)) {
      const list = times.get(change.state)!;
      const taken = used.get(change.state)!;
      const index = list.findIndex((t, i) => !taken[i] && t >= change.sentAt - slackMs && t <= change.doneAt + slackMs);
      if (index < 0) unmatched.push(change);
      else taken[index] = true;
    }
    return unmatched;
  };
  const describe = (c: Change) => `${c.state} on replica ${c.replica} (life ${c.life}) sent ${at(c.sent)}, acknowledged ${at(c.done)} (${new Date(c.sentAt).toISOString()}..${new Date(c.doneAt).toISOString()})`;
  const sources: { name: string; read: () => Promise<Entry[]> }[] = [
    { name: "etcd", read: () => etcdHistory(etcd, prefix) },
    ...live.map((r, i) => ({ name: `replica ${replicas.indexOf(r)} (${i})`, read: () => history(r) })),
  ];
  let stored: Entry[] = [];
  const ids = (entries: Entry[]) => entries.map((e) => e.id).sort((x, y) => x - y);
  const sameIds = (x: Entry[], y: Entry[]) => ids(x).join() === ids(y).join();
  for (const source of sources) {
    let unmatched: Change[] = [];
    let entries: Entry[] = [];
    await waitFor(async () => {
      entries = await source.read();
      unmatched = unmatchedIn(entries);
      return unmatched.length === 0 && (source.name === "etcd" || sameIds(entries, stored));
    }, { what: `every acknowledged change in the history of ${source.name}`, timeoutMs: 10_000 }).catch(() => {});
    if (unmatched.length > 0) {
      console.log(unmatched.map((u) => `${describe(u)} → ${u.body}; changes on its replica around it: ${changes.filter((c) => c.replica === u.replica && Math.abs(c.sent - u.sent) < 1000).map((c) => `${c.state}→${c.body} ${c.status} ${at(c.sent)}..${at(c.done)}`).join(", ")}; entries around: ${entries.filter((e) => Math.abs(Date.parse(e.at) - u.sentAt) < 600).map((e) => `${e.id} ${e.state} ${e.at}`).join(", ")}`).join("\n"));
    }
    assert.deepEqual(unmatched.map(describe), [], `acknowledged changes missing from the history of ${source.name} ${replay}`);
    if (source.name === "etcd") stored = entries;
    else assert.deepEqual(ids(entries), ids(stored), `the history of ${source.name} differs from etcd's ${replay}`);
  }

  const perState = states.map((s) => `${s} ${acked.filter((c) => c.state === s).length}`).join(", ");
  console.log(
    `etcd history check: ${changes.length} changes in ${(loadMs / 1000).toFixed(1)} s (${acked.length} acknowledged: ${perState}; ${changes.filter((c) => c.status === 202).length} answered 202, ${changes.filter((c) => c.status === 503).length} answered 503, ${changes.filter((c) => typeof c.status === "string").length} unanswered as their replica was killed), ${reads.length} reads, ${stored.length} history entries in etcd, ${acked.length - expected.length} RUNs overlapped another change on their replica; longest change ${Math.max(...changes.map((c) => c.done - c.sent)).toFixed(0)} ms`,
  );
});
