/**
 * Several chaos-signal replicas (real processes, Deno and Bun mixed) sharing one signal through a
 * real 3-member etcd cluster on loopback, under the faults of real clusters.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { runtime } from "../src/serve/mod.ts";
import { type EtcdCluster, startEtcd } from "./helpers/etcd.ts";
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
    `chaos_signal:\n  store:\n    type: etcd\n    endpoints: [${etcd.endpoints.join(", ")}]\n    prefix: /test/${Date.now()}\n    max_staleness: ${MAX_STALENESS_MS}ms\n`,
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

test("replicas: two of three etcd members frozen → every replica serves PAUSE within max_staleness + 1 s, /readyz 503, POST /RUN refused; thawed → RUN again", async () => {
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
      const ready = await fetch(`${r.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /not current with the store/);
      const status = await (await fetch(`${r.url}/status`)).json() as { signal: string; store: { current: boolean; type: string } };
      assert.equal(status.signal, "PAUSE");
      assert.deepEqual([status.store.type, status.store.current], ["etcd", false]);
    }
    const refused = await post(replicas[1]!, "RUN");
    assert.equal(refused.status, 503);
    assert.match(await refused.text(), /not saved/);
    // A STOP is never refused: made at once, saved once etcd is back.
    assert.equal((await post(replicas[2]!, "PAUSE")).status, 200);
  } finally {
    etcd.thaw(m0!);
    etcd.thaw(m1!);
  }
  // Contact back: the stored signal (the PAUSE saved after the thaw) is served by all.
  for (const r of replicas) {
    await waitFor(async () => (await fetch(`${r.url}/readyz`)).status === 200, { what: "ready again", timeoutMs: 15_000, diagnose });
    await waitFor(async () => (await signalOf(r)) === "PAUSE", { what: "the stored PAUSE", timeoutMs: 5000, diagnose });
  }
  assert.equal((await post(replicas[0]!, "RUN")).status, 200);
  for (const r of replicas) await waitFor(async () => (await signalOf(r)) === "RUN", { what: "RUN again", timeoutMs: 5000, diagnose });
});
