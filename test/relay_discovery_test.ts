// Relay targets found, not listed (issue 15 item 2): `targets_dns` against a real dnsmasq serving
// 127.0.0.x addresses (a Krkn stand-in on each, one port), and `targets_file` rewritten by rename
// and in place, through the real CLI; the config's rules; the file's parser.
import assert from "node:assert/strict";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { PluginHost, relay, SignalStore } from "../mod.ts";
import { parseTargetsFile } from "../plugins/relay_targets_file.ts";
import { startDnsmasq, TEST_DOMAIN } from "./helpers/dnsmasq.ts";
import { makeReleasableFifo } from "./helpers/fifo.ts";
import { tempDir, tempFile } from "./helpers/files.ts";
import { type KrknServer, startKrknServer } from "./helpers/krkn_server.ts";
import { freePort } from "./helpers/prometheus.ts";
import { runCli, type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

interface DiscoveryStatus {
  sources: { kind: string; targets: number; failing_since: string | null; last_error: string | null }[];
  last_change: { added: string[]; removed: string[] } | null;
}
interface RelayStatus {
  health: string;
  last_warning: { message: string } | null;
  last_observation: { discovery?: DiscoveryStatus } | null;
}

/** The relay's notes of target changes in `/history`, newest first: [added, removed]. */
async function targetNotes(server: ServerProcess): Promise<[string[], string[]][]> {
  const page = await (await fetch(`${server.url}/history?source=fleet&type=note`)).json() as { entries: { kind: string; details: { added: string[]; removed: string[] } }[] };
  return page.entries.filter((entry) => entry.kind === "targets").map(({ details }) => [details.added, details.removed]);
}

async function relayStatus(server: ServerProcess): Promise<RelayStatus> {
  const status = await (await fetch(`${server.url}/status`)).json() as { sources: (RelayStatus & { name: string })[] };
  return status.sources.find((source) => source.name === "fleet")!;
}

/** The URLs the relay pushes to now, sorted. */
async function targetUrls(server: ServerProcess): Promise<string[]> {
  const page = await (await fetch(`${server.url}/status/relays/fleet?limit=1000`, { signal: AbortSignal.timeout(5000) })).json() as { targets: { url: string }[] };
  return page.targets.map((target) => target.url).sort();
}

/**
 * Krkn stand-ins on 127.0.0.<n>, all on one port, as the pods behind a headless Service. A port
 * found free may be taken meanwhile (other tests run beside these): another one, a few times.
 */
async function fleet(hosts: readonly number[]): Promise<{ port: number; krkns: Map<number, KrknServer> }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const started = await Promise.allSettled(hosts.map((n) => startKrknServer(port, "RUN", `127.0.0.${n}`)));
    const servers = started.flatMap((result) => result.status === "fulfilled" ? [result.value] : []);
    if (servers.length === hosts.length) return { port, krkns: new Map(hosts.map((n, i) => [n, servers[i]!])) };
    await Promise.all(servers.map((server) => server.stop()));
    if (attempt >= 3) throw (started.find((result) => result.status === "rejected") as PromiseRejectedResult).reason;
  }
}

const post = async (server: ServerProcess, signal: string) => assert.equal((await fetch(`${server.url}/${signal}`, { method: "POST" })).status, 200);

function holds(krkns: Iterable<KrknServer>, signal: string) {
  return async () => (await Promise.all([...krkns].map((krkn) => krkn.state()))).every((state) => state === signal);
}

test("targets_dns with a real dnsmasq: addresses added and removed while running; NXDOMAIN and a dead resolver keep the last set", async () => {
  const name = `krkn.${TEST_DOMAIN}`;
  const dns = await startDnsmasq([`127.0.0.11 ${name}`, `127.0.0.12 ${name}`]);
  const { port, krkns } = await fleet([11, 12, 13]).catch(async (error) => {
    await dns.stop();
    throw error;
  });
  const helpers = async () => {
    await dns.stop();
    await Promise.all([...krkns.values()].map((krkn) => krkn.stop()));
  };
  const config = tempFile([
    "chaos_signal:",
    "  relays:",
    "    - name: fleet",
    "      interval: 300ms",
    "      timeout: 1s",
    "      targets_dns:",
    `        name: ${name}`,
    `        port: ${port}`,
    `        nameserver: ${dns.nameserver}`,
    "        interval: 200ms",
    "        timeout: 500ms",
    "",
  ].join("\n"));
  const server = await startServer(["--config", config]).catch(async (error) => {
    await helpers();
    throw error;
  });
  const diagnose = async () => `${JSON.stringify(await relayStatus(server).catch((e) => String(e)))}\n${server.output().split("\n").slice(-12).join("\n")}`;
  const url = (n: number) => `http://127.0.0.${n}:${port}`;
  const k = (n: number) => krkns.get(n)!;
  try {
    await waitFor(async () => (await targetUrls(server)).join() === [url(11), url(12)].join(), { what: "the two resolved targets", timeoutMs: 10_000, diagnose });
    await post(server, "PAUSE");
    await waitFor(holds([k(11), k(12)], "PAUSE"), { what: "PAUSE on both", timeoutMs: 10_000, diagnose });
    assert.equal(await k(13).state(), "RUN", "not a target yet");

    // .13 appears, .11 goes: .13 gets the current signal at once, .11 is no longer pushed.
    await dns.setHosts([`127.0.0.12 ${name}`, `127.0.0.13 ${name}`]);
    await waitFor(async () => (await targetUrls(server)).join() === [url(12), url(13)].join(), { what: "the new set", timeoutMs: 10_000, diagnose });
    await waitFor(holds([k(13)], "PAUSE"), { what: "the new target to get PAUSE", timeoutMs: 5_000, diagnose });
    await post(server, "RUN");
    await waitFor(holds([k(12), k(13)], "RUN"), { what: "RUN on .12 and .13", timeoutMs: 10_000, diagnose });
    await new Promise((resolve) => setTimeout(resolve, 700)); // two reconcile intervals
    assert.equal(await k(11).state(), "PAUSE", "a removed target is pushed no more");
    assert.match(server.output(), /1 target added \(http:\/\/127\.0\.0\.13:\d+\); 1 removed, no longer pushed \(http:\/\/127\.0\.0\.11:\d+\)/);
    const change = (await relayStatus(server)).last_observation!.discovery!.last_change!;
    assert.deepEqual([change.added, change.removed], [[url(13)], [url(11)]]);

    // The name disappears (NXDOMAIN): the last set stays, and /status says why.
    await dns.setHosts([]);
    await waitFor(async () => (await relayStatus(server)).last_observation?.discovery?.sources[0]?.failing_since, { what: "the empty answer reported", timeoutMs: 10_000, diagnose });
    let relayNow = await relayStatus(server);
    assert.match(relayNow.last_observation!.discovery!.sources[0]!.last_error!, /has no A or AAAA records/);
    assert.deepEqual(await targetUrls(server), [url(12), url(13)]);
    await dns.setHosts([`127.0.0.12 ${name}`, `127.0.0.13 ${name}`]);
    await waitFor(async () => (await relayStatus(server)).last_observation?.discovery?.sources[0]?.failing_since === null, { what: "the name back", timeoutMs: 10_000, diagnose });

    // The DNS server stops: the last set keeps being pushed, and /status and the log say so.
    await dns.stop();
    await waitFor(async () => /resolving failed/.test((await relayStatus(server)).last_observation?.discovery?.sources[0]?.last_error ?? ""), { what: "the dead resolver reported", timeoutMs: 10_000, diagnose });
    relayNow = await relayStatus(server);
    assert.equal(relayNow.health, "warning");
    assert.match(relayNow.last_warning!.message, /^targets_dns krkn\.fleet\.test:\d+ via 127\.0\.0\.1:\d+: resolving failed .*; keeping the last 2 targets \(failing since /);
    await post(server, "STOP");
    await waitFor(holds([k(12), k(13)], "STOP"), { what: "STOP to reach the last known set", timeoutMs: 10_000, diagnose });
    assert.deepEqual(await targetUrls(server), [url(12), url(13)]);
    // Said again at every attempt (every 200 ms here) and every target's report, logged once a minute.
    assert.equal(server.output().match(/warning: targets_dns .*resolving failed/g)?.length, 1, server.output());
  } finally {
    await server.stop();
    await helpers();
  }
});

test("targets_file: targets added by atomic rename and removed by an in-place rewrite; a bad line, a missing file or a FIFO keeps the last set", async () => {
  const { port, krkns } = await fleet([21, 22, 23]);
  const dir = tempDir();
  const list = join(dir, "targets.txt");
  const url = (n: number) => `http://127.0.0.${n}:${port}`;
  const k = (n: number) => krkns.get(n)!;
  writeFileSync(list, `# the fleet\n${url(21)}\n`);
  const config = tempFile([
    "chaos_signal:",
    "  relays:",
    "    - name: fleet",
    "      interval: 300ms",
    `      targets_file: ${list}`,
    "",
  ].join("\n"));
  const stopKrkns = () => Promise.all([...krkns.values()].map((krkn) => krkn.stop()));
  const server = await startServer(["--config", config]).catch(async (error) => {
    await stopKrkns();
    throw error;
  });
  const diagnose = async () => `${JSON.stringify(await relayStatus(server).catch((e) => String(e)))}\n${server.output().split("\n").slice(-12).join("\n")}`;
  let releaseFifo: (() => void) | undefined;
  try {
    await waitFor(async () => (await targetUrls(server)).join() === url(21), { what: "the listed target", timeoutMs: 10_000, diagnose });
    await post(server, "PAUSE");
    await waitFor(holds([k(21)], "PAUSE"), { what: "PAUSE on .21", timeoutMs: 10_000, diagnose });

    // Added by atomic rename (write aside, rename over): the new ones get PAUSE at once.
    writeFileSync(join(dir, ".targets.tmp"), `${url(21)}\n${url(22)}   # second run\n\n${url(23)}/\n`);
    renameSync(join(dir, ".targets.tmp"), list);
    await waitFor(holds([k(22), k(23)], "PAUSE"), { what: "PAUSE on the added targets", timeoutMs: 10_000, diagnose });
    assert.equal((await targetUrls(server)).length, 3);
    assert.deepEqual(await targetNotes(server), [[[url(22), `${url(23)}/`], []], [[url(21)], []]], "the history records the start and the additions");

    // Removed by an in-place rewrite (truncate and write the same file).
    writeFileSync(list, `${url(22)}\n`);
    await waitFor(async () => (await targetUrls(server)).join() === url(22), { what: "the rewritten set", timeoutMs: 10_000, diagnose });
    assert.deepEqual((await targetNotes(server))[0], [[], [url(21), `${url(23)}/`]], "and the removals");
    await post(server, "RUN");
    await waitFor(holds([k(22)], "RUN"), { what: "RUN on .22", timeoutMs: 10_000, diagnose });
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(await k(21).state(), "PAUSE", "a removed target is pushed no more");

    // A bad line: the whole file is refused, naming the line; the last set stays.
    writeFileSync(list, `${url(21)}\nftp://127.0.0.21/\n`);
    await waitFor(async () => (await relayStatus(server)).last_observation?.discovery?.sources[0]?.failing_since, { what: "the bad line reported", timeoutMs: 10_000, diagnose });
    let relayNow = await relayStatus(server);
    assert.match(relayNow.last_observation!.discovery!.sources[0]!.last_error!, /^line 2: "ftp:\/\/127\.0\.0\.21\/" is not an http\(s\) URL.*; the file is not used$/);
    assert.equal(relayNow.health, "warning");
    assert.deepEqual(await targetUrls(server), [url(22)]);

    // The file removed: still the last set, still pushed.
    rmSync(list);
    await waitFor(async () => /does not exist/.test((await relayStatus(server)).last_observation?.discovery?.sources[0]?.last_error ?? ""), { what: "the missing file reported", timeoutMs: 10_000, diagnose });
    await post(server, "STOP");
    await waitFor(holds([k(22)], "STOP"), { what: "STOP on the last known set", timeoutMs: 10_000, diagnose });
    relayNow = await relayStatus(server);
    assert.match(relayNow.last_warning!.message, /targets_file .*targets\.txt: it does not exist; keeping the last 1 target \(failing since /);

    // A FIFO at the path is refused unopened; GET / and the shutdown do not wait on it.
    releaseFifo = makeReleasableFifo(list);
    await waitFor(async () => /is a FIFO/.test((await relayStatus(server)).last_observation?.discovery?.sources[0]?.last_error ?? ""), { what: "the FIFO refused", timeoutMs: 15_000, diagnose });
    assert.equal(await (await fetch(`${server.url}/`)).text(), "STOP");
    assert.deepEqual(await targetUrls(server), [url(22)]);
    const exit = await server.stop();
    assert.equal(exit.code, 0, server.output());
  } finally {
    releaseFifo?.();
    await server.stop();
    await stopKrkns();
  }
});

test("a relay needs one of targets, targets_dns and targets_file; bad discovery options are named", async () => {
  const cases: [string[], RegExp][] = [
    [["      interval: 1s"], /relays\[0\] \(relay "fleet"\): got \{"name":"fleet","interval":"1s"\}; allowed: at least one of targets, targets_dns and targets_file \(they may be combined\)/],
    [["      targets_dns: { name: krkn.chaos, port: 8081, nameserver: dns.local }"], /targets_dns\.nameserver: got "dns\.local"; allowed: an IP address with an optional port/],
    [["      targets_dns: { name: krkn.chaos }"], /targets_dns\.port/],
    [["      targets_dns: { name: \"bad name!\", port: 8081 }"], /targets_dns\.name: got "bad name!"; allowed: a DNS name/],
  ];
  for (const [lines, expected] of cases) {
    const config = tempFile(["chaos_signal:", "  relays:", "    - name: fleet", ...lines, ""].join("\n"));
    const result = await runCli(["--config", config]);
    assert.equal(result.code, 2, result.output);
    assert.match(result.output, expected);
  }
});

test("targets files: comments, blanks and duplicates; every bad line named (a few), the whole file refused", () => {
  assert.deepEqual(parseTargetsFile("# fleet\n\nhttp://a:8081  # run a\n  https://[::1]:8443/\nhttp://a:8081\n"), { urls: ["http://a:8081", "https://[::1]:8443/"] });
  const refused = parseTargetsFile("http://a:1\nnot a url\nhttp://user:pw@b:1\n" + "x\n".repeat(10));
  assert.ok("error" in refused);
  assert.match(refused.error, /^line 2: "not a url", line 3: "http:\/\/user:pw@b:1", line 4: "x", line 5: "x", line 6: "x" and 7 more are not an http\(s\) URL/);
  const many = Array.from({ length: 10_001 }, (_, i) => `http://10.0.${i >> 8}.${i & 255}:8081`).join("\n");
  assert.match((parseTargetsFile(many) as { error: string }).error, /^10001 targets, more than the 10000 allowed/);
});

test("AAAA records become bracketed targets, joined with the listed ones (once each); a resolver that never answers is cut at the timeout", async () => {
  // Loopback only: nothing listens on the port, so every push is refused at once.
  const port = await freePort();
  const store = SignalStore.inMemory();
  let answer: "records" | "hang" = "records";
  const host = new PluginHost(store, [
    relay({
      name: "fleet",
      targets: [`http://127.0.0.7:${port}/`],
      targets_dns: { name: "krkn.example", port, interval: "100ms", timeout: "200ms" },
      interval: "10s",
      refused_retry: "10s",
    }),
  ], {
    resolveDns: (_name, type, options) => {
      if (answer === "hang") return new Promise((_, reject) => setTimeout(() => reject(new Error(`${type}: no answer within ${options.timeoutMs} ms`)), options.timeoutMs));
      return Promise.resolve(type === "A" ? ["127.0.0.7"] : ["::1"]);
    },
  });
  host.start();
  // Nothing listens on the port: every target fails, so each is listed among those not in sync.
  const observation = () => host.statuses()[0]!.last_observation as { unsynced: { url: string }[]; discovery: DiscoveryStatus } | null;
  try {
    await waitFor(() => observation()?.unsynced.length === 2, "both records as targets");
    assert.deepEqual(observation()!.unsynced.map((t) => t.url).sort(), [`http://127.0.0.7:${port}/`, `http://[::1]:${port}`]);
    answer = "hang";
    await waitFor(() => observation()?.discovery.sources[0]?.failing_since, "the timeout reported");
    assert.match(observation()!.discovery.sources[0]!.last_error!, /no answer within 200 ms/);
    assert.equal(observation()!.unsynced.length, 2);
  } finally {
    await host.stop();
  }
});
