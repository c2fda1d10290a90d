/** `GET /events`: the signal as Server-Sent Events, now and at every change (push/event_stream.ts). */
import { eventStreamResponse } from "../../push/event_stream.ts";
import { HttpError } from "../../web/response.ts";
import { type AppRouter, type HttpContext, readGuard, resource, type SignalTarget } from "../route.ts";

export function eventsRoute(router: AppRouter, ctx: HttpContext, target: SignalTarget): void {
  const { events } = target;
  const heartbeatMs = ctx.heartbeatMs;
  resource(router, "/events", {
    GET: [...readGuard(ctx), (request, info) => {
      if (events.closed) throw new HttpError(503, "the server is shutting down; reconnect to another instance or later");
      // Each heartbeat resets the runtime's idle timer; a client that stops reading stops them, and is cut.
      info?.holdOpen?.(2 * Math.ceil(heartbeatMs / 1000) + 10);
      // For a HEAD, app.ts cancels this body at once, which ends the subscription.
      return eventStreamResponse(events, { lastEventId: request.headers.get("last-event-id"), heartbeatMs, abort: request.signal });
    }],
  }, ctx.endpoints);
}
