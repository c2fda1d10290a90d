/** `GET /ui`: the web dashboard, one self-contained page (http/ui_page.ts). */
import { uiResponse } from "../ui_page.ts";
import { type AppRouter, type HttpContext, resource } from "../route.ts";

export function uiRoute(router: AppRouter, ctx: HttpContext): void {
  // Open even with protect_reads: a browser cannot send a token when it navigates; the page holds no data.
  resource(router, "/ui", { GET: [() => uiResponse()] }, ctx.endpoints);
}
