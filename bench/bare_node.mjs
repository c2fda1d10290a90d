// The ceiling on Node.js: bare node:http answering RUN with chaos-signal's headers, nothing else.
// Usage: node bench/bare_node.mjs PORT
import { createServer } from "node:http";

const headers = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "content-length": "3" };
createServer((_request, response) => {
  response.writeHead(200, headers);
  response.end("RUN");
}).listen(Number(process.argv[2] ?? 0), "127.0.0.1", function () {
  console.log(`listening on http://127.0.0.1:${this.address().port}/`);
});
