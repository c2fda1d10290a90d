/**
 * `GET /events`: the effective signal as Server-Sent Events.
 *
 *   retry: 1000
 *
 *   id: 0@9f86d081
 *   event: signal
 *   data: RUN
 *
 *   : keepalive
 *
 *   id: 1@9f86d081
 *   event: signal
 *   data: PAUSE
 *
 * The current signal comes at once, then one event per change of the
 * effective signal, and a comment line every heartbeat so that proxies and
 * load balancers see traffic and keep the stream open. An event id is the
 * arbiter's change counter and this server process' instance name.
 *
 * A client that reconnects with `Last-Event-ID` equal to the current event's
 * id is up to date and gets no initial event; any other id (older, from a
 * previous server process, or garbage) gets the current signal at once. The
 * changes it missed are not replayed: they are coalesced into the latest
 * state, because a chaos runner only acts on the signal as it is now.
 *
 * On a shared store (etcd) an id is the store revision the signal is committed at, the same on
 * every replica, so a client resumes on another replica with its `Last-Event-ID`. A replica
 * that has not seen that revision yet sends nothing until it has something newer.
 */
import type { SubscriberHub, SignalVersion } from "./hub.ts";

/** The browser's EventSource (and our client) waits this long before reconnecting. */
export const RETRY_MS = 1000;

/** How often a comment line keeps the stream busy. */
export const DEFAULT_HEARTBEAT_MS = 15_000;

/**
 * Chunks queued for a client that does not read: past this, the stream is
 * ended instead of growing without bound. The client reconnects and gets the
 * current signal, which is all it would have learnt from the backlog.
 */
export const MAX_BACKLOG_CHUNKS = 64;

const EVENT_STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-store",
  // nginx buffers responses unless told otherwise, which would hold events back.
  "x-accel-buffering": "no",
} as const;

export interface EventStreamOptions {
  /** The request's `Last-Event-ID` header, if any. */
  readonly lastEventId: string | null;
  readonly heartbeatMs: number;
  /** The request's signal: aborted when the client goes away (the runtimes also cancel the body). */
  readonly abort?: AbortSignal;
}

const encoder = new TextEncoder();

/** A plain revision id (`42`): a state committed in a shared store. */
const REVISION_ID = /^\d{1,20}$/;

function signalEvent(events: SubscriberHub, state: SignalVersion): Uint8Array {
  return encoder.encode(`id: ${events.eventId(state)}\nevent: signal\ndata: ${state.signal}\n\n`);
}

export function eventStreamResponse(events: SubscriberHub, options: EventStreamOptions): Response {
  let end = () => {};
  const body = new ReadableStream<Uint8Array>({
    // start() runs synchronously inside the constructor: no change can slip in
    // between reading the current signal and subscribing.
    start(controller) {
      let ended = false;
      let unsubscribe = () => {};
      let heartbeat: ReturnType<typeof setInterval> | undefined;
      end = () => {
        if (ended) return;
        ended = true;
        unsubscribe();
        clearInterval(heartbeat);
        options.abort?.removeEventListener("abort", end);
        try {
          controller.close();
        } catch {
          // The runtime already closed or cancelled the stream (the client went away).
        }
      };
      const send = (chunk: Uint8Array) => {
        if (ended) return;
        try {
          controller.enqueue(chunk);
        } catch {
          return end();
        }
        // desiredSize falls below zero as chunks queue up unread.
        if ((controller.desiredSize ?? 0) <= -MAX_BACKLOG_CHUNKS) end();
      };

      send(encoder.encode(`retry: ${RETRY_MS}\n\n`));
      const current = events.current();
      // A client that knows a newer revision than this replica has: what this one has is stale,
      // so it waits for its next change (which may repeat what the client has: harmless).
      const known = events.revisionIds && options.lastEventId !== null && REVISION_ID.test(options.lastEventId) ? BigInt(options.lastEventId) : undefined;
      const behind = known !== undefined && current.revision !== undefined && BigInt(current.revision) < known;
      if (options.lastEventId !== events.eventId(current) && !behind) send(signalEvent(events, current));
      unsubscribe = events.subscribe("stream", { change: (state) => send(signalEvent(events, state)), close: end });
      // A hub that is already closed ends the stream at once, and so does a client already gone.
      if (ended) return;
      if (options.abort?.aborted) return end();
      heartbeat = setInterval(() => send(encoder.encode(": keepalive\n\n")), options.heartbeatMs);
      options.abort?.addEventListener("abort", end, { once: true });
    },
    // The client disconnected: both runtimes cancel the response body.
    cancel() {
      end();
    },
  });
  return new Response(body, { headers: EVENT_STREAM_HEADERS });
}
