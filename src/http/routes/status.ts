/** `GET /status`: JSON with the claims, sources, latch, version and uptime (see http/status.ts). */
import { jsonResponse } from "../../web/response.ts";
import { statusDocument } from "../status.ts";
import { type AppRouter, type HttpContext, readGuard, resource, type SignalTarget } from "../route.ts";

export function statusRoute(router: AppRouter, ctx: HttpContext, target: SignalTarget): void {
  resource(router, "/status", {
    GET: [...readGuard(ctx), () =>
      jsonResponse(statusDocument(target.store.snapshot(), {
        version: ctx.version,
        runtime: ctx.runtime,
        startedAt: ctx.startedAt,
        now: ctx.now(),
        sources: ctx.plugins?.statuses() ?? [],
        waiting: ctx.plugins?.waitingFor() ?? [],
        describe: ctx.describe,
        subscribers: target.events.counts(),
        ...(ctx.stateHealth ? { state: ctx.stateHealth() } : {}),
        ...(ctx.storeHealth ? { store: ctx.storeHealth() } : {}),
      }))],
  }, ctx.endpoints);
}
