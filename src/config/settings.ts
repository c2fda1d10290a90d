/**
 * Settings and where they come from.
 *
 * One config file serves Krkn and chaos-signal: Krkn's `kraken:` keys
 * `port`, `signal_address` and `signal_state` mean the same here, every other
 * Krkn key is ignored, and chaos-signal's own settings live under
 * `chaos_signal:`, where an unknown key is an error (a typo must not pass).
 *
 * Precedence, highest first: command-line flags, environment variables, the
 * config file, the defaults (Krkn's: 8081, 0.0.0.0, RUN). Each layer is
 * validated on its own so an error names the key exactly as the user wrote
 * it: `--port`, `CHAOS_SIGNAL_PORT` or `kraken.port`.
 */
import { isIP } from "node:net";
import { dirname, resolve } from "node:path";
import * as v from "valibot";
import { AuthSchema, type NamedToken } from "./auth.ts";
import { durationSchema } from "./duration.ts";
import { DEFAULT_MAX_BODY_BYTES } from "./schemas.ts";
import { DEFAULT_IDLE_TIMEOUT_MS } from "../serve/types.ts";
import { type Signal, SIGNALS } from "../core/signal.ts";
import { ALLOWED_ORIGINS_TEXT_RULE, AllowedOriginsSchema, AllowedOriginsTextSchema } from "./origins.ts";
import { closestKey, httpUrl, looseSection, parseWith, strictSection, ValidationError } from "./validation.ts";
import { BODY_RULE, integer, MaxBodyBytesSchema } from "./schemas.ts";

export { MaxBodyBytesSchema };

export interface Settings {
  /** TCP port; 0 lets the system pick a free one. */
  readonly port: number;
  /** Listen address (IP or host name). */
  readonly address: string;
  /** The `manual` source's initial claim. */
  readonly state: Signal;
  readonly maxBodyBytes: number;
  /** Where the claims and the latch are kept across restarts; `none` keeps them in memory only. */
  readonly stateFile: string;
  /** What an unreadable state file at start means: `pause` (safe) or `run`. */
  readonly onUnreadableState: "pause" | "run";
  /** Signal sources from the config file, validated by their plugins when built. */
  readonly sources: readonly SourceSetting[];
  /** Relays from the config file (`chaos_signal.relays`), validated when built. */
  readonly relays: readonly SourceSetting[];
  /** Named bearer tokens (`chaos_signal.auth`); none = no authentication. */
  readonly auth: { readonly tokens: readonly NamedToken[]; readonly protectReads: boolean };
  /** Origins whose pages may change the signal besides the server's own (`chaos_signal.allowed_origins`). */
  readonly allowedOrigins: readonly string[];
  /** A connection quiet this long is closed (`chaos_signal.idle_timeout`); long-polls and event streams excepted. */
  readonly idleTimeoutMs: number;
  /** Modules to import plugin types from (`chaos_signal.plugins`), before the sources are built. */
  readonly pluginModules: readonly PluginModuleSetting[];
  /** Where the signal lives: `file` (state_file, one process) or `etcd` (shared by replicas). */
  readonly store: "file" | "etcd";
  /** etcd client URLs (`chaos_signal.store.endpoints`). */
  readonly etcdEndpoints: readonly string[];
  /** The etcd key prefix of this deployment's signals. */
  readonly etcdPrefix: string;
  /** Without a confirmed contact with etcd for this long, a replica serves PAUSE. */
  readonly maxStalenessMs: number;
  readonly etcdUsername?: string;
  readonly etcdPassword?: string;
  /** A file holding the etcd password (read at start). */
  readonly etcdPasswordFile?: string;
  /** This replica's id in the leader election. @default hostname:pid */
  readonly replicaId?: string;
  /** TLS to etcd (read at start): the CA that signed etcd's certificate, besides the system ones. */
  readonly etcdCaFile?: string;
  /** TLS to etcd: this replica's client certificate and its key (etcd's --client-cert-auth). */
  readonly etcdCertFile?: string;
  readonly etcdKeyFile?: string;
}

/** One entry of `chaos_signal.plugins`: a module that exports plugin factories. */
export interface PluginModuleSetting {
  /** As written: `./plugins/tcp.ts`, `npm:some-package`. */
  readonly specifier: string;
  /** Where it was written, for error messages: `config.yaml: chaos_signal.plugins[0]`. */
  readonly where: string;
  /** What a relative path is relative to: the config file's directory. */
  readonly baseDir: string;
}

/** One entry of `chaos_signal.sources`: its `type` names the plugin, the rest are its options. */
export interface SourceSetting {
  /** Where it was written, for error messages: `config.yaml: chaos_signal.sources[2]`. */
  readonly where: string;
  readonly entry: { readonly type: string } & Readonly<Record<string, unknown>>;
}

/** The state file's default place, relative to the working directory. */
export const DEFAULT_STATE_FILE = ".chaos-signal/state.json";

export const DEFAULT_SETTINGS: Settings = {
  port: 8081,
  address: "0.0.0.0",
  state: "RUN",
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  stateFile: DEFAULT_STATE_FILE,
  onUnreadableState: "pause",
  sources: [],
  relays: [],
  auth: { tokens: [], protectReads: false },
  allowedOrigins: [],
  idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
  pluginModules: [],
  store: "file",
  etcdEndpoints: [],
  etcdPrefix: "/chaos-signal/default",
  maxStalenessMs: 3000,
};

const PORT_RULE = "an integer from 0 to 65535 (0 picks a free port)";
const ADDRESS_RULE = "an IPv4 or IPv6 address or a host name, such as 0.0.0.0, 127.0.0.1, :: or localhost";
const STATE_RULE = `one of ${SIGNALS.join(", ")} (any letter case)`;
const KRAKEN_STATE_RULE = `one of ${SIGNALS.join(", ")} in capitals: Krkn reads the same key and compares the exact words`;
const STATE_FILE_RULE = "a file path, or none to keep the state in memory only";
const STORE_RULE = "file (the state file, one process; the default) or etcd (one signal shared by several replicas)";
const ETCD_ENDPOINTS_RULE = "etcd client URLs such as http://10.0.0.11:2379, comma-separated";
const REPLICA_ID_RULE = "1 to 128 letters, digits, _ . : @ or -, unique to this replica";
const ETCD_PREFIX_RULE = "an etcd key prefix starting with /, such as /chaos-signal/default";
const ETCD_CA_FILE_RULE = "a PEM file with the certificate authority that signed etcd's certificate";
const ETCD_CERT_FILE_RULE = "a PEM file with this replica's client certificate for etcd";
const ETCD_KEY_FILE_RULE = "a PEM file with the key of this replica's client certificate for etcd";
const PLUGIN_MODULE_RULE = "a module to import plugins from: a path relative to the config file (./plugins/tcp.ts) or a package (npm:name)";


/** What each setting allows, for messages about flags given without a value. */
export const SETTING_RULES: Record<StringSetting, string> = {
  port: PORT_RULE,
  address: ADDRESS_RULE,
  state: STATE_RULE,
  maxBodyBytes: BODY_RULE,
  stateFile: STATE_FILE_RULE,
  allowedOrigins: ALLOWED_ORIGINS_TEXT_RULE,
  store: STORE_RULE,
  etcdEndpoints: ETCD_ENDPOINTS_RULE,
  etcdPrefix: ETCD_PREFIX_RULE,
  etcdCaFile: ETCD_CA_FILE_RULE,
  etcdCertFile: ETCD_CERT_FILE_RULE,
  etcdKeyFile: ETCD_KEY_FILE_RULE,
};

/** The settings that flags and environment variables can give as strings. */
export type StringSetting = Exclude<
  keyof Settings,
  "sources" | "relays" | "auth" | "onUnreadableState" | "idleTimeoutMs" | "pluginModules" | "maxStalenessMs" | "etcdUsername" | "etcdPassword" | "etcdPasswordFile" | "replicaId"
>;

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

function isListenAddress(text: string): boolean {
  return isIP(text) !== 0 || HOST_NAME.test(text);
}

export const PortSchema = integer(PORT_RULE, 0, 65535);
export const AddressSchema = v.pipe(
  v.string(ADDRESS_RULE),
  v.trim(),
  // `[::1]` is how people write IPv6 in URLs; listen on `::1`.
  v.transform((text) => text.replace(/^\[(.*)\]$/, "$1")),
  v.check(isListenAddress, ADDRESS_RULE),
);
export const StateSchema = v.pipe(
  v.string(STATE_RULE),
  v.trim(),
  v.toUpperCase(),
  v.picklist(SIGNALS, STATE_RULE),
);
export const StoreSchema = v.pipe(v.string(STORE_RULE), v.trim(), v.toLowerCase(), v.picklist(["file", "etcd"], STORE_RULE));

/** No `user:password@` in a URL: credentials go in username/password, where /status never shows them. */
const EtcdEndpointSchema = v.pipe(v.string(ETCD_ENDPOINTS_RULE), v.trim(), httpUrl(`${ETCD_ENDPOINTS_RULE}, without user:password@ (use username and password)`));
export const EtcdEndpointsSchema = v.pipe(v.array(EtcdEndpointSchema, ETCD_ENDPOINTS_RULE), v.minLength(1, ETCD_ENDPOINTS_RULE));
export const EtcdEndpointsTextSchema = v.pipe(
  v.string(ETCD_ENDPOINTS_RULE),
  v.transform((text) => text.split(",").map((item) => item.trim()).filter((item) => item !== "")),
  EtcdEndpointsSchema,
);

export const EtcdPrefixSchema = v.pipe(v.string(ETCD_PREFIX_RULE), v.trim(), v.regex(/^\/\S*$/, ETCD_PREFIX_RULE));

const filePath = (rule: string) => v.pipe(v.string(rule), v.trim(), v.nonEmpty(rule));

/** `chaos_signal.store`. */
const StoreSection = strictSection({
  type: v.optional(StoreSchema),
  endpoints: v.optional(EtcdEndpointsSchema),
  prefix: v.optional(EtcdPrefixSchema),
  max_staleness: v.optional(durationSchema(300, 600_000)),
  username: v.optional(v.pipe(v.string("an etcd user name"), v.nonEmpty("an etcd user name"))),
  password: v.optional(v.string("the etcd user's password")),
  password_file: v.optional(v.pipe(v.string("a file holding the etcd user's password"), v.nonEmpty("a file holding the etcd user's password"))),
  replica_id: v.optional(v.pipe(v.string(REPLICA_ID_RULE), v.trim(), v.regex(/^[\w.:@-]{1,128}$/, REPLICA_ID_RULE))),
  ca_file: v.optional(filePath(ETCD_CA_FILE_RULE)),
  cert_file: v.optional(filePath(ETCD_CERT_FILE_RULE)),
  key_file: v.optional(filePath(ETCD_KEY_FILE_RULE)),
}, "a mapping with type: file|etcd and, for etcd, endpoints:, prefix:, max_staleness:, username:, password:, password_file:, replica_id:, ca_file:, cert_file: or key_file:");

export const StateFileSchema = v.pipe(v.string(STATE_FILE_RULE), v.trim(), v.nonEmpty(STATE_FILE_RULE));

/**
 * Krkn's section: our three keys validated, the rest of Krkn's keys ignored.
 * `signal_state` must be exact here: Krkn serves `pause` as written and its
 * runner, comparing with == "PAUSE", would run; one file must mean one thing.
 */
const KrakenSection = looseSection({
  port: v.optional(PortSchema),
  signal_address: v.optional(AddressSchema),
  signal_state: v.optional(v.picklist(SIGNALS, KRAKEN_STATE_RULE)),
}, "a mapping (Krkn's kraken: section)");

/** A source entry: the plugin checks its own keys; here only that it names a type. */
const SourceEntrySchema = looseSection({
  type: v.pipe(v.string("a source type such as prometheus"), v.nonEmpty("a source type such as prometheus")),
}, "a mapping with type:, name: and the source's options");

/** chaos-signal's own section: every key known, so typos are errors. */
const ChaosSignalSection = strictSection({
  max_body_bytes: v.optional(MaxBodyBytesSchema),
  state_file: v.optional(StateFileSchema),
  on_unreadable_state: v.optional(v.picklist(["pause", "run"], "pause (the default: a crash must not turn PAUSE or STOP into RUN) or run")),
  sources: v.optional(v.array(SourceEntrySchema, "a list of sources")),
  relays: v.optional(v.array(looseSection({}, "a mapping with name:, targets: (or targets_dns:, targets_file:) and the relay's options"), "a list of relays")),
  auth: v.optional(AuthSchema),
  allowed_origins: v.optional(AllowedOriginsSchema),
  // Bun takes whole seconds up to 255.
  idle_timeout: v.optional(durationSchema(1000, 255_000)),
  store: v.optional(StoreSection),
  plugins: v.optional(v.array(
    v.pipe(v.string(PLUGIN_MODULE_RULE), v.trim(), v.nonEmpty(PLUGIN_MODULE_RULE)),
    "a list of modules to import plugins from",
  )),
}, "a mapping (chaos-signal's own settings)");

/** The whole file: other top-level keys (Krkn's cerberus:, tunings:, ...) are ignored. */
export const ConfigFileSchema = looseSection({
  kraken: v.optional(v.nullable(KrakenSection)),
  chaos_signal: v.optional(v.nullable(ChaosSignalSection)),
}, "a YAML mapping with a kraken: and/or chaos_signal: section");

/**
 * Other top-level keys are Krkn's sections and ignored, but a near miss of `chaos_signal`
 * (`chaos-signal`, `chaosSignal`, `chaos_signals`) is our section lost to a typo: a server
 * started without its sources or tokens must not pass for a configured one.
 */
function refuseMisspeltSection(document: unknown, fileName: string): void {
  if (typeof document !== "object" || document === null || Array.isArray(document)) return;
  for (const key of Object.keys(document)) {
    if (key === "chaos_signal" || key === "kraken" || closestKey(key, ["chaos_signal"]) === undefined) continue;
    const shown = /^[\w.-]+$/.test(key) ? key : JSON.stringify(key);
    throw new ValidationError(
      `${fileName}: ${shown}: unknown top-level key; did you mean "chaos_signal"? (other top-level keys are Krkn's and ignored)`,
    );
  }
}

/** A partial set of settings from one layer (file, env or flags). */
export type SettingsLayer = Partial<Settings>;

/** Validates a parsed config file; errors name the key path (`kraken.port`). */
export function settingsFromConfig(document: unknown, fileName: string): SettingsLayer {
  refuseMisspeltSection(document, fileName);
  const config = parseWith(ConfigFileSchema, document ?? {}, (path) => `${fileName}: ${path || "(top level)"}`);
  return compact({
    port: config.kraken?.port,
    address: config.kraken?.signal_address,
    state: config.kraken?.signal_state,
    maxBodyBytes: config.chaos_signal?.max_body_bytes,
    stateFile: config.chaos_signal?.state_file,
    onUnreadableState: config.chaos_signal?.on_unreadable_state,
    idleTimeoutMs: config.chaos_signal?.idle_timeout,
    sources: config.chaos_signal?.sources?.map((entry, index) => ({
      where: `${fileName}: chaos_signal.sources[${index}]`,
      entry,
    })),
    auth: config.chaos_signal?.auth &&
      { tokens: config.chaos_signal.auth.tokens, protectReads: config.chaos_signal.auth.protect_reads },
    allowedOrigins: config.chaos_signal?.allowed_origins,
    relays: config.chaos_signal?.relays?.map((entry, index) => ({
      where: `${fileName}: chaos_signal.relays[${index}]`,
      entry: { type: "relay", ...entry },
    })),
    store: config.chaos_signal?.store?.type,
    etcdEndpoints: config.chaos_signal?.store?.endpoints,
    etcdPrefix: config.chaos_signal?.store?.prefix,
    maxStalenessMs: config.chaos_signal?.store?.max_staleness,
    etcdUsername: config.chaos_signal?.store?.username,
    etcdPassword: config.chaos_signal?.store?.password,
    replicaId: config.chaos_signal?.store?.replica_id,
    etcdPasswordFile: config.chaos_signal?.store?.password_file &&
      resolve(dirname(resolve(fileName)), config.chaos_signal.store.password_file),
    // Relative to the config file, as password_file.
    etcdCaFile: config.chaos_signal?.store?.ca_file && resolve(dirname(resolve(fileName)), config.chaos_signal.store.ca_file),
    etcdCertFile: config.chaos_signal?.store?.cert_file && resolve(dirname(resolve(fileName)), config.chaos_signal.store.cert_file),
    etcdKeyFile: config.chaos_signal?.store?.key_file && resolve(dirname(resolve(fileName)), config.chaos_signal.store.key_file),
    pluginModules: config.chaos_signal?.plugins?.map((specifier, index) => ({
      specifier,
      where: `${fileName}: chaos_signal.plugins[${index}]`,
      baseDir: dirname(resolve(fileName)),
    })),
  });
}

/** The environment variables chaos-signal reads, and the setting each one sets. */
export const ENV_VARS = {
  CHAOS_SIGNAL_PORT: "port",
  CHAOS_SIGNAL_ADDRESS: "address",
  CHAOS_SIGNAL_STATE: "state",
  CHAOS_SIGNAL_STATE_FILE: "stateFile",
  CHAOS_SIGNAL_ALLOWED_ORIGINS: "allowedOrigins",
  CHAOS_SIGNAL_STORE: "store",
  CHAOS_SIGNAL_ETCD_ENDPOINTS: "etcdEndpoints",
  CHAOS_SIGNAL_ETCD_PREFIX: "etcdPrefix",
  CHAOS_SIGNAL_ETCD_CA_FILE: "etcdCaFile",
  CHAOS_SIGNAL_ETCD_CERT_FILE: "etcdCertFile",
  CHAOS_SIGNAL_ETCD_KEY_FILE: "etcdKeyFile",
} as const satisfies Record<string, StringSetting>;

/** Names the config file; read before the file itself, so not a setting. */
export const ENV_CONFIG_FILE = "CHAOS_SIGNAL_CONFIG";

const LayerSchemas = {
  port: PortSchema,
  address: AddressSchema,
  state: StateSchema,
  maxBodyBytes: MaxBodyBytesSchema,
  stateFile: StateFileSchema,
  allowedOrigins: AllowedOriginsTextSchema,
  store: StoreSchema,
  etcdEndpoints: EtcdEndpointsTextSchema,
  etcdPrefix: EtcdPrefixSchema,
  etcdCaFile: filePath(ETCD_CA_FILE_RULE),
  etcdCertFile: filePath(ETCD_CERT_FILE_RULE),
  etcdKeyFile: filePath(ETCD_KEY_FILE_RULE),
} satisfies Record<StringSetting, v.GenericSchema>;

/** Validates string values from env or flags; `label` names each key as the user typed it. */
export function settingsFromStrings(
  values: { readonly [K in StringSetting]?: string | undefined },
  label: (key: StringSetting) => string,
): SettingsLayer {
  const layer: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(values) as [StringSetting, string | undefined][]) {
    if (raw === undefined) continue;
    layer[key] = parseWith(LayerSchemas[key], raw, () => label(key));
  }
  return layer as SettingsLayer;
}

/** Reads the documented environment variables; empty ones count as unset. */
export function settingsFromEnv(env: Record<string, string | undefined>): SettingsLayer {
  const values: Partial<Record<StringSetting, string>> = {};
  for (const [name, key] of Object.entries(ENV_VARS)) {
    const value = env[name];
    if (value !== undefined && value !== "") values[key] = value;
  }
  const nameOf = Object.fromEntries(Object.entries(ENV_VARS).map(([name, key]) => [key, name]));
  return settingsFromStrings(values, (key) => nameOf[key] ?? key);
}

/** Later layers win. */
export function mergeSettings(...layers: SettingsLayer[]): Settings {
  return Object.assign({}, DEFAULT_SETTINGS, ...layers);
}

/** Drops the keys whose value is undefined. */
function compact<T extends object>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
