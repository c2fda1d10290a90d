/**
 * The committer: holds one signal, makes every change through `transition`, commits it through
 * a `StateBackend`, and tells the listeners (push, relays, history, metrics, log) once it is made.
 *
 * - A change toward safety (PAUSE, STOP, a timed pause) is made at once and saved after: a
 *   failing or hanging backend never refuses nor delays it. A failed save is retried with
 *   backoff until one succeeds; `health()` says "unsaved" meanwhile.
 * - A change toward RUN (a manual or forced RUN, a source's release, a timed pause's end) is
 *   committed first and made only then, in turn behind earlier writes; when the commit fails or
 *   has not finished within `saveTimeoutMs`, nothing is made and the promise rejects.
 * - Changes made locally while a commit is under way are kept (`pending`) and re-run on top of
 *   what was committed, so a RUN committed after its write never undoes a later PAUSE or STOP.
 *   On a conflict (someone else committed first) the same happens on the latest snapshot.
 */
import { clearInterval, clearTimeout, setInterval, setTimeout } from "node:timers";
import { type Change, type ClaimOptions, towardSafety } from "../core/change.ts";
import { type EventDraft, eventsBetween, type RevisionFeed, type SignalEvent, type SignalFeed, type SignalListener } from "../core/events.ts";
import type { Signal } from "../core/signal.ts";
import { initialSnapshot, MANUAL_SOURCE, type Snapshot, type View } from "../core/snapshot.ts";
import { checkChange, transition } from "../core/transition.ts";
import { isNewer, type Revision, type StateBackend } from "./backend.ts";
import { MemoryBackend } from "./memory_backend.ts";
import { within } from "../util/timers.ts";
import { Backoff } from "../util/backoff.ts";

/** How long a change toward RUN may wait for its commit (turn in the queue included) before it is refused. */
export const DEFAULT_SAVE_TIMEOUT_MS = 5000;

/** Commits that lost to someone else's in a row before a change toward RUN gives up. */
export const MAX_CONFLICTS = 8;

/** How often a fail-closed backend's health is looked at: what `GET /` serves follows it within this. */
export const HEALTH_CHECK_MS = 100;

/** A change toward RUN that was not committed (in time): refused, never made. */
export class NotSavedError extends Error {
  override readonly name = "NotSavedError";
  /** Lost to other writers MAX_CONFLICTS times in a row: the backend answers, it is busy. */
  readonly contended: boolean;
  constructor(message: string, options?: { cause?: unknown; contended?: boolean }) {
    super(message, options);
    this.contended = options?.contended ?? false;
  }
}

export interface SignalStoreOptions {
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** See DEFAULT_SAVE_TIMEOUT_MS; also when a write that has not finished counts as failed. @default 5000 */
  readonly saveTimeoutMs?: number;
  /** The first retry after a failed save; each further failure doubles it, up to `maxRetryMs`. @default 500 */
  readonly retryMs?: number;
  /** @default 10000 */
  readonly maxRetryMs?: number;
  /** Told of every failed (or overdue) write; the caller decides how often to log it. */
  readonly onFailure?: (error: Error) => void;
  /** Told when a write succeeds after failures. */
  readonly onRecovery?: (failures: number, since: Date) => void;
  /** Called when a listener throws; the store and other listeners go on. */
  readonly onListenerError?: (error: unknown, event: SignalEvent) => void;
}

/** Whether the backend holds the current state, for `/status` and `/metrics`. */
export interface StateHealth {
  /** Where the state is kept (the state file). */
  readonly file: string;
  /** False from a failed (or overdue) write until a write succeeds. */
  readonly saved: boolean;
  /** The last failure while unsaved. */
  readonly error: string | null;
  /** When writes started failing; null while saved. */
  readonly since: Date | null;
  /** Failed writes since the start. */
  readonly failures: number;
}

interface Pending {
  readonly change: Change;
  readonly at: Date;
  readonly durable: boolean;
}

const ignore = () => {};

/** Whose claim a change is: a source's own, or the manual source's (POSTs, timed pauses, a restore). */
function sourceOf(change: Change): string {
  return change.kind === "claim" ? change.source : MANUAL_SOURCE;
}

export class SignalStore implements SignalFeed, RevisionFeed {
  readonly backend: StateBackend;
  readonly saveTimeoutMs: number;
  readonly #options: SignalStoreOptions;
  readonly #now: () => Date;
  /** The last snapshot committed (or known committed elsewhere), and its revision. */
  #base: Snapshot;
  #revision: Revision;
  /** Made here, not committed yet, in order: `#local` is them re-run on `#base`. */
  #pending: Pending[] = [];
  #local: Snapshot;
  #signal: Signal;
  #seq = 0;
  #changedAt: Date;
  /** Counts submitted changes; per source, the count of the last change made for it. */
  #submitted = 0;
  readonly #madeAt = new Map<string, number>();
  /** The backend must be written although nothing is pending (a failed or refused write, a start). */
  #dirty = false;
  #jobs: Promise<unknown> = Promise.resolve();
  #jobCount = 0;
  #queuedSave: Promise<void> | undefined;
  readonly #listeners = new Set<SignalListener>();
  readonly #settledListeners = new Set<(revision: Revision) => void>();
  readonly #queue: SignalEvent[] = [];
  #delivering = false;
  #saved = true;
  #error: string | null = null;
  #since: Date | null = null;
  #failures = 0;
  #retryBackoff: Backoff | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #abort = new AbortController();
  /** False while a fail-closed backend cannot confirm it is current: the effective signal is then PAUSE (or STOP). */
  #current = true;
  #healthTimer: ReturnType<typeof setInterval> | undefined;
  #reloading = false;

  /** A store on a fresh MemoryBackend, starting from the manual claim `initialSignal` (Krkn's `signal_state`). */
  static inMemory(options: SignalStoreOptions & { readonly initialSignal?: Signal } = {}): SignalStore {
    const snapshot = initialSnapshot(options.initialSignal ?? "RUN", (options.now ?? (() => new Date()))());
    return new SignalStore(new MemoryBackend(snapshot), { snapshot, revision: "0" }, options);
  }

  constructor(backend: StateBackend, loaded: { readonly snapshot: Snapshot; readonly revision: Revision }, options: SignalStoreOptions = {}) {
    this.backend = backend;
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    this.saveTimeoutMs = options.saveTimeoutMs ?? DEFAULT_SAVE_TIMEOUT_MS;
    this.#base = this.#local = loaded.snapshot;
    this.#revision = loaded.revision;
    this.#signal = loaded.snapshot.signal;
    this.#changedAt = this.#now();
    backend.watch((snapshot, revision) => this.#watched(snapshot, revision), this.#abort.signal);
    if (backend.failClosed) {
      // A timer, not a check per request: `GET /` stays one field read.
      this.#current = backend.health().current;
      this.#signal = this.#effective(loaded.snapshot.signal);
      this.#healthTimer = setInterval(() => this.#checkHealth(), HEALTH_CHECK_MS);
      this.#healthTimer.unref?.();
    }
  }

  /** Whether the backend is confirmed current (always, for a backend that is not fail-closed). */
  get current(): boolean {
    return this.#current;
  }

  /** The stored revision this store stands on. */
  get revision(): Revision {
    return this.#revision;
  }

  /** What is served for `stored`: never RUN while not current. */
  #effective(stored: Signal): Signal {
    return this.#current || stored !== "RUN" ? stored : "PAUSE";
  }

  #checkHealth(): void {
    const current = this.backend.health().current;
    if (current === this.#current || this.#closed) return;
    if (!current) {
      this.#current = false;
      this.#publish(this.#local, []);
      return;
    }
    // Contact is back: serve what is stored, from a fresh read (the watch may have missed commits).
    if (this.#reloading) return;
    this.#reloading = true;
    this.#enqueue(async () => {
      const loaded = await this.backend.load();
      if (loaded.snapshot && isNewer(loaded.revision, this.#revision)) this.#rebase(loaded.snapshot, loaded.revision, this.#now());
      this.#current = true;
      this.#publish(this.#local, []);
      if (this.#dirty || this.#pending.some((p) => p.durable)) this.#scheduleSave().catch(ignore);
    }).catch(ignore).finally(() => this.#reloading = false);
  }

  /** The effective signal: what `GET /` answers (one field, read on every poll). */
  get signal(): Signal {
    return this.#signal;
  }

  snapshot(): View {
    return { ...this.#local, signal: this.#signal, seq: this.#seq, changedAt: this.#changedAt };
  }

  subscribe(listener: SignalListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The revision the served signal is committed at: nothing made here waits for its commit, and
   * the store is current. Only a shared (fail-closed) backend names states this way.
   */
  get sharedRevisions(): boolean {
    return this.backend.failClosed === true;
  }

  settledRevision(): Revision | null {
    if (!this.backend.failClosed) return null;
    return this.#current && this.#pending.length === 0 && this.#local === this.#base ? this.#revision : null;
  }

  onSettled(listener: (revision: Revision) => void): () => void {
    this.#settledListeners.add(listener);
    return () => this.#settledListeners.delete(listener);
  }

  /**
   * Makes `change`; resolves with the effective signal after it. Toward safety (and a change that
   * alters nothing worth writing) it is made before this returns; toward RUN once committed.
   * Throws TypeError at once for a claim that is not one.
   */
  submit(change: Change): Promise<Signal> {
    checkChange(change);
    const order = ++this.#submitted;
    const at = this.#now();
    const made = transition(this.#local, change, at);
    if (!made.durable) {
      this.#adoptLocal(change, order, at, made.next, made.events, false);
      return Promise.resolve(this.#signal);
    }
    if (towardSafety(change)) {
      this.#adoptLocal(change, order, at, made.next, made.events, true);
      this.#scheduleSave().catch(ignore);
      return Promise.resolve(this.#signal);
    }
    if (!this.#current) {
      const detail = this.backend.health().detail;
      return Promise.reject(new NotSavedError(`${this.backend.where} is not reachable${detail ? `: ${detail}` : ""}`));
    }
    return this.#commitFirst(change, order);
  }

  claim(source: string, state: Signal, reason: string, options: ClaimOptions = {}): Promise<Signal> {
    return this.submit({ kind: "claim", source, state, reason, ...options });
  }

  release(source: string, reason: string, options: ClaimOptions = {}): Promise<Signal> {
    return this.claim(source, "RUN", reason, options);
  }

  forceRun(reason: string, options: { readonly actor?: string } = {}): Promise<Signal> {
    return this.submit({ kind: "force-run", reason, ...(options.actor === undefined ? {} : { actor: options.actor }) });
  }

  /**
   * Resolves once everything made so far is committed (`always`: writes even when nothing
   * changed, as at start); rejects when the write failed (it is retried all the same).
   */
  flush(options: { readonly always?: boolean } = {}): Promise<void> {
    if (options.always) this.#dirty = true;
    return this.#scheduleSave();
  }

  health(): StateHealth {
    return { file: this.backend.where, saved: this.#saved, error: this.#error, since: this.#since, failures: this.#failures };
  }

  /** Stops retrying and watching; one last write, within `graceMs`. */
  async close(graceMs = 1000): Promise<void> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    if (this.#healthTimer) clearInterval(this.#healthTimer);
    this.#abort.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs));
    await Promise.race([this.flush({ always: true }).catch(ignore), late]).finally(() => clearTimeout(timer));
  }

  /** Toward RUN: commit, then make; refused after `saveTimeoutMs`. */
  #commitFirst(change: Change, order: number): Promise<Signal> {
    let gaveUp = false;
    const job = this.#enqueue(async () => {
      if (gaveUp) throw new NotSavedError("abandoned before its turn");
      for (let conflicts = 0;;) {
        // The same source said something later while this waited for its turn (a file source's
        // "empty" then "PAUSE"; a person's RUN then PAUSE), or during a commit that lost to
        // another writer's: that later word stands.
        if ((this.#madeAt.get(sourceOf(change)) ?? 0) > order) return this.#signal;
        // Worked out as of its turn, on the state as it is then (safety changes made meanwhile included).
        const at = this.#now();
        const made = transition(this.#local, change, at);
        if (!made.durable) {
          this.#adoptLocal(change, order, at, made.next, made.events, false);
          return this.#signal;
        }
        const taken = this.#pending.length;
        const result = await this.#tracked(() => this.backend.commit(this.#revision, made.next));
        if (result.ok) {
          this.#revision = result.revision;
          if (gaveUp) {
            // The backend holds a change that was refused: the next write puts the state as it is back.
            this.#dirty = true;
            this.#scheduleSave().catch(ignore);
            throw new NotSavedError("written after it was refused");
          }
          this.#base = made.next;
          this.#pending.splice(0, taken);
          this.#dirty = false;
          this.#made(change, order);
          const shown = this.#local;
          const after = this.#replay(made.next);
          // Changes made during the write stand on top of it: listeners see what a reader sees.
          this.#publish(after, shown === made.next || this.#pending.length === 0 ? made.events : eventsBetween(shown, after, at), true);
          return this.#signal;
        }
        if (++conflicts >= MAX_CONFLICTS) throw new NotSavedError(`${this.backend.where} changed elsewhere ${conflicts} times in a row`);
        this.#rebase(result.latest, result.revision, at);
      }
    });
    // The timer stays referenced: a caller waits on it, and it ends with the job at the latest.
    return within(job, this.saveTimeoutMs, () => {
      gaveUp = true;
      return new NotSavedError(`${this.backend.where} could not be written within ${this.saveTimeoutMs / 1000} s`);
    });
  }

  #made(change: Change, order: number): void {
    const source = sourceOf(change);
    if ((this.#madeAt.get(source) ?? 0) < order) this.#madeAt.set(source, order);
  }

  #adoptLocal(change: Change, order: number, at: Date, next: Snapshot, events: readonly EventDraft[], durable: boolean): void {
    this.#made(change, order);
    if (!durable && this.#pending.length === 0 && this.#jobCount === 0) {
      // Nothing to re-run it over: it is the base now (never written, as it changes nothing that matters).
      this.#base = next;
    } else {
      // A source re-asserting itself again and again while the backend is down: keep its latest only.
      if (change.kind === "claim") {
        this.#pending = this.#pending.filter((p) => p.durable || p.change.kind !== "claim" || p.change.source !== change.source);
      }
      this.#pending.push({ change, at, durable });
    }
    this.#publish(next, events, true);
  }

  /** `#pending` re-run on `base`. */
  #replay(base: Snapshot): Snapshot {
    let state = base;
    for (const p of this.#pending) state = transition(state, p.change, p.at).next;
    return state;
  }

  /** Someone else committed `latest`: it is the base now, what is pending goes on top. */
  #rebase(latest: Snapshot, revision: Revision, at: Date): void {
    this.#base = latest;
    this.#revision = revision;
    const after = this.#replay(latest);
    this.#publish(after, eventsBetween(this.#local, after, at));
  }

  #watched(snapshot: Snapshot, revision: Revision): void {
    // In turn, so that a commit of ours under way has its answer first.
    this.#enqueue(async () => {
      if (isNewer(revision, this.#revision)) this.#rebase(snapshot, revision, this.#now());
    }).catch(ignore);
  }

  #scheduleSave(): Promise<void> {
    if (this.#queuedSave) return this.#queuedSave;
    const save = this.#enqueue(async () => {
      this.#queuedSave = undefined;
      for (let conflicts = 0; this.#dirty || this.#pending.some((p) => p.durable);) {
        const next = this.#local;
        const taken = this.#pending.length;
        const result = await this.#tracked(() => this.backend.commit(this.#revision, next));
        if (result.ok) {
          this.#revision = result.revision;
          this.#base = next;
          this.#pending.splice(0, taken);
          this.#dirty = false;
          this.#tellSettled();
          // What came during the write has its own save queued.
          return;
        }
        if (++conflicts >= MAX_CONFLICTS) {
          // What is made here is still not saved: retried after a pause, as a failed write is.
          const error = new NotSavedError(`${this.backend.where} changed elsewhere ${conflicts} times in a row`, { contended: true });
          this.#failed(error, true);
          throw error;
        }
        this.#rebase(result.latest, result.revision, this.#now());
      }
    });
    this.#queuedSave = save;
    return save;
  }

  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    this.#jobCount += 1;
    const done = this.#jobs.then(job).finally(() => {
      this.#jobCount -= 1;
      this.#foldIfIdle();
    });
    this.#jobs = done.then(ignore, ignore);
    return done;
  }

  /** Idle, with only changes pending that need no write: they are the base now. */
  #foldIfIdle(): void {
    if (this.#jobCount === 0 && !this.#dirty && this.#pending.length && this.#pending.every((p) => !p.durable)) {
      this.#base = this.#local;
      this.#pending = [];
    }
  }

  /** A write whose outcome is recorded in `health()`; a failure schedules a retry. */
  async #tracked<T>(write: () => Promise<T>): Promise<T> {
    // A write that hangs (a lost NFS mount) keeps later ones waiting, so that two never share
    // the temporary file; it shows as failed once overdue.
    const overdue = setTimeout(() => this.#failed(new Error(`a write has not finished after ${this.saveTimeoutMs / 1000} s`), false), this.saveTimeoutMs);
    overdue.unref?.();
    let result: T;
    try {
      result = await write();
    } catch (error) {
      this.#failed(error instanceof Error ? error : new Error(String(error)), true);
      throw error;
    } finally {
      clearTimeout(overdue);
    }
    this.#succeeded();
    return result;
  }

  #failed(error: Error, retry: boolean): void {
    this.#failures += 1;
    if (this.#saved) this.#since = this.#now();
    this.#saved = false;
    this.#error = error.message;
    // Whatever failed, the backend may not hold what is shown here: the retry writes it.
    this.#dirty = true;
    this.#options.onFailure?.(error);
    if (!retry || this.#retry || this.#closed) return;
    this.#retryBackoff ??= new Backoff({ initialMs: this.#options.retryMs ?? 500, maxMs: this.#options.maxRetryMs ?? 10_000 });
    const delay = this.#retryBackoff.next();
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (!this.#closed) this.#scheduleSave().catch(ignore);
    }, delay);
    // A pending retry must not keep a process alive that is otherwise done.
    this.#retry.unref?.();
  }

  #succeeded(): void {
    if (!this.#saved) this.#options.onRecovery?.(this.#failures, this.#since!);
    this.#saved = true;
    this.#error = null;
    this.#since = null;
    this.#retryBackoff?.reset();
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
  }

  /** A change made here is committed now, and nothing else is pending: push tells its readers the revision. */
  #tellSettled(): void {
    const revision = this.settledRevision();
    if (revision === null) return;
    for (const listener of this.#settledListeners) {
      try {
        listener(revision);
      } catch { /* a listener's failure is its own */ }
    }
  }

  /**
   * Adopts `next` and queues its events (numbering the changes); delivers them in order. `local`:
   * made by a change submitted here (the history of a shared store records only those).
   */
  #publish(next: Snapshot, events: readonly EventDraft[], local = false): void {
    const before = this.#signal;
    this.#local = next;
    this.#signal = this.#effective(next.signal);
    if (!this.#current || (before !== this.#signal && !events.some((e) => e.type === "change"))) {
      // Not current (or current again): readers are told of the signal served, not of the one stored.
      const cause = next.claims.find((c) => c.source === next.decidedBy) ?? next.claims[0]!;
      const why = this.#signal === next.signal ? cause : { ...cause, source: "store", state: this.#signal, reason: this.backend.health().detail ?? "the store is not current" };
      events = [
        ...events.filter((e) => e.type !== "change"),
        ...(before === this.#signal ? [] : [{ type: "change" as const, at: this.#now(), signal: this.#signal, previous: before, cause: why }]),
      ];
    }
    const revision = this.settledRevision();
    for (const event of events) {
      // Only a shared store marks them: the history of one process records everything it sees.
      const origin = local && this.backend.failClosed && !(event.type === "change" && event.cause.source === "store") ? { local: true } : {};
      if (event.type === "change") {
        this.#seq += 1;
        this.#changedAt = event.at;
        this.#queue.push({ ...event, seq: this.#seq, ...origin, ...(revision === null ? {} : { revision }) });
      } else {
        this.#queue.push({ ...event, ...origin });
      }
    }
    this.#deliver();
    // Settled without a change of the signal (a commit made elsewhere that confirms ours).
    if (revision !== null && !events.some((e) => e.type === "change")) this.#tellSettled();
  }

  /** A nested change (a listener that claims) leaves the delivery to the outer one: events stay in order. */
  #deliver(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      for (let event = this.#queue.shift(); event; event = this.#queue.shift()) {
        for (const listener of this.#listeners) {
          try {
            listener(event);
          } catch (error) {
            this.#options.onListenerError?.(error, event);
          }
        }
      }
    } finally {
      this.#delivering = false;
    }
  }
}
