/**
 * `targets_dns`: every A and AAAA record of a name is a target (`scheme://address:port`), asked
 * again every `interval` through the runtime's resolver (`SourceContext.resolveDns`). A Kubernetes
 * headless Service answers with the addresses of its ready pods.
 */
import { isIP } from "node:net";
import * as v from "valibot";
import {
  type Assert,
  delay,
  type DnsRecordType,
  durationSchema,
  parsedBy,
  type SameType,
  type SectionSchema,
  type SourceContext,
  strictSection,
} from "../plugin.ts";
import { KnownTargets, MAX_DISCOVERED_TARGETS } from "./relay_known_targets.ts";

const NAMESERVER_RULE = "an IP address with an optional port, such as 10.96.0.10:53, 10.96.0.10 or [fd00::a]:53";

/** `10.96.0.10:53`, `10.96.0.10`, `[fd00::a]:53` or `fd00::a` (port 53). */
export function parseNameserver(text: string): { address: string; port: number } | undefined {
  const match = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(text);
  const [address, port] = match ? [match[1]!, match[2] === undefined ? 53 : Number(match[2])] : [text, 53];
  if (!isIP(address) || port < 1 || port > 65535) return undefined;
  return { address, port };
}

const HOSTNAME_RULE = "a DNS name such as krkn.chaos.svc.cluster.local";

/** `targets_dns` once parsed: defaults filled in, durations in milliseconds. */
export interface DnsTargetsOptions {
  name: string;
  port: number;
  scheme: "http" | "https";
  nameserver?: { address: string; port: number } | undefined;
  interval: number;
  timeout: number;
}

/** The schema as valibot infers it: `DnsTargetsSchema` is typed by hand (JSR), and checked against it below. */
const dnsTargetsSchema = strictSection({
  /** Every A and AAAA record of this name is a target. */
  name: v.pipe(
    v.string(HOSTNAME_RULE),
    v.trim(),
    v.regex(/^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?$/i, HOSTNAME_RULE),
  ),
  /** The port of the targets' signal servers (Krkn's `port`). */
  port: v.pipe(v.number("a port from 1 to 65535"), v.integer("a port from 1 to 65535"), v.minValue(1, "a port from 1 to 65535"), v.maxValue(65535, "a port from 1 to 65535")),
  /** @default "http" */
  scheme: v.optional(v.picklist(["http", "https"], "http or https"), "http"),
  /** The DNS server to ask. @default the system's resolver */
  nameserver: v.optional(v.pipe(v.string(NAMESERVER_RULE), parsedBy(parseNameserver, NAMESERVER_RULE))),
  /** How often the name is resolved again. @default "30s" */
  interval: v.optional(durationSchema(100, 3_600_000), "30s"),
  /** Each resolution (A and AAAA together) ends within this. @default "5s" */
  timeout: v.optional(durationSchema(50, 60_000), "5s"),
}, "a mapping with name:, port: and optionally scheme:, nameserver:, interval:, timeout:");

/** A relay's `targets_dns`: a mapping, checked key by key. */
export const DnsTargetsSchema: SectionSchema<DnsTargetsOptions> = dnsTargetsSchema;
type _Input = Assert<SameType<v.InferInput<typeof dnsTargetsSchema>, Record<string, unknown>>>;
type _Output = Assert<SameType<v.InferOutput<typeof dnsTargetsSchema>, DnsTargetsOptions>>;

export class DnsTargets {
  readonly known: KnownTargets;
  readonly #options: DnsTargetsOptions;

  constructor(options: DnsTargetsOptions) {
    this.#options = options;
    const via = options.nameserver ? ` via ${options.nameserver.address}:${options.nameserver.port}` : "";
    this.known = new KnownTargets("targets_dns", `${options.name}:${options.port}${via}`);
  }

  async run(context: SourceContext, changed: () => void): Promise<void> {
    while (!context.abort.aborted) {
      await this.resolve(context);
      changed();
      try {
        await delay(this.#options.interval, context.abort);
      } catch {
        return; // aborted: shutting down
      }
    }
  }

  /** One resolution: both record types, or the last set stays. */
  async resolve(context: SourceContext): Promise<void> {
    const { name, port, scheme, nameserver, timeout } = this.#options;
    const ask = (type: DnsRecordType) => context.resolveDns(name, type, { nameserver, timeoutMs: timeout });
    // Both asked at once; A's failure is the one reported when both fail, so that the line stays
    // the same from one attempt to the next (the log repeats it only once a minute).
    const [a, aaaa] = await Promise.allSettled([ask("A"), ask("AAAA")]);
    const failed = [a, aaaa].find((result) => result.status === "rejected");
    if (failed) {
      this.known.fail(`resolving failed (${(failed.reason as Error)?.message ?? failed.reason})`);
      return;
    }
    const addresses = [a, aaaa].flatMap((result) => result.status === "fulfilled" ? result.value : []);
    if (addresses.length > MAX_DISCOVERED_TARGETS) {
      this.known.fail(`${addresses.length} records, more than the ${MAX_DISCOVERED_TARGETS} targets allowed`);
      return;
    }
    // Only addresses: a resolver that answered anything else is not believed.
    const bad = addresses.find((address) => !isIP(address));
    if (bad !== undefined) {
      this.known.fail(`the answer holds ${JSON.stringify(bad.slice(0, 60))}, not an IP address`);
      return;
    }
    const urls = [...new Set(addresses)].sort().map((address) => `${scheme}://${address.includes(":") ? `[${address}]` : address}:${port}`);
    this.known.accept(urls, `${name} has no A or AAAA records`);
  }
}
