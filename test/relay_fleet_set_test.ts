// The relay's target set changes at run time (what DNS or file discovery feeds it): a target that
// appears gets the current signal at once, one that leaves is no longer pushed and leaves the counts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Fleet } from "../plugins/relay_fleet.ts";
import { Slots } from "../plugins/relay_slots.ts";
import type { Signal, SourceContext } from "../plugin.ts";
import { startKrknFleet } from "./helpers/krkn_fleet.ts";
import { waitFor } from "./helpers/wait.ts";

test("Fleet.set: added targets get the current signal at once, removed ones are stopped and uncounted", async () => {
  const targets = await startKrknFleet(10, "RUN");
  const abort = new AbortController();
  let signal: Signal = "PAUSE";
  const warnings: unknown[] = [];
  const context = {
    name: "fleet",
    abort: abort.signal,
    current: () => signal,
    log: () => {},
    warn: (problem: unknown) => warnings.push(problem),
    observe: () => {},
  } as unknown as SourceContext;
  const fleet = new Fleet({
    intervalMs: 60_000, // no reconcile during the test: every push comes from a change or a new target
    timeoutMs: 2000,
    backoffMs: 100,
    maxBackoffMs: 500,
    refusedRetryMs: 100,
    headers: {},
    slots: new Slots(4),
  }, targets.urls.slice(0, 5));
  const running = fleet.run(context, () => {});
  try {
    const states = () => targets.states();
    await waitFor(async () => (await states()).slice(0, 5).every((s) => s === "PAUSE"), "the first five at PAUSE");
    assert.deepEqual(fleet.counts(), { targets: 5, in_sync: 5, out_of_sync: 0, failing: 0 });

    const { added, removed } = fleet.set(targets.urls.slice(3));
    assert.deepEqual(added, targets.urls.slice(5));
    assert.deepEqual(removed, targets.urls.slice(0, 3));
    await waitFor(async () => (await states()).slice(3).every((s) => s === "PAUSE"), "the new targets at PAUSE at once");
    await waitFor(() => fleet.counts().in_sync === 7, "seven in sync");
    assert.deepEqual(fleet.counts(), { targets: 7, in_sync: 7, out_of_sync: 0, failing: 0 });

    signal = "STOP";
    fleet.changed("STOP", Date.now());
    await waitFor(async () => (await states()).slice(3).every((s) => s === "STOP"), "the seven at STOP");
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual((await states()).slice(0, 3), ["PAUSE", "PAUSE", "PAUSE"], "the removed targets are not pushed");
    assert.equal(fleet.lastChange()?.signal, "STOP");
    assert.equal(typeof fleet.lastChange()?.reached_all_ms, "number");
    assert.equal(fleet.histogram().count, 1);
    const page = fleet.page(undefined, 100);
    assert.deepEqual(page.targets.map((t) => t.url), [...targets.urls.slice(3)].sort());
    assert.deepEqual(warnings, []);
  } finally {
    abort.abort();
    await running;
    await targets.stop();
  }
});

test("relay metrics: aggregates always, a series per target only with per_target_metrics; concurrency is validated", async () => {
  const { relay } = await import("../plugins/relay.ts");
  const urls = ["http://127.0.0.1:9/", "http://127.0.0.1:10/"];
  const status = {
    name: "fleet", kind: "relay", health: "ok" as const, warnings: 0, restarts: 0, last_warning: null,
    last_observation: { at: new Date().toISOString(), counts: { targets: 2, in_sync: 0, out_of_sync: 2, failing: 0 } },
  };
  const families = (perTarget: boolean) =>
    new Set(relay({ name: "fleet", targets: urls, per_target_metrics: perTarget }).description!.samples!(status).map((s) => s.family + (s.suffix ?? "")));
  assert.deepEqual([...families(false)].sort(), [
    "relay_change_reach_all_seconds_bucket", "relay_change_reach_all_seconds_count", "relay_change_reach_all_seconds_sum",
    "relay_targets", "relay_targets_failing", "relay_targets_in_sync",
  ]);
  assert.ok(families(true).has("relay_target_in_sync") && families(true).has("relay_target_failures"));
  assert.throws(() => relay({ name: "r", targets: urls, concurrency: 0 }), /relay "r": concurrency: got 0; allowed: a whole number from 1 to 4096/);
});
