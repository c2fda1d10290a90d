// The ceiling on Deno: the bare runtime answering RUN, nothing else.
// Usage: deno run -A bench/bare_deno.ts PORT [minimal|same]
// minimal: content-type only; same: also chaos-signal's cache-control, so the answer has the same bytes.
const port = Number(Deno.args[0] ?? 0);
const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
if (Deno.args[1] === "same") headers["cache-control"] = "no-store";
Deno.serve({ hostname: "127.0.0.1", port, onListen: ({ port }) => console.log(`listening on http://127.0.0.1:${port}/`) }, () =>
  new Response("RUN", { headers }));
