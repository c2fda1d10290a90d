/**
 * Replicas on etcd against one process with its state file, side by side on this machine, on the
 * runtime that runs this script:
 *
 *   deno run -A bench/replicas.ts [seconds] [changes]   (defaults: 10 200)
 *   bun run bench/replicas.ts [seconds] [changes]
 *
 * - `GET /` requests/s with wrk (-t2 -c64, twice each, alternating, the better run) on one replica of three (store: etcd, a real 3-member
 *   etcd on loopback) and on a single process (store: file); goal: at least 0.95×;
 * - a change acknowledged (POST → 200), p50/p99 of `changes` alternating PAUSE and RUN: a RUN is
 *   answered once saved (etcd's quorum, or the file fsynced), a PAUSE at once and saved after;
 * - a change on replica A → served by B and C, each waiting in a long-poll
 *   (`GET /?wait=10s&since=...`) sent before the POST; goal: p99 ≤ 50 ms on loopback;
 * - the etcd leader killed (kill -9) → a `POST /RUN` accepted again, from the kill to the first 200
 *   (a RUN needs the quorum), 3 times on fresh clusters.
 *
 * Needs wrk and etcd (Debian packages wrk, etcd-server). Loopback only, every wait bounded.
 * Figures and ratios are printed, never asserted: machines are shared and noisy.
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { runtime } from "../src/serve/mod.ts";
import { type EtcdCluster, type EtcdMember, startEtcd } from "../test/helpers/etcd.ts";
import { tempDir, tempFile } from "../test/helpers/files.ts";
import { type ServerProcess, startServer } from "../test/helpers/server_process.ts";

const SECONDS = Number(process.argv[2] ?? 10);
const CHANGES = Number(process.argv[3] ?? 200);
const LEADER_KILLS = 3;
const MAX_STALENESS = "3s";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}
const fmt = (ms: number) => ms.toFixed(ms < 10 ? 2 : 1);
const p50p99 = (values: number[]) => `${fmt(percentile(values, 50))} / ${fmt(percentile(values, 99))}`;

/** wrk on GET /; requests per second and the error line, if any. */
function wrk(url: string, seconds: number): { rps: number; errors: string } {
  const result = spawnSync("wrk", ["-t2", "-c64", `-d${seconds}s`, `${url}/`], { encoding: "utf8" });
  if (result.error) throw new Error(`wrk: ${result.error.message} (Debian package wrk)`);
  const out = result.stdout;
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    errors: [/Socket errors: .*/.exec(out)?.[0], /Non-2xx.*/.exec(out)?.[0]].filter(Boolean).join("; ") || "none",
  };
}

async function post(server: ServerProcess, state: string, timeoutMs = 10_000): Promise<number> {
  const response = await fetch(`${server.url}/${state}`, { method: "POST", signal: AbortSignal.timeout(timeoutMs) });
  await response.body?.cancel();
  return response.status;
}

/** Milliseconds from each POST to its 200, alternating PAUSE and RUN. */
async function acknowledged(server: ServerProcess): Promise<{ pause: number[]; run: number[] }> {
  const pause: number[] = [];
  const run: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const state = i % 2 === 0 ? "PAUSE" : "RUN";
    const began = performance.now();
    const status = await post(server, state);
    if (status !== 200) throw new Error(`POST /${state} answered ${status}`);
    (state === "PAUSE" ? pause : run).push(performance.now() - began);
  }
  return { pause, run };
}

/** A change posted on `a`, timed until long-polls already waiting on each of `others` answer it. */
async function propagation(a: ServerProcess, others: ServerProcess[]): Promise<number[]> {
  const times: number[] = [];
  let current = (await (await fetch(`${a.url}/`)).text()).trim();
  for (let i = 0; i < CHANGES / 2; i++) {
    const next = current === "RUN" ? "PAUSE" : "RUN";
    const polls = others.map((b) => fetch(`${b.url}/?wait=10s&since=${current}`, { signal: AbortSignal.timeout(15_000) }));
    await sleep(5); // the long-polls reach the servers first
    const began = performance.now();
    const posted = post(a, next);
    await Promise.all(polls.map(async (poll) => {
      const body = (await (await poll).text()).trim();
      times.push(performance.now() - began);
      if (body !== next) throw new Error(`a long-poll answered ${body}, not ${next}`);
    }));
    if ((await posted) !== 200) throw new Error(`POST /${next} refused`);
    current = next;
  }
  return times;
}

async function leader(etcd: EtcdCluster): Promise<EtcdMember> {
  for (let tries = 0; tries < 100; tries++) {
    for (const member of etcd.members) {
      const response = await fetch(`${member.clientUrl}/v3/maintenance/status`, { method: "POST", body: "{}", signal: AbortSignal.timeout(1000) }).catch(() => null);
      if (!response?.ok) continue;
      const status = await response.json() as { header: { member_id: string }; leader: string };
      if (status.leader === status.header.member_id) return member;
    }
    await sleep(50);
  }
  throw new Error("no etcd member says it is the leader");
}

function etcdConfig(etcd: EtcdCluster): string {
  return tempFile(
    `chaos_signal:\n  store:\n    type: etcd\n    endpoints: [${etcd.endpoints.join(", ")}]\n    prefix: /bench/${Date.now()}\n    max_staleness: ${MAX_STALENESS}\n`,
  );
}

/** Kill -9 of the leader → the first `POST /RUN` (sent every 20 ms after a PAUSE) that answers 200. */
async function leaderKill(): Promise<number> {
  const etcd = await startEtcd(3);
  const replica = await startServer(["--config", etcdConfig(etcd)]);
  try {
    await post(replica, "RUN");
    const doomed = await leader(etcd);
    // A PAUSE is made at once: the RUNs after the kill are real changes.
    await post(replica, "PAUSE");
    const killedAt = performance.now();
    doomed.child.kill("SIGKILL");
    while (performance.now() - killedAt < 30_000) {
      const status = await post(replica, "RUN", 5000).catch(() => 0);
      if (status === 200) return performance.now() - killedAt;
      await sleep(20);
    }
    throw new Error("no POST /RUN accepted within 30 s of the leader kill");
  } finally {
    await replica.stop("SIGKILL");
    await etcd.stop();
  }
}

console.log(`bench/replicas.ts on ${runtime().name} ${runtime().version}, ${cpus().length} × ${cpus()[0]?.model ?? "?"}; wrk -t2 -c64 -d${SECONDS}s; ${CHANGES} changes`);

const etcd = await startEtcd(3);
const config = etcdConfig(etcd);
const replicas = await Promise.all([0, 1, 2].map(() => startServer(["--config", config])));
const single = await startServer(["--state-file", join(tempDir("bench-"), "state.json")]);
try {
  const [a, b, c] = replicas as [ServerProcess, ServerProcess, ServerProcess];
  // Twice each, alternating, the better run of each: another process on a shared machine moves a run by ±10%.
  const best = (runs: ReturnType<typeof wrk>[]) => runs.reduce((x, y) => (y.rps > x.rps ? y : x));
  const fileRuns: ReturnType<typeof wrk>[] = [];
  const etcdRuns: ReturnType<typeof wrk>[] = [];
  for (let i = 0; i < 2; i++) {
    fileRuns.push(wrk(single.url, SECONDS));
    etcdRuns.push(wrk(a.url, SECONDS));
  }
  const onFile = best(fileRuns);
  const onEtcd = best(etcdRuns);
  const fileAcks = await acknowledged(single);
  const etcdAcks = await acknowledged(a);
  const spread = await propagation(a, [b, c]);
  await Promise.all([...replicas, single].map((r) => r.stop("SIGKILL")));
  await etcd.stop();
  const kills: number[] = [];
  for (let i = 0; i < LEADER_KILLS; i++) kills.push(await leaderKill());

  const rows = [
    ["measure", "file store (one process)", "etcd store (replica of 3)", "etcd / file"],
    ["GET / req/s (wrk)", onFile.rps.toFixed(0), onEtcd.rps.toFixed(0), `${(onEtcd.rps / onFile.rps).toFixed(2)}× (goal ≥ 0.95×)`],
    ["POST /PAUSE → 200, p50 / p99 ms", p50p99(fileAcks.pause), p50p99(etcdAcks.pause), `${(percentile(etcdAcks.pause, 50) / percentile(fileAcks.pause, 50)).toFixed(2)}× p50`],
    ["POST /RUN → 200, p50 / p99 ms", p50p99(fileAcks.run), p50p99(etcdAcks.run), `${(percentile(etcdAcks.run, 50) / percentile(fileAcks.run, 50)).toFixed(2)}× p50`],
    ["change on A → served by B and C, p50 / p99 ms", "–", p50p99(spread), `goal p99 ≤ 50 ms`],
    ["etcd leader kill -9 → POST /RUN accepted, ms", "–", kills.map((k) => k.toFixed(0)).join(", "), ""],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join(" | "));
  console.log(`wrk errors: file ${onFile.errors}; etcd ${onEtcd.errors}`);
} finally {
  await Promise.all([...replicas, single].map((r) => r.stop("SIGKILL")));
  await etcd.stop();
}
process.exit(0);
