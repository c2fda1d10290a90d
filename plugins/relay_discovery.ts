/**
 * Targets found, not listed: a relay's `targets_dns` (every A/AAAA record of a name) and
 * `targets_file` (one URL a line), joined with its static `targets` into the one set of URLs the
 * relay pushes to.
 *
 * Each kind keeps the last set it knew while it fails (a resolver that does not answer, a file
 * that is missing, unreadable or has a bad line): a discovery problem never empties the fleet,
 * because a target dropped by mistake is a Krkn run that no longer hears STOP. An answer with no
 * target at all (NXDOMAIN, no records, a file without URLs) counts as such a failure too: a
 * Service briefly without endpoints, or a file caught mid-rewrite, must not drop every run.
 */
import * as v from "valibot";
import type { SourceContext } from "../plugin.ts";
import { DnsTargets, type DnsTargetsOptions, DnsTargetsSchema } from "./relay_dns.ts";
import { FileTargets, TargetsFileSchema } from "./relay_targets_file.ts";
import type { KnownTargets, TargetSetStatus } from "./relay_known_targets.ts";

export { MAX_DISCOVERED_TARGETS, type TargetSetStatus } from "./relay_known_targets.ts";

/** The schemas of the relay's config keys for discovery. */
export interface DiscoveryEntries {
  targets_dns: v.OptionalSchema<typeof DnsTargetsSchema, undefined>;
  targets_file: v.OptionalSchema<typeof TargetsFileSchema, undefined>;
}

/** The relay's config keys for discovery (beside `targets`). */
export const DISCOVERY_ENTRIES: DiscoveryEntries = {
  /** Every A and AAAA record of a name is a target (a Kubernetes headless Service). */
  targets_dns: v.optional(DnsTargetsSchema),
  /** A file with one URL a line (`#` comments), re-read when it changes. */
  targets_file: v.optional(TargetsFileSchema),
};

/** A relay needs one kind of target at least (the schema's check). */
export const NO_TARGET_KIND = "at least one of targets, targets_dns and targets_file (they may be combined)";
export function hasTargetKind(options: { targets?: unknown; targets_dns?: unknown; targets_file?: unknown }): boolean {
  return options.targets !== undefined || options.targets_dns !== undefined || options.targets_file !== undefined;
}

/** The key that makes two spellings of one target one: `http://a:1/` and `http://a:1`. */
function targetKey(url: string): string {
  return url.replace(/\/+$/, "");
}

/** How a change of the target set is logged: bounded, whatever the fleet's size. */
export function describeTargetChange(added: readonly string[], removed: readonly string[]): string {
  const list = (urls: readonly string[]) => urls.length <= 10 ? urls.join(", ") : `${urls.slice(0, 10).join(", ")} and ${urls.length - 10} more`;
  const parts = [
    ...(added.length ? [`${added.length} target${added.length === 1 ? "" : "s"} added (${list(added)})`] : []),
    ...(removed.length ? [`${removed.length} removed, no longer pushed (${list(removed)})`] : []),
  ];
  return parts.join("; ");
}

/**
 * A change of the target set as the audit history keeps it (`SourceContext.audit`, kind
 * `targets`): the counts, and the first URLs of each list while they fit a note's 1 KiB.
 */
export function targetChangeNote(added: readonly string[], removed: readonly string[], targets: number): { reason: string; details: Record<string, unknown> } {
  let room = 400;
  const first = (urls: readonly string[]) => {
    const listed: string[] = [];
    for (const url of urls.slice(0, 10)) {
      if (url.length + 3 > room) break;
      room -= url.length + 3;
      listed.push(url);
    }
    return listed;
  };
  const counts = [
    ...(added.length ? [`${added.length} added`] : []),
    ...(removed.length ? [`${removed.length} removed, no longer pushed`] : []),
  ];
  return {
    reason: `targets: ${counts.join(", ")}; ${targets} now`,
    details: { added: first(added), removed: first(removed), added_count: added.length, removed_count: removed.length, targets },
  };
}

/** The last change of the target set, in `/status`: when, and (bounded) which. */
export interface TargetChange {
  at: string;
  added: string[];
  removed: string[];
  added_count: number;
  removed_count: number;
}

export interface DiscoveryOptions {
  readonly targets?: readonly string[] | undefined;
  readonly targets_dns?: DnsTargetsOptions | undefined;
  readonly targets_file?: string | undefined;
}

/** The relay's whole target set: the static `targets` and what each discovery kind knows. */
export class TargetDiscovery {
  readonly #static: readonly string[];
  readonly #sources: readonly { readonly known: KnownTargets; run(context: SourceContext, changed: () => void): Promise<void> }[];
  #lastChange: TargetChange | null = null;

  constructor(options: DiscoveryOptions) {
    this.#static = options.targets ?? [];
    this.#sources = [
      ...(options.targets_dns ? [new DnsTargets(options.targets_dns)] : []),
      ...(options.targets_file ? [new FileTargets(options.targets_file)] : []),
    ];
  }

  /** True when some targets come from discovery: the set may change while the relay runs. */
  get dynamic(): boolean {
    return this.#sources.length > 0;
  }

  /** The union, without duplicates, in a stable order (static first). */
  urls(): string[] {
    const seen = new Map<string, string>();
    for (const url of [...this.#static, ...this.#sources.flatMap((source) => source.known.urls)]) {
      const key = targetKey(url);
      if (!seen.has(key)) seen.set(key, url);
    }
    return [...seen.values()];
  }

  /** Runs every discovery kind until the abort; `changed` after each attempt of any. */
  async run(context: SourceContext, changed: () => void): Promise<void> {
    await Promise.all(this.#sources.map((source) => source.run(context, changed)));
  }

  /** Remembers a change of the set the relay pushes to (shown in `/status`). */
  noteChange(added: readonly string[], removed: readonly string[]): TargetChange {
    this.#lastChange = {
      at: new Date().toISOString(),
      added: added.slice(0, 20),
      removed: removed.slice(0, 20),
      added_count: added.length,
      removed_count: removed.length,
    };
    return this.#lastChange;
  }

  /** A problem to report while some kind fails (the first one's). */
  problem(): string | undefined {
    for (const source of this.#sources) {
      const problem = source.known.problem();
      if (problem !== undefined) return problem;
    }
    return undefined;
  }

  /** `/status`'s `discovery`: each kind's state and the last change; undefined without discovery. */
  status(): { sources: TargetSetStatus[]; last_change: TargetChange | null } | undefined {
    if (!this.dynamic) return undefined;
    return { sources: this.#sources.map((source) => source.known.status()), last_change: this.#lastChange };
  }
}
