/**
 * The composition root: `createServer` builds everything a chaos-signal server is made of — the
 * signal's store on its backend (the state file or memory), the restore at start, the history,
 * the plugins, auth, the timed pause's expiry and the HTTP handler — and hands back the fetch
 * handler with its lifecycle. `runCli` and embedders both start here.
 */
import { dirname, join } from "node:path";
import { setTimeout } from "node:timers";
import { MANUAL_SOURCE } from "./core/snapshot.ts";
import { initialSnapshot, type Snapshot } from "./core/snapshot.ts";
import type { ClaimOptions } from "./core/change.ts";
import type { Signal } from "./core/signal.ts";
import { describeDecision, describeEvent, type Logger } from "./util/log.ts";
import { mergeSettings, type Settings, type SettingsLayer } from "./config/settings.ts";
import type { StateBackend } from "./state/backend.ts";
import { FileBackend } from "./state/file_backend.ts";
import { MemoryBackend } from "./state/memory_backend.ts";
import { EtcdBackend } from "./state/etcd/etcd_backend.ts";
import { EtcdClient, type EtcdClientOptions, redact } from "./state/etcd/client.ts";
import { Election } from "./state/etcd/election.ts";
import { hostname } from "node:os";
import process from "node:process";
import { readFile } from "node:fs/promises";
import { StateFileError } from "./state/state_file.ts";
import { NotSavedError, SignalStore } from "./state/signal_store.ts";
import { PauseExpiry } from "./state/expiry.ts";
import { History } from "./state/history.ts";
import { EtcdHistory, SHARED_HISTORY_MAX_ENTRIES } from "./state/etcd/etcd_history.ts";
import { PluginHost } from "./plugin/host.ts";
import { RepeatedFailures } from "./util/repeated_failures.ts";
import { type Plugin, runsOnLeader } from "./plugin/api.ts";
import { Auth } from "./http/auth.ts";
import { createHandler, type SignalHandler } from "./http/app.ts";
import type { SubscriberCounts } from "./push/hub.ts";
import type { StoreStatus } from "./http/status.ts";
import { alertmanagerSource, fileSource, prometheusSource, relay, webhookSource } from "../plugins/mod.ts";
import { BUILTIN_REGISTRY, type PluginRegistry, pluginsFromConfig } from "./plugin/registry.ts";
import { VERSION } from "./version.ts";
import { resolveDns, runtime } from "./serve/mod.ts";
import type { ResolveDns } from "./serve/types.ts";
import { type TlsFetch, tlsFetch, type TlsFiles } from "./serve/mod.ts";
import { FileRefusedError, readRegularFile } from "./util/bounded_file.ts";

export interface ServerOptions {
  /** Over DEFAULT_SETTINGS; `stateFile: "none"` (or `off`) keeps the state in memory only. */
  readonly settings?: SettingsLayer;
  /** @default the sources and relays of `settings`, built from `registry` */
  readonly plugins?: readonly Plugin[];
  /** The plugin types `settings` may name (runCli adds the config file's modules). @default the built-ins */
  readonly registry?: PluginRegistry;
  /** @default a FileBackend on settings.stateFile, or a MemoryBackend for none */
  readonly backend?: StateBackend;
  /** @default quiet: nothing is logged */
  readonly log?: Logger;
  /** Clock, replaceable in tests. @default () => new Date() */
  readonly now?: () => Date;
  /** How often `GET /events` sends a keep-alive comment. @default 15000 */
  readonly heartbeatMs?: number;
  /** Shown in `/status`. @default "unknown" */
  readonly runtime?: string;
  /** DNS for relays' `targets_dns`. @default the runtime's resolver (src/serve/mod.ts) */
  readonly resolveDns?: ResolveDns;
  /** Makes the etcd client's fetch for `ca_file`/`cert_file`/`key_file`. @default the runtime's (serve/mod.ts) */
  readonly tlsFetch?: (files: TlsFiles) => Promise<TlsFetch>;
}

export interface ChaosSignalServer {
  /** The HTTP API: give it to `serve` (or call it directly). */
  readonly fetch: SignalHandler;
  readonly settings: Settings;
  readonly store: SignalStore;
  readonly plugins: PluginHost;
  readonly history: History;
  /** A claim by `source`, like a plugin's (a PAUSE or STOP at once, a RUN once saved). */
  claim(source: string, state: Signal, reason: string, options?: ClaimOptions): Promise<Signal>;
  release(source: string, reason: string, options?: ClaimOptions): Promise<Signal>;
  subscribers(): SubscriberCounts;
  /** Starts the sources and the timed pause's expiry: call it before listening. */
  start(): void;
  /** Ends streams and long-polls, stops the sources, writes the state a last time and the history. */
  close(graceMs?: number): Promise<void>;
}

/** The state cannot be written where it was asked for: the start fails (exit 2). */
export class StateWriteError extends Error {
  override readonly name = "StateWriteError";
}

/** The state file's path, or undefined for `none`/`off` (memory only). */
export function stateFileOf(settings: Settings): string | undefined {
  return /^(none|off)$/i.test(settings.stateFile) ? undefined : settings.stateFile;
}

/** A PEM file of the etcd TLS settings is at most this large (a certificate chain is a few KiB). */
const MAX_TLS_FILE_BYTES = 1024 * 1024;

/** Reads the etcd TLS files named in `settings` (none: undefined); a file that cannot be read names its key. */
async function etcdTlsFilesOf(settings: Settings): Promise<TlsFiles | undefined> {
  const keys = [["ca", "ca_file", settings.etcdCaFile], ["cert", "cert_file", settings.etcdCertFile], ["key", "key_file", settings.etcdKeyFile]] as const;
  if (keys.every(([, , file]) => file === undefined)) return undefined;
  if ((settings.etcdCertFile === undefined) !== (settings.etcdKeyFile === undefined)) {
    throw new StateWriteError("store.cert_file and store.key_file: give both (a client certificate and its key) or neither");
  }
  const files: Record<string, string> = {};
  for (const [name, key, file] of keys) {
    if (file === undefined) continue;
    let text: string;
    try {
      text = await readRegularFile(file, MAX_TLS_FILE_BYTES);
    } catch (error) {
      const why = error instanceof FileRefusedError ? error.detail : (error as { code?: string }).code ?? String(error);
      throw new StateWriteError(`store.${key} ${file}: cannot read it (${why})`);
    }
    if (!text.includes("-----BEGIN ")) throw new StateWriteError(`store.${key} ${file}: not a PEM file (no -----BEGIN line)`);
    files[name] = text;
  }
  return files;
}

/** `store: etcd`: the backend on the configured endpoints (a password file and TLS files are read now). */
async function etcdClientOptionsOf(settings: Settings, makeTlsFetch: (files: TlsFiles) => Promise<TlsFetch>): Promise<EtcdClientOptions> {
  if (settings.etcdEndpoints.length === 0) throw new StateWriteError("store etcd: needs endpoints (chaos_signal.store.endpoints, --etcd-endpoints or CHAOS_SIGNAL_ETCD_ENDPOINTS)");
  let password = settings.etcdPassword;
  if (settings.etcdPasswordFile !== undefined) {
    try {
      password = (await readFile(settings.etcdPasswordFile, "utf8")).trim();
    } catch (error) {
      throw new StateWriteError(`store.password_file ${settings.etcdPasswordFile}: cannot read it (${(error as { code?: string }).code ?? error})`);
    }
  }
  const tls = await etcdTlsFilesOf(settings);
  let fetch: TlsFetch | undefined;
  try {
    fetch = tls && await makeTlsFetch(tls);
  } catch (error) {
    // A key that does not match its certificate, a PEM the runtime cannot parse.
    throw new StateWriteError(`store ca_file/cert_file/key_file: ${(error as Error).message ?? error}`);
  }
  return {
    endpoints: settings.etcdEndpoints,
    ...(settings.etcdUsername === undefined ? {} : { username: settings.etcdUsername }),
    ...(password === undefined ? {} : { password }),
    ...(fetch === undefined ? {} : { fetch }),
  };
}

/**
 * What a start checks before it touches the state, for `--check-config`: the sources and relays
 * (their options), and the store's settings (etcd endpoints, a password file that can be read).
 * Nothing listens, connects or writes.
 */
export async function checkSettings(settings: Settings, registry: PluginRegistry = BUILTIN_REGISTRY): Promise<{ plugins: Plugin[] }> {
  const plugins = pluginsFromConfig(settings, registry);
  if (settings.store === "etcd") await etcdClientOptionsOf(settings, tlsFetch);
  return { plugins };
}

/** The lease's time to live: a dead or cut-off leader's work moves to another replica within it (+ TTL/3). */
export const LEADER_TTL_SECONDS = 3;

/**
 * `store: etcd`: the leader election among the replicas, on a client of its own whose calls are
 * bounded by a third of the lease (a member that hangs is left in time to keep the lease).
 */
function electionOf(settings: Settings, clientOptions: EtcdClientOptions, onChange: (leading: boolean) => void, log: Logger): Election {
  const client = new EtcdClient({ ...clientOptions, timeoutMs: (LEADER_TTL_SECONDS * 1000) / 3 });
  return new Election({
    client,
    key: `${settings.etcdPrefix.replace(/\/+$/, "")}/leader`,
    replicaId: settings.replicaId ?? `${hostname()}:${process.pid}`,
    ttlSeconds: LEADER_TTL_SECONDS,
    onChange,
    log: (line) => log.info(line),
  });
}

/** `/status`'s `store`: where the signal is shared, and whether this replica is current with it. */
function storeStatus(backend: EtcdBackend, store: SignalStore, election: Election): StoreStatus {
  const health = backend.health();
  const leadership = election.status();
  return {
    type: "etcd",
    endpoints: backend.client.endpoints.map(redact),
    key: backend.key,
    current: store.current,
    last_contact: health.lastContact?.toISOString() ?? null,
    revision: store.revision,
    replica: leadership.replica,
    leader: leadership.leader,
    leading: leadership.leading,
    ...(health.detail === undefined ? {} : { detail: health.detail }),
  };
}

const quiet: Logger = { info: () => {}, error: () => {} };

export async function createServer(options: ServerOptions = {}): Promise<ChaosSignalServer> {
  const settings = mergeSettings(options.settings ?? {});
  const log = options.log ?? quiet;
  const now = options.now ?? (() => new Date());
  const plugins = options.plugins ?? pluginsFromConfig(settings, options.registry ?? BUILTIN_REGISTRY);
  const stateFile = stateFileOf(settings);
  const etcdOptions = options.backend || settings.store !== "etcd" ? undefined : await etcdClientOptionsOf(settings, options.tlsFetch ?? tlsFetch);
  const etcdBackend = etcdOptions &&
    new EtcdBackend({ ...etcdOptions, prefix: settings.etcdPrefix, maxStalenessMs: settings.maxStalenessMs });
  const fileBackend = options.backend || etcdBackend ? undefined : stateFile === undefined ? undefined : new FileBackend(stateFile);
  const backend: StateBackend = options.backend ?? etcdBackend ?? fileBackend ?? new MemoryBackend();

  // The saved state, if it can be read. A file that cannot be read starts the server paused, set
  // aside for inspection: a crash must never turn PAUSE or STOP into RUN.
  let saved: { snapshot: Snapshot | null; revision: string; savedAt?: Date } = { snapshot: null, revision: "0" };
  let unreadable: string | undefined;
  try {
    saved = await backend.load();
  } catch (error) {
    // A replica that cannot reach etcd does not start (its orchestrator retries): one line, exit 2.
    if (etcdBackend) throw new StateWriteError(`store etcd: cannot read ${etcdBackend.key} (${(error as Error).message})`, { cause: error });
    if (!(error instanceof StateFileError) || !fileBackend) throw error;
    const aside = await fileBackend.setAside().catch(() => undefined);
    const moved = aside ? `; the file was moved to ${aside}` : "";
    if (settings.onUnreadableState === "run") {
      log.error(`${backend.where} is unreadable (${error.message}); starting from signal_state (on_unreadable_state: run)${moved}`);
    } else {
      log.error(`${backend.where} is unreadable (${error.message}); starting PAUSED${moved}`);
      unreadable = error.message;
    }
  }

  // A failing disk fails every retry the same way: the log says it once a minute, /status always.
  const repeated = new RepeatedFailures();
  const store = new SignalStore(backend, { snapshot: initialSnapshot(settings.state, now()), revision: saved.revision }, {
    now,
    onListenerError: (error) => log.error(`listener failed: ${error}`),
    onFailure: (error) => {
      const line = repeated.line(`saving ${backend.where} failed (${error.message}); the signal holds, the save is retried`, Date.now());
      if (line !== undefined) log.error(line);
    },
    onRecovery: (failures, since) => log.info(`saved ${backend.where} again, after ${failures} failed write${failures === 1 ? "" : "s"} since ${since.toISOString()}`),
  });
  store.subscribe((event) => log.info(describeEvent(event)));
  // The history sits beside the state file, and follows before the state is restored. With etcd
  // it is kept in etcd (written by the replica that made a change) and follows after the restore:
  // a replica that starts changes nothing others have not seen.
  let sharedHistory: EtcdHistory | undefined;
  const history = new History({
    ...(stateFile === undefined || etcdBackend ? {} : { logFile: join(dirname(stateFile), "history.jsonl") }),
    onError: (error) => log.error(`writing the history failed: ${error}`),
    onSetAside: (message) => log.error(message),
    ...(etcdBackend ? { share: (entry) => sharedHistory?.share(entry), shared: () => sharedHistory?.flushed() ?? Promise.resolve(), maxEntries: SHARED_HISTORY_MAX_ENTRIES } : {}),
  });
  if (etcdBackend) {
    sharedHistory = new EtcdHistory({ client: etcdBackend.client, prefix: settings.etcdPrefix, history, onError: (message) => log.error(message) });
    try {
      await sharedHistory.start();
    } catch (error) {
      throw new StateWriteError(`store etcd: cannot read the history under ${sharedHistory.keyPrefix} (${(error as Error).message})`, { cause: error });
    }
  } else {
    await history.load();
    history.follow(store);
  }

  if (saved.snapshot) {
    await store.submit({ kind: "restore", saved: saved.snapshot, sources: plugins.map((plugin) => plugin.name) });
    const when = saved.savedAt ? ` (saved ${saved.savedAt.toISOString()})` : "";
    log.info(`restored ${store.signal} from ${backend.where}${when}: held by ${describeDecision(store.snapshot())}`);
    // The saved state wins (a STOP must survive a restart): say so when the configured one differs.
    if (settings.state !== "RUN" && settings.state !== store.signal) {
      log.error(`warning: signal_state ${settings.state} is not applied: it sets the signal only when nothing is saved, and ${backend.where} holds ${store.signal} (POST /${settings.state} to change it)`);
    }
  } else if (unreadable !== undefined) {
    await store.claim(MANUAL_SOURCE, "PAUSE", `state file unreadable (${unreadable}): paused until a person says RUN`);
  }
  if (sharedHistory) history.follow(store);
  if (fileBackend) {
    const leftovers = await fileBackend.removeUnfinishedWrites();
    if (leftovers.length) log.info(`removed ${leftovers.join(", ")}: writes a stopped server never finished`);
  }
  // A place that cannot be written is an error now, not at the first POST.
  try {
    await store.flush({ always: true });
  } catch (error) {
    // Other replicas committing all the time: etcd answers, so this one starts; the write is retried.
    if (etcdBackend && error instanceof NotSavedError && error.contended) {
      log.info(`${(error as Error).message}: the start's write is retried`);
    } else if (etcdBackend) {
      throw new StateWriteError(`store etcd: cannot write ${etcdBackend.key} (${(error as Error).message ?? error})`, { cause: error });
    } else {
      throw new StateWriteError(`--state-file ${backend.where}: cannot write it (${(error as { code?: string }).code ?? error}); give a writable place, or none`, { cause: error });
    }
  }

  // Sources read their restored claims (a receiver's memo) from here.
  // With etcd, work done once (polling sources, relays, the timed pause's end) goes on the leader only.
  const host = new PluginHost(store, plugins, {
    log: (line) => log.info(line),
    restored: store.snapshot().claims,
    resolveDns: options.resolveDns ?? resolveDns,
    audit: (note) => history.note(note),
    ...(etcdBackend ? { leaderOnly: runsOnLeader } : {}),
  });
  const expiry = new PauseExpiry(store);
  const election = etcdOptions
    ? electionOf(settings, etcdOptions, (leading) => {
      host.lead(leading);
      if (leading) expiry.start();
      else expiry.stop();
    }, log)
    : undefined;
  const auth = new Auth(settings.auth.tokens, { protectReads: settings.auth.protectReads });
  const fetch = createHandler({
    store,
    history,
    auth,
    plugins: host,
    pluginTypes: [fileSource, webhookSource, alertmanagerSource, prometheusSource, relay],
    version: VERSION,
    runtime: options.runtime ?? "unknown",
    freshResponses: runtime().name === "node",
    now,
    maxBodyBytes: settings.maxBodyBytes,
    allowedOrigins: settings.allowedOrigins,
    ...(fileBackend || etcdBackend ? { stateHealth: () => store.health() } : {}),
    ...(etcdBackend && election ? { storeHealth: () => storeStatus(etcdBackend, store, election) } : {}),
    ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
    onError: (error, request) => log.error(`${request.method} ${request.url} failed: ${(error as Error)?.stack ?? error}`),
  });

  return {
    fetch,
    settings,
    store,
    plugins: host,
    history,
    claim: (source, state, reason, claimOptions) => store.claim(source, state, reason, claimOptions),
    release: (source, reason, claimOptions) => store.release(source, reason, claimOptions),
    subscribers: () => fetch.subscribers(),
    start() {
      // Sources start before the server listens, so the first GET already sees their claims.
      host.start();
      if (election) election.start();
      else expiry.start();
    },
    async close(graceMs = 1000) {
      // End event streams and answer long-polls first: a graceful shutdown waits for open responses.
      fetch.close();
      expiry.stop();
      // The lead is given up at once (lease revoked): another replica takes over without waiting out the TTL.
      const resigned = election?.stop();
      // A claim whose save is still under way is written before the end (within the grace).
      await Promise.allSettled([host.stop(graceMs / 2), store.close(graceMs * 0.8)]);
      await Promise.race([Promise.all([history.flushed(), sharedHistory?.flushed()]), new Promise((resolve) => setTimeout(resolve, graceMs / 2).unref?.())]);
      sharedHistory?.close();
      await resigned;
      etcdBackend?.close();
    },
  };
}
