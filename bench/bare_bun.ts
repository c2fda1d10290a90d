// The ceiling on Bun: the bare runtime answering RUN, nothing else. Usage: bun run bench/bare_bun.ts PORT
/// <reference types="bun-types" />
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  fetch: () => new Response("RUN", { headers: { "content-type": "text/plain; charset=utf-8" } }),
});
console.log(`listening on http://127.0.0.1:${server.port}/`);
