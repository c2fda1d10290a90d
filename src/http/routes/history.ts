/** `GET /history?limit=&before=&source=&type=`: the audit history, newest first, a page at a time. */
import * as v from "valibot";
import { issueLine, strictSection } from "../../config/validation.ts";
import { HttpError, jsonResponse } from "../../web/response.ts";
import { HISTORY_ENTRY_TYPES } from "../../state/history.ts";
import { type AppRouter, type HttpContext, readGuard, resource } from "../route.ts";

const LIMIT_RULE = "an integer from 1 to 1000";
export const HistoryQuery = strictSection({
  limit: v.optional(v.pipe(v.string(LIMIT_RULE), v.regex(/^\d+$/, LIMIT_RULE), v.transform(Number), v.minValue(1, LIMIT_RULE), v.maxValue(1000, LIMIT_RULE)), "100"),
  before: v.optional(v.pipe(v.string("an entry id"), v.regex(/^\d+$/, "an entry id"), v.transform(Number))),
  source: v.optional(v.pipe(v.string("a source name"), v.nonEmpty("a source name"))),
  type: v.optional(v.picklist(HISTORY_ENTRY_TYPES, `one of ${HISTORY_ENTRY_TYPES.join(", ")}`)),
}, "limit, before, source and type");

export function historyRoute(router: AppRouter, ctx: HttpContext): void {
  resource(router, "/history", {
    GET: [...readGuard(ctx), (request) => {
      const query = v.safeParse(HistoryQuery, request.query);
      if (!query.success) {
        throw new HttpError(400, issueLine(query.issues, (key) => `query parameter "${key}" of GET /history`, request.query));
      }
      const page = ctx.history?.page({
        limit: query.output.limit,
        ...(query.output.before === undefined ? {} : { before: query.output.before }),
        ...(query.output.source === undefined ? {} : { source: query.output.source }),
        ...(query.output.type === undefined ? {} : { type: query.output.type }),
      }) ?? { entries: [], next_before: null };
      return jsonResponse(page);
    }],
  }, ctx.endpoints);
}
