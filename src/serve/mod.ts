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
  readonly name: "deno" | "bun" | "node";
  readonly version: string;
}

/** The oldest Node.js that chaos-signal runs on (its `fetch`, `Request` and `AbortSignal.any`). */
export const MIN_NODE_MAJOR = 20;

/** Which runtime this is, from `process.versions` (Deno and Bun set their own; Node.js only `node`). */
export function runtime(): Runtime {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.bun) return { name: "bun", version: versions.bun };
  if (versions.deno) return { name: "deno", version: versions.deno };
  const node = versions.node ?? "";
  if (Number(node.split(".")[0]) >= MIN_NODE_MAJOR) return { name: "node", version: node };
  throw new Error(`chaos-signal runs on Deno, Bun or Node.js ${MIN_NODE_MAJOR} and later, not on Node.js ${process.version}`);
}

/** The serve file of this runtime, loaded on first use. */
async function implementation(): Promise<typeof import("./deno.ts") | typeof import("./bun.ts") | typeof import("./node.ts")> {
  const name = runtime().name;
  return name === "deno" ? await import("./deno.ts") : name === "bun" ? await import("./bun.ts") : await import("./node.ts");
}

/**
 * A `fetch` with a custom CA and client certificate (the etcd store's `ca_file`, `cert_file`,
 * `key_file`): each runtime has its own option for it, so each serve file has its own.
 */
export async function tlsFetch(files: TlsFiles): Promise<TlsFetch> {
  return (await implementation()).tlsFetch(files);
}

export async function serve(handler: ServeHandler, options: ServeOptions): Promise<RunningServer> {
  return await (await implementation()).serve(handler, options);
}

/** DNS resolution through the runtime's own resolver (a relay's `targets_dns`). */
export async function resolveDns(name: string, type: DnsRecordType, options: DnsQueryOptions): Promise<string[]> {
  return await (await implementation()).resolveDns(name, type, options);
}
