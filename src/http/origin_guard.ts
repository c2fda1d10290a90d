/**
 * Refuses the requests that a page on another site makes the operator's browser send: without
 * tokens (the default) an auto-submitted `<form method=POST action=".../STOP">` or a `no-cors`
 * `fetch(".../RUN?force=true")` would otherwise change the signal. Browsers mark such requests
 * with `Sec-Fetch-Site` and `Origin`, headers a page cannot forge; clients that are not browser
 * pages (Krkn's `http.client`, curl, Alertmanager, scripts) send neither and pass unchanged.
 *
 * The rules follow Go's `net/http.CrossOriginProtection`: an allowed origin passes; else
 * `Sec-Fetch-Site` decides when present; else an `Origin` must name this server's host. The host
 * (with its port), not the scheme, is compared: behind a TLS proxy the browser says `https://`
 * while the request reaches us as `http://`, and another scheme on the same host and port is the
 * same server.
 */
import { canonicalOrigin } from "../config/origins.ts";
import { HttpError } from "../web/response.ts";

/** Only these methods may come from anywhere: they change nothing. */
const SAFE_METHODS = new Set(["GET", "HEAD"]);

/** Header values are echoed in the reason: keep them short. */
function shown(value: string): string {
  return value.length > 100 ? `${value.slice(0, 97)}...` : value;
}

export class OriginGuard {
  readonly #allowed: ReadonlySet<string>;

  /** `allowedOrigins`: pages of these origins may change the signal too (already canonical). */
  constructor(allowedOrigins: readonly string[] = []) {
    this.#allowed = new Set(allowedOrigins.map((origin) => canonicalOrigin(origin) ?? origin));
  }

  /** Throws 403 with the reason when a browser sends `request` for a page of another origin. */
  check(request: Request): void {
    if (SAFE_METHODS.has(request.method)) return;
    const origin = request.headers.get("origin");
    if (origin !== null && this.#allowed.has(canonicalOrigin(origin) ?? origin)) return;
    const fetchSite = request.headers.get("sec-fetch-site")?.trim().toLowerCase();
    // `none`: the user's own action (typed, bookmarked); `same-origin`: this server's own page.
    if (fetchSite === "same-origin" || fetchSite === "none") return;
    const self = new URL(request.url).host;
    if (fetchSite !== undefined) {
      throw this.#refusal(request, `Sec-Fetch-Site: ${shown(fetchSite)}${origin === null ? "" : `, Origin: ${shown(origin)}`}`, self);
    }
    // No Origin: not a page's request (browsers send it on every cross-origin POST).
    if (origin === null) return;
    // `null` (sandboxed iframes, file:// pages) names no origin at all, so never this one.
    if (origin !== "null" && canonicalOrigin(origin) !== undefined && new URL(origin).host === self) return;
    throw this.#refusal(request, `Origin: ${shown(origin)}`, self);
  }

  #refusal(request: Request, what: string, self: string): HttpError {
    return new HttpError(
      403,
      `cross-origin ${request.method} refused (${what}; this server is ${self || "unnamed"}): a page of another site may not change the signal; ` +
        "allowed are this server's own pages, clients that send no Origin (curl, scripts, Krkn, Alertmanager) " +
        "and the origins listed in chaos_signal.allowed_origins",
    );
  }
}
