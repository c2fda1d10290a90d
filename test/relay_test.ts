// Relay targets against a stand-in for the server a Krkn run embeds, and
// against another chaos-signal, through the plugin and through the real CLI.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SignalStore, PluginHost, relay, ValidationError } from "../mod.ts";
import { tempFile } from "./helpers/files.ts";
import { startKrknServer } from "./helpers/krkn_server.ts";
import { freePort } from "./helpers/prometheus.ts";
import { startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

function relayRig(targets: string[], options: { interval?: string; max_backoff?: string; refused_retry?: string } = {}) {
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [
    relay({
      name: "krkn",
      targets,
      interval: options.interval ?? "200ms",
      timeout: "500ms",
      max_backoff: options.max_backoff ?? "200ms",
      ...(options.refused_retry ? { refused_retry: options.refused_retry } : {}),
    }),
  ]);
  host.start();
  const status = () => host.statuses()[0]!;
  // Every target, in the order given, from the relay's paged status (what GET /status/relays/krkn serves).
  const target = (i = 0) => {
    const page = host.plugin("krkn")!.plugin.description!.page!(status(), new URLSearchParams()) as {
      targets: { url: string; in_sync: boolean; failures: number; last_pushed: { signal: string } | null }[];
    };
    return page.targets.find((t) => t.url === targets[i]);
  };
  return { arbiter, host, status, target };
}

test("a PAUSE from a source reaches Krkn's server, and RUN follows", async () => {
  const krkn = await startKrknServer();
  const { arbiter, host, target } = relayRig([krkn.url]);
  try {
    await waitFor(() => target()?.in_sync, "the first sync");
    assert.equal(await krkn.state(), "RUN");
    await arbiter.claim("load", "PAUSE", "load 5 above 4");
    await waitFor(async () => (await krkn.state()) === "PAUSE", "Krkn's server to hold PAUSE");
    assert.equal(target()?.last_pushed?.signal, "PAUSE");
    await arbiter.release("load", "load 1");
    await waitFor(async () => (await krkn.state()) === "RUN", "Krkn's server to hold RUN");
    assert.ok(krkn.requests().includes("POST /PAUSE"));
  } finally {
    await host.stop();
    await krkn.stop();
  }
});

test("a restarted Krkn server (back at its signal_state) is reconciled", async () => {
  let krkn = await startKrknServer();
  const { arbiter, host, target } = relayRig([krkn.url]);
  try {
    await arbiter.claim("manual", "PAUSE", "POST /PAUSE");
    await waitFor(async () => (await krkn.state()) === "PAUSE", "PAUSE pushed");
    const port = krkn.port;
    await krkn.stop();
    krkn = await startKrknServer(port, "RUN"); // a new Krkn run starts over from signal_state RUN
    await waitFor(async () => (await krkn.state()) === "PAUSE", "PAUSE pushed again after the restart", 5000);
    await waitFor(() => target()?.in_sync, "in sync");
  } finally {
    await host.stop();
    await krkn.stop();
  }
});

test("a target down for a while is in sync at the latest signal soon after it is back", async () => {
  let krkn = await startKrknServer();
  const { arbiter, host, status, target } = relayRig([krkn.url], { interval: "10s", max_backoff: "300ms" });
  try {
    await waitFor(() => target()?.in_sync, "the first sync");
    const port = krkn.port;
    await krkn.stop();
    await arbiter.claim("manual", "PAUSE", "1");
    await waitFor(() => (target()?.failures ?? 0) >= 2, "failures while it is down");
    assert.equal(target()?.in_sync, false);
    assert.equal(status().health, "warning");
    assert.match(status().last_warning!.message, new RegExp(`^http://127\\.0\\.0\\.1:${port}: POST /PAUSE: .*; retrying$`));
    // More changes while it is down: only the latest matters.
    await arbiter.claim("manual", "STOP", "2");
    await arbiter.claim("manual", "RUN", "3");
    await arbiter.claim("manual", "PAUSE", "4");
    krkn = await startKrknServer(port, "RUN");
    // With a 10 s reconcile interval, only the retry loop can bring it back this fast.
    await waitFor(async () => target()?.in_sync && (await krkn.state()) === "PAUSE", "in sync at PAUSE after the outage", 3000);
    assert.equal(status().health, "ok");
  } finally {
    await host.stop();
    await krkn.stop();
  }
});

test("a Krkn run that starts late (at RUN) is paused within about a second, whatever the backoff grew to", async () => {
  // The real CLI with the relay's defaults (max_backoff 30s, interval 10s), at PAUSE before
  // anything listens on the target's port.
  const port = await freePort();
  const config = tempFile(["chaos_signal:", "  relays:", "    - name: krkn", `      targets: [http://127.0.0.1:${port}]`, ""].join("\n"));
  const server = await startServer(["--config", config]);
  let krkn: Awaited<ReturnType<typeof startKrknServer>> | undefined;
  try {
    assert.equal((await fetch(`${server.url}/PAUSE`, { method: "POST" })).status, 200);
    // Long enough for a doubling backoff to pass 4 s (250 ms, 500 ms, 1 s, 2 s, 4 s, 8 s...).
    await new Promise((resolve) => setTimeout(resolve, 9000));
    krkn = await startKrknServer(port, "RUN"); // a stock Krkn run: signal_state RUN
    await waitFor(async () => (await krkn!.state()) === "PAUSE", {
      what: "the late Krkn server to hold PAUSE",
      timeoutMs: 2500,
      intervalMs: 20,
      diagnose: () => server.output().split("\n").slice(-8).join("\n"),
    });
  } finally {
    await server.stop();
    await krkn?.stop();
  }
});

test("a refused connect is told apart from other fetch failures, on this runtime", async () => {
  const { connectionRefused } = await import("../src/util/fetch.ts");
  const port = await freePort();
  const error = await fetch(`http://127.0.0.1:${port}/`).then(() => undefined, (e: unknown) => e);
  assert.ok(error, "nothing listens there");
  assert.equal(connectionRefused(error), true, String((error as Error)?.message ?? error));
  assert.equal(connectionRefused(new DOMException("The signal has been aborted", "TimeoutError")), false);
  assert.equal(connectionRefused(new Error("POST /PAUSE answered 503: starting")), false);
});

test("a target that answers but fails (503) keeps the doubling backoff, whatever refused_retry says", async () => {
  const { createServer } = await import("node:http");
  let requests = 0;
  const failing = createServer((_request, response) => {
    requests += 1;
    response.writeHead(503).end("starting");
  });
  await new Promise<void>((resolve) => failing.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(failing.address() as { port: number }).port}`;
  const { host, target } = relayRig([url], { interval: "10s", max_backoff: "30s", refused_retry: "50ms" });
  try {
    await waitFor(() => (target()?.failures ?? 0) >= 1, "the first failure");
    await new Promise((resolve) => setTimeout(resolve, 2500));
    // Doubling from 250 ms: attempts at about 0, 0.25, 0.75, 1.75 s (the next at 3.75 s).
    assert.ok(requests <= 5, `${requests} requests in 2.5 s: a 503 must not be retried at the refused_retry pace`);
  } finally {
    await host.stop();
    await new Promise((resolve) => failing.close(resolve));
  }
});

test("many rapid changes: the target ends on the latest signal, never an older one", async () => {
  const krkn = await startKrknServer();
  const { arbiter, host, target } = relayRig([krkn.url], { interval: "10s" });
  try {
    await waitFor(() => target()?.in_sync, "the first sync");
    for (let i = 0; i < 60; i++) {
      await arbiter.claim("manual", i % 2 ? "RUN" : "PAUSE", `flip ${i}`);
      if (i % 7 === 0) await new Promise((resolve) => setTimeout(resolve, 3));
    }
    await arbiter.claim("manual", "PAUSE", "last");
    await waitFor(async () => target()?.in_sync && (await krkn.state()) === "PAUSE", "in sync after the burst", 5000);
    assert.equal(await krkn.state(), "PAUSE");
    // A while later it is still the latest (nothing older arrives late).
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await krkn.state(), "PAUSE");
  } finally {
    await host.stop();
    await krkn.stop();
  }
});

test("several targets, one down: the others stay in sync", async () => {
  const up = await startKrknServer();
  const down = await startKrknServer();
  const downUrl = down.url;
  await down.stop();
  const { arbiter, host, target } = relayRig([up.url, downUrl]);
  try {
    await arbiter.claim("manual", "PAUSE", "x");
    await waitFor(async () => (await up.state()) === "PAUSE", "the live target to follow");
    assert.equal(target(0)?.in_sync, true);
    assert.equal(target(1)?.in_sync, false);
  } finally {
    await host.stop();
    await up.stop();
  }
});

test("relay options are validated; errors name the key", () => {
  assert.throws(() => relay({ name: "r", targets: [] }), new ValidationError('relay "r": targets: got []; allowed: at least one URL'));
  assert.throws(() => relay({ name: "r", targets: ["krkn:8081"] }), /relay "r": targets\[0\]: got "krkn:8081"; allowed: an http\(s\) URL/);
  assert.throws(() => relay({ name: "r", targets: ["http://127.0.0.1:8081"], refused_retry: "1ms" }), /relay "r": refused_retry: got "1ms"; allowed: /);
});

test("the real CLI with chaos_signal.relays: a POST /PAUSE reaches Krkn's server, and another chaos-signal", async () => {
  const krkn = await startKrknServer();
  const downstream = await startServer();
  const config = tempFile([
    "chaos_signal:",
    "  relays:",
    "    - name: krkn",
    "      interval: 500ms",
    `      targets: [${krkn.url}, ${downstream.url}]`,
    "",
  ].join("\n"));
  const upstream = await startServer(["--config", config]);
  try {
    assert.equal((await fetch(`${upstream.url}/PAUSE`, { method: "POST" })).status, 200);
    await waitFor(async () => (await krkn.state()) === "PAUSE", "Krkn's server to hold PAUSE");
    await waitFor(async () => (await (await fetch(`${downstream.url}/`)).text()) === "PAUSE", "the downstream chaos-signal to hold PAUSE");
    const status = await (await fetch(`${upstream.url}/status`)).json();
    const relayStatus = status.sources.find((s: { name: string }) => s.name === "krkn");
    await waitFor(async () => {
      const s = await (await fetch(`${upstream.url}/status`)).json();
      const counts = s.sources.find((x: { name: string }) => x.name === "krkn").last_observation?.counts;
      return counts?.in_sync === 2;
    }, "the relay to report in sync");
    assert.equal(relayStatus.kind, "relay");
    // The relay describes a dashboard card with its counts, and one per target out of sync; /status serves them.
    const after = (await (await fetch(`${upstream.url}/status`)).json()).sources.find((s: { name: string }) => s.name === "krkn");
    const cards = after.cards as { section: { id: string }; title: string; fields: [string, unknown][] }[];
    assert.deepEqual(cards.map((card) => [card.section.id, card.title]), [["relays", "relay krkn"]]);
    assert.deepEqual(cards[0]!.fields.slice(0, 4), [["targets", 2], ["in sync", 2], ["out of sync", 0], ["failing", 0]]);
  } finally {
    await upstream.stop();
    await downstream.stop();
    await krkn.stop();
  }
});

test("a downstream chaos-signal with claims of its own: reported out of sync, never fought, its STOP latch stays", async () => {
  const { tempDir } = await import("./helpers/files.ts");
  const { join } = await import("node:path");
  const { writeFileSync } = await import("node:fs");
  const file = join(tempDir(), "signal");
  writeFileSync(file, "PAUSE");
  const downstreamConfig = tempFile(`chaos_signal:\n  sources:\n    - type: file\n      name: own\n      path: ${file}\n      interval: 50ms\n`);
  const downstream = await startServer(["--config", downstreamConfig]);
  const { arbiter, host, target } = relayRig([downstream.url], { interval: "100ms" });
  const manualRuns = () => downstream.output().split("\n").filter((line) => / manual RUN \(was /.test(line) || /claim manual RUN/.test(line)).length;
  try {
    await waitFor(() => target()?.last_pushed, "the first push");
    await new Promise((resolve) => setTimeout(resolve, 600)); // several reconcile intervals
    assert.equal(target()?.in_sync, false, "the target holds PAUSE by its own claim");
    const runsWhileStable = manualRuns();
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(manualRuns(), runsWhileStable, "no RUN pushed again and again");
    // Its own source stops it, then lets go: the latch must hold (a relay is not a person).
    writeFileSync(file, "STOP");
    await waitFor(async () => (await (await fetch(`${downstream.url}/`)).text()) === "STOP", "downstream STOP");
    writeFileSync(file, "");
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(await (await fetch(`${downstream.url}/`)).text(), "STOP", "the downstream latch still holds");
    assert.equal(arbiter.signal, "RUN");
  } finally {
    await host.stop();
    await downstream.stop();
  }
});

test("at start the relay waits for the sources' first claims: a restart never pushes the bare signal_state", async () => {
  const { tempDir } = await import("./helpers/files.ts");
  const { join } = await import("node:path");
  const { writeFileSync } = await import("node:fs");
  const krkn = await startKrknServer(0, "PAUSE");
  const file = join(tempDir(), "signal");
  writeFileSync(file, "PAUSE");
  const config = tempFile([
    "chaos_signal:",
    "  sources:",
    "    - type: file",
    "      name: switch",
    `      path: ${file}`,
    "  relays:",
    "    - name: krkn",
    `      targets: [${krkn.url}]`,
    "",
  ].join("\n"));
  const server = await startServer(["--config", config]);
  try {
    await waitFor(() => krkn.requests().some((line) => line.startsWith("POST ")), "the relay's first push");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(krkn.requests().filter((line) => line.startsWith("POST ")), ["POST /PAUSE"], "never POST /RUN");
  } finally {
    await server.stop();
    await krkn.stop();
  }
});

test("relay and Prometheus URLs with credentials are refused (they would show in /status and logs)", async () => {
  const { prometheusSource } = await import("../mod.ts");
  assert.throws(() => relay({ name: "r", targets: ["http://admin:pw@127.0.0.1:8081"] }), /targets\[0\]: got "http:\/\/admin:\*\*\*@127\.0\.0\.1:8081"; allowed: an http\(s\) URL without user:password@/);
  assert.throws(() => prometheusSource({ name: "p", url: "http://u:p@127.0.0.1:9090", query: "up", pause_above: 1 }), /url: got .*allowed: an http\(s\) URL without user:password@/);
});
