/**
 * Starts the real chaos-signal process under the runtime that runs the tests
 * (`deno test` -> `deno run`, `bun test` -> `bun run`) on a free loopback port,
 * and drives it the way users do.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { runtime } from "../../src/serve/mod.ts";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** What runs a server: a runtime on the sources (Node.js: on the bundled file), or the compiled binary. */
export type ServerRuntime = "deno" | "bun" | "node" | "binary";

/**
 * The command that runs chaos-signal on the runtime the tests run on: mod.ts,
 * or with CHAOS_SIGNAL_UNDER_TEST=binary the compiled binary (a Bun program),
 * or =single-file the bundled dist/chaos-signal.js (`npm run build` makes both),
 * or =node that file under Node.js, or =package:<dir> the `chaos-signal` command of the npm
 * package installed in <dir> (Node.js runs it: its shebang; run_all.mjs packs and installs it),
 * or =image the container image's binary, run under `chroot` in the image's mounted root as the
 * image's user (run_all's image runner mounts it and sets CHAOS_SIGNAL_IMAGE_ROOT and _USER).
 */
export function runtimeCommand(other?: ServerRuntime): { command: string; args: string[]; name: "deno" | "bun" | "node" } {
  // The compiled binary as one replica among others (it exists after `npm run build`).
  if (other === "binary") return { command: `${ROOT}dist/chaos-signal`, args: [], name: "bun" };
  // The single file on Node.js (`npm run build` makes it).
  if (other === "node") return { command: "node", args: [`${ROOT}dist/chaos-signal.js`], name: "node" };
  if (other !== undefined && other !== runtime().name) {
    // The other runtime, from the project's own install: replicas mixing Deno and Bun.
    return { command: `${ROOT}node_modules/.bin/${other}`, args: other === "deno" ? ["run", "-A", "mod.ts"] : ["run", "mod.ts"], name: other };
  }
  const { name } = runtime();
  const underTest = process.env.CHAOS_SIGNAL_UNDER_TEST;
  if (underTest === "binary") return { command: `${ROOT}dist/chaos-signal`, args: [], name: "bun" };
  if (underTest === "image") return imageCommand();
  if (underTest === "node") return { command: "node", args: [`${ROOT}dist/chaos-signal.js`], name: "node" };
  if (underTest?.startsWith("package:")) {
    return { command: `${underTest.slice("package:".length)}/node_modules/.bin/chaos-signal`, args: [], name: "node" };
  }
  const entry = underTest === "single-file" ? "dist/chaos-signal.js" : "mod.ts";
  return { command: process.execPath, args: name === "deno" ? ["run", "-A", entry] : ["run", entry], name };
}

/** The image's entrypoint under chroot as the image's user; the test's flags follow. */
export function imageCommand(): { command: string; args: string[]; name: "bun" } {
  const root = process.env.CHAOS_SIGNAL_IMAGE_ROOT;
  const user = process.env.CHAOS_SIGNAL_IMAGE_USER;
  const entrypoint = process.env.CHAOS_SIGNAL_IMAGE_ENTRYPOINT;
  if (!root || !user || !entrypoint) throw new Error("CHAOS_SIGNAL_UNDER_TEST=image needs the image mounted: node test/run_all.mjs image");
  return { command: "chroot", args: [`--userspec=${user}`, root, ...JSON.parse(entrypoint) as string[]], name: "bun" };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** Sends `signal` and resolves with the exit and how long it took. */
  stop(signal?: NodeJS.Signals): Promise<Exit & { ms: number }>;
}

function collect(child: ChildProcess) {
  let text = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  const exited = new Promise<Exit>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return { output: () => text, exited };
}

/** `launcher` runs the server through another program, such as `["prlimit", "--nofile=256:256", "--"]`. */
function spawnServer(flags: string[], env: Record<string, string> = {}, launcher: string[] = [], other?: ServerRuntime | readonly string[]): ChildProcess {
  const named = Array.isArray(other) ? undefined : runtimeCommand(other as ServerRuntime | undefined);
  const commandLine = named ? [named.command, ...named.args] : other as readonly string[];
  const [program, ...programArgs] = [...launcher, ...commandLine, ...flags];
  return spawn(program!, programArgs, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

let etcdPrefixes = 0;

/**
 * With CHAOS_SIGNAL_TEST_ETCD=<endpoints> (run_all's etcd-* runs), servers keep their signal in
 * that etcd, each under its own prefix, unless a test asks for a state file or a store itself.
 */
function etcdStoreFlags(flags: string[]): string[] {
  const endpoints = process.env.CHAOS_SIGNAL_TEST_ETCD;
  if (!endpoints || flags.some((f) => /^--(state-file|store|etcd-)/.test(f))) return [];
  return ["--store", "etcd", "--etcd-endpoints", endpoints, "--etcd-prefix", `/conformance/${process.pid}-${Date.now()}-${++etcdPrefixes}`];
}

/**
 * Starts a server on 127.0.0.1 and a free port (unless the flags say otherwise). `runtime` picks
 * what runs it, or names the whole command (a task runner, a package's bin) that the flags follow.
 */
export async function startServer(
  flags: string[] = [],
  options: { env?: Record<string, string>; timeoutMs?: number; launcher?: string[]; runtime?: ServerRuntime | readonly string[] } = {},
): Promise<ServerProcess> {
  const defaults = [
    ...(flags.some((f) => f.startsWith("--address") || f === "-a") ? [] : ["--address", "127.0.0.1"]),
    ...(flags.some((f) => f.startsWith("--port") || f === "-p") ? [] : ["--port", "0"]),
    // Servers of different tests share a working directory: no shared state file unless asked.
    ...(flags.some((f) => f.startsWith("--state-file")) ? [] : ["--state-file", "none"]),
    ...etcdStoreFlags(flags),
  ];
  const child = spawnServer([...defaults, ...flags], options.env, options.launcher, options.runtime);
  const { output, exited } = collect(child);
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let match: RegExpMatchArray | null = null;
  let exit: Exit | undefined;
  exited.then((e) => (exit = e));
  while (!(match = output().match(/listening on http:\/\/(\[[^\]]+\]|[^:/]+):(\d+)\//))) {
    if (exit) throw new Error(`server exited (${exit.code ?? exit.signal}) before listening:\n${output()}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server did not listen within the time limit:\n${output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const host = match[1]!;
  const port = Number(match[2]);
  return {
    url: `http://${host}:${port}`,
    host: host.replace(/^\[|\]$/g, ""),
    port,
    child,
    exited,
    output,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      const started = performance.now();
      if (exit) return { ...exit, ms: 0 };
      // process.kill, not child.kill: Deno's child_process reports a child it
      // signalled itself as killed by that signal, whatever its real exit code.
      process.kill(child.pid!, signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const result = await exited;
      clearTimeout(timer);
      return { ...result, ms: performance.now() - started };
    },
  };
}

/** Runs the CLI to completion (for --help, bad config, port in use). */
export async function runCli(flags: string[], env: Record<string, string> = {}, timeoutMs = 20_000) {
  const stateless = flags.some((f) => f.startsWith("--state-file")) ? [] : ["--state-file", "none"];
  const child = spawnServer([...stateless, ...flags], env);
  const { output, exited } = collect(child);
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const exit = await exited;
  clearTimeout(timer);
  return { ...exit, output: output() };
}

/** Runs any program to completion and returns its exit code and output. */
export async function run(command: string, args: string[], input?: string, timeoutMs = 20_000) {
  const child = spawn(command, args, { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  if (input !== undefined) child.stdin!.end(input);
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c) => resolve(c));
  });
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/**
 * One server shared by the tests of a file, started by the first test that
 * asks. No before() hook: when a hook fails, Bun still reports the tests as
 * passed; a failed start here fails every test that needed the server.
 */
export function sharedServer(flags: string[] = [], options: { env?: Record<string, string> } = {}) {
  let started: Promise<ServerProcess> | undefined;
  return {
    get(): Promise<ServerProcess> {
      started ??= startServer(flags, options);
      return started;
    },
    async stop(): Promise<void> {
      const server = await started?.catch(() => undefined);
      await server?.stop();
    },
  };
}
