import assert from "node:assert/strict";
import { test } from "node:test";
import { initialSnapshot, MANUAL_SOURCE, type SignalEvent, SignalStore } from "../mod.ts";
import { MemoryBackend } from "../src/state/memory_backend.ts";
import { PauseExpiry } from "../src/state/expiry.ts";
import { FaultyBackend } from "./helpers/faulty_backend.ts";
import { waitFor } from "./helpers/wait.ts";

function storeOn(backend: FaultyBackend | MemoryBackend, options: ConstructorParameters<typeof SignalStore>[2] = {}) {
  return new SignalStore(backend, { snapshot: initialSnapshot("RUN", new Date()), revision: "0" }, options);
}

function faulty() {
  const backend = new FaultyBackend(initialSnapshot("RUN", new Date()));
  return { backend, store: storeOn(backend, { saveTimeoutMs: 300, retryMs: 20, maxRetryMs: 50 }) };
}

const line = (e: SignalEvent) => (e.type === "claim" ? `claim ${e.claim.source} ${e.previous}->${e.claim.state}` : `change ${e.seq} ${e.previous}->${e.signal}`);

function recorder(store: SignalStore) {
  const events: SignalEvent[] = [];
  store.subscribe((event) => events.push(event));
  return events;
}

test("a change toward safety is made at once, whatever the backend does; a RUN waits for its commit", async () => {
  const { backend, store } = faulty();
  backend.mode = "hang";
  assert.equal(await store.claim(MANUAL_SOURCE, "PAUSE", "POST /PAUSE"), "PAUSE");
  assert.equal(store.signal, "PAUSE", "made before the hung write");
  await waitFor(() => !store.health().saved, "the overdue write shows as unsaved");
  const started = Date.now();
  await assert.rejects(store.claim(MANUAL_SOURCE, "RUN", "POST /RUN"), /could not be written within 0\.3 s/);
  assert.ok(Date.now() - started < 2000);
  assert.equal(store.signal, "PAUSE", "a refused RUN changes nothing");
  assert.equal(await store.claim("alerts", "STOP", "critical"), "STOP", "safety still goes through behind the hung write");
  backend.mode = "ok";
  backend.release();
  await waitFor(() => store.health().saved, "saved once the backend answers");
  await store.flush();
  assert.equal((await backend.stored())?.signal, "STOP", "the refused RUN was written over with the state as it is");
});

test("a RUN being written when a PAUSE comes: the PAUSE stands on top of it", async () => {
  const { backend, store } = faulty();
  await store.claim(MANUAL_SOURCE, "PAUSE", "POST /PAUSE");
  await store.flush();
  const events = recorder(store);
  backend.mode = "hang";
  const run = store.claim(MANUAL_SOURCE, "RUN", "POST /RUN", { explicit: true });
  await waitFor(() => backend.commits === 2, "the RUN is being written");
  await store.claim("load", "PAUSE", "load 5");
  backend.mode = "ok";
  backend.release();
  assert.equal(await run, "PAUSE");
  assert.equal(store.snapshot().claims.find((c) => c.source === MANUAL_SOURCE)?.state, "RUN");
  assert.deepEqual(events.map(line), ["claim load null->PAUSE", "claim manual PAUSE->RUN"], "no change event: readers never saw a RUN");
  await store.flush();
  assert.equal((await backend.stored())?.signal, "PAUSE");
});

test("a committed change never undoes what came during its write (the latch, a forced RUN)", async () => {
  // A: a person's RUN is being written when a source says STOP, then RUN: the STOP latched after
  // the RUN was asked for, so the RUN must not open that latch.
  const a = faulty();
  await a.store.claim(MANUAL_SOURCE, "PAUSE", "POST /PAUSE");
  await a.store.flush();
  a.backend.mode = "hang";
  const resume = a.store.claim(MANUAL_SOURCE, "RUN", "POST /RUN", { explicit: true });
  await waitFor(() => a.backend.commits === 2, "the RUN is being written");
  await a.store.claim("alerts", "STOP", "critical alert");
  const resolved = a.store.release("alerts", "resolved");
  a.backend.mode = "ok";
  a.backend.release();
  assert.equal(await resume, "STOP");
  assert.equal(await resolved, "STOP");
  assert.equal(a.store.snapshot().latch?.source, "alerts", "the later STOP's latch holds");
  assert.equal(await a.store.claim(MANUAL_SOURCE, "RUN", "POST /RUN", { explicit: true }), "RUN", "a RUN asked after it opens it");

  // B: a forced RUN overrides the claims as they were, not a STOP made during its write.
  const b = faulty();
  await b.store.claim("load", "PAUSE", "load 5");
  await b.store.flush();
  b.backend.mode = "hang";
  const force = b.store.forceRun("POST /RUN?force=true");
  await waitFor(() => b.backend.commits === 2, "the forced RUN is being written");
  await b.store.claim("deploys", "STOP", "rolling back");
  b.backend.mode = "ok";
  b.backend.release();
  assert.equal(await force, "STOP");
  const claims = new Map(b.store.snapshot().claims.map((c) => [c.source, c.state]));
  assert.equal(claims.get("load"), "RUN", "overridden");
  assert.equal(claims.get("deploys"), "STOP", "made during the write: it stands");
  assert.deepEqual(b.store.snapshot().override?.sources, ["load"]);
});

test("a failed save is retried until it succeeds; health says unsaved meanwhile", async () => {
  const failures: string[] = [];
  let recovered = 0;
  const backend = new FaultyBackend(initialSnapshot("RUN", new Date()));
  const store = storeOn(backend, { retryMs: 20, maxRetryMs: 40, onFailure: (e) => failures.push(e.message), onRecovery: () => recovered++ });
  backend.mode = "fail";
  assert.equal(await store.claim(MANUAL_SOURCE, "STOP", "POST /STOP"), "STOP");
  await assert.rejects(store.flush(), /ENOSPC/);
  assert.equal(store.health().saved, false);
  assert.match(store.health().error ?? "", /ENOSPC/);
  await assert.rejects(store.claim(MANUAL_SOURCE, "RUN", "POST /RUN"), /ENOSPC/);
  assert.equal(store.signal, "STOP");
  await waitFor(() => backend.commits >= 4, "retried");
  backend.mode = "ok";
  await waitFor(() => store.health().saved, "recovered");
  assert.equal(recovered, 1);
  assert.equal((await backend.stored())?.signal, "STOP");
});

test("a source re-asserting the same state writes nothing; a new state or memo does", async () => {
  const backend = new FaultyBackend(initialSnapshot("RUN", new Date()));
  const store = storeOn(backend);
  await store.claim("prom", "PAUSE", "load 5");
  await store.flush();
  const commits = backend.commits;
  for (let i = 0; i < 50; i++) await store.claim("prom", "PAUSE", `load ${6 + i}`);
  await store.flush();
  assert.equal(backend.commits, commits, "nothing to write");
  assert.equal(store.snapshot().claims.find((c) => c.source === "prom")?.reason, "load 55");
  await store.claim("prom", "PAUSE", "load 5", { memo: { alerts: 1 } });
  await store.flush();
  assert.equal(backend.commits, commits + 1);
});

test("two stores on one backend converge: a conflict re-runs the change on the latest", async () => {
  const backend = new FaultyBackend(initialSnapshot("RUN", new Date()));
  const one = storeOn(backend);
  const two = storeOn(backend);
  await one.claim("a", "PAUSE", "a");
  await one.claim("b", "PAUSE", "b");
  await one.flush();
  await waitFor(() => two.signal === "PAUSE" && two.snapshot().claims.length === 3, "the other store is told (watch)");
  const commits = backend.commits;
  // Both commit on the same revision: one wins, the other conflicts and re-runs its release on the latest.
  const answers = await Promise.all([one.release("a", "done"), two.release("b", "done")]);
  assert.deepEqual(answers.sort(), ["PAUSE", "RUN"], "the later of the two sees both releases");
  assert.equal(backend.commits, commits + 3, "two commits and one retry");
  await waitFor(() => one.signal === "RUN", "the first store sees the second's release");
  const states = (s: SignalStore) => s.snapshot().claims.map((c) => [c.source, c.state]);
  assert.deepEqual(states(one), states(two));
  assert.equal((await backend.stored())?.signal, "RUN");
});

test("listeners: in order, a nested claim's events follow, a throwing listener harms nothing, unsubscribe stops", async () => {
  const errors: unknown[] = [];
  const store = SignalStore.inMemory({ onListenerError: (error) => errors.push(error) });
  store.subscribe(() => {
    throw new Error("boom");
  });
  store.subscribe((event) => {
    if (event.type === "claim" && event.claim.source === MANUAL_SOURCE && event.claim.state === "PAUSE") {
      store.claim("guard", "STOP", "paused means stop here");
    }
  });
  const events = recorder(store);
  assert.equal(await store.claim(MANUAL_SOURCE, "PAUSE", "POST /PAUSE"), "STOP", "resolves with the signal after the nested claim");
  assert.deepEqual(events.map(line), ["claim manual RUN->PAUSE", "change 1 RUN->PAUSE", "claim guard null->STOP", "change 2 PAUSE->STOP"]);
  assert.equal(errors.length, 4);
  assert.equal(store.snapshot().seq, 2);
  const later: SignalEvent[] = [];
  store.subscribe((e) => later.push(e))();
  await store.claim("x", "PAUSE", "r");
  assert.equal(later.length, 0);
  assert.throws(() => store.claim("x", "pause" as never, "r"), /claim state must be one of/);
});

test("a timed pause ends by itself; an end that cannot be saved is tried again", async () => {
  const backend = new FaultyBackend(initialSnapshot("RUN", new Date()));
  const store = storeOn(backend, { saveTimeoutMs: 300 });
  const expiry = new PauseExpiry(store, { retryMs: 50 });
  expiry.start();
  try {
    await store.submit({ kind: "timed-pause", ms: 200 });
    assert.equal(store.signal, "PAUSE");
    backend.mode = "fail";
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(store.signal, "PAUSE", "not saved, so not made");
    backend.mode = "ok";
    await waitFor(() => store.signal === "RUN", "ended once it could be saved");
    assert.match(store.snapshot().claims[0]!.reason, /^timed pause of 200ms expired$/);
  } finally {
    expiry.stop();
  }
});

test("a RUN waiting for its turn never undoes a later word of the same source", async () => {
  const { backend, store } = faulty();
  await store.claim("switch", "PAUSE", "file says PAUSE");
  await store.flush();
  backend.mode = "hang";
  await store.claim("other", "STOP", "a write to wait behind");
  const released = store.release("switch", "file is empty"); // queued behind the hung write
  await store.claim("switch", "PAUSE", "file says PAUSE again"); // the same source, later: it stands
  const resumed = store.claim(MANUAL_SOURCE, "RUN", "POST /RUN", { explicit: true });
  await store.claim(MANUAL_SOURCE, "PAUSE", "POST /PAUSE"); // a person's later PAUSE stands too
  backend.mode = "ok";
  backend.release();
  await released;
  await resumed;
  const claims = new Map(store.snapshot().claims.map((c) => [c.source, c.state]));
  assert.equal(claims.get("switch"), "PAUSE");
  assert.equal(claims.get(MANUAL_SOURCE), "PAUSE");
  await store.flush();
  assert.deepEqual((await backend.stored())?.claims.map((c) => c.state), store.snapshot().claims.map((c) => c.state));
});
