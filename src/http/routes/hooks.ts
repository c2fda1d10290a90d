/** `/hooks/<name>`: a plugin's own route (webhook receivers), any method: the plugin answers. */
import { actorOf, type AppRouter, authorize, decodeSegment, type HttpContext } from "../route.ts";

export function hooksRoute(router: AppRouter, ctx: HttpContext): void {
  ctx.endpoints.add(...(ctx.plugins?.routes() ?? []).map((route) => `POST ${route}`));
  router.all("/hooks/:name", (request, info) => {
    const found = ctx.plugins?.plugin(decodeSegment(request.params.name ?? ""));
    if (!found?.plugin.fetch) return undefined;
    const tokenName = found.plugin.authenticates ? undefined : authorize(ctx, request);
    const remoteAddress = actorOf(tokenName, info);
    // The plugin sees the method sent: a HEAD stays a HEAD here (its body is dropped all the same).
    return found.plugin.fetch(request.received ?? request, { source: found.context, ...(remoteAddress === undefined ? {} : { remoteAddress }) });
  });
}
