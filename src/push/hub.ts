/**
 * The subscription hub behind push: every open event stream (`GET /events`)
 * and every pending long-poll (`GET /?wait=...&since=...`) is a subscriber
 * here, told of each change of the effective signal in order.
 *
 * The hub exists so that the server can count its subscribers (a client that
 * went away must not stay subscribed) and end them all at shutdown: an open
 * stream would otherwise keep the runtime's graceful shutdown waiting.
 */
import type { RevisionFeed, SignalFeed } from "../core/events.ts";
import type { Signal } from "../core/signal.ts";

/** The effective signal and the change counter it belongs to. */
export interface SignalVersion {
  readonly signal: Signal;
  /** The arbiter's change counter: 0 until the first change, then one more per change. */
  readonly seq: number;
  /** A shared store's revision this signal is committed at (the same on every replica), if it is. */
  readonly revision?: string;
}

/** Whether `feed` is a store whose revisions name states across replicas. */
function revisionsOf(feed: SignalFeed): RevisionFeed | undefined {
  const candidate = feed as Partial<RevisionFeed>;
  return candidate.sharedRevisions === true && typeof candidate.settledRevision === "function" && typeof candidate.onSettled === "function"
    ? candidate as RevisionFeed
    : undefined;
}

export interface Subscriber {
  /** The effective signal changed. Called synchronously, once per change, in order. */
  change(state: SignalVersion): void;
  /** The hub is closing (the server shuts down): answer or end the response now. */
  close(): void;
}

export type SubscriberKind = "stream" | "longPoll";

/** How many clients are subscribed right now. */
export interface SubscriberCounts {
  /** Open `GET /events` streams. */
  readonly events: number;
  /** Pending `GET /?wait=...` requests. */
  readonly longPolls: number;
}

export class SubscriberHub {
  readonly #arbiter: SignalFeed;
  readonly #subscribers = { stream: new Set<Subscriber>(), longPoll: new Set<Subscriber>() };
  readonly #unsubscribe: () => void;
  readonly #revisions: RevisionFeed | undefined;
  /** The last state told to subscribers (or current at construction). */
  #last: SignalVersion | undefined;
  #closed = false;
  /**
   * Names this server process in event ids. The change counter starts again
   * at 0 when the server restarts, so a bare counter would let a client that
   * reconnects with `Last-Event-ID: 0` skip the new process' first signal,
   * which may well differ (another `signal_state`).
   */
  readonly instance: string = crypto.randomUUID().slice(0, 8);

  constructor(arbiter: SignalFeed) {
    this.#arbiter = arbiter;
    // A shared store (etcd) with a revision at start: event ids are its revisions.
    this.#revisions = revisionsOf(arbiter);
    const unsubscribeChanges = arbiter.subscribe((event) => {
      if (event.type !== "change") return;
      this.#tell({ signal: event.signal, seq: event.seq, ...(this.#revisions && event.revision !== undefined ? { revision: event.revision } : {}) });
    });
    // A STOP made here is told at once under a provisional id; once committed, streams hear it
    // again under its revision, so that a client that reconnects elsewhere resumes from there.
    const unsubscribeSettled = this.#revisions?.onSettled((revision) => {
      const last = this.#last;
      if (!last || last.revision === revision) return;
      this.#tell({ signal: last.signal, seq: last.seq, revision }, ["stream"]);
    }) ?? (() => {});
    this.#unsubscribe = () => {
      unsubscribeChanges();
      unsubscribeSettled();
    };
  }

  #tell(state: SignalVersion, kinds: readonly SubscriberKind[] = ["stream", "longPoll"]): void {
    this.#last = state;
    {
      // A copy: subscribers leave the set while being told (a long-poll answers once).
      for (const kind of kinds) {
        for (const subscriber of [...this.#subscribers[kind]]) {
          try {
            subscriber.change(state);
          } catch {
            // One broken response must not keep the others from hearing of the change.
            this.#subscribers[kind].delete(subscriber);
            subscriber.close();
          }
        }
      }
    }
  }

  /** The current signal, consistent with the changes subscribers are told of. */
  current(): SignalVersion {
    const { signal, seq } = this.#arbiter.snapshot();
    const revision = this.#revisions?.settledRevision() ?? null;
    return revision === null ? { signal, seq } : { signal, seq, revision };
  }

  /** Whether event ids are the shared store's revisions. */
  get revisionIds(): boolean {
    return this.#revisions !== undefined;
  }

  /**
   * The id of the event that carries `state`: `<seq>@<instance>`, e.g. `3@9f86d081`. On a shared
   * store, the revision it is committed at (`42`, the same on every replica); while not committed,
   * `<revision>+<seq>@<instance>`, which no other replica (nor a later state) answers to.
   */
  eventId(state: SignalVersion): string {
    if (!this.#revisions) return `${state.seq}@${this.instance}`;
    return state.revision ?? `${this.#revisions.revision}+${state.seq}@${this.instance}`;
  }

  /** True once `close()` was called: no new subscribers. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Adds a subscriber; returns the function that removes it (safe to call
   * twice). After `close()` the subscriber is closed at once.
   */
  subscribe(kind: SubscriberKind, subscriber: Subscriber): () => void {
    if (this.#closed) {
      subscriber.close();
      return () => {};
    }
    const set = this.#subscribers[kind];
    set.add(subscriber);
    return () => void set.delete(subscriber);
  }

  counts(): SubscriberCounts {
    return { events: this.#subscribers.stream.size, longPolls: this.#subscribers.longPoll.size };
  }

  /** Ends every stream and answers every long-poll now; later subscribers are closed at once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    const all = [...this.#subscribers.stream, ...this.#subscribers.longPoll];
    this.#subscribers.stream.clear();
    this.#subscribers.longPoll.clear();
    for (const subscriber of all) subscriber.close();
  }
}
