/**
 * A real Prometheus and a real Alertmanager for end-to-end tests (Debian
 * packages `prometheus` and `prometheus-alertmanager`), on free loopback
 * ports with temporary configs and data directories, plus a scrape target
 * whose values the test sets, and a poll helper with a clear failure message.
 *
 * The binaries are `prometheus` and `prometheus-alertmanager` from PATH
 * (Debian's names; upstream's Alertmanager is `alertmanager`), or the
 * programs named by PROMETHEUS_BIN and ALERTMANAGER_BIN.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { tempDir } from "./files.ts";
import { waitFor } from "./wait.ts";

export { waitFor };

/** Ports handed out by this process: the kernel may offer a port again once it is closed. */
const handedOut = new Set<number>();

/**
 * The ports the kernel picks for outgoing connections. A port handed out here stays below them:
 * a client that keeps connecting to a port in that range where nothing listens yet (a relay
 * retrying a Krkn server that starts later) can be given that very port as its own source port
 * (a TCP self-connect), and then the server cannot bind it.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}
const BELOW = ephemeralLow();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A port nobody listens on right now, below the kernel's ephemeral range, never one this process
 * handed out before (two asked in a row, Prometheus' and Alertmanager's, must differ).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = 10_000 + Math.floor(Math.random() * (BELOW - 10_000));
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port between 10000 and ${BELOW} after 50 tries`);
}

// ---------------------------------------------------------------------------
// Child processes

/** Every child started here that has not exited: killed if the test process exits first. */
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) {
    try {
      process.kill(child.pid!, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

const OUTPUT_LIMIT = 256 * 1024;

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last 256 KiB the process printed (stdout and stderr). */
  output(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the process has exited. */
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
  /** Sends SIGKILL (a crash) and resolves when the process has exited. */
  kill(): Promise<void>;
}

/** `hint` is added to the message when the program cannot be started (not installed). */
function startProcess(name: string, command: string, args: string[], hint: string): ManagedProcess {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } });
  let text = "";
  let exited = false;
  const append = (chunk: string) => {
    text += chunk;
    if (text.length > OUTPUT_LIMIT) text = text.slice(-OUTPUT_LIMIT);
  };
  child.stdout!.setEncoding("utf8").on("data", append);
  child.stderr!.setEncoding("utf8").on("data", append);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("error", (error) => {
      append(`\n[${name}] cannot start ${command}: ${error.message} (${hint})\n`);
      exited = true;
      live.delete(child);
      resolve({ code: null, signal: null });
    });
    child.on("exit", (code, signal) => {
      exited = true;
      live.delete(child);
      resolve({ code, signal });
    });
  });
  live.add(child);
  const signalAndWait = async (signal: NodeJS.Signals, graceMs: number) => {
    if (exited) return;
    try {
      // process.kill, not child.kill: see server_process.ts (Deno's bookkeeping of self-signalled children).
      process.kill(child.pid!, signal);
    } catch {
      // already gone
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), graceMs)));
    const outcome = await Promise.race([exit, late]);
    clearTimeout(timer);
    if (outcome === "late" && !exited) {
      try {
        process.kill(child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
      await exit;
    }
  };
  return {
    name,
    child,
    pid: child.pid ?? -1,
    output: () => text,
    exited: exit,
    hasExited: () => exited,
    stop: (graceMs = 5000) => signalAndWait("SIGTERM", graceMs),
    kill: () => signalAndWait("SIGKILL", 5000),
  };
}

/** Polls `url` until it answers 200; fails at once if the process exits. */
async function waitReady(started: ManagedProcess, url: string, timeoutMs: number): Promise<void> {
  await waitFor(async () => {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await response.body?.cancel();
    return response.status === 200;
  }, {
    what: `${started.name} to answer 200 at ${url}`,
    timeoutMs,
    giveUpIf: () => started.hasExited() && `${started.name} exited`,
    diagnose: () => `${started.name} output:\n${started.output().slice(-4000)}`,
  }).catch(async (error) => {
    await started.stop(2000);
    throw error;
  });
}

/**
 * tempDir() removes its directories on process exit, but `deno test` exits
 * without emitting "exit": remove them when the program is stopped.
 */
function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

const PROMETHEUS_HINT = "install the Debian package prometheus, or set PROMETHEUS_BIN";
const ALERTMANAGER_HINT = "install the Debian package prometheus-alertmanager, or set ALERTMANAGER_BIN";

function binary(variable: string, fallback: string): string {
  return process.env[variable] || fallback;
}

// ---------------------------------------------------------------------------
// Prometheus

export interface PrometheusOptions {
  /** @default a free port */
  readonly port?: number;
  /** `host:port` of the targets of the one scrape job (`chaos_test`). */
  readonly targets: readonly string[];
  /** An Alertmanager's `host:port`, to send alerts to. */
  readonly alertmanager?: string;
  /** Alerting rules, evaluated every `interval` in one group. */
  readonly alertRules?: readonly AlertRule[];
  /** @default "1s" */
  readonly interval?: string;
  /** @default 30000 */
  readonly readyTimeoutMs?: number;
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** @default none: fires at the first evaluation that matches */
  readonly for?: string;
}

export interface PrometheusInstance {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly configFile: string;
  /** The running process (replaced by `restart`). */
  readonly process: ManagedProcess;
  output(): string;
  /** SIGKILL, as a crash: no clean shutdown of the TSDB. */
  kill(): Promise<void>;
  /** Starts Prometheus again on the same port, config and data directory, and waits until ready. */
  restart(): Promise<void>;
  /** Stops it and removes its config and data. */
  stop(): Promise<void>;
}

/** JSON is YAML: configs are written as JSON to avoid quoting mistakes. */
function yaml(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusInstance> {
  const port = options.port ?? await freePort();
  const dir = tempDir("chaos-signal-prometheus-");
  const dataDir = join(dir, "data");
  const rulesFile = join(dir, "rules.yml");
  const configFile = join(dir, "prometheus.yml");
  const interval = options.interval ?? "1s";
  writeFileSync(rulesFile, yaml({
    groups: [{
      name: "chaos_signal_test",
      interval,
      rules: (options.alertRules ?? []).map((rule) => ({
        alert: rule.alert,
        expr: rule.expr,
        ...(rule.for ? { for: rule.for } : {}),
        labels: rule.labels ?? {},
        annotations: { summary: `${rule.alert} (chaos-signal end-to-end test)` },
      })),
    }],
  }));
  writeFileSync(configFile, yaml({
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: [rulesFile],
    scrape_configs: [{
      job_name: "chaos_test",
      metrics_path: "/metrics",
      static_configs: [{ targets: [...options.targets] }],
    }],
    ...(options.alertmanager
      ? { alerting: { alertmanagers: [{ api_version: "v2", static_configs: [{ targets: [options.alertmanager] }] }] } }
      : {}),
  }));
  const url = `http://127.0.0.1:${port}`;
  const args = [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${dataDir}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=info",
  ];
  const launch = async () => {
    const started = startProcess("prometheus", binary("PROMETHEUS_BIN", "prometheus"), args, PROMETHEUS_HINT);
    await waitReady(started, `${url}/-/ready`, options.readyTimeoutMs ?? 30_000);
    return started;
  };
  let current = await launch().catch((error) => {
    removeDir(dir);
    throw error;
  });
  return {
    url,
    port,
    dataDir,
    configFile,
    get process() {
      return current;
    },
    output: () => current.output(),
    kill: () => current.kill(),
    async restart() {
      await current.stop();
      current = await launch();
    },
    async stop() {
      await current.stop();
      removeDir(dir);
    },
  };
}

// ---------------------------------------------------------------------------
// Alertmanager

export interface AlertmanagerOptions {
  /** @default a free port */
  readonly port?: number;
  /** Where the webhook receiver posts: chaos-signal's `http://127.0.0.1:<port>/hooks/<name>`. */
  readonly webhookUrl: string;
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** @default "1s" */
  readonly groupWait?: string;
  /** @default "1s" */
  readonly groupInterval?: string;
  /** @default "1h" */
  readonly repeatInterval?: string;
  /** @default 30000 */
  readonly readyTimeoutMs?: number;
}

export interface AlertmanagerInstance {
  readonly url: string;
  readonly port: number;
  readonly configFile: string;
  readonly process: ManagedProcess;
  output(): string;
  /** Stops it and removes its config and data. */
  stop(): Promise<void>;
}

export async function startAlertmanager(options: AlertmanagerOptions): Promise<AlertmanagerInstance> {
  const port = options.port ?? await freePort();
  const dir = tempDir("chaos-signal-alertmanager-");
  const configFile = join(dir, "alertmanager.yml");
  writeFileSync(configFile, yaml({
    route: {
      receiver: "chaos-signal",
      group_by: ["alertname"],
      group_wait: options.groupWait ?? "1s",
      group_interval: options.groupInterval ?? "1s",
      repeat_interval: options.repeatInterval ?? "1h",
    },
    receivers: [{
      name: "chaos-signal",
      webhook_configs: [{
        url: options.webhookUrl,
        send_resolved: true,
        ...(options.token ? { http_config: { authorization: { type: "Bearer", credentials: options.token } } } : {}),
      }],
    }],
  }));
  const url = `http://127.0.0.1:${port}`;
  const started = startProcess("alertmanager", binary("ALERTMANAGER_BIN", "prometheus-alertmanager"), [
    `--config.file=${configFile}`,
    `--storage.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // Empty: no cluster listener (no gossip port, no peers).
    "--cluster.listen-address=",
    "--log.level=debug",
  ], ALERTMANAGER_HINT);
  await waitReady(started, `${url}/-/ready`, options.readyTimeoutMs ?? 30_000).catch((error) => {
    removeDir(dir);
    throw error;
  });
  return {
    url,
    port,
    configFile,
    process: started,
    output: () => started.output(),
    async stop() {
      await started.stop();
      removeDir(dir);
    },
  };
}

// ---------------------------------------------------------------------------
// The scrape target

export interface MetricsTarget {
  /** `127.0.0.1:<port>`, for a scrape config. */
  readonly address: string;
  readonly port: number;
  /** Sets a gauge's value (served from the next scrape on). */
  set(name: string, value: number): void;
  /** The current values. */
  values(): Record<string, number>;
  /** How many times /metrics was fetched. */
  scrapes(): number;
  close(): Promise<void>;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** An HTTP server on 127.0.0.1 serving the gauges at /metrics in Prometheus' text format. */
export function startTarget(initial: Record<string, number>): Promise<MetricsTarget> {
  const gauges = new Map(Object.entries(initial));
  let scrapes = 0;
  const server: HttpServer = createHttpServer((request, response) => {
    if (request.url?.split("?")[0] !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    scrapes += 1;
    const body = [...gauges].map(([name, value]) => `# TYPE ${name} gauge\n${name} ${formatValue(value)}\n`).join("");
    response.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(body);
  });
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolve({
        address: `127.0.0.1:${port}`,
        port,
        set: (name, value) => void gauges.set(name, value),
        values: () => Object.fromEntries(gauges),
        scrapes: () => scrapes,
        close: () =>
          new Promise<void>((done) => {
            (server as HttpServer & { closeAllConnections?: () => void }).closeAllConnections?.();
            server.close(() => done());
          }),
      });
    });
  });
}
