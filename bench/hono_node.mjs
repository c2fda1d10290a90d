// chaos-signal's handler served by the @hono/node-server adapter instead of src/serve/node.ts, to
// weigh a well-kept adapter library against the hand-written one (README, "Performance").
// Usage: HONO_NODE_SERVER=/path/to/node_modules/@hono/node-server/dist/index.mjs node bench/hono_node.mjs PORT
// after `npm run build` (dist/lib) and `npm install @hono/node-server` somewhere outside the project.
import { createServer } from "../dist/lib/mod.js";

const { serve } = await import(process.env.HONO_NODE_SERVER);
const app = await createServer({ settings: { stateFile: "none" } });
app.start();
serve({ fetch: (request, env) => app.fetch(request, { remoteAddress: env.incoming.socket.remoteAddress }), hostname: "127.0.0.1", port: Number(process.argv[2] ?? 0) }, (info) => {
  console.log(`listening on http://127.0.0.1:${info.port}/`);
});
