/**
 * GET / side by side on this machine, with wrk, in one run:
 *
 * - the bare runtimes answering RUN, the ceiling, twice each: with content-type only (minimal),
 *   and with chaos-signal's exact headers (same bytes: also cache-control: no-store);
 * - chaos-signal on Deno, on Bun and as the compiled binary, with sources configured;
 * - a stand-in for Krkn's own server (Python HTTPServer, one thread, HTTP/1.0), what users have today.
 *
 * For each chaos-signal it also prints the start time (exec to the first 200 on GET /, median of
 * 5; the bundled single file too) and the RSS idle, after the measured run, and after at least a
 * million requests.
 *
 *   npm run build && deno run -A bench/http.ts [seconds] [connections]
 *
 * Needs wrk (Debian package wrk). Loopback only; every wrk run is bounded by `seconds`.
 * Figures and ratios are printed, never asserted: machines are shared and noisy.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { freePort } from "../test/helpers/prometheus.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
const SECONDS = Number(process.argv[2] ?? 10);
const CONNECTIONS = Number(process.argv[3] ?? 64);
const MILLION = 1_000_000;
const START_RUNS = 5;

interface Target {
  name: string;
  command: string;
  /** The arguments, given the port to listen on. */
  args: (port: number) => string[];
  /** "deno" or "bun": whose bare server is its ceiling; undefined for the bare servers and Krkn's. */
  ceiling?: "deno" | "bun";
}

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: string;
}

interface Row extends WrkResult {
  startMs?: number;
  rssIdle?: number;
  rssAfterRun?: number;
  rssAfterMillion?: number;
  totalRequests?: number;
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a target on a free port; resolves once GET / answers 200, with the time that took. */
async function start(target: Target): Promise<{ child: ChildProcess; port: number; startMs: number }> {
  const port = await freePort();
  const began = performance.now();
  const child = spawn(target.command, target.args(port), { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  for (const deadline = began + 20_000; performance.now() < deadline;) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`);
      await response.body?.cancel();
      if (response.status === 200) return { child, port, startMs: performance.now() - began };
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) break;
    await sleep(2);
  }
  stop(child);
  throw new Error(`${target.name} did not answer GET / within 20 s:\n${stderr}`);
}

function stop(child: ChildProcess): void {
  if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
}

/** Runs wrk for `seconds`; returns requests/s, p50 and p99 in ms, the request count and any errors. */
function wrk(port: number, seconds: number): WrkResult {
  const result = spawnSync("wrk", ["-t2", `-c${CONNECTIONS}`, `-d${seconds}s`, "--latency", `http://127.0.0.1:${port}/`], { encoding: "utf8" });
  if (result.error) throw new Error(`wrk: ${result.error.message} (Debian package wrk)`);
  const out = result.stdout;
  const ms = (text: string | undefined) => {
    const m = /([\d.]+)(us|ms|s)/.exec(text ?? "");
    if (!m) return Number.NaN;
    return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
  };
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    // Anchored: "+/- Stdev" columns such as "95.50%" end in 50% too.
    p50: ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
    p99: ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
    errors: [/Socket errors: .*/.exec(out)?.[0], /Non-2xx.*/.exec(out)?.[0]].filter(Boolean).join("; ") || "none",
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Exec to the first 200 on GET /, median of a few fresh starts. */
async function startTime(target: Target): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < START_RUNS; i++) {
    const { child, startMs } = await start(target);
    stop(child);
    times.push(startMs);
  }
  return median(times);
}

async function measure(target: Target): Promise<Row> {
  const startMs = target.ceiling ? await startTime(target) : undefined;
  const { child, port } = await start(target);
  try {
    await sleep(500);
    const pid = child.pid!;
    const rssIdle = rssMiB(pid);
    const row: Row = { ...wrk(port, SECONDS), rssIdle, rssAfterRun: rssMiB(pid) };
    if (!target.ceiling) return row;
    // On to a million requests (or more): the RSS must stay flat, not grow with the count.
    let total = row.requests;
    while (total < MILLION) {
      const seconds = Math.min(60, Math.max(1, Math.ceil((MILLION - total) / Math.max(row.rps, 1_000)) + 1));
      total += wrk(port, seconds).requests || Number.POSITIVE_INFINITY;
    }
    return { ...row, ...(startMs === undefined ? {} : { startMs }), rssAfterMillion: rssMiB(pid), totalRequests: total };
  } finally {
    stop(child);
  }
}

function version(command: string, args: string[]): string {
  return spawnSync(command, args, { encoding: "utf8" }).stdout?.split("\n")[0]?.trim() ?? "?";
}

const dir = mkdtempSync(join(tmpdir(), "chaos-signal-bench-"));
writeFileSync(join(dir, "signal"), "");
const config = join(dir, "config.yaml");
// Sources configured, as in use: a file watcher and a webhook (they do not sit on the GET / path).
writeFileSync(config, `chaos_signal:\n  sources:\n    - type: file\n      name: switch\n      path: ${join(dir, "signal")}\n    - type: webhook\n      name: ci\n`);
const flags = (port: number) => ["--address", "127.0.0.1", "--port", String(port), "--state-file", "none", "--config", config];
const deno = join(BIN, "deno"), bun = join(BIN, "bun");
const targets: Target[] = [
  { name: "bare Deno.serve, minimal", command: deno, args: (port) => ["run", "-A", "bench/bare_deno.ts", String(port)] },
  { name: "bare Deno.serve, same bytes", command: deno, args: (port) => ["run", "-A", "bench/bare_deno.ts", String(port), "same"] },
  { name: "bare Bun.serve, minimal", command: bun, args: (port) => ["run", "bench/bare_bun.ts", String(port)] },
  { name: "bare Bun.serve, same bytes", command: bun, args: (port) => ["run", "bench/bare_bun.ts", String(port), "same"] },
  { name: "chaos-signal on Deno", command: deno, args: (port) => ["run", "-A", "mod.ts", ...flags(port)], ceiling: "deno" },
  { name: "chaos-signal on Bun", command: bun, args: (port) => ["run", "mod.ts", ...flags(port)], ceiling: "bun" },
  { name: "chaos-signal binary", command: join(ROOT, "dist", "chaos-signal"), args: flags, ceiling: "bun" },
  { name: "Krkn's server (stand-in)", command: "python3", args: (port) => ["-u", "test/fixtures/krkn_server.py", String(port)] },
];

/** Started only, for their start time: the one-file deployment. */
const singleFile: Target[] = [
  { name: "dist/chaos-signal.js on Deno", command: deno, args: (port) => ["run", "-A", "dist/chaos-signal.js", ...flags(port)], ceiling: "deno" },
  { name: "dist/chaos-signal.js on Bun", command: bun, args: (port) => ["run", "dist/chaos-signal.js", ...flags(port)], ceiling: "bun" },
];

const rows = new Map<string, Row>();
const startTimes = new Map<string, number>();
try {
  for (const target of targets) {
    const row = await measure(target);
    rows.set(target.name, row);
    console.error(`${target.name}: ${row.rps.toFixed(0)} req/s`);
  }
  for (const target of singleFile) startTimes.set(target.name, await startTime(target));
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits));
const rps = (name: string) => rows.get(name)!.rps;
const krkn = rps("Krkn's server (stand-in)");
const cpu = cpus()[0]?.model ?? "unknown CPU";
console.log(`\nGET / with wrk -t2 -c${CONNECTIONS} -d${SECONDS}s, loopback, on ${cpu} (${cpus().length} cores), Linux ${release()};`);
console.log(`${version(deno, ["--version"])}, Bun ${version(bun, ["--version"])}, ${version("wrk", ["--version"]).split(" [")[0]}.\n`);
console.log("| server | req/s | p50 ms | p99 ms | vs bare, same bytes | vs bare, minimal | vs Krkn's server | start ms | RSS MiB: idle → run → 1M+ | errors |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const target of targets) {
  const r = rows.get(target.name)!;
  const bare = target.ceiling === "deno" ? "bare Deno.serve" : "bare Bun.serve";
  const ratio = (kind: string) => (target.ceiling ? `${(r.rps / rps(`${bare}, ${kind}`)).toFixed(2)}×` : "-");
  const vsKrkn = target.name.startsWith("Krkn") ? "-" : `${(r.rps / krkn).toFixed(0)}×`;
  const rss = target.ceiling ? `${fmt(r.rssIdle)} → ${fmt(r.rssAfterRun)} → ${fmt(r.rssAfterMillion)} (${(r.totalRequests! / 1e6).toFixed(1)}M)` : "-";
  console.log(
    `| ${target.name} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${ratio("same bytes")} | ${ratio("minimal")} | ${vsKrkn} | ${fmt(r.startMs)} | ${rss} | ${r.errors} |`,
  );
}
console.log(`\nStart (exec to the first 200 on GET /, median of ${START_RUNS}): ${[...startTimes].map(([name, ms]) => `${name} ${fmt(ms)} ms`).join(", ")}.`);
console.log(
  "\nGoals: at least 0.9× the bare runtime and 15× Krkn's server. 'Same bytes' answers with chaos-signal's headers;" +
    " 'minimal' with content-type only (Deno writes a one-header response through a faster path)." +
    " Krkn's server closes every connection (HTTP/1.0): wrk counts those closes as read errors.",
);
process.exit(0);
