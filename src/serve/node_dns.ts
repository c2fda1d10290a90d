/**
 * DNS resolution with `node:dns`: Bun's serve file uses it, and Node's can. A `Resolver` of its
 * own per query, so that a nameserver given in the config (`setServers`) never changes the
 * process's resolver, and so that `cancel()` ends exactly this query at its deadline.
 */
import { promises as dns } from "node:dns";
import { type DnsQueryOptions, type DnsRecordType, dnsTimeout } from "./types.ts";

/** What `node:dns` reports for a name without records: an answer, not a failure. */
const NO_RECORDS = new Set(["ENODATA", "ENOTFOUND"]);

export async function resolveDnsWithNode(name: string, type: DnsRecordType, options: DnsQueryOptions): Promise<string[]> {
  const resolver = new dns.Resolver({ timeout: options.timeoutMs, tries: 1 });
  if (options.nameserver) {
    const { address, port } = options.nameserver;
    resolver.setServers([address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`]);
  }
  const query = type === "A" ? resolver.resolve4(name) : resolver.resolve6(name);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      resolver.cancel();
      reject(dnsTimeout(name, type, options.timeoutMs));
    }, options.timeoutMs);
  });
  try {
    return await Promise.race([query, deadline]);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== undefined && NO_RECORDS.has(code)) return [];
    throw error;
  } finally {
    clearTimeout(timer);
    query.catch(() => {}); // cancelled at the deadline: its rejection is expected
  }
}
