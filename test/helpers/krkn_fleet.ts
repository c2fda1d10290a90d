/**
 * Starts test/helpers/krkn_fleet_process.ts (many Krkn-like targets in one child process, on the
 * runtime that runs the tests) and drives its control port.
 */
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtime } from "../../src/serve/mod.ts";
import { waitFor } from "./wait.ts";

export type FleetState = "RUN" | "PAUSE" | "STOP";

export interface KrknFleet {
  readonly urls: readonly string[];
  readonly pid: number;
  counts(): Promise<Record<FleetState, number>>;
  states(): Promise<FleetState[]>;
  /** Resolves with the epoch ms (fractional) at which every target held `state`; rejects after `timeoutMs`. */
  allHold(state: FleetState, timeoutMs?: number): Promise<number>;
  /** Sets one target behind the relay's back, as a Krkn run that restarted at its signal_state. */
  set(index: number, state: FleetState): Promise<void>;
  requests(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL("./krkn_fleet_process.ts", import.meta.url));

export async function startKrknFleet(count: number, initial: FleetState = "RUN"): Promise<KrknFleet> {
  const args = runtime().name === "deno" ? ["run", "-A", SCRIPT] : ["run", SCRIPT];
  const child: ChildProcess = spawn(process.execPath, [...args, String(count), initial], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  let gone = false;
  exited.then(() => (gone = true));
  const line = await waitFor(() => {
    if (gone) throw new Error(`the target fleet exited:\n${output}`);
    return /^\{"control".*\}$/m.exec(output)?.[0];
  }, { what: `${count} targets to listen`, timeoutMs: 30_000 });
  const { control, ports } = JSON.parse(line) as { control: number; ports: number[] };
  const base = `http://127.0.0.1:${control}`;
  const ask = async (path: string, method = "GET") => {
    const response = await fetch(`${base}${path}`, { method });
    const body = await response.json();
    if (!response.ok) throw new Error(`fleet ${path}: ${response.status} ${JSON.stringify(body)}`);
    return body;
  };
  return {
    urls: ports.map((port) => `http://127.0.0.1:${port}`),
    pid: child.pid!,
    counts: () => ask("/counts"),
    states: () => ask("/states"),
    allHold: async (state, timeoutMs = 30_000) => (await ask(`/await?state=${state}&timeout=${timeoutMs}`)).at,
    set: async (index, state) => void await ask(`/set?index=${index}&state=${state}`, "POST"),
    requests: () => ask("/requests"),
    async stop() {
      if (gone) return;
      process.kill(child.pid!, "SIGKILL");
      await exited;
    },
  };
}
