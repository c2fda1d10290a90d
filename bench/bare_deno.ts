// The ceiling on Deno: the bare runtime answering RUN, nothing else. Usage: deno run -A bench/bare_deno.ts PORT
const port = Number(Deno.args[0] ?? 0);
Deno.serve({ hostname: "127.0.0.1", port, onListen: ({ port }) => console.log(`listening on http://127.0.0.1:${port}/`) }, () =>
  new Response("RUN", { headers: { "content-type": "text/plain; charset=utf-8" } }));
