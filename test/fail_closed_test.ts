// A store on a shared backend (etcd) that cannot confirm it is current serves PAUSE, never a stale RUN.
import assert from "node:assert/strict";
import { test } from "node:test";
import { initialSnapshot, MANUAL_SOURCE, NotSavedError, type SignalEvent, SignalStore } from "../mod.ts";
import type { BackendHealth } from "../src/state/backend.ts";
import { MemoryBackend } from "../src/state/memory_backend.ts";
import { waitFor } from "./helpers/wait.ts";

/** A MemoryBackend shared like etcd: its health can be cut. */
class CutOffBackend extends MemoryBackend {
  readonly failClosed = true;
  current = true;
  override health(): BackendHealth {
    return { current: this.current, lastContact: null, ...(this.current ? {} : { detail: "no contact with etcd for 3.1 s" }) };
  }
}

function setup() {
  const snapshot = initialSnapshot("RUN", new Date());
  const backend = new CutOffBackend(snapshot);
  const store = new SignalStore(backend, { snapshot, revision: "0" }, { saveTimeoutMs: 500 });
  const changes: string[] = [];
  store.subscribe((e: SignalEvent) => e.type === "change" && changes.push(`${e.previous}->${e.signal}`));
  return { backend, store, changes };
}

test("fail closed: not current → PAUSE is served (GET /, snapshot, events); RUN refused; STOP made; current again → the stored signal", async () => {
  const { backend, store, changes } = setup();
  try {
    assert.equal(store.signal, "RUN");
    backend.current = false;
    await waitFor(() => store.signal === "PAUSE", "PAUSE once the backend is not current", 2000);
    assert.equal(store.snapshot().signal, "PAUSE");
    assert.deepEqual(changes, ["RUN->PAUSE"]);
    // A RUN that would change something (a source's release) is refused: it cannot be committed.
    assert.equal(await store.claim("file", "PAUSE", "the file says PAUSE"), "PAUSE");
    await assert.rejects(store.release("file", "the file is empty"), (error: Error) => error instanceof NotSavedError && /not reachable: no contact/.test(error.message));
    await assert.rejects(store.forceRun("POST /RUN?force=true"), NotSavedError);
    backend.current = true;
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(store.signal, "PAUSE", "the file's PAUSE, made while cut off, stands");
    assert.equal(await store.release("file", "the file is empty"), "RUN");
    assert.deepEqual(changes, ["RUN->PAUSE", "PAUSE->RUN"]);
    // A STOP while cut off is made at once, and stays once current again.
    backend.current = false;
    await waitFor(() => store.signal === "PAUSE", "PAUSE again", 2000);
    assert.equal(await store.claim(MANUAL_SOURCE, "STOP", "POST /STOP"), "STOP");
    assert.equal(store.signal, "STOP");
    backend.current = true;
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(store.signal, "STOP");
    assert.equal((await backend.load()).snapshot?.signal, "STOP", "saved once current");
  } finally {
    await store.close();
  }
});

test("fail closed: current again → changes committed elsewhere meanwhile are loaded and served", async () => {
  const { backend, store } = setup();
  try {
    backend.current = false;
    await waitFor(() => store.signal === "PAUSE", "PAUSE", 2000);
    // Another replica's STOP, committed while this one was cut off (its watch saw nothing).
    const other = new SignalStore(backend, { snapshot: (await backend.load()).snapshot!, revision: (await backend.load()).revision });
    await other.claim(MANUAL_SOURCE, "STOP", "POST /STOP elsewhere");
    await other.flush();
    await other.close();
    backend.current = true;
    await waitFor(() => store.signal === "STOP", "the STOP stored elsewhere", 2000);
  } finally {
    await store.close();
  }
});
