/**
 * GET / on Node.js with wrk: chaos-signal (`node dist/chaos-signal.js`, src/serve/node.ts) against
 * bare node:http answering RUN with the same headers (the ceiling), and, when HONO_NODE_SERVER
 * names @hono/node-server's dist/index.mjs, chaos-signal's handler under that adapter library.
 *
 *   npm run build && deno run -A bench/node.ts [seconds] [rounds] [connections]
 *
 * The targets take turns, `rounds` times, and the median is printed: requests per second, and the
 * server's CPU time per request (utime + stime from /proc/<pid>/stat over the run), which a busy
 * shared machine disturbs less than req/s. Figures are printed, never asserted.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { freePort } from "../test/helpers/prometheus.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SECONDS = Number(process.argv[2] ?? 5);
const ROUNDS = Number(process.argv[3] ?? 3);
const CONNECTIONS = Number(process.argv[4] ?? 64);
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on Linux). */
const TICKS = 100;

interface Target {
  name: string;
  args: (port: number) => string[];
  env?: Record<string, string>;
}

const targets: Target[] = [
  { name: "bare node:http, same bytes", args: (port) => ["bench/bare_node.mjs", String(port)] },
  {
    name: "chaos-signal on Node.js",
    args: (port) => ["dist/chaos-signal.js", "--address", "127.0.0.1", "--port", String(port), "--state-file", "none"],
  },
];
const hono = process.env.HONO_NODE_SERVER;
if (hono) targets.push({ name: "chaos-signal's handler on @hono/node-server", args: (port) => ["bench/hono_node.mjs", String(port)], env: { HONO_NODE_SERVER: hono } });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function start(target: Target): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn("node", target.args(port), { cwd: ROOT, stdio: "ignore", env: { ...process.env, ...target.env } });
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(async (r) => (await r.text(), r.ok), () => false);
    if (ok) return { child, port };
    await sleep(20);
  }
  child.kill("SIGKILL");
  throw new Error(`${target.name} did not answer GET / within 20 s`);
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  // The fields after the command name (which may hold spaces, in parentheses): utime is the 12th, stime the 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

function wrk(port: number): { rps: number; requests: number } {
  const out = spawnSync("wrk", ["-t2", `-c${CONNECTIONS}`, `-d${SECONDS}s`, `http://127.0.0.1:${port}/`], { encoding: "utf8" }).stdout ?? "";
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]), requests: Number(/(\d+) requests in/.exec(out)?.[1]) };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const results = new Map<string, { rps: number[]; cpuUs: number[] }>(targets.map((t) => [t.name, { rps: [], cpuUs: [] }]));
for (let round = 0; round < ROUNDS; round++) {
  for (const target of targets) {
    const { child, port } = await start(target);
    try {
      wrk(port); // warm-up: the JIT, then measure
      const before = cpuSeconds(child.pid!);
      const { rps, requests } = wrk(port);
      const cpuUs = ((cpuSeconds(child.pid!) - before) * 1e6) / requests;
      results.get(target.name)!.rps.push(rps);
      results.get(target.name)!.cpuUs.push(cpuUs);
      console.error(`round ${round + 1}: ${target.name}: ${rps.toFixed(0)} req/s, ${cpuUs.toFixed(1)} µs CPU per request`);
    } finally {
      child.kill("SIGKILL");
    }
  }
}

const bare = results.get(targets[0]!.name)!;
console.log(`\nGET / on Node.js ${spawnSync("node", ["--version"], { encoding: "utf8" }).stdout.trim()}, wrk -t2 -c${CONNECTIONS} -d${SECONDS}s, median of ${ROUNDS} alternating rounds, ${cpus()[0]?.model} (${cpus().length} cores):\n`);
console.log("| server | req/s | vs bare | server CPU µs per request | vs bare |");
console.log("|---|---|---|---|---|");
for (const target of targets) {
  const r = results.get(target.name)!;
  console.log(
    `| ${target.name} | ${median(r.rps).toFixed(0)} | ${(median(r.rps) / median(bare.rps)).toFixed(2)}× | ${median(r.cpuUs).toFixed(1)} | ${(median(r.cpuUs) / median(bare.cpuUs)).toFixed(2)}× |`,
  );
}
process.exit(0);
