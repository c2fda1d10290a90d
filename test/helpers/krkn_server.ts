/**
 * Starts the Python stand-in for the signal server a Krkn run embeds
 * (test/fixtures/krkn_server.py: HTTPServer, one thread, HTTP/1.0, empty POST
 * bodies, silence on unknown paths) and reads its state as Krkn's runner does.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fixture } from "./files.ts";
import { waitFor } from "./wait.ts";

export interface KrknServer {
  readonly port: number;
  readonly url: string;
  /** The requests it served, one "METHOD /path" per line. */
  requests(): string[];
  /** What `GET /` answers now (fails if it is down). */
  state(): Promise<string>;
  stop(): Promise<void>;
}

/** `address`: another loopback address (127.0.0.0/8 is all loopback on Linux), for fleets on one port. */
export async function startKrknServer(port = 0, initial = "RUN", address = "127.0.0.1"): Promise<KrknServer> {
  const child: ChildProcess = spawn("python3", ["-u", fixture("krkn_server.py"), String(port), initial, address], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  // HTTPServer's tracebacks on dropped connections: only the start's are kept, to say why it did not listen.
  let errors = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (errors = (errors + chunk).slice(-2000)));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const bound = await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`the Krkn stand-in exited (${child.exitCode}) before listening on ${address}:${port}: ${errors.trim().split("\n").pop()}`);
    return /listening (\d+)/.exec(output)?.[1];
  }, { what: "the Krkn stand-in to listen", timeoutMs: 10_000, diagnose: () => `stderr: ${errors.trim().split("\n").slice(-3).join(" | ")}` });
  const actual = Number(bound);
  const url = `http://${address}:${actual}`;
  return {
    port: actual,
    url,
    requests: () => output.split("\n").filter((line) => /^(GET|POST) /.test(line)),
    state: async () => await (await fetch(`${url}/`)).text(),
    async stop() {
      if (child.exitCode !== null) return;
      process.kill(child.pid!, "SIGKILL");
      await exited;
    },
  };
}
