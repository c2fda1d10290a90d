/**
 * A real DNS server for the relay's `targets_dns`: Debian's `dnsmasq` (dnsmasq-base) on a loopback
 * port, answering from a hosts file only (`--local` for the test domain: a name it does not list
 * is NXDOMAIN, a missing AAAA is an empty answer, nothing is forwarded). `setHosts` rewrites the
 * file and sends SIGHUP, which makes dnsmasq read it again (and empty its cache).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./files.ts";
import { freePort } from "./prometheus.ts";
import { waitFor } from "./wait.ts";

export interface Dnsmasq {
  readonly port: number;
  /** `127.0.0.1:<port>`, as a relay's `nameserver`. */
  readonly nameserver: string;
  /** Replaces the hosts file (`address name` lines) and waits until dnsmasq has read it. */
  setHosts(lines: readonly string[]): Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

/** The domain the test names live in: answered from the hosts file only. */
export const TEST_DOMAIN = "fleet.test";

/** A free TCP port may be taken for UDP (or taken meanwhile): another port, a few times. */
export async function startDnsmasq(hosts: readonly string[] = []): Promise<Dnsmasq> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(hosts);
    } catch (error) {
      if (attempt >= 3 || !/exited \(2\)|Address already in use/.test(String(error))) throw error;
    }
  }
}

async function startOnce(hosts: readonly string[]): Promise<Dnsmasq> {
  const dir = tempDir("chaos-signal-dnsmasq-");
  const hostsFile = join(dir, "hosts");
  writeFileSync(hostsFile, hosts.map((line) => `${line}\n`).join(""));
  const port = await freePort();
  const child: ChildProcess = spawn("dnsmasq", [
    "--keep-in-foreground",
    `--port=${port}`,
    "--listen-address=127.0.0.1",
    "--bind-interfaces",
    "--no-resolv",
    "--no-hosts",
    `--addn-hosts=${hostsFile}`,
    `--local=/${TEST_DOMAIN}/`,
    "--no-negcache",
    "--log-facility=-",
    "--pid-file=",
    // As root, dnsmasq drops to the user "nobody" otherwise; the hosts file is ours.
    "--user=root",
    "--conf-file=/dev/null",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  let exit: number | string | null | undefined;
  const exited = new Promise<void>((resolve) => child.on("close", (code, signal) => {
    exit = code ?? signal;
    resolve();
  }));
  const reads = () => text.split("\n").filter((line) => line.includes(`read ${hostsFile}`)).length;
  await waitFor(() => reads() >= 1, {
    what: "dnsmasq to read its hosts file",
    timeoutMs: 10_000,
    intervalMs: 20,
    giveUpIf: () => exit !== undefined && `dnsmasq exited (${exit}) before it served:\n${text}`,
  });
  return {
    port,
    nameserver: `127.0.0.1:${port}`,
    async setHosts(lines) {
      const before = reads();
      writeFileSync(hostsFile, lines.map((line) => `${line}\n`).join(""));
      process.kill(child.pid!, "SIGHUP");
      await waitFor(() => reads() > before, { what: "dnsmasq to read its hosts file again", timeoutMs: 5_000, intervalMs: 20 });
    },
    output: () => text,
    async stop() {
      if (exit !== undefined) return;
      process.kill(child.pid!, "SIGKILL");
      await exited;
    },
  };
}
