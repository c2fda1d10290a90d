/** `GET /healthz` (liveness: the process answers) and `GET /readyz` (every source has reported; relays and hooks are not waited for). */
import { HttpError, textResponse } from "../../web/response.ts";
import { type AppRouter, type HttpContext, resource } from "../route.ts";

export function healthRoutes(router: AppRouter, ctx: HttpContext): void {
  resource(router, "/healthz", { GET: [() => textResponse("ok\n")] }, ctx.endpoints);
  // Until every source has reported at least once, the signal may lack a claim.
  resource(router, "/readyz", {
    GET: [() => {
      const store = ctx.storeHealth?.();
      if (store && !store.current) throw new HttpError(503, `not ready: not current with the store (${store.detail ?? "reloading"}); serving PAUSE`);
      const waiting = ctx.plugins?.waitingFor() ?? [];
      if (waiting.length === 0) return textResponse("ready\n");
      throw new HttpError(503, `not ready: waiting for the first observation of ${waiting.join(", ")}`);
    }],
  }, ctx.endpoints);
}
