// Named bearer tokens: what they guard, what stays open, what is recorded, what is never shown.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SignalStore, Auth, createHandler, PluginHost, settingsFromConfig, webhookSource } from "../mod.ts";
import { tempFile } from "./helpers/files.ts";
import { startServer } from "./helpers/server_process.ts";

const OPS = "ops-token-0123456789";
const CI = "ci-token-9876543210";

function setup(protectReads = false) {
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [webhookSource({ name: "open" }), webhookSource({ name: "own", token: { value: "own-token-123" } })]);
  const auth = new Auth([{ name: "ops", token: OPS }, { name: "ci", token: CI }], { protectReads });
  const handler = createHandler({ store: arbiter, version: "t", auth, plugins: host });
  const call = (method: string, path: string, token?: string, body?: string) =>
    handler(
      new Request(`http://x${path}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
        ...(body ? { body } : {}),
      }),
      { remoteAddress: "192.0.2.5" },
    );
  return { arbiter, call };
}

test("POSTs need a known token: 401 with WWW-Authenticate otherwise, and nothing changes", async () => {
  const { arbiter, call } = setup();
  for (const token of [undefined, "wrong-token-000000", `${OPS}x`]) {
    const response = await call("POST", "/STOP", token);
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="chaos-signal"');
    assert.match(await response.text(), token ? /^wrong bearer token\n$/ : /^missing bearer token: send Authorization: Bearer <token>\n$/);
  }
  assert.equal(arbiter.signal, "RUN");
  const ok = await call("POST", "/PAUSE", CI);
  assert.equal(await ok.text(), "PAUSE");
});

test("the token's name (never the token) is the actor in /status", async () => {
  const { call } = setup();
  await call("POST", "/PAUSE", OPS);
  const text = await (await call("GET", "/status")).text();
  const manual = JSON.parse(text).claims.find((c: { source: string }) => c.source === "manual");
  assert.equal(manual.actor, "ops@192.0.2.5");
  assert.doesNotMatch(text, new RegExp(`${OPS}|${CI}`));
});

test("reads stay open (Krkn's runner sends no token) unless protect_reads; /healthz and /readyz always", async () => {
  const open = setup(false);
  for (const path of ["/", "/status", "/metrics", "/healthz"]) assert.equal((await open.call("GET", path)).status, 200, path);
  const guarded = setup(true);
  for (const path of ["/", "/status", "/metrics"]) {
    assert.equal((await guarded.call("GET", path)).status, 401, path);
    assert.equal((await guarded.call("GET", path, OPS)).status, 200, path);
  }
  assert.equal((await guarded.call("GET", "/healthz")).status, 200);
  assert.notEqual((await guarded.call("GET", "/readyz")).status, 401, "readiness needs no token");
});

test("webhooks: the server's tokens guard them, unless the webhook has a token of its own", async () => {
  const { call } = setup();
  const body = '{"state": "PAUSE"}';
  assert.equal((await call("POST", "/hooks/open", undefined, body)).status, 401);
  assert.equal((await call("POST", "/hooks/open", OPS, body)).status, 200);
  assert.equal((await call("POST", "/hooks/own", OPS, body)).status, 401, "its own token, not the server's");
  assert.equal((await call("POST", "/hooks/own", "own-token-123", body)).status, 200);
});

test("auth config: named tokens from env, file or value; errors name the key, never the token", () => {
  process.env.CHAOS_TEST_TOKEN = "from-env-0123456";
  const file = tempFile("from-file-0123456\n", "token");
  const settings = settingsFromConfig({
    chaos_signal: { auth: { tokens: [{ name: "a", token: { env: "CHAOS_TEST_TOKEN" } }, { name: "b", token: { file } }], protect_reads: true } },
  }, "c.yaml");
  assert.deepEqual(settings.auth, { tokens: [{ name: "a", token: "from-env-0123456" }, { name: "b", token: "from-file-0123456" }], protectReads: true });
  assert.throws(
    () => settingsFromConfig({ chaos_signal: { auth: { tokens: [{ name: "a", token: { value: "short" } }] } } }, "c.yaml"),
    (error: Error) => {
      assert.equal(error.message, "c.yaml: chaos_signal.auth.tokens[0].token.value: got (hidden); allowed: a token of 8 or more characters");
      assert.doesNotMatch(error.message, /short/);
      return true;
    },
  );
});

test("the real server: a token from the environment works, is never logged, and the open-port warning", async () => {
  const config = tempFile("chaos_signal:\n  auth:\n    tokens:\n      - name: ops\n        token: { env: CHAOS_OPS_TOKEN }\n");
  const server = await startServer(["--config", config], { env: { CHAOS_OPS_TOKEN: OPS } });
  try {
    assert.equal((await fetch(`${server.url}/STOP`, { method: "POST" })).status, 401);
    const ok = await fetch(`${server.url}/PAUSE`, { method: "POST", headers: { authorization: `Bearer ${OPS}` } });
    assert.equal(await ok.text(), "PAUSE");
    assert.equal(await (await fetch(`${server.url}/`)).text(), "PAUSE", "Krkn's runner reads without a token");
    assert.doesNotMatch(server.output(), new RegExp(OPS));
    assert.doesNotMatch(server.output(), /no bearer tokens are configured/);
  } finally {
    await server.stop();
  }
  const exposed = await startServer(["--address", "0.0.0.0"]);
  try {
    assert.match(exposed.output(), /warning: no bearer tokens are configured \(chaos_signal\.auth\) and 0\.0\.0\.0 is not a loopback address/);
  } finally {
    await exposed.stop();
  }
});
