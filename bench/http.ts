/**
 * GET / throughput and latency, side by side on this machine, with wrk:
 * the bare runtimes answering RUN (the ceiling), chaos-signal on Deno, on Bun
 * and as the compiled binary (with sources configured), and a stand-in for
 * Krkn's own server (Python HTTPServer, one thread, HTTP/1.0), the thing
 * users have today. Also the RSS of each chaos-signal before and after.
 *
 *   npm run build && deno run -A bench/http.ts [seconds] [connections]
 *
 * Needs wrk (Debian package wrk). Loopback only; each run is bounded by
 * `seconds`. Figures and ratios are printed, never asserted.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
const SECONDS = Number(process.argv[2] ?? 10);
const CONNECTIONS = Number(process.argv[3] ?? 64);

interface Target {
  name: string;
  command: string;
  args: string[];
  chaosSignal: boolean;
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

async function start(target: Target): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(target.command, target.args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    const match = /listening on http:\/\/127\.0\.0\.1:(\d+)\/|listening (\d+)/.exec(output);
    if (match) return { child, port: Number(match[1] ?? match[2]) };
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill("SIGKILL");
  throw new Error(`${target.name} did not start:\n${output}`);
}

/** Runs wrk; returns requests/s, p50 and p99 in ms, and the request count. */
function wrk(port: number): { rps: number; p50: number; p99: number; requests: number; errors: string } {
  const result = spawnSync("wrk", ["-t2", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--latency", `http://127.0.0.1:${port}/`], { encoding: "utf8" });
  const out = result.stdout;
  const ms = (text: string | undefined) => {
    const m = /([\d.]+)(us|ms|s)/.exec(text ?? "");
    if (!m) return Number.NaN;
    return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
  };
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: ms(/50%\s+(\S+)/.exec(out)?.[1]),
    p99: ms(/99%\s+(\S+)/.exec(out)?.[1]),
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
    errors: /Socket errors: .*|Non-2xx.*$/m.exec(out)?.[0] ?? "none",
  };
}

const dir = mkdtempSync(join(tmpdir(), "chaos-signal-bench-"));
writeFileSync(join(dir, "signal"), "");
const config = join(dir, "config.yaml");
// Sources configured, as in use: a file watcher and a webhook (they do not sit on the GET / path).
writeFileSync(config, `chaos_signal:\n  sources:\n    - type: file\n      name: switch\n      path: ${join(dir, "signal")}\n    - type: webhook\n      name: ci\n`);
const flags = ["--address", "127.0.0.1", "--port", "0", "--state-file", "none", "--config", config];
const targets: Target[] = [
  { name: "bare Deno.serve", command: join(BIN, "deno"), args: ["run", "-A", "bench/bare_deno.ts", "0"], chaosSignal: false },
  { name: "bare Bun.serve", command: join(BIN, "bun"), args: ["run", "bench/bare_bun.ts", "0"], chaosSignal: false },
  { name: "chaos-signal on Deno", command: join(BIN, "deno"), args: ["run", "-A", "mod.ts", ...flags], chaosSignal: true },
  { name: "chaos-signal on Bun", command: join(BIN, "bun"), args: ["run", "mod.ts", ...flags], chaosSignal: true },
  { name: "chaos-signal binary", command: join(ROOT, "dist", "chaos-signal"), args: flags, chaosSignal: true },
  { name: "Krkn's server (stand-in)", command: "python3", args: ["-u", "test/fixtures/krkn_server.py", "0"], chaosSignal: false },
];

const rows: Record<string, ReturnType<typeof wrk> & { rssIdle?: number; rssAfter?: number }> = {};
try {
  for (const target of targets) {
    const { child, port } = await start(target);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const rssIdle = target.chaosSignal ? rssMiB(child.pid!) : undefined;
    const result = wrk(port);
    const rssAfter = target.chaosSignal ? rssMiB(child.pid!) : undefined;
    rows[target.name] = { ...result, ...(rssIdle === undefined ? {} : { rssIdle }), ...(rssAfter === undefined ? {} : { rssAfter }) };
    child.kill("SIGKILL");
    console.error(`${target.name}: ${result.rps.toFixed(0)} req/s`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits));
const krkn = rows["Krkn's server (stand-in)"]!.rps;
const ceiling = (name: string) => rows[name.includes("Deno") ? "bare Deno.serve" : "bare Bun.serve"]!.rps;
console.log(`\nGET / with wrk -t2 -c${CONNECTIONS} -d${SECONDS}s on ${process.platform}, ${navigator.hardwareConcurrency} cores:\n`);
console.log("| server | req/s | p50 ms | p99 ms | requests | vs bare runtime | vs Krkn's server | RSS idle → after, MiB | errors |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const [name, r] of Object.entries(rows)) {
  const vsBare = name.startsWith("chaos-signal") ? `${(r.rps / ceiling(name.replace("binary", "Bun"))).toFixed(2)}×` : "-";
  const vsKrkn = name.startsWith("Krkn") ? "-" : `${(r.rps / krkn).toFixed(1)}×`;
  const rss = r.rssIdle === undefined ? "-" : `${fmt(r.rssIdle, 1)} → ${fmt(r.rssAfter, 1)}`;
  console.log(`| ${name} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.requests} | ${vsBare} | ${vsKrkn} | ${rss} | ${r.errors} |`);
}
process.exit(0);
