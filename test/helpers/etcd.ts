/**
 * A real etcd cluster on loopback (Debian's `etcd-server`): `startEtcd(3)` starts three members on
 * free 127.0.0.1 ports with temporary data directories, waits until the cluster answers, and
 * can freeze (SIGSTOP) and thaw (SIGCONT) members to cut a quorum.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { tempDir } from "./files.ts";
import { freePort } from "./prometheus.ts";
import { waitFor } from "./wait.ts";

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly child: ChildProcess;
  output(): string;
  /** Starts a member again after it exited (killed), on its data dir, ports and name. */
  restart(): void;
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** The client URLs, for `--etcd-endpoints`. */
  readonly endpoints: readonly string[];
  freeze(member: EtcdMember): void;
  thaw(member: EtcdMember): void;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();

/** By pid: Deno's ChildProcess.kill sends only the first signal of a child's life. */
function signal(child: ChildProcess, name: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(child.pid, name);
  } catch { /* gone */ }
}
process.on("exit", () => {
  for (const child of live) {
    signal(child, "SIGCONT");
    signal(child, "SIGKILL");
  }
});

export async function startEtcd(size = 3, options: { timeoutMs?: number } = {}): Promise<EtcdCluster> {
  const dir = tempDir("etcd-");
  const ports: { client: number; peer: number }[] = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const names = ports.map((_, i) => `m${i}`);
  const initialCluster = ports.map((p, i) => `${names[i]}=http://127.0.0.1:${p.peer}`).join(",");
  // One spawn per life of a member: a restart reuses its data dir, so it rejoins as itself.
  const spawnMember = (i: number, text: { value: string }) => {
    const p = ports[i]!;
    const clientUrl = `http://127.0.0.1:${p.client}`;
    const child = spawn("etcd", [
      "--name", names[i]!,
      "--data-dir", join(dir, names[i]!),
      "--listen-client-urls", clientUrl,
      "--advertise-client-urls", clientUrl,
      "--listen-peer-urls", `http://127.0.0.1:${p.peer}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${p.peer}`,
      "--initial-cluster", initialCluster,
      "--initial-cluster-state", "new",
      "--initial-cluster-token", `test-${ports[0]!.client}`,
      // Quick elections on loopback.
      "--heartbeat-interval", "50",
      "--election-timeout", "500",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    child.on("exit", () => live.delete(child));
    child.stdout?.setEncoding("utf8").on("data", (c: string) => (text.value = (text.value + c).slice(-20_000)));
    child.stderr?.setEncoding("utf8").on("data", (c: string) => (text.value = (text.value + c).slice(-20_000)));
    return child;
  };
  const children: ChildProcess[] = [];
  const members: EtcdMember[] = ports.map((p, i) => {
    const text = { value: "" };
    children[i] = spawnMember(i, text);
    return {
      name: names[i]!,
      clientUrl: `http://127.0.0.1:${p.client}`,
      get child() {
        return children[i]!;
      },
      output: () => text.value,
      restart: () => {
        children[i] = spawnMember(i, text);
      },
    };
  });
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    freeze: (m) => signal(m.child, "SIGSTOP"),
    thaw: (m) => signal(m.child, "SIGCONT"),
    async stop() {
      await Promise.all(members.map((m) => {
        if (m.child.exitCode !== null || m.child.signalCode !== null) return;
        const gone = new Promise((resolve) => m.child.once("exit", resolve));
        signal(m.child, "SIGCONT");
        signal(m.child, "SIGKILL");
        return gone;
      }));
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(async () => {
      for (const m of members) {
        const r = await fetch(`${m.clientUrl}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: "AA==" }), signal: AbortSignal.timeout(500) }).catch(() => null);
        if (!r?.ok) return false;
        await r.body?.cancel();
      }
      return true;
    }, { timeoutMs: options.timeoutMs ?? 15_000, what: "the etcd cluster to answer" });
  } catch (error) {
    await cluster.stop();
    throw new Error(`${error}\n${members.map((m) => `${m.name}: ${m.output().slice(-2000)}`).join("\n")}`);
  }
  return cluster;
}

/**
 * The head of a replica's config file: `chaos_signal.store` on `endpoints`. The rest of
 * `chaos_signal` (sources, relays, TLS keys under `store`) may follow, indented by two spaces.
 */
export function etcdStoreConfig(endpoints: readonly string[], prefix: string, maxStalenessMs: number): string {
  return `chaos_signal:\n  store:\n    type: etcd\n    endpoints: [${endpoints.join(", ")}]\n    prefix: ${prefix}\n    max_staleness: ${maxStalenessMs}ms\n`;
}
