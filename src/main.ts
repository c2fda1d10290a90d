/**
 * The command-line program: flags, environment and config file -> createServer -> serve;
 * SIGINT/SIGTERM -> clean shutdown.
 *
 * Exit codes: 0 clean shutdown (or --help, --version, a good --check-config); 1 cannot listen
 * (port in use, address not available); 2 invalid flags, environment or
 * config, or a state file that cannot be written, reported on one line that
 * names the key, before anything listens.
 */
import process from "node:process";
import { type CliFlags, readFlags, settingsFromFlags, USAGE } from "./config/flags.ts";
import { ENV_CONFIG_FILE, mergeSettings, type Settings, settingsFromEnv } from "./config/settings.ts";
import { loadConfigFile } from "./config/config_file.ts";
import { loadPluginModules } from "./plugin/modules.ts";
import type { PluginRegistry } from "./plugin/registry.ts";
import type { Plugin } from "./plugin/api.ts";
import { consoleLogger, type Logger } from "./util/log.ts";
import { AddressInUseError, resolveDns, runtime, serve } from "./serve/mod.ts";
import { checkSettings, createServer, stateFileOf } from "./server.ts";
import { VERSION } from "./version.ts";

/** SIGINT/SIGTERM must end the process within 2 s, open requests or not: 1 s for them, 1 s of slack. */
const SHUTDOWN_GRACE_MS = 1000;

export const EXIT_OK = 0;
export const EXIT_CANNOT_LISTEN = 1;
export const EXIT_BAD_CONFIG = 2;

/** Flags, env and file, merged and validated; throws `ValidationError`. */
async function resolveSettings(flags: CliFlags, env: Record<string, string | undefined>): Promise<Settings> {
  const flagLayer = settingsFromFlags(flags);
  const configFile = flags.configFile ?? (env[ENV_CONFIG_FILE] || undefined);
  const fileLayer = configFile === undefined ? {} : await loadConfigFile(configFile);
  return mergeSettings(fileLayer, settingsFromEnv(env), flagLayer);
}

/** `--check-config`: one line that says what a start with these settings would run. */
async function configSummary(settings: Settings, registry: PluginRegistry, configFile: string | undefined): Promise<string> {
  const { plugins } = await checkSettings(settings, registry);
  const names = (list: Plugin[]) => list.length ? list.map((p) => `${p.name} (${p.kind})`).join(", ") : "none";
  // pluginsFromConfig builds the sources first, then the relays.
  const others = plugins.slice(0, settings.sources.length);
  const relays = plugins.slice(settings.sources.length);
  const store = settings.store === "etcd"
    ? `store etcd ${settings.etcdEndpoints.join(",")} ${settings.etcdPrefix}`
    : `state file ${stateFileOf(settings) ?? "none (memory only)"}`;
  return `config OK: ${configFile || "no config file"}; listen ${settings.address}:${settings.port}; ${store}; ` +
    `sources: ${names(others)}; relays: ${names(relays)}; tokens: ${settings.auth.tokens.length}`;
}

function fail(code: number, message: string): never {
  process.stderr.write(`chaos-signal: ${message}\n`);
  process.exit(code);
}

/** 127.0.0.0/8, ::1 and localhost: only this machine reaches them. */
function isLoopback(address: string): boolean {
  return /^127\./.test(address) || address === "::1" || address === "localhost";
}

function urlOf(hostname: string, port: number): string {
  return `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}/`;
}

export async function runCli(
  argv: readonly string[] = process.argv.slice(2),
  env: Record<string, string | undefined> = process.env,
  log: Logger = consoleLogger(),
): Promise<void> {
  const platform = runtime();
  let app;
  try {
    const flags = readFlags(argv);
    // Help and version answer whatever else is wrong.
    if (flags.help) return void process.stdout.write(USAGE);
    if (flags.version) return void process.stdout.write(`chaos-signal ${VERSION}\n`);
    const settings = await resolveSettings(flags, env);
    const registry = await loadPluginModules(settings.pluginModules);
    if (flags.checkConfig) return void process.stdout.write(`${await configSummary(settings, registry, flags.configFile ?? env[ENV_CONFIG_FILE])}\n`);
    app = await createServer({ settings, registry, log, runtime: `${platform.name} ${platform.version}`, resolveDns });
  } catch (error) {
    // By name: a plugin's own copy of the API throws its own class.
    const name = (error as Error)?.name;
    if (name === "ValidationError" || name === "StateWriteError") fail(EXIT_BAD_CONFIG, (error as Error).message);
    throw error;
  }
  const { settings } = app;
  // Sources start before the server listens, so the first GET already sees their claims
  // (a Prometheus source claims PAUSE until its first answer).
  app.start();
  if (!settings.auth.tokens.length && !isLoopback(settings.address)) {
    log.error(`warning: no bearer tokens are configured (chaos_signal.auth) and ${settings.address} is not a loopback address: anyone who reaches this port can PAUSE or STOP the chaos run`);
  }

  let server;
  try {
    server = await serve(app.fetch, {
      hostname: settings.address,
      port: settings.port,
      idleTimeoutMs: settings.idleTimeoutMs,
      onAcceptTrouble: (line) => log.error(line),
    });
  } catch (error) {
    const where = `${settings.address}:${settings.port}`;
    if (error instanceof AddressInUseError) {
      fail(EXIT_CANNOT_LISTEN, `cannot listen on ${where}: the port is already in use (a Krkn run with publish_kraken_status: True holds its own port; pick another with --port)`);
    }
    fail(EXIT_CANNOT_LISTEN, `cannot listen on ${where}: ${(error as Error).message}`);
  }

  let stopping = false;
  const shutdown = (signalName: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signalName}: shutting down`);
    // A deadline that waits on nothing else: a source stuck in a file-system call, or a response
    // that never ends, cannot hold the exit.
    setTimeout(() => process.exit(EXIT_OK), SHUTDOWN_GRACE_MS);
    Promise.allSettled([app.close(SHUTDOWN_GRACE_MS), server.close()]).finally(() => process.exit(EXIT_OK));
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  // Printed last: whoever waits for this line may signal us at once.
  log.info(`chaos-signal ${VERSION} (${platform.name} ${platform.version}) listening on ${urlOf(server.hostname, server.port)} signal ${app.store.signal}`);
}
