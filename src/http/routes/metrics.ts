/** `GET /metrics`: Prometheus text exposition (http/metrics.ts renders it). */
import { textResponse } from "../../web/response.ts";
import type { Metrics, StoreMetrics } from "../metrics.ts";
import { type AppRouter, type HttpContext, readGuard, resource, type SignalTarget } from "../route.ts";

const EXPOSITION_HEADERS = { "content-type": "text/plain; version=0.0.4; charset=utf-8" };

export function metricsRoute(router: AppRouter, ctx: HttpContext, target: SignalTarget, metrics: Metrics): void {
  resource(router, "/metrics", {
    GET: [...readGuard(ctx), () =>
      textResponse(
        metrics.render({
          snapshot: target.store.snapshot(),
          sources: ctx.plugins?.statuses() ?? [],
          waiting: ctx.plugins?.waitingFor() ?? [],
          describe: ctx.describe,
          subscribers: target.events.counts(),
          version: ctx.version,
          runtime: ctx.runtime,
          startedAt: ctx.startedAt,
          ...(ctx.stateHealth ? { state: ctx.stateHealth() } : {}),
          ...storeOf(ctx, target),
        }),
        { headers: EXPOSITION_HEADERS },
      )],
  }, ctx.endpoints);
}

/** etcd: its status; the file store: always current (the families show only with a store, not in memory). */
function storeOf(ctx: HttpContext, target: SignalTarget): { store?: StoreMetrics } {
  if (ctx.storeHealth) {
    const status = ctx.storeHealth();
    return { store: { type: status.type, current: status.current, revision: status.revision, replica: status.replica, leading: status.leading } };
  }
  return ctx.stateHealth ? { store: { type: "file", current: true, revision: target.store.revision } } : {};
}
