/**
 * `GET /status`: JSON with the claims, sources, latch, version and uptime (see http/status.ts).
 * `GET /status/<kind>s/<name>`: a plugin's full state, paged by the plugin (`PluginDescription.page`,
 * a relay's targets at `/status/relays/<name>`), for what is too large for `/status`.
 */
import { HttpError, jsonResponse } from "../../web/response.ts";
import { statusDocument } from "../status.ts";
import { type AppRouter, decodeSegment, type HttpContext, readGuard, resource, showPath, type SignalTarget } from "../route.ts";

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
  resource(router, "/status/:section/:name", {
    GET: [...readGuard(ctx), (request) => {
      const section = decodeSegment(request.params.section!);
      const name = decodeSegment(request.params.name!);
      const statuses = ctx.plugins?.statuses() ?? [];
      const paged = statuses.filter((status) => ctx.describe(status)?.page).map((status) => `/status/${status.kind}s/${status.name}`);
      const status = statuses.find((s) => s.name === name && `${s.kind}s` === section);
      const page = status && ctx.describe(status)?.page;
      if (!status || !page) {
        const path = showPath(new URL(request.url).pathname);
        throw new HttpError(404, `no paged status at ${path}; there is one at: ${paged.join(", ") || "none (no relay configured)"}`);
      }
      return jsonResponse(page.call(ctx.describe(status), status, new URL(request.url).searchParams));
    }],
  }, ctx.endpoints, "a plugin's full state in pages: /status/relays/<name>");
}
