// Requests that a page of another site makes the operator's browser send, against the real server:
// without tokens they must change nothing, while clients that send no Origin work as before.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { tempFile } from "./helpers/files.ts";
import { rawRequest, statusOf } from "./helpers/raw_http.ts";
import { sharedServer } from "./helpers/server_process.ts";

const CONFIG = `chaos_signal:
  allowed_origins: [https://Ops.Example:443]
  sources:
    - type: webhook
      name: ci
`;

interface Answer {
  readonly status: number | null;
  readonly body: string;
}

describe("cross-origin requests against the real server (no tokens)", () => {
  const shared = sharedServer(["--config", tempFile(CONFIG)]);
  after(() => shared.stop());

  /** Sends exactly these headers (a browser's, or none); Host is the server's address unless given. */
  async function send(method: string, path: string, headers: Record<string, string> = {}, body = ""): Promise<Answer> {
    const server = await shared.get();
    const lines = Object.entries({ host: `${server.host}:${server.port}`, ...headers, "content-length": String(body.length), connection: "close" })
      .map(([name, value]) => `${name}: ${value}\r\n`).join("");
    const response = await rawRequest(server.host, server.port, `${method} ${path} HTTP/1.1\r\n${lines}\r\n${body}`);
    return { status: statusOf(response), body: response.slice(response.indexOf("\r\n\r\n") + 4) };
  }

  async function status(): Promise<{ signal: string; stop_latch: { source: string } | null; claims: { source: string; state: string }[] }> {
    const server = await shared.get();
    return await (await fetch(`${server.url}/status`)).json();
  }

  async function signal(): Promise<string> {
    return (await send("GET", "/")).body;
  }

  /** Asserts a 403 whose reason is one line that names what was refused and the way out. */
  function assertRefused(answer: Answer, names: RegExp) {
    assert.equal(answer.status, 403, answer.body);
    assert.match(answer.body, /^cross-origin POST refused \([^\n]*\): a page of another site may not change the signal; [^\n]*chaos_signal\.allowed_origins\n$/);
    assert.match(answer.body, names);
  }

  test("POST /STOP with the Origin of another site: 403 with the reason, the signal unchanged", async () => {
    assertRefused(await send("POST", "/STOP", { origin: "http://evil.example" }), /Origin: http:\/\/evil\.example; this server is 127\.0\.0\.1:\d+/);
    assert.equal(await signal(), "RUN");
  });

  test("Sec-Fetch-Site cross-site or same-site: 403, with or without an Origin", async () => {
    assertRefused(await send("POST", "/STOP", { "sec-fetch-site": "cross-site" }), /Sec-Fetch-Site: cross-site/);
    assertRefused(await send("POST", "/PAUSE", { "sec-fetch-site": "same-site", origin: "http://other.127.0.0.1.nip.io" }), /same-site/);
    assert.equal(await signal(), "RUN");
  });

  test("Origin: null (sandboxed iframes, file:// pages) is another origin: 403", async () => {
    assertRefused(await send("POST", "/PAUSE?for=1h", { origin: "null" }), /Origin: null/);
    assert.equal(await signal(), "RUN");
  });

  test("a form-encoded cross-origin POST /RUN?force=true: 403, and the STOP latch holds", async () => {
    assert.equal((await send("POST", "/STOP")).status, 200);
    const form = { origin: "http://evil.example", "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "cross-site" };
    assertRefused(await send("POST", "/RUN?force=true", form, "x=1"), /evil\.example/);
    // A no-cors fetch: no Sec-Fetch-Site from an older browser, text/plain, Origin only.
    assertRefused(await send("POST", "/RUN?force=true", { origin: "http://evil.example", "content-type": "text/plain" }), /evil/);
    const latched = await status();
    // Reset first, so that a failure here does not spill into the next tests.
    assert.equal((await send("POST", "/RUN")).body, "RUN", "a client without Origin opens the latch");
    assert.equal(latched.signal, "STOP");
    assert.equal(latched.stop_latch?.source, "manual");
  });

  test("the server's own pages: Origin of this host and port, also behind another Host or a TLS proxy", async () => {
    const server = await shared.get();
    const own = await send("POST", "/PAUSE", { origin: `http://${server.host}:${server.port}`, "sec-fetch-site": "same-origin" });
    assert.deepEqual(own, { status: 200, body: "PAUSE" });
    // An older browser: no Sec-Fetch-Site, only the Origin, compared with the Host it loaded the page from.
    const byName = await send("POST", "/RUN", { host: "chaos.example:8443", origin: "https://chaos.example:8443" });
    assert.deepEqual(byName, { status: 200, body: "RUN" });
    // A proxy that rewrites Host: the browser still says same-origin.
    const proxied = await send("POST", "/PAUSE", { origin: "https://chaos.example", "sec-fetch-site": "same-origin" });
    assert.deepEqual(proxied, { status: 200, body: "PAUSE" });
    assert.equal((await send("POST", "/RUN")).status, 200);
  });

  test("an origin listed in allowed_origins may change the signal", async () => {
    const listed = await send("POST", "/PAUSE", { origin: "https://ops.example", "sec-fetch-site": "cross-site" });
    assert.deepEqual(listed, { status: 200, body: "PAUSE" });
    assertRefused(await send("POST", "/RUN", { origin: "https://ops.example:8443" }), /ops\.example:8443/);
    assert.equal((await send("POST", "/RUN")).body, "RUN");
  });

  test("clients that send no Origin (Krkn, curl, scripts) and reads from anywhere work unchanged", async () => {
    assert.deepEqual(await send("POST", "/PAUSE"), { status: 200, body: "PAUSE" });
    assert.deepEqual(await send("GET", "/", { origin: "http://evil.example", "sec-fetch-site": "cross-site" }), { status: 200, body: "PAUSE" });
    assert.equal((await send("GET", "/status", { origin: "null" })).status, 200);
    assert.deepEqual(await send("POST", "/RUN"), { status: 200, body: "RUN" });
  });

  test("other methods from another origin are refused before anything else", async () => {
    assert.equal((await send("PUT", "/STOP", { origin: "http://evil.example" })).status, 403);
    assert.equal((await send("DELETE", "/status", { origin: "http://evil.example" })).status, 403);
    assert.equal((await send("PUT", "/STOP")).status, 405, "without Origin: as before");
  });

  test("webhooks: a JSON body must be sent as JSON (415 otherwise), and cross-origin ones are refused", async () => {
    const body = '{"state": "STOP", "reason": "forged"}';
    const plain = await send("POST", "/hooks/ci", { "content-type": "text/plain;charset=UTF-8" }, body);
    assert.equal(plain.status, 415, plain.body);
    assert.equal(plain.body, "got Content-Type text/plain;charset=UTF-8; the body must be sent as application/json, or a +json type such as application/vnd.example+json\n");
    const untyped = await send("POST", "/hooks/ci", {}, body);
    assert.equal(untyped.status, 415, untyped.body);
    assert.match(untyped.body, /^got no Content-Type; /);
    const form = await send("POST", "/hooks/ci", { "content-type": "application/x-www-form-urlencoded" }, body);
    assert.equal(form.status, 415, form.body);
    const crossSite = await send("POST", "/hooks/ci", { "content-type": "application/json", origin: "http://evil.example" }, body);
    assert.equal(crossSite.status, 403, crossSite.body);
    assert.equal(await signal(), "RUN");
    assert.equal((await status()).claims.find((claim) => claim.source === "ci")?.state ?? "RUN", "RUN", "no claim was made");

    const json = await send("POST", "/hooks/ci", { "content-type": "application/json; charset=utf-8" }, '{"state": "PAUSE"}');
    assert.equal(json.status, 200, json.body);
    assert.equal(await signal(), "PAUSE");
    const vendor = await send("POST", "/hooks/ci", { "content-type": "application/vnd.ci.event+json" }, '{"state": "RUN"}');
    assert.equal(vendor.status, 200, vendor.body);
    assert.equal(await signal(), "RUN");
  });
});
