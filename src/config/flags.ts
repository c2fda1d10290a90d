/** Command-line flags: parsed with node:util, validated like every other layer. */
import { parseArgs } from "node:util";
import { SETTING_RULES, type SettingsLayer, settingsFromStrings, type StringSetting } from "./settings.ts";
import { ValidationError } from "./validation.ts";

export const USAGE = `Usage: chaos-signal [flags]

Serves the run signal of a chaos run (RUN, PAUSE or STOP) the way Krkn's
runner reads it, at http://ADDRESS:PORT/.

Flags (they override environment variables, which override the config file):
  -c, --config FILE     config file: Krkn's config.yaml works unchanged   [env CHAOS_SIGNAL_CONFIG]
  -p, --port N          port, 0 picks a free one (default 8081)          [env CHAOS_SIGNAL_PORT]
  -a, --address HOST    listen address (default 0.0.0.0)                 [env CHAOS_SIGNAL_ADDRESS]
  -s, --state SIGNAL    initial signal: RUN, PAUSE or STOP (default RUN) [env CHAOS_SIGNAL_STATE]
      --state-file PATH the claims and the STOP latch across restarts
                        (default .chaos-signal/state.json; none: memory only) [env CHAOS_SIGNAL_STATE_FILE]
      --allowed-origins LIST  origins, comma-separated, whose web pages may change
                        the signal besides the server's own (default none) [env CHAOS_SIGNAL_ALLOWED_ORIGINS]
      --store TYPE      file (default) or etcd: one signal shared by replicas [env CHAOS_SIGNAL_STORE]
      --etcd-endpoints LIST  etcd client URLs, comma-separated     [env CHAOS_SIGNAL_ETCD_ENDPOINTS]
      --etcd-prefix KEY the etcd key prefix (default /chaos-signal/default) [env CHAOS_SIGNAL_ETCD_PREFIX]
      --etcd-ca-file FILE    TLS: the CA of etcd's certificate      [env CHAOS_SIGNAL_ETCD_CA_FILE]
      --etcd-cert-file FILE  TLS: this replica's client certificate [env CHAOS_SIGNAL_ETCD_CERT_FILE]
      --etcd-key-file FILE   TLS: the client certificate's key      [env CHAOS_SIGNAL_ETCD_KEY_FILE]
      --check-config    load flags, environment and config file, validate them as a start
                        does (plugins and store included), print one line and exit:
                        0 "config OK: ...", 2 the error naming the key; nothing listens,
                        the state is not touched
  -h, --help            print this help
  -V, --version         print the version
`;

const OPTIONS = {
  config: { type: "string", short: "c" },
  port: { type: "string", short: "p" },
  address: { type: "string", short: "a" },
  state: { type: "string", short: "s" },
  "state-file": { type: "string" },
  "allowed-origins": { type: "string" },
  store: { type: "string" },
  "etcd-endpoints": { type: "string" },
  "etcd-prefix": { type: "string" },
  "etcd-ca-file": { type: "string" },
  "etcd-cert-file": { type: "string" },
  "etcd-key-file": { type: "string" },
  "check-config": { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

const FLAG_LIST = Object.keys(OPTIONS).map((name) => `--${name}`).join(", ");

export interface CliFlags {
  readonly help: boolean;
  readonly version: boolean;
  /** Validate everything a start would, then exit without listening. */
  readonly checkConfig: boolean;
  readonly configFile?: string;
  /** Setting flags as typed, not validated yet (so --help works whatever else is wrong). */
  readonly strings: { readonly [K in StringSetting]?: string | undefined };
}

/** Reads the flags; throws `ValidationError` with one line naming the flag. */
export function readFlags(argv: readonly string[]): CliFlags {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new ValidationError(flagError(error));
  }
  const configFile = values.config as string | undefined;
  if (configFile === "") throw new ValidationError("--config: needs a file path (see --help)");
  return {
    help: values.help === true,
    version: values.version === true,
    checkConfig: values["check-config"] === true,
    ...(configFile === undefined ? {} : { configFile }),
    strings: {
      port: values.port as string | undefined,
      address: values.address as string | undefined,
      state: values.state as string | undefined,
      stateFile: values["state-file"] as string | undefined,
      allowedOrigins: values["allowed-origins"] as string | undefined,
      store: values.store as string | undefined,
      etcdEndpoints: values["etcd-endpoints"] as string | undefined,
      etcdPrefix: values["etcd-prefix"] as string | undefined,
      etcdCaFile: values["etcd-ca-file"] as string | undefined,
      etcdCertFile: values["etcd-cert-file"] as string | undefined,
      etcdKeyFile: values["etcd-key-file"] as string | undefined,
    },
  };
}

/** Validates the setting flags; errors name the flag. */
export function settingsFromFlags(flags: CliFlags): SettingsLayer {
  return settingsFromStrings(flags.strings, (key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
}

/** node:util's messages differ between runtimes; say it the same way everywhere. */
function flagError(error: unknown): string {
  const { code, message = "" } = error as { code?: string; message?: string };
  // Node writes "'-p, --port <value>'", Deno and Bun alike; take the long name.
  const flag = /'(?:-\w, )?(--?[\w-]+)/.exec(message)?.[1] ?? "";
  const setting = flag.replace(/^--/, "") as StringSetting;
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `${flag}: unknown flag; allowed flags: ${FLAG_LIST} (see --help)`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (/does not take an argument/.test(message)) return `${flag}: takes no value (see --help)`;
      return `${flag}: needs a value` + (SETTING_RULES[setting] ? `; allowed: ${SETTING_RULES[setting]}` : "") +
        (/ambiguous|starting with a dash/i.test(message) ? ` (for a value that starts with "-", write ${flag}=VALUE)` : "");
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `${/'([^']*)'/.exec(message)?.[1] ?? "argument"}: unexpected argument; chaos-signal takes only flags (see --help)`;
    default:
      return `${message || String(error)} (see --help)`;
  }
}
