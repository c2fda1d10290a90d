/**
 * Work done once: with several replicas on one etcd, the polling sources and relays run on one
 * elected leader; receivers answer on every replica; a leader killed with -9 is replaced within the
 * lease's TTL, and the new leader's sources observe again while their claims stayed in etcd.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { runtime } from "../src/serve/mod.ts";
import { runsOnLeader } from "../src/plugin/api.ts";
import { pluginsFromConfig } from "../src/plugin/registry.ts";
import { type EtcdCluster, etcdStoreConfig, startEtcd } from "./helpers/etcd.ts";
import { tempDir, tempFile } from "./helpers/files.ts";
import { type KrknServer, startKrknServer } from "./helpers/krkn_server.ts";
import { type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

/** The lease's TTL (src/server.ts LEADER_TTL_SECONDS) plus a round of TTL/3. */
const TAKEOVER_MS = 3000 + 1000;
const here = runtime().name;
const other = here === "deno" ? "bun" : "deno";

let etcd: EtcdCluster;
let krkn: KrknServer;
let config: string;
let flagFile: string;
const replicas: ServerProcess[] = [];

interface Status {
  signal: string;
  store: { leader: string | null; replica: string; leading: boolean };
  sources: { name: string; health: string; last_observation: unknown }[];
}

const statusOf = async (server: ServerProcess) => (await fetch(`${server.url}/status`, { signal: AbortSignal.timeout(2000) })).json() as Promise<Status>;
const healthOf = (status: Status, name: string) => status.sources.find((s) => s.name === name)?.health;
const signalOf = async (server: ServerProcess) => (await fetch(`${server.url}/`, { signal: AbortSignal.timeout(2000) })).text();
const diagnose = () => replicas.map((r, i) => `replica ${i}:\n${r.output().slice(-1500)}`).join("\n");

/** Waits until exactly one live replica leads and every one names it; returns it and the others. */
async function oneLeader(live: ServerProcess[], timeoutMs: number): Promise<{ leader: ServerProcess; followers: ServerProcess[] }> {
  return await waitFor(async () => {
    const statuses = await Promise.all(live.map(statusOf));
    const leading = statuses.filter((s) => s.store.leading);
    if (leading.length !== 1) return undefined;
    const id = leading[0]!.store.replica;
    if (!statuses.every((s) => s.store.leader === id)) return undefined;
    const index = statuses.indexOf(leading[0]!);
    return { leader: live[index]!, followers: live.filter((_, i) => i !== index) };
  }, { what: "one leader that every replica names", timeoutMs, intervalMs: 100, diagnose });
}

before(async () => {
  etcd = await startEtcd(1);
  krkn = await startKrknServer(0, "PAUSE");
  flagFile = join(tempDir("leader-"), "flag");
  writeFileSync(flagFile, "");
  writeFileSync(`${flagFile}.local`, "");
  config = tempFile(
    `${etcdStoreConfig(etcd.endpoints, `/test/${Date.now()}`, 1500)}  sources:
    - type: file
      name: flag
      path: ${flagFile}
      interval: 100ms
    - type: file
      name: local-flag
      path: ${flagFile}.local
      interval: 100ms
      run_on: every_replica
    - type: webhook
      name: hook
  relays:
    - name: krkn
      targets: [${krkn.url}]
      interval: 200ms
`,
  );
  replicas.push(...await Promise.all(([here, other, here] as const).map((name) => startServer(["--config", config], { runtime: name }))));
});

after(async () => {
  await Promise.all(replicas.map((r) => r.stop("SIGKILL")));
  await krkn?.stop();
  await etcd?.stop();
});

test("leader: exactly one replica runs the file source and the relay (the others: standby); run_on: every_replica and the webhook run everywhere", async () => {
  const { leader, followers } = await oneLeader(replicas, 10_000);
  // /metrics says the same: every replica current with etcd, store_leading 1 on the leader only.
  for (const r of replicas) {
    const replica = (await statusOf(r)).store.replica;
    const text = await (await fetch(`${r.url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    const sample = (name: string) => text.match(new RegExp(`^chaos_signal_store_${name}\\{store="etcd",replica="${replica}"\\} (\\S+)$`, "m"))?.[1];
    assert.equal(sample("current"), "1", text);
    assert.ok(Number(sample("revision")) > 0, text);
    assert.equal(sample("leading"), r === leader ? "1" : "0", text);
  }
  await waitFor(async () => healthOf(await statusOf(leader), "flag") === "ok", { what: "the leader's file source to observe", timeoutMs: 5000, diagnose });
  assert.notEqual(healthOf(await statusOf(leader), "krkn"), "standby");
  for (const r of followers) {
    const status = await statusOf(r);
    assert.deepEqual([healthOf(status, "flag"), healthOf(status, "krkn")], ["standby", "standby"]);
  }
  for (const r of replicas) {
    await waitFor(async () => healthOf(await statusOf(r), "local-flag") === "ok", { what: "run_on: every_replica running everywhere", timeoutMs: 5000, diagnose });
    assert.equal(healthOf(await statusOf(r), "hook"), "ok");
    assert.equal((await fetch(`${r.url}/readyz`)).status, 200, "a standby source does not hold readiness back");
  }
  // The relay (on the leader only) brings the Krkn stand-in to RUN; a webhook on a follower is served by all.
  await waitFor(async () => (await krkn.state()) === "RUN", { what: "the relay's push", timeoutMs: 5000, diagnose });
  const hooked = await fetch(`${followers[0]!.url}/hooks/hook`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ state: "PAUSE", reason: "deploy" }) });
  assert.equal(hooked.status, 200, await hooked.text());
  for (const r of replicas) await waitFor(async () => (await signalOf(r)) === "PAUSE", { what: "the webhook's PAUSE everywhere", timeoutMs: 5000, diagnose });
  await waitFor(async () => (await krkn.state()) === "PAUSE", { what: "the relay's PAUSE push", timeoutMs: 5000, diagnose });
  assert.equal((await fetch(`${followers[1]!.url}/hooks/hook`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ state: "RUN" }) })).status, 200);
  for (const r of replicas) await waitFor(async () => (await signalOf(r)) === "RUN", { what: "RUN again", timeoutMs: 5000, diagnose });
});

test("leader: kill -9 the leader → another replica leads within TTL + TTL/3, its file source and relay run there; the claim stayed meanwhile", async () => {
  const { leader } = await oneLeader(replicas, 10_000);
  writeFileSync(flagFile, "PAUSE");
  for (const r of replicas) await waitFor(async () => (await signalOf(r)) === "PAUSE", { what: "the file's PAUSE everywhere", timeoutMs: 5000, diagnose });
  await waitFor(async () => (await krkn.state()) === "PAUSE", { what: "the relay's PAUSE push", timeoutMs: 5000, diagnose });
  await leader.stop("SIGKILL");
  const killedAt = Date.now();
  const live = replicas.filter((r) => r !== leader);
  const next = await oneLeader(live, TAKEOVER_MS + 2000);
  console.log(`leader: a new leader ${Date.now() - killedAt} ms after kill -9 of the old one (TTL 3 s)`);
  for (const r of live) assert.equal(await signalOf(r), "PAUSE", "the dead leader's source's claim stays in etcd");
  await waitFor(async () => healthOf(await statusOf(next.leader), "flag") === "ok", { what: "the new leader's file source to observe", timeoutMs: 5000, diagnose });
  // Its source now drives the signal: the file emptied → released → RUN everywhere, pushed by its relay.
  writeFileSync(flagFile, "");
  for (const r of live) await waitFor(async () => (await signalOf(r)) === "RUN", { what: "RUN after the new leader's source released", timeoutMs: 5000, diagnose });
  // The old leader is dead and the followers' relays stand by: only the new leader's can push RUN.
  await waitFor(async () => (await krkn.state()) === "RUN", { what: "the new leader's relay to push RUN", timeoutMs: 5000, diagnose });
  for (const r of next.followers) assert.deepEqual([healthOf(await statusOf(r), "flag"), healthOf(await statusOf(r), "krkn")], ["standby", "standby"]);
  // A timed pause taken on a follower ends on the (new) leader, once; the followers see it through the watch.
  // Long enough to be seen everywhere (the watch takes a few ms) before it ends, on a busy machine too.
  const paused = await fetch(`${next.followers[0]!.url}/PAUSE?for=3s`, { method: "POST" });
  assert.equal(paused.status, 200, await paused.text());
  for (const r of live) await waitFor(async () => (await signalOf(r)) === "PAUSE", { what: "the timed pause everywhere", timeoutMs: 2000, diagnose });
  for (const r of live) await waitFor(async () => (await signalOf(r)) === "RUN", { what: "the timed pause to end everywhere", timeoutMs: 8000, diagnose });
});

test("run_on: leader by default for polling sources and relays, every_replica for receivers; leader refused on a receiver; other values refused", () => {
  const where = "config.yaml: chaos_signal.sources[0]";
  const built = pluginsFromConfig({
    sources: [
      { where, entry: { type: "file", name: "f", path: "/tmp/x" } },
      { where, entry: { type: "file", name: "g", path: "/tmp/x", run_on: "every_replica" } },
      { where, entry: { type: "webhook", name: "w" } },
    ],
    relays: [{ where, entry: { type: "relay", name: "r", targets: ["http://127.0.0.1:1"] } }],
  });
  assert.deepEqual(built.map((p) => [p.name, runsOnLeader(p)]), [["f", true], ["g", false], ["w", false], ["r", true]]);
  assert.throws(() => pluginsFromConfig({ sources: [{ where, entry: { type: "webhook", name: "w", run_on: "leader" } }] }), /sources\[0\]\.run_on: got "leader"; allowed: every_replica/);
  assert.throws(() => pluginsFromConfig({ sources: [{ where, entry: { type: "file", name: "f", path: "/tmp/x", run_on: "all" } }] }), /run_on: got "all"; allowed: leader or every_replica/);
});
