// POST /PAUSE?for=...: a manual pause that ends by itself, says so, and never ends a STOP.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SignalStore, type SignalEvent, createHandler } from "../mod.ts";
import { waitFor } from "./helpers/wait.ts";
import { PauseExpiry } from "../src/state/expiry.ts";

function setup() {
  const arbiter = SignalStore.inMemory();
  const handler = createHandler({ store: arbiter, version: "t" });
  // createServer arms the timed pause's end like this.
  new PauseExpiry(arbiter).start();
  const events: SignalEvent[] = [];
  arbiter.subscribe((event) => events.push(event));
  const post = async (path: string) => await (await handler(new Request(`http://x${path}`, { method: "POST" }), { remoteAddress: "192.0.2.1" })).text();
  const manual = () => arbiter.snapshot().claims.find((c) => c.source === "manual")!;
  return { arbiter, events, post, manual };
}

test("a timed pause pauses, then runs again by itself and says so", async () => {
  const { arbiter, events, post, manual } = setup();
  assert.equal(await post("/PAUSE?for=1s"), "PAUSE");
  assert.match(manual().reason, /^POST \/PAUSE\?for=1s \(until \d{4}-\d\d-\d\dT[\d:.]+Z\)$/);
  assert.equal(manual().actor, "192.0.2.1");
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(arbiter.signal, "PAUSE", "not before its time");
  await waitFor(() => arbiter.signal === "RUN", "the pause to end", 3000);
  assert.equal(manual().reason, "timed pause of 1s expired");
  const last = events.filter((e) => e.type === "claim").at(-1);
  assert.equal(last?.type === "claim" && last.claim.reason, "timed pause of 1s expired", "the end is an event (for the history)");
});

test("another manual request replaces the timed pause and cancels its end", async () => {
  const { arbiter, post } = setup();
  await post("/PAUSE?for=1s");
  await post("/PAUSE");
  await new Promise((resolve) => setTimeout(resolve, 1300));
  assert.equal(arbiter.signal, "PAUSE", "the plain PAUSE stands");
  await post("/PAUSE?for=1s");
  await post("/PAUSE?for=5s"); // a new timed pause replaces the first one's end
  await new Promise((resolve) => setTimeout(resolve, 1300));
  assert.equal(arbiter.signal, "PAUSE");
});

test("running out never opens the STOP latch", async () => {
  const { arbiter, post } = setup();
  await post("/PAUSE?for=1s");
  await arbiter.claim("alerts", "STOP", "critical alert");
  await arbiter.release("alerts", "resolved");
  await new Promise((resolve) => setTimeout(resolve, 1300));
  assert.equal(arbiter.signal, "STOP", "latched");
  assert.equal(arbiter.snapshot().latch?.source, "alerts");
});

test("bad durations get 400 naming the parameter and the range, and change nothing", async () => {
  const { arbiter, post } = setup();
  for (const value of ["soon", "0s", "500ms", "8d", ""]) {
    assert.match(await post(`/PAUSE?for=${value}`), /^query parameter "for" of POST \/PAUSE: got ".*"; allowed: a duration from 1s to 168h/);
  }
  assert.equal(arbiter.signal, "RUN");
});

test("a timed pause survives kill -9 and still ends when it would have", async () => {
  const { join } = await import("node:path");
  const { tempDir } = await import("./helpers/files.ts");
  const { startServer } = await import("./helpers/server_process.ts");
  const stateFile = join(tempDir(), "state.json");
  const first = await startServer(["--state-file", stateFile]);
  assert.equal(await (await fetch(`${first.url}/PAUSE?for=3s`, { method: "POST" })).text(), "PAUSE");
  await first.stop("SIGKILL");
  const second = await startServer(["--state-file", stateFile]);
  try {
    const status = await (await fetch(`${second.url}/status`)).json();
    const manual = status.claims.find((c: { source: string }) => c.source === "manual");
    assert.equal(status.signal, "PAUSE");
    assert.ok(manual.until, "the end is kept");
    await waitFor(async () => (await (await fetch(`${second.url}/`)).text()) === "RUN", "the restored pause to end", 6000);
    const after = await (await fetch(`${second.url}/status`)).json();
    assert.equal(after.claims.find((c: { source: string }) => c.source === "manual").reason, "timed pause of 3s expired");
  } finally {
    await second.stop();
  }
});
