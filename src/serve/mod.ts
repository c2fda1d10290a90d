/**
 * Picks the serve file for the runtime we run on. `runtime()` is the one
 * place that asks which runtime this is; each serve file is loaded lazily,
 * so Deno never loads the Bun file and the other way round.
 */
import process from "node:process";
import type { DnsQueryOptions, DnsRecordType, RunningServer, ServeHandler, ServeOptions, TlsFetch, TlsFiles } from "./types.ts";

export { AddressInUseError } from "./types.ts";
export type { DnsQueryOptions, DnsRecordType, ResolveDns, RunningServer, ServeHandler, ServeOptions, TlsFetch, TlsFiles } from "./types.ts";

export interface Runtime {
  readonly name: "deno" | "bun";
  readonly version: string;
}

/** Which runtime this is, from `process.versions` (both set it; Node does not). */
export function runtime(): Runtime {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.bun) return { name: "bun", version: versions.bun };
  if (versions.deno) return { name: "deno", version: versions.deno };
  throw new Error(`chaos-signal runs on Deno or Bun, not on Node.js ${process.version}: use "deno run -A mod.ts" or "bun run mod.ts"`);
}

/**
 * A `fetch` with a custom CA and client certificate (the etcd store's `ca_file`, `cert_file`,
 * `key_file`): each runtime has its own option for it, so each serve file has its own.
 */
export async function tlsFetch(files: TlsFiles): Promise<TlsFetch> {
  const name: string = runtime().name;
  if (name === "deno") return (await import("./deno.ts")).tlsFetch(files);
  if (name === "bun") return (await import("./bun.ts")).tlsFetch(files);
  // NODE: return (await import("./node.ts")).tlsFetch(files) once src/serve/node.ts has one.
  throw new Error(`store TLS options (ca_file, cert_file, key_file) need Deno or Bun, not ${name}`);
}

export async function serve(handler: ServeHandler, options: ServeOptions): Promise<RunningServer> {
  const implementation = runtime().name === "deno" ? await import("./deno.ts") : await import("./bun.ts");
  return implementation.serve(handler, options);
}

/** DNS resolution through the runtime's own resolver (a relay's `targets_dns`). */
export async function resolveDns(name: string, type: DnsRecordType, options: DnsQueryOptions): Promise<string[]> {
  const implementation = runtime().name === "deno" ? await import("./deno.ts") : await import("./bun.ts");
  return implementation.resolveDns(name, type, options);
}
