// The real server process driven by the clients that talk to Krkn's signal
// server today: Krkn's runner (Python http.client), the docs' set_stop_signal.py
// and the docs' curl commands.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { fixture } from "./helpers/files.ts";
import { run, sharedServer } from "./helpers/server_process.ts";

describe("Krkn's clients against the real server", () => {
  const shared = sharedServer();
  after(() => shared.stop());

  async function krknReads(): Promise<string[]> {
    const server = await shared.get();
    const result = await run("python3", [fixture("krkn_get_status.py"), server.host, String(server.port)]);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim().split("\n");
  }

  async function setSignal(path: string): Promise<string> {
    const server = await shared.get();
    const result = await run("python3", [fixture("set_stop_signal.py"), server.host, String(server.port), path]);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout;
  }

  test("Krkn's runner reads exactly 'RUN' and keeps running", async () => {
    assert.deepEqual(await krknReads(), ["'RUN'", "krkn: running"]);
  });

  test("set_stop_signal.py pauses, and Krkn's runner sees exactly 'PAUSE'", async () => {
    assert.equal(await setSignal("/PAUSE"), "PAUSE\n");
    assert.deepEqual(await krknReads(), ["'PAUSE'", "krkn: paused"]);
  });

  test("set_stop_signal.py stops, and Krkn's runner sees exactly 'STOP'", async () => {
    assert.equal(await setSignal("/STOP"), "STOP\n");
    assert.deepEqual(await krknReads(), ["'STOP'", "krkn: stopping"]);
    assert.equal(await setSignal("/RUN"), "RUN\n");
    assert.deepEqual(await krknReads(), ["'RUN'", "krkn: running"]);
  });

  test("the docs' curl commands work as printed (single-slash URL included)", async () => {
    const server = await shared.get();
    const hostPort = `${server.host}:${server.port}`;
    // The docs print "curl -X POST http:/0.0.0.0:8081/STOP"; curl mends the single slash.
    for (const [path, expected] of [["PAUSE", "PAUSE"], ["RUN", "RUN"], ["STOP", "STOP"]] as const) {
      const posted = await run("curl", ["-sS", "-X", "POST", `http:/${hostPort}/${path}`]);
      assert.equal(posted.code, 0, posted.stderr);
      assert.equal(posted.stdout, expected);
      const read = await run("curl", ["-sS", `http://${hostPort}/`]);
      assert.equal(read.stdout, expected);
    }
    await run("curl", ["-sS", "-X", "POST", `http://${hostPort}/RUN`]);
  });

  test("curl sees the documented headers and an answer on unknown paths", async () => {
    const server = await shared.get();
    const head = await run("curl", ["-sS", "-i", `${server.url}/`]);
    assert.match(head.stdout, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head.stdout, /\r\ncontent-type: text\/plain; charset=utf-8\r\n/i);
    assert.match(head.stdout, /\r\ncache-control: no-store\r\n/i);
    assert.ok(head.stdout.endsWith("\r\n\r\nRUN"), JSON.stringify(head.stdout.slice(-20)));
    const unknown = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", `${server.url}/kraken`]);
    assert.equal(unknown.stdout, "404");
  });

  test("HEAD over the wire: the GET headers, no body", async () => {
    const server = await shared.get();
    const head = await run("curl", ["-sS", "-I", `${server.url}/`]);
    assert.match(head.stdout, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head.stdout, /\r\ncontent-length: 3\r\n/i);
    assert.match(head.stdout, /\r\ncontent-type: text\/plain; charset=utf-8\r\n/i);
    assert.ok(head.stdout.endsWith("\r\n\r\n"), "no body");
  });

  test("HTTP/1.0 clients (Krkn's own server speaks it) are answered", async () => {
    const server = await shared.get();
    const result = await run("curl", ["-sS", "--http1.0", "-i", `${server.url}/`]);
    assert.match(result.stdout, /^HTTP\/1\.[01] 200 OK\r\n/);
    assert.ok(result.stdout.endsWith("\r\n\r\nRUN"));
  });
});
