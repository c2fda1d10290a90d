/**
 * The command-line program: flags, environment and config file -> arbiter
 * -> handler -> server; SIGINT/SIGTERM -> clean shutdown.
 *
 * Exit codes: 0 clean shutdown (or --help, --version); 1 cannot listen
 * (port in use, address not available); 2 invalid flags, environment or
 * config, reported on one line that names the key, before anything listens.
 */
import process from "node:process";
import { Arbiter, MANUAL_SOURCE } from "./core/arbiter.ts";
import { StateFileError, StateStore } from "./state/state_store.ts";
import { type CliFlags, readFlags, settingsFromFlags, USAGE } from "./config/flags.ts";
import { ENV_CONFIG_FILE, mergeSettings, type Settings, settingsFromEnv } from "./config/settings.ts";
import { loadConfigFile } from "./config/config_file.ts";
import { dirname, join } from "node:path";
import { Auth } from "./http/auth.ts";
import { History } from "./state/history.ts";
import { createHandler } from "./http/app.ts";
import { PluginHost, RepeatedWarnings, REPEAT_LOG_INTERVAL_MS } from "./plugin/host.ts";
import { alertmanagerSource, fileSource, prometheusSource, relay, webhookSource } from "../plugins/mod.ts";
import { pluginsFromConfig } from "./plugin/registry.ts";
import { loadPluginModules } from "./plugin/modules.ts";
import { consoleLogger, describeEvent, type Logger } from "./util/log.ts";
import { AddressInUseError, runtime, serve } from "./serve/mod.ts";
import type { Plugin } from "./plugin/api.ts";
import { ValidationError } from "./config/validation.ts";
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

function fail(code: number, message: string): never {
  process.stderr.write(`chaos-signal: ${message}\n`);
  process.exit(code);
}

/** The state file's path, or undefined for `none`/`off` (memory only). */
function stateFileOf(settings: Settings): string | undefined {
  return /^(none|off)$/i.test(settings.stateFile) ? undefined : settings.stateFile;
}

/**
 * Opens the state file and puts its claims and latch back (those of sources
 * that still exist). A file that cannot be read starts the server paused, set
 * aside for inspection: a crash must never turn PAUSE or STOP into RUN. A place
 * that cannot be written is an error now, not at the first POST.
 */
async function openStateStore(settings: Settings, arbiter: Arbiter, sources: readonly Plugin[], log: Logger) {
  const path = stateFileOf(settings);
  if (path === undefined) return undefined;
  // A failing disk fails every retry the same way: the log says it once a minute, /status always.
  const repeated = new RepeatedWarnings(REPEAT_LOG_INTERVAL_MS);
  const store = new StateStore(path, {
    onFailure: (error) => {
      const line = repeated.line(`saving ${path} failed (${error.message}); the signal holds, the save is retried`, Date.now());
      if (line !== undefined) log.error(line);
    },
    onRecovery: (failures, since) => log.info(`saved ${path} again, after ${failures} failed write${failures === 1 ? "" : "s"} since ${since.toISOString()}`),
  });
  const known = new Set(sources.map((source) => source.name));
  try {
    const saved = await store.load();
    if (saved) {
      arbiter.restore(saved, { keep: (source) => known.has(source) });
      log.info(`restored ${arbiter.signal} from ${store.path} (saved ${saved.savedAt.toISOString()})`);
    }
  } catch (error) {
    if (!(error instanceof StateFileError)) throw error;
    const aside = await store.setAside().catch(() => undefined);
    const moved = aside ? `; the file was moved to ${aside}` : "";
    if (settings.onUnreadableState === "run") {
      log.error(`${store.path} is unreadable (${error.message}); starting from signal_state (on_unreadable_state: run)${moved}`);
    } else {
      log.error(`${store.path} is unreadable (${error.message}); starting PAUSED${moved}`);
      arbiter.claim(MANUAL_SOURCE, "PAUSE", `state file unreadable (${error.message}): paused until a person says RUN`);
    }
  }
  const leftovers = await store.removeUnfinishedWrites();
  if (leftovers.length) log.info(`removed ${leftovers.join(", ")}: writes a stopped server never finished`);
  try {
    await store.save(() => arbiter.snapshot());
  } catch (error) {
    fail(EXIT_BAD_CONFIG, `--state-file ${store.path}: cannot write it (${(error as { code?: string }).code ?? error}); give a writable place, or none`);
  }
  // Sources' claims are saved too, not awaited here: a receiver's route awaits its own save
  // (SourceContext.saved) before it answers.
  arbiter.subscribe((event) => {
    if (event.type === "change" || event.claim.source !== MANUAL_SOURCE) {
      // A failure is logged (and retried) by the store.
      store.save(() => arbiter.snapshot()).catch(() => {});
    }
  });
  return store;
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
  let settings: Settings;
  let sources: Plugin[];
  try {
    const flags = readFlags(argv);
    // Help and version answer whatever else is wrong.
    if (flags.help) return void process.stdout.write(USAGE);
    if (flags.version) return void process.stdout.write(`chaos-signal ${VERSION}\n`);
    settings = await resolveSettings(flags, env);
    sources = pluginsFromConfig(settings, await loadPluginModules(settings.pluginModules));
  } catch (error) {
    if (error instanceof ValidationError) fail(EXIT_BAD_CONFIG, error.message);
    throw error;
  }

  const platform = runtime();
  const arbiter = new Arbiter({
    initialSignal: settings.state,
    onListenerError: (error) => log.error(`listener failed: ${error}`),
  });
  arbiter.subscribe((event) => log.info(describeEvent(event)));
  // The history sits beside the state file, and follows before the state is restored.
  const stateFile = stateFileOf(settings);
  const history = new History({
    ...(stateFile === undefined ? {} : { logFile: join(dirname(stateFile), "history.jsonl") }),
    onError: (error) => log.error(`writing the history failed: ${error}`),
    onSetAside: (message) => log.error(message),
  });
  await history.load();
  history.follow(arbiter);
  const store = await openStateStore(settings, arbiter, sources, log);
  // Built after the restore: a source reads its restored claim from here. Receivers answer 2xx
  // only once save() has their claim on disk.
  const plugins = new PluginHost(arbiter, sources, {
    log: (line) => log.info(line),
    ...(store ? { save: () => store.save(() => arbiter.snapshot()) } : {}),
  });
  // Sources start before the server listens, so the first GET already sees their claims
  // (a Prometheus source claims PAUSE until its first answer).
  plugins.start();
  const auth = new Auth(settings.auth.tokens, { protectReads: settings.auth.protectReads });
  if (!auth.enabled && !isLoopback(settings.address)) {
    log.error(`warning: no bearer tokens are configured (chaos_signal.auth) and ${settings.address} is not a loopback address: anyone who reaches this port can PAUSE or STOP the chaos run`);
  }
  const handler = createHandler({
    history,
    ...(store
      ? { persist: (plan) => store.commit(plan), save: () => store.save(() => arbiter.snapshot()), stateHealth: () => store.health() }
      : {}),
    auth,
    plugins,
    pluginTypes: [fileSource, webhookSource, alertmanagerSource, prometheusSource, relay],
    arbiter,
    version: VERSION,
    runtime: `${platform.name} ${platform.version}`,
    maxBodyBytes: settings.maxBodyBytes,
    allowedOrigins: settings.allowedOrigins,
    onError: (error, request) => log.error(`${request.method} ${request.url} failed: ${(error as Error)?.stack ?? error}`),
  });

  let server;
  try {
    server = await serve(handler, {
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
    // End event streams and answer long-polls first: the runtimes' graceful shutdown waits for open responses.
    handler.close();
    // A deadline that waits on nothing else: a source stuck in a file-system call, or a response
    // that never ends, cannot hold the exit.
    setTimeout(() => process.exit(EXIT_OK), SHUTDOWN_GRACE_MS);
    // A source's claim whose save is still under way is written before the exit (within the grace).
    const saving = store?.save(() => arbiter.snapshot());
    Promise.allSettled([plugins.stop(SHUTDOWN_GRACE_MS / 2), server.close(), saving]).finally(() => process.exit(EXIT_OK));
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  // Printed last: whoever waits for this line may signal us at once.
  log.info(`chaos-signal ${VERSION} (${platform.name} ${platform.version}) listening on ${urlOf(server.hostname, server.port)} signal ${arbiter.signal}`);
}
