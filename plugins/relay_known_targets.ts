/**
 * The last known set of targets of one discovery kind (DNS, file), and its failures: what
 * `/status` shows of it, and the rule that a failure keeps the last set.
 */
import { httpUrl } from "../plugin.ts";

/** Discovery gives at most this many targets per kind: more is refused (the last set stays). */
export const MAX_DISCOVERED_TARGETS = 10_000;

export const TARGET_URL_RULE = "an http(s) URL with a host, without user:password@ (credentials would show in /status and logs; use token)";
export const TargetUrlSchema = httpUrl(TARGET_URL_RULE);


/** One kind's state in `/status` (the relay's `last_observation.discovery`). */
export interface TargetSetStatus {
  kind: "targets_dns" | "targets_file";
  /** What is asked: `krkn.chaos.svc:8081` (and the nameserver), or the file's path. */
  from: string;
  /** The targets this kind gives now: the last set it knew. */
  targets: number;
  last_success: string | null;
  /** Set while the last attempt failed: the targets are the last known set. */
  failing_since: string | null;
  /** Failed attempts in a row. */
  failures: number;
  last_error: string | null;
}

/**
 * The last known set of one kind, and its failures. `accept` takes a new set (an empty one is a
 * failure: the last set stays); `fail` keeps the last set.
 */
export class KnownTargets {
  #urls: readonly string[] = [];
  readonly #status: TargetSetStatus;

  constructor(kind: TargetSetStatus["kind"], from: string) {
    this.#status = { kind, from, targets: 0, last_success: null, failing_since: null, failures: 0, last_error: null };
  }

  get urls(): readonly string[] {
    return this.#urls;
  }

  /** True when the set changed. */
  accept(urls: readonly string[], empty: string): boolean {
    if (urls.length === 0) {
      this.fail(empty);
      return false;
    }
    const now = new Date().toISOString();
    Object.assign(this.#status, { targets: urls.length, last_success: now, failing_since: null, failures: 0, last_error: null });
    const changed = urls.length !== this.#urls.length || urls.some((url, i) => url !== this.#urls[i]);
    this.#urls = urls;
    return changed;
  }

  fail(message: string): void {
    this.#status.failing_since ??= new Date().toISOString();
    this.#status.failures += 1;
    this.#status.last_error = message;
  }

  /** While failing: one line that stays the same from one attempt to the next (the log says it once a minute). */
  problem(): string | undefined {
    const { kind, from, failing_since, last_error, targets } = this.#status;
    if (failing_since === null) return undefined;
    const kept = targets === 0 ? "no targets from it yet" : `keeping the last ${targets} target${targets === 1 ? "" : "s"}`;
    return `${kind} ${from}: ${last_error}; ${kept} (failing since ${failing_since})`;
  }

  status(): TargetSetStatus {
    return { ...this.#status };
  }
}

