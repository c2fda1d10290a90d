// Bad input over a real socket: every case gets an answer (or, for a request
// that never finishes, nothing), and none of them changes the signal.
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import { startFakePrometheus, vector } from "./helpers/fake_prometheus.ts";
import { tempFile } from "./helpers/files.ts";
import { rawRequest, statusOf } from "./helpers/raw_http.ts";
import { runCli, runtimeCommand, sharedServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const chunk = (size: number) => `${size.toString(16)}\r\n${"y".repeat(size)}\r\n`;

const cases: (readonly [string, string | Uint8Array, (status: number | null) => boolean])[] = [
  ["malformed percent-encoding", "POST /%E0%A4%A HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", (s) => s === 400],
  ["a bare percent sign", "POST /%%% HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", (s) => s === 400],
  ["a signal name padded with blanks", "POST /%20STOP%0A HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", (s) => s === 404],
  ["a signal name with a no-break space", "POST /%C2%A0STOP HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", (s) => s === 404],
  ["a 9 KB URL", `POST /STOP?${"a".repeat(9000)} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`, (s) => s === 414],
  ["a 100 KB URL", `POST /STOP?${"a".repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, (s) => s !== null && s >= 400 && s < 500],
  ["a 100 KB header", `POST /STOP HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(100_000)}\r\n\r\n`, (s) => s !== null && s >= 400 && s < 500],
  ["a garbage request line", "HELLO\r\n\r\n", (s) => s !== null && s >= 400 && s < 600],
  ["binary bytes", new Uint8Array([0, 1, 2, 255, 13, 10, 13, 10]), (s) => s !== null && s >= 400 && s < 600],
  ["an invalid Content-Length", "POST /STOP HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", (s) => s === 400],
  ...["PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "LINK", "PURGE"].map((method) =>
    [`method ${method}`, `${method} /STOP HTTP/1.1\r\nHost: x\r\n\r\n`, (s: number | null) => s === 405] as const
  ),
  // A method name outside IANA's registry: Deno passes it on (405 from us); Bun's parser
  // closes the connection before chaos-signal sees the request, Node's answers 400 (README: runtime differences).
  ["an unregistered method", "BREW /STOP HTTP/1.1\r\nHost: x\r\n\r\n", (s) => ({ bun: s === null, node: s === 400, deno: s === 405 })[runtimeCommand().name]],
  ["an unknown path", "POST /HALT HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", (s) => s === 404],
  ["an unknown query parameter", "POST /STOP?for=1m HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", (s) => s === 400],
  ["a body over the limit", `POST /STOP HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n${"x".repeat(70000)}`, (s) => s === 413],
  ["a chunked body over the limit", `POST /STOP HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(0x4000).repeat(5)}0\r\n\r\n`, (s) => s === 413],
];

describe("bad input against the real server", () => {
  const shared = sharedServer(["--state", "PAUSE"]);
  after(() => shared.stop());

  async function signal(): Promise<string> {
    const server = await shared.get();
    return await (await fetch(`${server.url}/`)).text();
  }

  for (const [name, request, expected] of cases) {
    test(`${name}: answered, signal unchanged`, async () => {
      const server = await shared.get();
      const response = await rawRequest(server.host, server.port, request);
      assert.ok(expected(statusOf(response)), `unexpected answer: ${JSON.stringify(response.slice(0, 200))}`);
      assert.equal(await signal(), "PAUSE");
    });
  }

  test("requests without a Host header (HTTP/1.0, as Krkn's tools send) get a plain answer", async () => {
    const server = await shared.get();
    const get = await rawRequest(server.host, server.port, "GET / HTTP/1.0\r\n\r\n");
    assert.equal(statusOf(get), 200, get.slice(0, 200));
    assert.ok(get.endsWith("\r\n\r\nPAUSE"), JSON.stringify(get.slice(-40)));
    const unknown = await rawRequest(server.host, server.port, "GET /nope HTTP/1.0\r\n\r\n");
    assert.equal(statusOf(unknown), 404, unknown.slice(0, 200));
    assert.match(unknown, /\r\n\r\nno endpoint at \/nope; endpoints: /);
    const emptyHost = await rawRequest(server.host, server.port, "GET / HTTP/1.1\r\nHost:\r\n\r\n");
    assert.ok([200, 400].includes(statusOf(emptyHost)!), emptyHost.slice(0, 200));
    assert.doesNotMatch(emptyHost, /<html/i, "never an HTML error page");
  });

  test("a POST whose body never finishes changes nothing", async () => {
    const server = await shared.get();
    const response = await rawRequest(server.host, server.port, "POST /STOP HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", {
      closeAfterMs: 300,
    });
    assert.equal(response, "", "no answer before the body is complete");
    assert.equal(await signal(), "PAUSE");
  });

  test("1,000 POSTs of mixed signals in flight at once: each answer is consistent, and so is the end state", async () => {
    const server = await shared.get();
    const changesBefore = (await (await fetch(`${server.url}/status`)).json()).changes;
    const posted = Array.from({ length: 1000 }, (_, i) => ["RUN", "PAUSE", "STOP", "run", "pause"][(i * 7) % 5]!);
    // Connect all 1,000 sockets first, then send every request, so they really are concurrent.
    const sockets = await Promise.all(posted.map(() =>
      new Promise<Socket>((resolve, reject) => {
        const socket = connect({ host: server.host, port: server.port }, () => resolve(socket));
        socket.on("error", reject);
      })
    ));
    const answers = await Promise.all(sockets.map((socket, i) =>
      new Promise<string>((resolve) => {
        let received = "";
        socket.setEncoding("latin1");
        socket.on("data", (data: string) => (received += data));
        socket.on("close", () => resolve(received));
        socket.end(`POST /${posted[i]} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      })
    ));
    answers.forEach((answer, i) => {
      assert.equal(statusOf(answer), 200, `request ${i}: ${answer.slice(0, 80)}`);
      const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
      const asked = posted[i]!.toUpperCase();
      // Only the manual source claims: RUN opens the latch and answers RUN, STOP answers STOP,
      // PAUSE answers PAUSE unless a STOP before it latched.
      const allowed = asked === "PAUSE" ? ["PAUSE", "STOP"] : [asked];
      assert.ok(allowed.includes(body), `POST /${posted[i]} answered ${JSON.stringify(body)}`);
    });
    const status = await (await fetch(`${server.url}/status`)).json();
    const manual = status.claims.find((claim: { source: string }) => claim.source === "manual");
    assert.equal(await signal(), status.signal);
    assert.equal(status.signal, status.stop_latch ? "STOP" : manual.state);
    // Every change the server counted is one it logged (the log may trail a little through the pipe).
    const logged = () => server.output().split("\n").filter((line) => / signal (RUN|PAUSE|STOP) \(was /.test(line)).length;
    for (const deadline = Date.now() + 5000; logged() < status.changes && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(logged(), status.changes);
    assert.ok(status.changes > changesBefore);
    // Leave the server as the other tests expect it.
    await fetch(`${server.url}/RUN`, { method: "POST" });
    await fetch(`${server.url}/PAUSE`, { method: "POST" });
    assert.equal(await signal(), "PAUSE");
  });

  test("the server still answers correctly after all of it", async () => {
    const server = await shared.get();
    assert.equal(await signal(), "PAUSE");
    const status = await (await fetch(`${server.url}/status`)).json();
    assert.equal(status.signal, "PAUSE");
  });
});

/** JSON nested `levels` deep around `inner`: far deeper than any parser's recursion should go. */
const deep = (levels: number, inner = "1") => `${"[".repeat(levels)}${inner}${"]".repeat(levels)}`;
const DEEP = 50_000;
/** What a runtime prints when an error escapes: none of it belongs in the server's output. */
const CRASH_TRACE = /RangeError|Maximum call stack|^\s+at /m;

describe("hostile input to the sources of a real server", () => {
  const HOOK_TOKEN = "hook-token-from-env";
  let prometheus: Awaited<ReturnType<typeof startFakePrometheus>> | undefined;
  let server: ReturnType<typeof sharedServer> | undefined;

  /** The server, with webhooks (one with a token from env, with the newline `echo` leaves), an Alertmanager hook and a poller. */
  async function start() {
    prometheus ??= await startFakePrometheus();
    server ??= sharedServer(["--config", tempFile([
      "chaos_signal:",
      "  sources:",
      "    - type: webhook",
      "      name: hook",
      "      token: {env: HOOK_TOKEN}",
      "    - type: webhook",
      "      name: open",
      "      max_body_bytes: 1048576",
      "    - type: alertmanager",
      "      name: am",
      "    - type: prometheus",
      "      name: load",
      `      url: ${prometheus.url}`,
      "      query: node_load1",
      "      pause_above: 4",
      // Long enough for the large answer below to stream in within the query's timeout.
      "      interval: 2s",
      "      consecutive_errors: 1",
      "",
    ].join("\n"))], { env: { HOOK_TOKEN: `${HOOK_TOKEN}\n` } });
    return await server.get();
  }
  after(async () => {
    await server?.stop();
    await prometheus?.close();
  });

  async function loadStatus() {
    const running = await start();
    const status = await (await fetch(`${running.url}/status`)).json();
    const source = status.sources.find((s: { name: string }) => s.name === "load");
    const claim = status.claims.find((c: { source: string }) => c.source === "load");
    return { signal: status.signal as string, warning: source?.last_warning?.message as string | undefined, claim };
  }

  /** The poller sees a healthy answer again, and the signal is RUN. */
  async function healthy() {
    prometheus!.answer(vector("1"));
    const running = await start();
    await waitFor(async () => (await (await fetch(`${running.url}/`)).text()) === "RUN", "the poller to release");
  }

  test("a token from env with a trailing newline authenticates, like one from a file", async () => {
    const running = await start();
    const response = await fetch(`${running.url}/hooks/hook`, {
      method: "POST",
      headers: { authorization: `Bearer ${HOOK_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ state: "RUN" }),
    });
    assert.equal(response.status, 200, await response.text());
  });

  for (const hook of ["am", "open"]) {
    test(`JSON nested ${DEEP} levels deep to /hooks/${hook}: 400 with a reason, nothing logged as a failure`, async () => {
      const running = await start();
      for (const body of [deep(DEEP), `{"alerts": ${deep(DEEP)}, "state": ${deep(DEEP, '"PAUSE"')}}`]) {
        const response = await fetch(`${running.url}/hooks/${hook}`, { method: "POST", headers: { "content-type": "application/json" }, body });
        const reason = await response.text();
        assert.equal(response.status, 400, reason.slice(0, 300));
        assert.match(reason, /nested deeper than 64 levels/);
      }
      assert.doesNotMatch(running.output(), CRASH_TRACE);
      assert.doesNotMatch(running.output(), /failed|internal/i);
    });
  }

  test(`a Prometheus answer nested ${DEEP} levels deep: the poller fails closed with a warning`, async () => {
    await healthy();
    const value = `[1700000000, ${deep(DEEP, '"1"')}]`;
    prometheus!.answer({ status: 200, body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":${value}}]}}` });
    const seen = await waitFor(async () => {
      const status = await loadStatus();
      return status.signal === "PAUSE" && /nested deeper than 64 levels/.test(status.warning ?? "") && status;
    }, "the poller to pause with a warning about the nesting");
    assert.equal(seen.claim.state, "PAUSE");
    assert.doesNotMatch((await start()).output(), CRASH_TRACE);
  });

  test("an 8 MiB Prometheus answer: a query error (max_response_bytes), fail closed; GET / answers meanwhile", async () => {
    await healthy();
    const running = await start();
    // A valid answer below the threshold, but far over the 4 MiB default, arriving over ~1 s.
    const label = "x".repeat(8 * 1024 * 1024);
    const body = JSON.stringify({ status: "success", data: { resultType: "vector", result: [{ metric: { big: label }, value: [1, "1"] }] } });
    const asked = prometheus!.queries.length;
    prometheus!.answer({ status: 200, body, streamMs: 1000 });
    await waitFor(() => prometheus!.queries.length > asked, "the poller to ask");
    // While the answer streams in, GET / still answers (generous bound: it is a safety property, not speed).
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${running.url}/`, { signal: AbortSignal.timeout(2000) });
      assert.equal(response.status, 200);
      await response.text();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const seen = await waitFor(async () => {
      const status = await loadStatus();
      return status.signal === "PAUSE" && /max_response_bytes/.test(status.warning ?? "") && status;
    }, "the poller to pause with a warning about the size");
    assert.match(seen.warning!, /larger than max_response_bytes \(4194304 bytes\)/);
    await healthy();
  });

  test("a config error on a URL with user:password@ never shows the password", async () => {
    const config = tempFile([
      "chaos_signal:",
      "  sources:",
      "    - type: prometheus",
      "      name: load",
      "      url: http://user:secret@127.0.0.1:99999/",
      "      query: up",
      "      pause_above: 4",
      "",
    ].join("\n"));
    const result = await runCli(["--config", config]);
    assert.equal(result.code, 2, result.output);
    assert.match(result.output, /url: got "http:\/\/user:\*\*\*@127\.0\.0\.1:99999\/"/);
    assert.doesNotMatch(result.output, /secret/);
  });
});
