// Receivers (Alertmanager, generic webhook) across restarts, against the real server process and
// a real state file: a 2xx means the claim is on disk, a restored claim stands with what was
// behind it, and max_age counts from the original claim, not from the restart.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { alertmanagerSource, createHandler, initialSnapshot, PluginHost, SignalStore, webhookSource } from "../mod.ts";
import { parseStateFile } from "../src/state/state_file.ts";
import { FaultyBackend } from "./helpers/faulty_backend.ts";
import type { StatusDocument } from "../src/http/status.ts";
import { alert, notification } from "./helpers/alertmanager_payload.ts";
import { tempDir, tempFile } from "./helpers/files.ts";
import { startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const get = async (url: string) => await (await fetch(`${url}/`, { signal: AbortSignal.timeout(5000) })).text();
const status = async (url: string): Promise<StatusDocument> => await (await fetch(`${url}/status`, { signal: AbortSignal.timeout(5000) })).json();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function hook(url: string, name: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}/hooks/${name}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return JSON.parse(text);
}

/** The state of `source`'s claim in the state file, read the moment it is asked. */
function savedClaim(stateFile: string, source: string) {
  return parseStateFile(readFileSync(stateFile, "utf8")).snapshot.claims.find((claim) => claim.source === source);
}

function setup(source: string): { stateFile: string; flags: string[] } {
  const stateFile = join(tempDir(), "state.json");
  const config = tempFile(`chaos_signal:\n  sources:\n${source}`);
  return { stateFile, flags: ["--state-file", stateFile, "--config", config] };
}

test("alertmanager: a firing alert's PAUSE survives kill -9 right after the 2xx, with its alerts, until they resolve", async () => {
  const { stateFile, flags } = setup("    - type: alertmanager\n      name: alerts\n      max_age: 1h\n");
  const first = await startServer(flags);
  const firing = notification([alert("firing", { severity: "warning" }, "8a6d0a2ad1e3c3f1")]);
  let answer: Record<string, unknown>;
  try {
    answer = await hook(first.url, "alerts", firing);
    // The 2xx is out: what it acknowledged is on disk now, alerts included.
    const saved = savedClaim(stateFile, "alerts");
    assert.equal(saved?.state, "PAUSE", "the claim is in the file when the 2xx arrives");
    assert.match(JSON.stringify(saved?.memo), /8a6d0a2ad1e3c3f1/, "the alert is in the file with the claim");
  } finally {
    await first.stop("SIGKILL");
  }
  assert.equal(answer.signal, "PAUSE");

  const second = await startServer(flags);
  try {
    assert.equal(await get(second.url), "PAUSE");
    assert.match(second.output(), /restored PAUSE from /);
    const source = (await status(second.url)).sources.find((s) => s.name === "alerts");
    assert.deepEqual(source?.last_observation?.firing, ["NodeLoadHigh"], "/status shows the restored alert");
    // The source's own loop has run its checks since: still PAUSE, and it never said otherwise.
    await sleep(1500);
    assert.equal(await get(second.url), "PAUSE");
    assert.doesNotMatch(second.output(), /claim alerts RUN/);
    const claim = (await status(second.url)).claims.find((c) => c.source === "alerts");
    assert.equal(claim?.reason, "1 alert firing: NodeLoadHigh");

    // The resolve says it is over.
    const resolved = await hook(second.url, "alerts", notification([alert("resolved", { severity: "warning" }, "8a6d0a2ad1e3c3f1")]));
    assert.equal(resolved.signal, "RUN");
    assert.equal(await get(second.url), "RUN");
    assert.equal(savedClaim(stateFile, "alerts")?.state, "RUN");
  } finally {
    await second.stop();
  }
});

test("alertmanager: max_age of a restored alert counts from when it was last sent, not from the restart", async () => {
  const { flags } = setup("    - type: alertmanager\n      name: alerts\n      max_age: 2s\n");
  const first = await startServer(flags);
  const sentAt = Date.now();
  try {
    await hook(first.url, "alerts", notification([alert("firing", { severity: "warning" }, "5d1f8ea0c2b34a77")]));
  } finally {
    await first.stop("SIGTERM");
  }
  await sleep(Math.max(0, sentAt + 1500 - Date.now()));
  const second = await startServer(flags);
  const listening = Date.now();
  try {
    await waitFor(async () => (await get(second.url)) === "RUN", { what: "RUN once the alert is 2 s old", timeoutMs: 8000, intervalMs: 50, diagnose: second.output });
    const ranAt = Date.now();
    assert.ok(ranAt < listening + 2000, `RUN ${ranAt - sentAt} ms after the alert, ${ranAt - listening} ms after the restart: max_age counted from the restart`);
    assert.match(second.output(), /not re-sent within max_age 2s/);
  } finally {
    await second.stop();
  }
});

test("webhook: every 2xx comes after its claim is on disk; kill -9 right after one keeps it", async () => {
  const { stateFile, flags } = setup("    - type: webhook\n      name: deploys\n");
  const first = await startServer(flags);
  try {
    for (let i = 0; i < 20; i++) {
      const state = i % 2 === 0 ? "PAUSE" : "RUN";
      await hook(first.url, "deploys", { state, reason: `step ${i}` });
      assert.equal(savedClaim(stateFile, "deploys")?.state, state, `the file after the 2xx of step ${i}`);
    }
    await hook(first.url, "deploys", { state: "PAUSE", reason: "rolling out" });
  } finally {
    await first.stop("SIGKILL");
  }
  const second = await startServer(flags);
  try {
    assert.equal(await get(second.url), "PAUSE");
    assert.match(second.output(), /restored PAUSE from /);
  } finally {
    await second.stop();
  }
});

test("webhook: max_age counts from the original claim across a restart", async () => {
  const { flags } = setup("    - type: webhook\n      name: deploys\n      max_age: 2s\n");
  const first = await startServer(flags);
  const claimedAt = Date.now();
  try {
    await hook(first.url, "deploys", { state: "PAUSE", reason: "rolling out" });
  } finally {
    await first.stop("SIGTERM");
  }
  await sleep(Math.max(0, claimedAt + 1500 - Date.now()));
  const second = await startServer(flags);
  const listening = Date.now();
  try {
    await waitFor(async () => (await get(second.url)) === "RUN", { what: "RUN once the claim is 2 s old", timeoutMs: 8000, intervalMs: 50, diagnose: second.output });
    const ranAt = Date.now();
    assert.ok(ranAt < listening + 2000, `RUN ${ranAt - claimedAt} ms after the claim, ${ranAt - listening} ms after the restart: max_age counted from the restart`);
    assert.match(second.output(), /no refresh within max_age 2s/);
  } finally {
    await second.stop();
  }
});

test("a claim that cannot be saved gets 503 naming why, and a PAUSE still takes effect", async () => {
  const backend = new FaultyBackend(initialSnapshot("RUN", new Date()));
  backend.mode = "fail";
  const arbiter = new SignalStore(backend, { snapshot: initialSnapshot("RUN", new Date()), revision: "0" });
  const host = new PluginHost(arbiter, [webhookSource({ name: "deploys" })]);
  const handler = createHandler({ store: arbiter, version: "t", plugins: host });
  host.start();
  try {
    const response = await handler(new Request("http://x/hooks/deploys", { method: "POST", headers: { "content-type": "application/json" }, body: '{"state": "PAUSE"}' }));
    const text = await response.text();
    assert.equal(response.status, 503, text);
    assert.match(text, /^the claim is in effect but was not saved \(ENOSPC: no space left on device\).*send it again\n$/);
    assert.equal(arbiter.signal, "PAUSE", "a PAUSE is never withheld for want of a disk");
    // A release is a change toward RUN: not saved, so not made, and the sender is told to send it again.
    const run = await handler(new Request("http://x/hooks/deploys", { method: "POST", headers: { "content-type": "application/json" }, body: '{"state": "RUN"}' }));
    assert.equal(run.status, 503);
    assert.match(await run.text(), /^the change was not saved, so it was not made: ENOSPC: no space left on device\n$/);
    assert.equal(arbiter.signal, "PAUSE");
  } finally {
    await host.stop();
  }
});

test("a state file from before memos still loads; a restored Alertmanager PAUSE without its alerts stands until max_age", async () => {
  const updated = new Date(Date.now() - 500).toISOString();
  const old = parseStateFile(JSON.stringify({
    version: 1,
    saved_at: updated,
    signal: "PAUSE",
    stop_latch: null,
    claims: [
      { source: "manual", state: "RUN", reason: "initial signal_state RUN", since: updated, updated },
      { source: "alerts", state: "PAUSE", reason: "1 alert firing: NodeLoadHigh", since: updated, updated, actor: "127.0.0.1" },
    ],
  }));
  const arbiter = SignalStore.inMemory();
  await arbiter.submit({ kind: "restore", saved: old.snapshot, sources: ["alerts"] });
  const host = new PluginHost(arbiter, [alertmanagerSource({ name: "alerts", max_age: "2s" })]);
  host.start();
  try {
    await sleep(300);
    assert.equal(arbiter.signal, "PAUSE", "the restored claim stands at start");
    await waitFor(() => arbiter.signal === "RUN", { what: "RUN at max_age from the claim's last update", timeoutMs: 5000, intervalMs: 50 });
  } finally {
    await host.stop();
  }
});

test("SIGTERM right after a source's claim: the claim is in the file when the process has exited", async () => {
  // Three times: the save that SIGTERM used to cut off is a race, lost most times but not every time.
  for (let i = 0; i < 3; i++) {
    const dir = tempDir();
    const stateFile = join(dir, "state.json");
    const signalFile = join(dir, "signal");
    const config = tempFile(`chaos_signal:\n  sources:\n    - type: file\n      name: switch\n      path: ${signalFile}\n`);
    const server = await startServer(["--state-file", stateFile, "--config", config]);
    try {
      writeFileSync(signalFile, "PAUSE");
      await waitFor(async () => (await get(server.url)) === "PAUSE", { what: "PAUSE from the file", timeoutMs: 10_000, intervalMs: 2 });
    } finally {
      const exit = await server.stop("SIGTERM");
      assert.equal(exit.code, 0, server.output());
    }
    assert.equal(savedClaim(stateFile, "switch")?.state, "PAUSE", `round ${i}: the file after the exit`);
  }
});

test("a memo over 1 MiB is dropped with a warning; the claim itself goes through", async () => {
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [{ name: "big", kind: "test", fetch: () => new Response() }]);
  const context = host.plugin("big")!.context;
  assert.equal(await context.claim("PAUSE", "too much to remember", { memo: { blob: "x".repeat(1024 * 1024) } }), "PAUSE");
  const claim = arbiter.snapshot().claims.find((c) => c.source === "big");
  assert.equal(claim?.state, "PAUSE");
  assert.equal(claim?.memo, undefined);
  assert.match(host.statuses()[0]!.last_warning?.message ?? "", /^memo dropped: \d+ characters, at most 1048576 are kept$/);
  context.claim("PAUSE", "small enough", { memo: { alerts: [] } });
  assert.deepEqual(arbiter.snapshot().claims.find((c) => c.source === "big")?.memo, { alerts: [] });
});
