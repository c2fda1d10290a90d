/**
 * One relay, many targets: how long a change takes to reach a fleet of Krkn-like targets, on the
 * runtime that runs this script, beside a bare `fetch` fan-out of the same runtime:
 *
 *   deno run -A bench/fleet.ts [sizes] [rounds]     (defaults: 10,100,1000 6)
 *   bun run bench/fleet.ts [sizes] [rounds]
 *
 * For each fleet size N it starts one helper process serving N Krkn-like targets on loopback
 * (test/helpers/krkn_fleet_process.ts: HTTP/1.0, empty 200 to a POST, the state to `GET /`, one
 * port each) and a chaos-signal (same runtime) with one relay pointed at all of them. Then,
 * `rounds` times, the signal alternates PAUSE and RUN through `POST /<signal>`, and each change is
 * timed from the POST until every target holds it (the helper reports the moment the last one got
 * it). Meanwhile `GET /` is asked of chaos-signal one request after the other, and each answer
 * timed (during the changes to PAUSE; and, before the first change, for a second with no fan-out: the machine's own noise). After each change, the bench itself POSTs the same signal to every target with
 * `Promise.all(fetch)`: the bare fan-out, timed until the last answer. Last, chaos-signal's peak
 * RSS (VmHWM) and the size of its `/status`.
 *
 * Figures are printed, never asserted: the machine is shared and noisy. Loopback only; every wait
 * has a deadline, and the children are killed on any exit.
 *
 * `GET /` is polled during the changes to PAUSE; the changes to RUN are left alone to measure CPU
 * time per change (chaos-signal's from /proc; the bench's own for the bare fan-out), which a busy
 * machine disturbs less than wall time: it tells the relay's own work from the runtime's `fetch`.
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { type KrknFleet, startKrknFleet } from "../test/helpers/krkn_fleet.ts";
import { tempFile } from "../test/helpers/files.ts";
import { type ServerProcess, startServer } from "../test/helpers/server_process.ts";

type Change = "PAUSE" | "RUN";

function usage(problem: string): never {
  console.error(`usage: bench/fleet.ts [sizes, e.g. 10,100,1000] [rounds] (${problem})`);
  process.exit(2);
}
const SIZES = (process.argv[2] ?? "10,100,1000").split(",").map((text) => {
  if (!/^[1-9]\d*$/.test(text) || Number(text) > 5000) usage(`a size is 1 to 5000; got ${text}`);
  return Number(text);
});
const ROUNDS = Number(process.argv[3] ?? 6);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 100) usage(`rounds is 1 to 100; got ${process.argv[3]}`);
/** RELAY_CONCURRENCY=n sets the relay's `concurrency` (default: the relay's own). */
const CONCURRENCY = process.env.RELAY_CONCURRENCY;
if (CONCURRENCY !== undefined && !/^[1-9]\d{0,3}$/.test(CONCURRENCY)) usage(`RELAY_CONCURRENCY is 1 to 4096; got ${CONCURRENCY}`);
const CHANGE_DEADLINE_MS = 60_000;
const SETTLE_MS = 300;
const RUNTIME = (process.versions as Record<string, string | undefined>).bun ? "bun" : "deno";
const VERSION = (process.versions as Record<string, string | undefined>)[RUNTIME];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.timeOrigin + performance.now();

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}
const ms = (value: number) => (value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 1 : 0)} ms`);
const range = (values: readonly number[]) => `${ms(Math.min(...values))}–${ms(Math.max(...values))} (median ${ms(quantile(values, 0.5))})`;

/** `GET /` on chaos-signal, one request after the other, until stopped: each answer's time. */
function pollRoot(url: string): { stop(): Promise<number[]> } {
  const times: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        await (await fetch(`${url}/`)).text();
        times.push(performance.now() - started);
      } catch {
        times.push(Number.POSITIVE_INFINITY);
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return times;
    },
  };
}

async function bareFanOut(urls: readonly string[], signal: Change): Promise<number> {
  const started = now();
  await Promise.all(urls.map(async (url) => await (await fetch(`${url}/${signal}`, { method: "POST" })).text()));
  return now() - started;
}

/** CPU time (user + system) a process has used so far, ms: from /proc/<pid>/stat, in clock ticks of 10 ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** This process's own CPU time so far, ms (finer than /proc's ticks). */
function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function peakRssMb(pid: number): number {
  const line = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return line ? Number(line[1]) / 1024 : Number.NaN;
}

interface Row {
  size: number;
  relay: number[];
  bare: number[];
  /** CPU time chaos-signal used per change (from the POST until all hold it), and the bench per bare fan-out. */
  relayCpu: number[];
  bareCpu: number[];
  root: number[];
  /** `GET /` with no fan-out running, for comparison (the machine's own noise). */
  idle: number[];
  rssMb: number;
  statusBytes: number;
}

async function measure(size: number): Promise<Row> {
  let fleet: KrknFleet | undefined;
  let server: ServerProcess | undefined;
  try {
    fleet = await startKrknFleet(size, "RUN");
    const config = tempFile(
      `chaos_signal:\n  relays:\n    - name: fleet\n      interval: 10s\n${CONCURRENCY ? `      concurrency: ${CONCURRENCY}\n` : ""}      targets:\n${fleet.urls.map((url) => `        - ${url}\n`).join("")}`,
      "fleet.yaml",
    );
    server = await startServer(["--config", config], { timeoutMs: 60_000 });
    const row: Row = { size, relay: [], bare: [], relayCpu: [], bareCpu: [], root: [], idle: [], rssMb: 0, statusBytes: 0 };
    await sleep(SETTLE_MS);
    const idle = pollRoot(server.url);
    await sleep(1000);
    row.idle = await idle.stop();
    for (let round = 0; round < ROUNDS; round++) {
      const signal: Change = round % 2 === 0 ? "PAUSE" : "RUN";
      // PAUSE is timed with `GET /` polled meanwhile; RUN without, for chaos-signal's own CPU time.
      const poller = signal === "PAUSE" ? pollRoot(server.url) : undefined;
      const cpuBefore = cpuMs(server.child.pid!);
      const started = now();
      const answer = await fetch(`${server.url}/${signal}`, { method: "POST" });
      await answer.text();
      if (!answer.ok) throw new Error(`POST /${signal} answered ${answer.status}`);
      row.relay.push((await fleet.allHold(signal, CHANGE_DEADLINE_MS)) - started);
      if (poller) row.root.push(...await poller.stop());
      else row.relayCpu.push(cpuMs(server.child.pid!) - cpuBefore);
      await sleep(SETTLE_MS);
      const bareCpuBefore = ownCpuMs();
      row.bare.push(await bareFanOut(fleet.urls, signal));
      if (!poller) row.bareCpu.push(ownCpuMs() - bareCpuBefore);
      await sleep(SETTLE_MS);
    }
    row.statusBytes = (await (await fetch(`${server.url}/status`)).arrayBuffer()).byteLength;
    row.rssMb = peakRssMb(server.child.pid!);
    return row;
  } finally {
    await server?.stop();
    await fleet?.stop();
  }
}

const rows: Row[] = [];
for (const size of SIZES) rows.push(await measure(size));

console.log(`\nbench/fleet.ts on ${RUNTIME} ${VERSION}: ${ROUNDS} changes per fleet size (PAUSE and RUN in turn), relay concurrency ${CONCURRENCY ?? "default"}\n`);
console.log("| targets | chaos-signal: every target in sync | bare fetch fan-out | ratio (medians) | CPU per change: chaos-signal / bare (medians) | GET / p50 / p99 during (idle) | peak RSS | /status |");
console.log("|---|---|---|---|---|---|---|---|");
for (const row of rows) {
  const ratio = quantile(row.relay, 0.5) / quantile(row.bare, 0.5);
  console.log(
    `| ${row.size} | ${range(row.relay)} | ${range(row.bare)} | ${ratio.toFixed(1)}× | ${ms(quantile(row.relayCpu, 0.5))} / ${ms(quantile(row.bareCpu, 0.5))} | ${ms(quantile(row.root, 0.5))} / ${ms(quantile(row.root, 0.99))} (${ms(quantile(row.idle, 0.5))} / ${ms(quantile(row.idle, 0.99))}) | ${row.rssMb.toFixed(0)} MB | ${(row.statusBytes / 1024).toFixed(1)} KiB |`,
  );
}
process.exit(0);
