/**
 * What replicas on one etcd share besides the signal: the audit history (written once, by the
 * replica that made the change, served the same by all) and SSE event ids (store revisions, so
 * that a client resumes on another replica with `Last-Event-ID`). Real processes, Deno and Bun mixed.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { runtime } from "../src/serve/mod.ts";
import { type EtcdCluster, etcdStoreConfig, startEtcd } from "./helpers/etcd.ts";
import { EventStreamReader } from "./helpers/event_stream_reader.ts";
import { tempFile } from "./helpers/files.ts";
import { type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const here = runtime().name;
const other = here === "deno" ? "bun" : "deno";

let etcd: EtcdCluster;
let config: string;
const replicas: ServerProcess[] = [];

const post = (server: ServerProcess, path: string) => fetch(`${server.url}/${path}`, { method: "POST", signal: AbortSignal.timeout(10_000) });
const historyOf = async (server: ServerProcess) => {
  const response = await fetch(`${server.url}/history?limit=1000`, { signal: AbortSignal.timeout(2000) });
  return (await response.json() as { entries: { id: number; type: string; state: string; source: string; actor?: string }[] }).entries;
};
const eventsFrom = async (server: ServerProcess, lastEventId?: string) =>
  new EventStreamReader(await fetch(`${server.url}/events`, { headers: lastEventId === undefined ? {} : { "last-event-id": lastEventId } }));
const diagnose = () => replicas.map((r, i) => `replica ${i}:\n${r.output().slice(-1500)}`).join("\n");

before(async () => {
  etcd = await startEtcd(3);
  config = tempFile(etcdStoreConfig(etcd.endpoints, `/test/${Date.now()}`, 1500));
  replicas.push(...await Promise.all([here, other, here].map((r) => startServer(["--config", config], { runtime: r as "deno" | "bun" }))));
});

after(async () => {
  await Promise.all(replicas.map((r) => r.stop("SIGKILL")));
  await etcd?.stop();
});

test("replicas: POST /STOP on A → /history is the same on A, B and C, with the STOP written once", async () => {
  const [a, b, c] = replicas as [ServerProcess, ServerProcess, ServerProcess];
  const ack = await post(a, "STOP");
  assert.equal(ack.status, 200, await ack.text());
  await waitFor(async () => {
    const [ha, hb, hc] = await Promise.all([a, b, c].map(historyOf));
    return ha!.some((e) => e.type === "change" && e.state === "STOP") && JSON.stringify(ha) === JSON.stringify(hb) && JSON.stringify(ha) === JSON.stringify(hc);
  }, { what: "the same history, with the STOP, on every replica", timeoutMs: 5000, diagnose });
  const entries = await historyOf(b);
  assert.equal(entries.filter((e) => e.type === "change" && e.state === "STOP").length, 1, JSON.stringify(entries));
  assert.equal(entries.filter((e) => e.type === "claim" && e.state === "STOP").length, 1, JSON.stringify(entries));
  // Ids are store revisions: newest first, the same everywhere.
  assert.deepEqual(entries.map((e) => e.id), [...entries.map((e) => e.id)].sort((x, y) => y - x));
  // A replica that starts later reads it from etcd.
  const late = await startServer(["--config", config], { runtime: other });
  replicas.push(late);
  assert.deepEqual(await historyOf(late), await historyOf(a));
});

test("replicas: SSE ids are store revisions: a client that got id N on A resumes on B with Last-Event-ID N, gets nothing stale, then the next change", async () => {
  const [a, b, c] = replicas as [ServerProcess, ServerProcess, ServerProcess];
  await post(c, "RUN?force=true");
  for (const r of [a, b]) await waitFor(async () => (await (await fetch(`${r.url}/`)).text()) === "RUN", { what: "RUN on A and B", timeoutMs: 5000, diagnose });
  // A PAUSE made on A is pushed at once, then again under the revision it was committed at.
  const onA = await eventsFrom(a);
  await onA.until(() => onA.signals().length === 1, "the current signal on A");
  assert.match(onA.signals()[0]!.id!, /^\d+$/, "a committed signal's id is its revision");
  assert.equal((await post(a, "PAUSE")).status, 200);
  await onA.until(() => onA.signals().some((e) => e.data === "PAUSE" && /^\d+$/.test(e.id ?? "")), "PAUSE under its revision on A");
  const last = onA.signals().at(-1)!;
  assert.equal(last.data, "PAUSE");
  const n = last.id!;
  assert.ok(Number(n) > Number(onA.signals()[0]!.id), `revision ${n} after ${onA.signals()[0]!.id}`);
  await onA.cancel();

  await waitFor(async () => (await (await fetch(`${b.url}/`)).text()) === "PAUSE", { what: "PAUSE on B", timeoutMs: 5000, diagnose });
  const onB = await eventsFrom(b, n);
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.deepEqual(onB.signals(), [], "B has nothing newer than revision N to tell");
  // The same id means the same state everywhere: a client from C with N gets nothing either.
  const onC = await eventsFrom(c, n);
  // A revision B has not seen yet (a client from a replica ahead of it): B waits for its next change.
  const ahead = await eventsFrom(b, String(Number(n) + 1_000_000));
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual([onC.signals(), ahead.signals()], [[], []]);
  assert.equal((await post(c, "RUN?force=true")).status, 200);
  await ahead.until(() => ahead.signals().length === 1, "the next change for a client ahead of B");
  assert.equal(ahead.signals()[0]!.data, "RUN");
  await ahead.cancel();
  await onB.until(() => onB.signals().length === 1, "the next change on B");
  assert.equal(onB.signals()[0]!.data, "RUN");
  assert.ok(Number(onB.signals()[0]!.id) > Number(n));
  await onC.until(() => onC.signals().length >= 1, "the next change on C");
  assert.equal(onC.signals()[0]!.data, "RUN");
  await Promise.all([onB.cancel(), onC.cancel()]);
  // An older id gets the current signal at once.
  const older = await eventsFrom(b, String(Number(n) - 1));
  await older.until(() => older.signals().length === 1, "the current signal for an older id");
  assert.equal(older.signals()[0]!.data, "RUN");
  await older.cancel();
});
