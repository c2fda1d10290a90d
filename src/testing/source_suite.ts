/**
 * One conformance suite that every signal source passes, built-in or
 * example: lifecycle, claim and release, problems reported without dying,
 * re-asserting after an operator's forced RUN, and clean shutdown.
 *
 * Each source brings a harness that moves the outside world (writes the
 * file, posts the webhook, changes the metric) the way its users would.
 * Exported as `@chaos-signal/chaos-signal/testing`: a third-party source runs
 * it from its own tests (`node:test`, under Deno or Bun).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SignalStore } from "../state/signal_store.ts";
import type { Signal } from "../core/signal.ts";
import { createHandler } from "../http/app.ts";
import type { Plugin } from "../plugin/api.ts";
import { PluginHost } from "../plugin/host.ts";
import { waitFor } from "./wait.ts";

export interface Rig {
  readonly arbiter: SignalStore;
  readonly host: PluginHost;
  /** Sends a request through the real handler (so `/hooks/<name>` routes are exercised). */
  call(path: string, init?: RequestInit): Promise<Response>;
}

/** What a source can do, known before its harness is built (tests it cannot pass are skipped, and say why). */
export interface SourceTraits {
  /** Whether the source can claim STOP. */
  readonly canStop: boolean;
  /** Whether it has a failure mode to provoke (a warning, or a malformed delivery). */
  readonly hasProblems: boolean;
}

export interface SourceHarness {
  readonly plugin: Plugin;
  /** Makes the outside world ask for `state` (RUN = no objection). */
  drive(state: Signal, rig: Rig): Promise<void>;
  /** A poller or watcher re-asserts by itself; a webhook needs its sender to send again. */
  readonly reassertsByItself: boolean;
  /** Makes the source meet a problem it reports as a warning (a poller's failed query). */
  provokeWarning?(rig: Rig): Promise<void>;
  /** Sends a malformed delivery to a webhook; the answer must be a 4xx. */
  sendMalformed?(rig: Rig): Promise<Response>;
  cleanup?(): Promise<void>;
}

function claimOf(arbiter: SignalStore, source: string) {
  return arbiter.snapshot().claims.find((claim) => claim.source === source);
}

function statusOf(host: PluginHost, name: string) {
  return host.statuses().find((status) => status.name === name)!;
}

async function rigged(harness: SourceHarness, body: (rig: Rig) => Promise<void>): Promise<void> {
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [harness.plugin], { restartDelayMs: 50 });
  const handler = createHandler({ store: arbiter, version: "test", plugins: host });
  const rig: Rig = {
    arbiter,
    host,
    call: async (path, init) => await handler(new Request(`http://source.test${path}`, init), { remoteAddress: "127.0.0.1" }),
  };
  host.start();
  try {
    await body(rig);
  } finally {
    await host.stop();
    await harness.cleanup?.();
  }
}

/** Registers the suite for one source; `make` builds a fresh harness per test. */
export function sourceConformance(label: string, traits: SourceTraits, make: () => Promise<SourceHarness>): void {
  describe(`source conformance: ${label}`, () => {
    test("starts, observes, and is reported healthy and ready", async () => {
      const harness = await make();
      await rigged(harness, async ({ host }) => {
        await waitFor(() => host.ready, "the source's first observation");
        const status = statusOf(host, harness.plugin.name);
        assert.equal(status.kind, harness.plugin.kind);
        assert.equal(status.health, "ok");
        assert.ok(status.last_observation?.at);
      });
    });

    test("claims PAUSE when the world asks, and releases when it stops asking", async () => {
      const harness = await make();
      await rigged(harness, async (rig) => {
        const { arbiter } = rig;
        const name = harness.plugin.name;
        await harness.drive("PAUSE", rig);
        await waitFor(() => claimOf(arbiter, name)?.state === "PAUSE", `${name} to claim PAUSE`);
        assert.equal(arbiter.signal, "PAUSE");
        assert.equal(arbiter.snapshot().decidedBy, name);
        assert.ok(claimOf(arbiter, name)!.reason.length > 0, "a claim says why");
        await harness.drive("RUN", rig);
        await waitFor(() => claimOf(arbiter, name)?.state === "RUN", `${name} to release`);
        assert.equal(arbiter.signal, "RUN");
      });
    });

    test("a STOP claim latches until a manual RUN", { skip: !traits.canStop && "this source never claims STOP" }, async () => {
      const harness = await make();
      await rigged(harness, async (rig) => {
        const { arbiter } = rig;
        const name = harness.plugin.name;
        await harness.drive("STOP", rig);
        await waitFor(() => arbiter.signal === "STOP", `${name} to claim STOP`);
        await harness.drive("RUN", rig);
        await waitFor(() => claimOf(arbiter, name)?.state === "RUN", `${name} to release`);
        assert.equal(arbiter.signal, "STOP", "latched");
        assert.equal((await rig.call("/RUN", { method: "POST" })).status, 200);
        assert.equal(arbiter.signal, "RUN");
      });
    });

    test("problems are reported, and the source keeps working", { skip: !traits.hasProblems && "this source has no failure mode of its own" }, async () => {
      const harness = await make();
      assert.ok(harness.provokeWarning || harness.sendMalformed, "the harness provokes a problem");
      await rigged(harness, async (rig) => {
        const name = harness.plugin.name;
        await waitFor(() => rig.host.ready, "the first observation");
        if (harness.provokeWarning) {
          await harness.provokeWarning(rig);
          await waitFor(() => statusOf(rig.host, name).warnings > 0, `${name} to report a warning`);
          const status = statusOf(rig.host, name);
          assert.ok(status.last_warning?.message, "the warning says what happened");
        }
        if (harness.sendMalformed) {
          const before = rig.arbiter.snapshot();
          const response = await harness.sendMalformed(rig);
          assert.ok(response.status >= 400 && response.status < 500, `malformed delivery answered ${response.status}`);
          const reason = await response.text();
          assert.equal(reason.trimEnd().split("\n").length, 1, "a one-line reason");
          assert.deepEqual(rig.arbiter.snapshot().claims, before.claims, "nothing changed");
        }
        await harness.drive("PAUSE", rig);
        await waitFor(() => claimOf(rig.arbiter, name)?.state === "PAUSE", `${name} to claim PAUSE after the problem`);
        await harness.drive("RUN", rig);
        await waitFor(() => claimOf(rig.arbiter, name)?.state === "RUN", `${name} to release after the problem`);
      });
    });

    test("re-asserts its claim after an operator forces RUN", async () => {
      const harness = await make();
      await rigged(harness, async (rig) => {
        const name = harness.plugin.name;
        await harness.drive("PAUSE", rig);
        await waitFor(() => rig.arbiter.signal === "PAUSE", `${name} to claim PAUSE`);
        const forced = await rig.call("/RUN?force=true", { method: "POST" });
        assert.equal(await forced.text(), "RUN");
        assert.match(claimOf(rig.arbiter, name)!.reason, /^overridden by POST \/RUN\?force=true/);
        if (!harness.reassertsByItself) await harness.drive("PAUSE", rig);
        await waitFor(() => rig.arbiter.signal === "PAUSE", `${name} to re-assert PAUSE`);
      });
    });

    test("shuts down cleanly and claims nothing afterwards", async () => {
      const harness = await make();
      const arbiter = SignalStore.inMemory();
      const host = new PluginHost(arbiter, [harness.plugin]);
      host.start();
      await waitFor(() => host.ready, "the first observation");
      const started = performance.now();
      await host.stop(1000);
      assert.ok(performance.now() - started < 1500, "stop() returns within its grace");
      assert.equal(statusOf(host, harness.plugin.name).health, "stopped");
      const claims = arbiter.snapshot().claims.length;
      const updated = claimOf(arbiter, harness.plugin.name)?.updated.getTime();
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(arbiter.snapshot().claims.length, claims);
      assert.equal(claimOf(arbiter, harness.plugin.name)?.updated.getTime(), updated, "no claim after stop");
      await harness.cleanup?.();
    });
  });
}
