/**
 * Several chaos-signal replicas (real processes, Deno and Bun mixed) sharing one signal through a
 * real 3-member etcd cluster on loopback, under the faults of real clusters.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { runtime } from "../src/serve/mod.ts";
import { type EtcdCluster, etcdStoreConfig, startEtcd } from "./helpers/etcd.ts";
import { tempFile } from "./helpers/files.ts";
import { type ServerProcess, type ServerRuntime, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const MAX_STALENESS_MS = 1500;
const here = runtime().name;
const other = here === "deno" ? "bun" : "deno";

let etcd: EtcdCluster;
let config: string;
const replicas: ServerProcess[] = [];

function replica(runtimeName: ServerRuntime = here): Promise<ServerProcess> {
  return startServer(["--config", config], { runtime: runtimeName });
}

const signalOf = async (server: ServerProcess) => (await fetch(`${server.url}/`, { signal: AbortSignal.timeout(2000) })).text();
const post = (server: ServerProcess, state: string) => fetch(`${server.url}/${state}`, { method: "POST", signal: AbortSignal.timeout(10_000) });
const diagnose = () => replicas.map((r, i) => `replica ${i}:\n${r.output().slice(-1500)}`).join("\n");

before(async () => {
  etcd = await startEtcd(3);
  config = tempFile(
    etcdStoreConfig(etcd.endpoints, `/test/${Date.now()}`, MAX_STALENESS_MS),
  );
  replicas.push(...await Promise.all([replica(here), replica(other), replica(here)]));
});

after(async () => {
  await Promise.all(replicas.map((r) => r.stop("SIGKILL")));
  await etcd?.stop();
});

test("replicas: POST /STOP on one replica → every replica serves STOP; kill -9 it after the ack → STOP stays, and it serves STOP again on restart", async () => {
  const [a, b, c] = replicas as [ServerProcess, ServerProcess, ServerProcess];
  for (const r of replicas) assert.equal(await signalOf(r), "RUN");
  const ack = await post(a, "STOP");
  assert.equal(ack.status, 200, await ack.text());
  const ackedAt = performance.now();
  const killed = a.stop("SIGKILL");
  for (const r of [b, c]) await waitFor(async () => (await signalOf(r)) === "STOP", { what: "STOP on the other replicas", timeoutMs: 5000, intervalMs: 5, diagnose });
  console.log(`replicas: STOP served by the other two replicas ${(performance.now() - ackedAt).toFixed(0)} ms after the ack`);
  await killed;
  const restarted = await replica(here);
  replicas[0] = restarted;
  assert.equal(await signalOf(restarted), "STOP");
  // A RUN acknowledged by one is served by all.
  const run = await post(b, "RUN?force=true");
  assert.equal(run.status, 200, await run.text());
  for (const r of replicas) await waitFor(async () => (await signalOf(r)) === "RUN", { what: "RUN on every replica", timeoutMs: 5000, diagnose });
});

test("replicas: two of three etcd members frozen → every replica serves PAUSE within max_staleness + 1 s, /readyz 503, POST /RUN refused, POST /STOP made at once and answered 202; thawed → the STOP is stored", async () => {
  for (const r of replicas) await waitFor(async () => (await signalOf(r)) === "RUN", { what: "RUN everywhere first", timeoutMs: 5000, diagnose });
  const [m0, m1] = etcd.members;
  etcd.freeze(m0!);
  etcd.freeze(m1!);
  try {
    const frozenAt = Date.now();
    for (const r of replicas) {
      await waitFor(async () => (await signalOf(r)) === "PAUSE", { what: "PAUSE while cut off", timeoutMs: MAX_STALENESS_MS + 1000 - (Date.now() - frozenAt), intervalMs: 50, diagnose });
    }
    console.log(`replicas: every replica served PAUSE ${Date.now() - frozenAt} ms after two of three members froze (max_staleness ${MAX_STALENESS_MS} ms)`);
    for (const r of replicas) {
      const ready = await fetch(`${r.url}/readyz`, { signal: AbortSignal.timeout(2000) });
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /not current with the store/);
      const status = await (await fetch(`${r.url}/status`, { signal: AbortSignal.timeout(2000) })).json() as { signal: string; store: { current: boolean; type: string } };
      assert.equal(status.signal, "PAUSE");
      assert.deepEqual([status.store.type, status.store.current], ["etcd", false]);
    }
    const refused = await post(replicas[1]!, "RUN");
    assert.equal(refused.status, 503);
    assert.match(await refused.text(), /not saved/);
    // A STOP is never refused: made and served at once, saved once etcd is back. Not committed
    // by a quorum within 1 s, it is answered 202 (not 200), the same body, with a header saying so.
    const started = Date.now();
    const stop = await post(replicas[2]!, "STOP");
    const ms = Date.now() - started;
    assert.deepEqual([stop.status, await stop.text()], [202, "STOP"]);
    assert.match(stop.headers.get("chaos-signal-saved") ?? "", /^pending; /);
    assert.ok(ms < 2500, `STOP answered after ${ms} ms`);
    assert.equal(await signalOf(replicas[2]!), "STOP");
  } finally {
    etcd.thaw(m0!);
    etcd.thaw(m1!);
  }
  // Contact back: the stored signal (the STOP saved after the thaw) is served by all.
  for (const r of replicas) {
    await waitFor(async () => (await fetch(`${r.url}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, { what: "ready again", timeoutMs: 15_000, diagnose });
    await waitFor(async () => (await signalOf(r)) === "STOP", { what: "the stored STOP", timeoutMs: 5000, diagnose });
  }
  // Healthy: a STOP is committed by the quorum before its answer, 200 without the header.
  const saved = await post(replicas[1]!, "STOP");
  assert.deepEqual([saved.status, await saved.text(), saved.headers.get("chaos-signal-saved")], [200, "STOP", null]);
  assert.equal((await post(replicas[0]!, "RUN?force=true")).status, 200);
  for (const r of replicas) await waitFor(async () => (await signalOf(r)) === "RUN", { what: "RUN again", timeoutMs: 5000, diagnose });
});
