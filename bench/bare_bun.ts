// The ceiling on Bun: the bare runtime answering RUN, nothing else.
// Usage: bun run bench/bare_bun.ts PORT [minimal|same]
// minimal: content-type only; same: also chaos-signal's cache-control, so the answer has the same bytes.
/// <reference types="bun-types" />
const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
if (process.argv[3] === "same") headers["cache-control"] = "no-store";
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  fetch: () => new Response("RUN", { headers }),
});
console.log(`listening on http://127.0.0.1:${server.port}/`);
