// One relay, a fleet: 1,000 Krkn-like targets in one helper process plus two of Krkn's real
// server.py, driven through the real CLI. Every target gets each signal; targets that restart at
// RUN are corrected; /status stays small and counts right; the paged endpoint lists every target
// once; a STOP sent while RUNs are pushed reaches all. Loopback only; every wait has a deadline.
import assert from "node:assert/strict";
import { test } from "node:test";
import { tempFile } from "./helpers/files.ts";
import { type FleetState, type KrknFleet, startKrknFleet } from "./helpers/krkn_fleet.ts";
import { type KrknServer, startKrknServer } from "./helpers/krkn_server.ts";
import { type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const FLEET = 1000;
const INTERVAL_MS = 1000;
/** Generous: a shared, slow machine. The goal (bench/fleet.ts) is well under a second. */
const CHANGE_DEADLINE_MS = 15_000;

interface Counts {
  targets: number;
  in_sync: number;
  out_of_sync: number;
  failing: number;
}
interface RelayObservation {
  counts: Counts;
  last_change: { signal: string; reached_all_ms: number | null } | null;
  unsynced: { url: string; in_sync: boolean; failures: number }[];
  targets_page: string;
}

interface Rig {
  fleet: KrknFleet;
  krkns: KrknServer[];
  server: ServerProcess;
  urls: string[];
}

let started: Promise<Rig> | undefined;
function rig(): Promise<Rig> {
  started ??= (async () => {
    const fleet = await startKrknFleet(FLEET, "RUN");
    const krkns = [await startKrknServer(), await startKrknServer()];
    const urls = [...fleet.urls, ...krkns.map((krkn) => krkn.url)];
    const config = tempFile(
      ["chaos_signal:", "  relays:", "    - name: fleet", `      interval: ${INTERVAL_MS}ms`, "      targets:", ...urls.map((url) => `        - ${url}`), ""].join("\n"),
      "fleet.yaml",
    );
    const server = await startServer(["--config", config], { timeoutMs: 30_000 });
    return { fleet, krkns, server, urls };
  })();
  return started;
}

async function statusText(server: ServerProcess): Promise<string> {
  const response = await fetch(`${server.url}/status`);
  assert.equal(response.status, 200);
  return await response.text();
}

function relayOf(text: string): RelayObservation {
  const doc = JSON.parse(text) as { sources: { name: string; last_observation: RelayObservation | null }[] };
  return doc.sources.find((source) => source.name === "fleet")!.last_observation!;
}

async function post(server: ServerProcess, signal: FleetState): Promise<void> {
  const response = await fetch(`${server.url}/${signal}`, { method: "POST" });
  assert.equal(await response.text(), signal);
}

/** Every target, the fleet's and Krkn's real server.py, holds `signal`. */
async function allHold({ fleet, krkns }: Rig, signal: FleetState): Promise<void> {
  await fleet.allHold(signal, CHANGE_DEADLINE_MS);
  for (const krkn of krkns) await waitFor(async () => (await krkn.state()) === signal, `Krkn's server.py at ${krkn.url} to hold ${signal}`, CHANGE_DEADLINE_MS);
}

test("1,000 targets and two Krkn server.py: every one reaches PAUSE, RUN and STOP; /status stays under 64 KiB with the counts right", async () => {
  const r = await rig();
  await allHold(r, "RUN");
  for (const signal of ["PAUSE", "RUN", "STOP"] as const) {
    await post(r.server, signal);
    await allHold(r, signal);
  }
  const text = await waitFor(async () => {
    const text = await statusText(r.server);
    return relayOf(text).counts.in_sync === r.urls.length && text;
  }, "the relay to count every target in sync", CHANGE_DEADLINE_MS);
  assert.ok(text.length < 64 * 1024, `/status is ${text.length} bytes`);
  const relay = relayOf(text);
  assert.deepEqual(relay.counts, { targets: r.urls.length, in_sync: r.urls.length, out_of_sync: 0, failing: 0 });
  assert.equal(relay.last_change?.signal, "STOP");
  assert.equal(typeof relay.last_change?.reached_all_ms, "number");
  assert.deepEqual(relay.unsynced, []);
  assert.equal(relay.targets_page, "/status/relays/fleet");
});

test("targets that restart at RUN are put back within the interval", async () => {
  const r = await rig();
  await post(r.server, "STOP");
  await allHold(r, "STOP");
  const restarted = [0, 1, 2, 499, 998, 999];
  for (const index of restarted) await r.fleet.set(index, "RUN");
  await r.krkns[0]!.stop();
  r.krkns[0] = await startKrknServer(r.krkns[0]!.port, "RUN"); // Krkn's own server.py, restarted at signal_state RUN
  const started = Date.now();
  await allHold(r, "STOP");
  const took = Date.now() - started;
  assert.ok(took < INTERVAL_MS + 5000, `corrected in ${took} ms; the interval is ${INTERVAL_MS} ms`);
});

test("GET /status/relays/<name> pages through every target exactly once; bad queries get 400, an unknown relay 404", async () => {
  const r = await rig();
  const seen: string[] = [];
  let after: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const query: string = after === null ? "limit=128" : `limit=128&after=${encodeURIComponent(after)}`;
    const response = await fetch(`${r.server.url}/status/relays/fleet?${query}`);
    assert.equal(response.status, 200);
    const page = await response.json() as { targets: { url: string }[]; next: string | null; counts: Counts };
    assert.ok(page.targets.length <= 128);
    seen.push(...page.targets.map((target) => target.url));
    after = page.next;
    if (after === null) break;
  }
  assert.equal(after, null, "the last page has no next");
  assert.equal(seen.length, r.urls.length, "each target once");
  assert.deepEqual([...seen].sort(), [...r.urls].sort());

  // Each answer names the parameter, what was given and what is allowed, on one line.
  const bad: [string, RegExp][] = [
    ["limit=0", /^query parameter "limit" of GET \/status\/relays\/fleet: got "0"; allowed: a whole number from 1 to 1000/],
    ["limit=1001", /"limit" .*: got "1001"; allowed: a whole number from 1 to 1000/],
    ["limit=ten", /"limit" .*: got "ten"; allowed: a whole number from 1 to 1000/],
    ["limit=5&limit=6", /"limit" .*: given twice; give it once/],
    ["page=2", /"page" .*: unknown key; allowed keys: limit, after/],
    ["afer=x", /"afer" .*: unknown key; did you mean "after"\? allowed keys: limit, after/],
    [`after=${"x".repeat(3000)}`, /"after" .*allowed: a target URL of at most 2048 characters/],
  ];
  for (const [query, reason] of bad) {
    const response = await fetch(`${r.server.url}/status/relays/fleet?${query}`);
    const body = await response.text();
    assert.equal(response.status, 400, `${query}: ${body}`);
    assert.match(body, reason);
    assert.equal(body.trim().split("\n").length, 1, `one line: ${body}`);
  }
  for (const path of ["/status/relays/nope", "/status/sources/fleet"]) {
    const response = await fetch(`${r.server.url}${path}`);
    assert.equal(response.status, 404, path);
    assert.match(await response.text(), /\/status\/relays\/fleet/);
  }
});

test("a STOP sent while RUNs are still being pushed reaches every target: the newest signal wins", async () => {
  const r = await rig();
  await post(r.server, "RUN"); // a person's RUN: the STOP latch opens
  await post(r.server, "PAUSE");
  await allHold(r, "PAUSE");
  const runsBefore = (await r.fleet.requests())["POST /RUN"] ?? 0;
  await post(r.server, "RUN");
  await post(r.server, "STOP");
  await allHold(r, "STOP");
  // A target waiting for a request slot asks for the signal once it has one: most never push RUN.
  const runs = ((await r.fleet.requests())["POST /RUN"] ?? 0) - runsBefore;
  assert.ok(runs < FLEET, `${runs} RUNs pushed to ${FLEET} targets after the STOP was sent`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(await r.fleet.counts(), { RUN: 0, PAUSE: 0, STOP: FLEET }, "still STOP everywhere");
});

test("the fleet's targets all down: /status counts them failing and lists 50, still under 64 KiB", async () => {
  const r = await rig();
  try {
    await r.fleet.stop();
    const text = await waitFor(async () => {
      const text = await statusText(r.server);
      return relayOf(text).counts.failing === FLEET && text;
    }, "every fleet target counted failing", CHANGE_DEADLINE_MS);
    assert.ok(text.length < 64 * 1024, `/status is ${text.length} bytes`);
    const relay = relayOf(text);
    assert.deepEqual(relay.counts, { targets: r.urls.length, in_sync: 2, out_of_sync: 0, failing: FLEET });
    assert.equal(relay.unsynced.length, 50);
    assert.ok(relay.unsynced.every((target) => target.failures > 0 && !target.in_sync));
    const metrics = await (await fetch(`${r.server.url}/metrics`)).text();
    assert.match(metrics, /^chaos_signal_relay_targets\{relay="fleet"\} 1002$/m);
    assert.match(metrics, /^chaos_signal_relay_targets_failing\{relay="fleet"\} 1000$/m);
    assert.match(metrics, /^chaos_signal_relay_change_reach_all_seconds_count\{relay="fleet"\} [1-9]\d*$/m);
    assert.doesNotMatch(metrics, /relay_target_in_sync\{/, "no per-target series unless asked for");
  } finally {
    await r.server.stop();
    for (const krkn of r.krkns) await krkn.stop();
  }
});
