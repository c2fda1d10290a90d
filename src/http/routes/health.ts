/**
 * `GET /healthz` (liveness: the process answers) and `GET /readyz` (readiness: this process can serve
 * the signal). A source that has not observed yet does not hold readiness back: its fail-closed
 * claim (a Prometheus source's PAUSE) is the answer clients must get, so the pod stays in its
 * Service; `/status` and `/metrics` show what it waits for. Only a replica cut off from its
 * shared store (etcd) is unready: another replica can serve.
 */
import { HttpError, textResponse } from "../../web/response.ts";
import { type AppRouter, type HttpContext, resource } from "../route.ts";

export function healthRoutes(router: AppRouter, ctx: HttpContext): void {
  resource(router, "/healthz", { GET: [() => textResponse("ok\n")] }, ctx.endpoints);
  resource(router, "/readyz", {
    GET: [() => {
      const store = ctx.storeHealth?.();
      if (store && !store.current) throw new HttpError(503, `not ready: not current with the store (${store.detail ?? "reloading"}); serving PAUSE`);
      const waiting = ctx.plugins?.waitingFor() ?? [];
      if (waiting.length === 0) return textResponse("ready\n");
      return textResponse(`ready (not observed yet: ${waiting.join(", ")}; see /status)\n`);
    }],
  }, ctx.endpoints);
}
