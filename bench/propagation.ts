/**
 * How long a change of the signal takes to reach 1,000 SSE subscribers and a
 * relay target (a stand-in for Krkn's embedded server), on this machine.
 *
 *   deno run -A bench/propagation.ts [subscribers] [rounds]
 *   bun run bench/propagation.ts [subscribers] [rounds]
 *
 * It starts chaos-signal (on the runtime that runs this script) with a relay
 * to the Krkn stand-in, connects the subscribers to GET /events over raw
 * sockets, then times each POST until every subscriber has the new signal and
 * until the stand-in has received the push. Loopback only; bounded in time.
 * Figures are printed, never asserted: machines are shared and noisy.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SUBSCRIBERS = Number(process.argv[2] ?? 1000);
const ROUNDS = Number(process.argv[3] ?? 10);
const DEADLINE_MS = 10_000;

function started(child: ChildProcess, pattern: RegExp, what: string): Promise<{ match: RegExpMatchArray; lines: () => string }> {
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const match = output.match(pattern);
      if (match) {
        clearInterval(timer);
        resolve({ match, lines: () => output });
      }
    }, 10);
    setTimeout(() => {
      clearInterval(timer);
      reject(new Error(`${what} did not start:\n${output}`));
    }, 20_000);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const ms = (value: number) => `${value.toFixed(2)} ms`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "chaos-signal-bench-"));
  const children: ChildProcess[] = [];
  const sockets: Socket[] = [];
  try {
    // The Krkn stand-in logs "POST /PAUSE" the moment it handles a push.
    const krkn = spawn("python3", ["-u", join(ROOT, "test/fixtures/krkn_server.py"), "0", "RUN"], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(krkn);
    const krknUp = await started(krkn, /listening (\d+)/, "the Krkn stand-in");
    const config = join(dir, "config.yaml");
    writeFileSync(config, `chaos_signal:\n  relays:\n    - name: krkn\n      targets: [http://127.0.0.1:${krknUp.match[1]}]\n      interval: 10s\n`);
    const runtime = (process.versions as Record<string, string | undefined>).bun ? "bun" : "deno";
    const args = runtime === "bun" ? ["run", "mod.ts"] : ["run", "-A", "mod.ts"];
    const server = spawn(process.execPath, [...args, "--address", "127.0.0.1", "--port", "0", "--config", config], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(server);
    const up = await started(server, /listening on http:\/\/127\.0\.0\.1:(\d+)\//, "chaos-signal");
    const port = Number(up.match[1]);
    const base = `http://127.0.0.1:${port}`;

    // Subscribers: raw sockets reading the event stream; each records when it saw the awaited signal.
    const seen: string[] = new Array(SUBSCRIBERS).fill("");
    let awaited = "";
    let arrivals: number[] = [];
    const connectStart = performance.now();
    await Promise.all(Array.from({ length: SUBSCRIBERS }, (_, i) =>
      new Promise<void>((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port }, () => {
          socket.write(`GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n`);
        });
        sockets.push(socket);
        socket.setEncoding("latin1");
        let connected = false;
        socket.on("data", (chunk: string) => {
          seen[i] += chunk;
          if (!connected && seen[i]!.includes("data: RUN")) {
            connected = true;
            seen[i] = "";
            resolve();
          } else if (awaited && seen[i]!.includes(`data: ${awaited}`)) {
            seen[i] = "";
            arrivals.push(performance.now());
          }
        });
        socket.on("error", reject);
      })
    ));
    console.log(`${runtime}: ${SUBSCRIBERS} subscribers connected in ${ms(performance.now() - connectStart)}`);

    const rows: { fanout: number[]; relay: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      awaited = round % 2 === 0 ? "PAUSE" : "RUN";
      arrivals = [];
      const before = krknUp.lines().split("\n").filter((l) => l === `POST /${awaited}`).length;
      const start = performance.now();
      await fetch(`${base}/${awaited}`, { method: "POST" }).then((r) => r.text());
      let relayAt = 0;
      while (performance.now() - start < DEADLINE_MS && (arrivals.length < SUBSCRIBERS || !relayAt)) {
        if (!relayAt && krknUp.lines().split("\n").filter((l) => l === `POST /${awaited}`).length > before) relayAt = performance.now();
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      if (arrivals.length < SUBSCRIBERS) throw new Error(`round ${round}: only ${arrivals.length} of ${SUBSCRIBERS} subscribers saw ${awaited}`);
      rows.push({ fanout: arrivals.map((t) => t - start).sort((a, b) => a - b), relay: relayAt - start });
    }

    const all = rows.flatMap((r) => r.fanout).sort((a, b) => a - b);
    const lasts = rows.map((r) => r.fanout.at(-1)!).sort((a, b) => a - b);
    const relays = rows.map((r) => r.relay).sort((a, b) => a - b);
    console.log(`\nPOST -> signal at the subscribers and at the relay target (${ROUNDS} changes, ${runtime}):`);
    console.log(`| measure | p50 | p99 | max |`);
    console.log(`|---|---|---|---|`);
    console.log(`| one SSE subscriber of ${SUBSCRIBERS} | ${ms(percentile(all, 50))} | ${ms(percentile(all, 99))} | ${ms(all.at(-1)!)} |`);
    console.log(`| all ${SUBSCRIBERS} SSE subscribers | ${ms(percentile(lasts, 50))} | ${ms(percentile(lasts, 99))} | ${ms(lasts.at(-1)!)} |`);
    console.log(`| relay target (Krkn stand-in) | ${ms(percentile(relays, 50))} | ${ms(percentile(relays, 99))} | ${ms(relays.at(-1)!)} |`);
    console.log(`(the relay figure includes the stand-in's log line reaching this process through a pipe)`);
  } finally {
    for (const socket of sockets) socket.destroy();
    for (const child of children) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
