/**
 * Replicas on a real 3-member etcd under a steady load of changes while the etcd leader is
 * killed (kill -9): no acknowledged change is lost, no request fails with anything but 503 or
 * hangs, and no replica serves RUN after an acknowledged STOP unless a RUN may have followed it.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { runtime } from "../src/serve/mod.ts";
import { type EtcdCluster, type EtcdMember, etcdStoreConfig, startEtcd } from "./helpers/etcd.ts";
import { tempFile } from "./helpers/files.ts";
import { type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const MAX_STALENESS_MS = 1500;
/** A request that takes longer than this counts as hung. */
const REQUEST_BOUND_MS = 5000;
/** How long another replica may still serve what it had before a change: its watch, or failing that max_staleness. */
const PROPAGATION_GRACE_MS = MAX_STALENESS_MS + 500;
const LOAD_MS = 8000;
const KILL_AFTER_MS = 2500;
const CLIENTS = 4;
const here = runtime().name;
const other = here === "deno" ? "bun" : "deno";

let etcd: EtcdCluster;
const replicas: ServerProcess[] = [];

before(async () => {
  etcd = await startEtcd(3);
  const config = tempFile(
    etcdStoreConfig(etcd.endpoints, `/faults/${Date.now()}`, MAX_STALENESS_MS),
  );
  replicas.push(...await Promise.all([here, other, here].map((r) => startServer(["--config", config], { runtime: r as "deno" | "bun" }))));
});

after(async () => {
  await Promise.all(replicas.map((r) => r.stop("SIGKILL")));
  await etcd?.stop();
});

/** The member that is the raft leader: the one whose `/v3/maintenance/status` names itself. */
async function leader(): Promise<EtcdMember> {
  for (const member of etcd.members) {
    const response = await fetch(`${member.clientUrl}/v3/maintenance/status`, { method: "POST", body: "{}", signal: AbortSignal.timeout(1000) }).catch(() => null);
    if (!response?.ok) continue;
    const status = await response.json() as { header: { member_id: string }; leader: string };
    if (status.leader === status.header.member_id) return member;
  }
  throw new Error("no etcd member says it is the leader");
}

interface Change {
  replica: number;
  state: "RUN" | "PAUSE" | "STOP";
  sent: number;
  done: number;
  /** The HTTP status, or the error (a time-out counts as a hang). */
  status: number | string;
  /** The effective signal the answer names. */
  body: string;
}

interface Read {
  replica: number;
  sent: number;
  done: number;
  signal: string;
}

const diagnose = () => replicas.map((r, i) => `replica ${i}:\n${r.output().slice(-1500)}`).join("\n");
const signalOf = async (r: ServerProcess) => (await fetch(`${r.url}/`, { signal: AbortSignal.timeout(2000) })).text();

test("etcd leader killed (kill -9) under a load of changes on three replicas → only 2xx or 503, no hang, no acknowledged change lost, no RUN served after an acknowledged STOP", async () => {
  const changes: Change[] = [];
  const reads: Read[] = [];
  const began = performance.now();
  const loadEnd = began + LOAD_MS;
  const states = ["RUN", "PAUSE", "STOP"] as const;

  const client = async (seed: number) => {
    for (let i = seed; performance.now() < loadEnd; i++) {
      const replica = (i * 7 + seed) % replicas.length;
      const state = states[(i * 5 + seed * 3) % states.length]!;
      const sent = performance.now();
      let status: number | string;
      let body = "";
      try {
        const response = await fetch(`${replicas[replica]!.url}/${state}`, { method: "POST", signal: AbortSignal.timeout(REQUEST_BOUND_MS) });
        status = response.status;
        body = (await response.text()).trim();
      } catch (error) {
        status = String(error);
      }
      changes.push({ replica, state, sent, done: performance.now(), status, body });
      await new Promise((resolve) => setTimeout(resolve, 20 + (i % 4) * 10));
    }
  };
  const reader = async (replica: number) => {
    while (performance.now() < loadEnd) {
      const sent = performance.now();
      const signal = await signalOf(replicas[replica]!).catch((error) => `error: ${error}`);
      reads.push({ replica, sent, done: performance.now(), signal });
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
  };
  let killed: EtcdMember | undefined;
  const killer = async () => {
    await new Promise((resolve) => setTimeout(resolve, KILL_AFTER_MS));
    killed = await leader();
    killed.child.kill("SIGKILL");
  };
  await Promise.all([...Array.from({ length: CLIENTS }, (_, i) => client(i)), ...replicas.map((_, i) => reader(i)), killer()]);

  // Answers: 200, 202 (made, but it or its history entry not saved within 1 s) or 503, each within the bound.
  const bad = changes.filter((c) => !(typeof c.status === "number" && (c.status === 200 || c.status === 503 || c.status === 202)));
  assert.deepEqual(bad, [], `answers other than 200/202/503 or hung requests:\n${diagnose()}`);
  assert.deepEqual(reads.filter((r) => !["RUN", "PAUSE", "STOP"].includes(r.signal)), [], "GET / failed");
  const acked = changes.filter((c) => c.status === 200);
  const refused = changes.filter((c) => c.status === 503);
  assert.ok(acked.length >= 20, `only ${acked.length} changes acknowledged`);

  // No RUN served after an acknowledged STOP unless a RUN acknowledged later may have undone it.
  const stops = acked.filter((c) => c.body === "STOP");
  // A RUN's answer can already name a STOP that overtook it; its RUN was still made.
  const runs = changes.filter((c) => c.state === "RUN" && (c.status === 200 || c.status === 202));
  for (const read of reads.filter((r) => r.signal === "RUN")) {
    for (const stop of stops) {
      const grace = stop.replica === read.replica ? 0 : PROPAGATION_GRACE_MS;
      if (stop.done + grace >= read.sent) continue;
      const undone = runs.some((run) => run.done > stop.sent && run.sent < read.done);
      const around = changes.filter((c) => c.done > stop.sent - 300 && c.sent < read.done).map((c) => `${c.replica} ${c.state}→${c.body} ${c.status} ${(c.sent - began).toFixed(0)}..${(c.done - began).toFixed(0)}`);
      assert.ok(undone, `${around.join("\n")}\nreplica ${read.replica} served RUN at ${(read.sent - began).toFixed(0)} ms, after a STOP acknowledged by replica ${stop.replica} at ${(stop.done - began).toFixed(0)} ms and no RUN after it`);
    }
  }

  // After the load: every replica back in contact serves the same signal, that of one of the last acknowledged changes.
  for (const r of replicas) await waitFor(async () => (await fetch(`${r.url}/readyz`)).status === 200, { what: "every replica ready", timeoutMs: 10_000, diagnose });
  // A 202 (made, its commit retried) may land after later changes: its signal may be the last too.
  const accepted = changes.filter((c) => c.status === 202).map((c) => c.body);
  const last = [...acked.filter((c) => !acked.some((later) => later.sent > c.done)).flatMap((c) => [c.body, c.state === "RUN" ? "RUN" : c.body]), ...accepted];
  let served: string[] = [];
  await waitFor(async () => {
    served = await Promise.all(replicas.map(signalOf));
    return served.every((s) => s === served[0]);
  }, { what: "the replicas to agree", timeoutMs: 5000, diagnose });
  assert.ok(last.includes(served[0]!), `replicas serve ${served[0]}; the last acknowledged changes say ${last.join(" or ")}`);

  // A final STOP on one replica: every replica serves STOP.
  const stop = await fetch(`${replicas[1]!.url}/STOP`, { method: "POST", signal: AbortSignal.timeout(REQUEST_BOUND_MS) });
  assert.equal(stop.status, 200);
  for (const r of replicas) await waitFor(async () => (await signalOf(r)) === "STOP", { what: "STOP on every replica", timeoutMs: 5000, diagnose });
  console.log(`etcd faults: leader ${killed?.name} killed at ${KILL_AFTER_MS} ms; ${changes.length} changes (${acked.length} acknowledged, ${accepted.length} answered 202, ${refused.length} answered 503), ${reads.length} reads, longest change ${Math.max(...changes.map((c) => c.done - c.sent)).toFixed(0)} ms`);
});
