/**
 * A relay's targets: a set that can change while it runs (a static list today; DNS or a file
 * tomorrow), with the counts `/status` and `/metrics` show kept up to date in O(1) per report.
 * Everything that lists targets (the ones out of sync, a page of all) is built when asked for.
 */
import type { Signal, SourceContext } from "../plugin.ts";
import { RelayTarget, type RelayTargetOptions, type RelayTargetStatus, type TargetState } from "./relay_target.ts";

export interface FleetCounts {
  targets: number;
  /** Known to hold the current signal. */
  in_sync: number;
  /** Reachable, but not known to hold it (a change on its way, or another chaos-signal that holds its own). */
  out_of_sync: number;
  /** Their last request failed. */
  failing: number;
}

export interface LastChange {
  signal: Signal;
  at: string;
  /** How long the change took to reach every target; null while some do not hold it yet. */
  reached_all_ms: number | null;
}

/** Time for a change to reach every target, seconds: the histogram's upper bounds. */
export const REACH_ALL_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

export interface ReachAllHistogram {
  /** Cumulative counts per bucket of REACH_ALL_BUCKETS, then +Inf. */
  readonly buckets: readonly number[];
  readonly sum: number;
  readonly count: number;
}

/** Everything but the URL of a target's options: the same for every target of a relay. */
export type TargetTemplate = Omit<RelayTargetOptions, "url">;

export class Fleet {
  readonly #template: TargetTemplate;
  readonly #targets = new Map<string, RelayTarget>();
  /** The URLs in order, for paging; rebuilt on the first page after the set changed. */
  #sorted: string[] | undefined;
  readonly #held: Record<Signal, number> = { RUN: 0, PAUSE: 0, STOP: 0 };
  #failing = 0;
  #context: SourceContext | undefined;
  #onReport: ((target: RelayTarget, error?: Error) => void) | undefined;
  #lastChange: { signal: Signal; at: number; reachedMs: number | null } | null = null;
  readonly #buckets: number[] = new Array(REACH_ALL_BUCKETS.length + 1).fill(0);
  #sum = 0;
  #count = 0;

  constructor(template: TargetTemplate, urls: readonly string[] = []) {
    this.#template = template;
    this.set(urls);
  }

  get size(): number {
    return this.#targets.size;
  }

  /**
   * The targets are now these URLs: new ones are created (and, once the relay runs, pushed the
   * current signal at once), ones no longer listed are stopped and forgotten. Repeats cost O(n).
   */
  set(urls: Iterable<string>): { added: string[]; removed: string[] } {
    const wanted = new Set(urls);
    const added: string[] = [];
    const removed: string[] = [];
    for (const [url, target] of this.#targets) {
      if (wanted.has(url)) continue;
      this.#targets.delete(url);
      this.#countOut(target.state());
      target.stop();
      removed.push(url);
    }
    for (const url of wanted) {
      if (this.#targets.has(url)) continue;
      const target = new RelayTarget({ ...this.#template, url });
      this.#targets.set(url, target);
      this.#countIn(target.state());
      added.push(url);
      if (this.#context) this.#start(target);
    }
    if (added.length > 0 || removed.length > 0) {
      this.#sorted = undefined;
      this.#checkReachedAll();
    }
    return { added, removed };
  }

  /** Starts every target's loop; `onReport` hears of every attempt (the relay's health). */
  async run(context: SourceContext, onReport: (target: RelayTarget, error?: Error) => void): Promise<void> {
    this.#context = context;
    this.#onReport = onReport;
    for (const target of this.#targets.values()) this.#start(target);
    // Runs until shutdown; targets come and go meanwhile.
    await new Promise<void>((resolve) => {
      if (context.abort.aborted) return resolve();
      context.abort.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  /** The signal changed (`at`: when): every target is woken, and the change timed until all hold it. */
  changed(signal: Signal, at: number): void {
    this.#lastChange = { signal, at, reachedMs: null };
    for (const target of this.#targets.values()) target.wake();
    this.#checkReachedAll();
  }

  counts(): FleetCounts {
    const current = this.#context?.current();
    const inSync = current === undefined ? 0 : this.#held[current];
    return { targets: this.size, in_sync: inSync, out_of_sync: this.size - inSync - this.#failing, failing: this.#failing };
  }

  lastChange(): LastChange | null {
    const change = this.#lastChange;
    return change && { signal: change.signal, at: new Date(change.at).toISOString(), reached_all_ms: change.reachedMs };
  }

  histogram(): ReachAllHistogram {
    let cumulative = 0;
    return { buckets: this.#buckets.map((count) => (cumulative += count)), sum: this.#sum, count: this.#count };
  }

  /** At most `limit` targets that are not in sync: the failing ones first. O(targets), on request. */
  unsynced(limit: number): RelayTargetStatus[] {
    const current = this.#context?.current();
    const failing: RelayTarget[] = [];
    const behind: RelayTarget[] = [];
    for (const target of this.#targets.values()) {
      if (failing.length >= limit) break;
      const { held, failing: fails } = target.state();
      if (fails) failing.push(target);
      else if (held !== current && behind.length < limit) behind.push(target);
    }
    return [...failing, ...behind].slice(0, limit).map((target) => target.status(current));
  }

  /** Up to `limit` targets in URL order, starting after the URL `after`; `next`: the cursor for the next page. */
  page(after: string | undefined, limit: number): { targets: RelayTargetStatus[]; next: string | null } {
    const sorted = this.#sorted ??= [...this.#targets.keys()].sort();
    let start = 0;
    if (after !== undefined) {
      let high = sorted.length;
      while (start < high) {
        const middle = (start + high) >>> 1;
        if (sorted[middle]! <= after) start = middle + 1;
        else high = middle;
      }
    }
    const current = this.#context?.current();
    const urls = sorted.slice(start, start + limit);
    const targets = urls.map((url) => this.#targets.get(url)!.status(current));
    return { targets, next: start + limit < sorted.length ? urls[urls.length - 1]! : null };
  }

  #start(target: RelayTarget): void {
    const context = this.#context!;
    target.run(context, (reported, before, error) => {
      // A stopped target's last report comes after it left the counts.
      if (this.#targets.get(reported.url) !== reported) return;
      this.#countOut(before);
      this.#countIn(reported.state());
      this.#checkReachedAll();
      this.#onReport?.(reported, error);
    }).catch((error) => context.warn(error));
  }

  #countIn(state: TargetState): void {
    if (state.held) this.#held[state.held] += 1;
    if (state.failing) this.#failing += 1;
  }

  #countOut(state: TargetState): void {
    if (state.held) this.#held[state.held] -= 1;
    if (state.failing) this.#failing -= 1;
  }

  /** The latest change has reached every target: its time goes into the histogram, once. */
  #checkReachedAll(): void {
    const change = this.#lastChange;
    if (!change || change.reachedMs !== null || this.size === 0) return;
    if (this.#context?.current() !== change.signal || this.#held[change.signal] !== this.size) return;
    change.reachedMs = Math.max(0, Date.now() - change.at);
    const seconds = change.reachedMs / 1000;
    const bucket = REACH_ALL_BUCKETS.findIndex((bound) => seconds <= bound);
    this.#buckets[bucket === -1 ? REACH_ALL_BUCKETS.length : bucket]! += 1;
    this.#sum += seconds;
    this.#count += 1;
  }
}
