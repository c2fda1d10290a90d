/**
 * Many Krkn-like signal servers in one process, for the relay's fleet tests and bench/fleet.ts:
 * each target listens on its own loopback port and answers as Krkn's server.py does (HTTP/1.0,
 * `GET /` the state, `POST /RUN|/PAUSE|/STOP` an empty 200, silence on anything else, the
 * connection closed after each answer).
 *
 *   deno run -A test/helpers/krkn_fleet_process.ts COUNT [INITIAL_STATE]
 *   bun run test/helpers/krkn_fleet_process.ts COUNT [INITIAL_STATE]
 *
 * Prints one JSON line `{"control": port, "ports": [...]}` once every target listens. The control
 * port (HTTP/1.1, loopback) serves:
 *
 *   GET  /counts                       {"RUN": n, "PAUSE": n, "STOP": n}
 *   GET  /states                       the state of each target, in port order
 *   GET  /await?state=S&timeout=MS     answers once every target holds S: {"at": epoch ms (fractional)
 *                                      when the last one got it}; 504 after MS
 *   POST /set?index=I&state=S          sets target I to S behind the relay's back (a restarted Krkn)
 *   GET  /requests                     requests served by the targets, by "METHOD /path"
 */
import { createServer as createHttpServer, type ServerResponse } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import process from "node:process";

type State = "RUN" | "PAUSE" | "STOP";
const STATES: readonly State[] = ["RUN", "PAUSE", "STOP"];
const MAX_HEAD_BYTES = 8192;

const count = Number(process.argv[2]);
const initial = (process.argv[3] ?? "RUN") as State;
if (!Number.isInteger(count) || count < 1 || count > 5000 || !STATES.includes(initial)) {
  console.error("usage: krkn_fleet_process.ts COUNT(1-5000) [RUN|PAUSE|STOP]");
  process.exit(2);
}

const states: State[] = new Array(count).fill(initial);
const counts: Record<State, number> = { RUN: 0, PAUSE: 0, STOP: 0 };
counts[initial] = count;
/** When every target last came to hold each state (epoch ms, fractional). */
const allAt: Partial<Record<State, number>> = { [initial]: now() };
const waiters = new Set<{ state: State; resolve: (at: number) => void }>();
const requests = new Map<string, number>();

function now(): number {
  return performance.timeOrigin + performance.now();
}

function setState(index: number, next: State): void {
  const previous = states[index]!;
  if (previous === next) return;
  states[index] = next;
  counts[previous] -= 1;
  counts[next] += 1;
  if (counts[next] !== count) return;
  const at = now();
  allAt[next] = at;
  for (const waiter of [...waiters]) {
    if (waiter.state === next) {
      waiters.delete(waiter);
      waiter.resolve(at);
    }
  }
}

/** One connection to target `index`: one request, one answer, closed (HTTP/1.0, as Krkn's HTTPServer). */
function serveTarget(index: number, socket: Socket): void {
  let head = "";
  socket.setEncoding("latin1");
  socket.on("error", () => {});
  socket.on("data", (chunk: string) => {
    head += chunk;
    if (head.length > MAX_HEAD_BYTES) return void socket.destroy();
    if (!head.includes("\r\n\r\n")) return;
    socket.removeAllListeners("data");
    const [method, path] = head.slice(0, head.indexOf("\r\n")).split(" ");
    const key = `${method} ${path}`;
    requests.set(key, (requests.get(key) ?? 0) + 1);
    const headers = "HTTP/1.0 200 OK\r\nServer: BaseHTTP/0.6 Python/3.11\r\n\r\n";
    if (method === "GET" && path === "/") {
      socket.end(headers + states[index]);
    } else if (method === "POST" && STATES.includes(path?.slice(1) as State)) {
      setState(index, path!.slice(1) as State);
      socket.end(headers);
    } else {
      socket.destroy(); // Krkn's server says nothing to an unknown path or method
    }
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
  });
}

function json(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

const ports: number[] = [];
for (let index = 0; index < count; index++) {
  ports.push(await listen(createServer((socket) => serveTarget(index, socket))));
}

const control = createHttpServer((request, response) => {
  const url = new URL(request.url ?? "/", "http://127.0.0.1");
  const state = url.searchParams.get("state") as State;
  if (url.pathname === "/counts") return json(response, 200, counts);
  if (url.pathname === "/states") return json(response, 200, states);
  if (url.pathname === "/requests") return json(response, 200, Object.fromEntries(requests));
  if (url.pathname === "/await" && STATES.includes(state)) {
    if (counts[state] === count) return json(response, 200, { at: allAt[state] });
    const timeoutMs = Math.min(Number(url.searchParams.get("timeout") ?? 30_000), 120_000);
    const waiter = { state, resolve: (at: number) => (clearTimeout(timer), json(response, 200, { at })) };
    const timer = setTimeout(() => {
      waiters.delete(waiter);
      json(response, 504, { error: `not every target holds ${state}`, counts });
    }, timeoutMs);
    waiters.add(waiter);
    return;
  }
  const index = Number(url.searchParams.get("index"));
  if (url.pathname === "/set" && request.method === "POST" && Number.isInteger(index) && index >= 0 && index < count && STATES.includes(state)) {
    setState(index, state);
    return json(response, 200, { index, state });
  }
  json(response, 404, { error: "unknown control request" });
});
control.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ control: (control.address() as { port: number }).port, ports }));
});
