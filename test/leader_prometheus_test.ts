/**
 * Leader failover with a real Prometheus: the prometheus source queries from one replica at a time;
 * kill -9 that replica → another's source is active within the lease's TTL plus one interval, and a
 * relay target restarted at RUN while the signal is PAUSE gets PAUSE again from the new leader.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, test } from "node:test";
import { runtime } from "../src/serve/mod.ts";
import { type EtcdCluster, etcdStoreConfig, startEtcd } from "./helpers/etcd.ts";
import { tempFile } from "./helpers/files.ts";
import { type KrknServer, startKrknServer } from "./helpers/krkn_server.ts";
import { freePort, type PrometheusInstance, startPrometheus } from "./helpers/prometheus.ts";
import { ROOT, type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

/** TTL (3 s) + one source interval (500 ms) + margin. */
const TAKEOVER_MS = 8000;
const here = runtime().name;
const other = here === "deno" ? "bun" : "deno";
const binary = existsSync(`${ROOT}dist/chaos-signal`);

let etcd: EtcdCluster | undefined;
let prometheus: PrometheusInstance | undefined;
let krkn: KrknServer | undefined;
const replicas: ServerProcess[] = [];

interface Status {
  signal: string;
  store: { leading: boolean };
  sources: { name: string; health: string; last_observation: { at: string } | null }[];
}

const statusOf = async (server: ServerProcess) => (await fetch(`${server.url}/status`, { signal: AbortSignal.timeout(2000) })).json() as Promise<Status>;
const promOf = (status: Status) => status.sources.find((s) => s.name === "prom");
const signalOf = async (server: ServerProcess) => (await fetch(`${server.url}/`, { signal: AbortSignal.timeout(2000) })).text();
const diagnose = () => replicas.map((r, i) => `replica ${i}:\n${r.output().slice(-1500)}`).join("\n");

/** The one live replica whose prometheus source is active (not standby) and observed lately; undefined unless exactly one. */
async function activeReplica(live: ServerProcess[]): Promise<ServerProcess | undefined> {
  const statuses = await Promise.all(live.map(statusOf));
  const active = statuses.map((s, i) => ({ source: promOf(s), server: live[i]! })).filter((e) => e.source?.health !== "standby");
  if (active.length !== 1) return undefined;
  const { source, server } = active[0]!;
  if (source?.health !== "ok" || !source.last_observation) return undefined;
  return Date.now() - Date.parse(source.last_observation.at) < 2000 ? server : undefined;
}

after(async () => {
  await Promise.allSettled(replicas.map((r) => r.stop("SIGKILL")));
  await Promise.allSettled([krkn?.stop(), prometheus?.stop()]);
  await etcd?.stop();
});

test("leader + prometheus: one replica queries at a time; kill -9 it → another queries within TTL + interval; the relay still reconciles", async () => {
  etcd = await startEtcd(1);
  const port = await freePort();
  prometheus = await startPrometheus({ port, targets: [`127.0.0.1:${port}`] });
  krkn = await startKrknServer(0, "RUN");
  const config = tempFile(
    `${etcdStoreConfig(etcd.endpoints, `/test/${Date.now()}`, 1500)}  sources:
    - type: prometheus
      name: prom
      url: ${prometheus.url}
      query: vector(5)
      pause_above: 4
      resume_below: 3
      interval: 500ms
      timeout: 400ms
  relays:
    - name: krkn
      targets: [${krkn.url}]
      interval: 200ms
`,
  );
  if (!binary) console.log(`leader_prometheus: dist/chaos-signal not built (npm run build): the binary replica is skipped, a ${here} replica runs instead`);
  const kinds = [here, other, binary ? "binary" : here] as const;
  replicas.push(...await Promise.all(kinds.map((name) => startServer(["--config", config], { runtime: name }))));

  const leader = await waitFor(() => activeReplica(replicas), { what: "exactly one replica's prometheus source active", timeoutMs: 10_000, intervalMs: 100, diagnose });
  assert.ok((await statusOf(leader)).store.leading, "the active source runs on the leader");
  // Exactly one at a time, over a few intervals.
  for (let i = 0; i < 5; i++) {
    assert.equal(await activeReplica(replicas), leader, "still exactly one active prometheus source, on the leader");
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  for (const r of replicas) await waitFor(async () => (await signalOf(r)) === "PAUSE", { what: "the query's PAUSE everywhere", timeoutMs: 5000, diagnose });
  await waitFor(async () => (await krkn!.state()) === "PAUSE", { what: "the relay's PAUSE push", timeoutMs: 5000, diagnose });

  // Kill the leader; the Krkn stand-in restarts at RUN on the same port while the signal is PAUSE.
  await leader.stop("SIGKILL");
  const killedAt = Date.now();
  const live = replicas.filter((r) => r !== leader);
  const krknPort = krkn.port;
  await krkn.stop();
  krkn = await startKrknServer(krknPort, "RUN");
  const next = await waitFor(() => activeReplica(live), { what: "another replica's prometheus source active", timeoutMs: TAKEOVER_MS, intervalMs: 100, diagnose });
  console.log(`leader_prometheus: replica ${replicas.indexOf(next)} (${kinds[replicas.indexOf(next)]}) queries ${Date.now() - killedAt} ms after kill -9 of the old leader`);
  assert.notEqual(next, leader);
  await waitFor(async () => (await krkn!.state()) === "PAUSE", { what: "the new leader's relay to push PAUSE again", timeoutMs: 5000, diagnose });
  for (const r of live) assert.equal(await signalOf(r), "PAUSE");
  for (let i = 0; i < 3; i++) {
    assert.equal(await activeReplica(live), next, "still exactly one active prometheus source");
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
});
