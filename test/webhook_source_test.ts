// The generic webhook source's edge cases, driven through the real handler at /hooks/<name>.
import assert from "node:assert/strict";
import { join } from "node:path";
import process from "node:process";
import { describe, test } from "node:test";
import { SignalStore, createHandler, PluginHost, webhookSource, type WebhookSourceOptions } from "../mod.ts";
import { tempDir, tempFile } from "./helpers/files.ts";
import { waitFor } from "./helpers/wait.ts";

const TOKEN = "s3cret-webhook-token";
const STATE_RULE = "one of RUN, PAUSE, STOP (any letter case)";
const CHALLENGE = 'Bearer realm="chaos-signal"';

interface Rig {
  readonly arbiter: SignalStore;
  readonly host: PluginHost;
  /** POSTs `body` (an object is sent as JSON) to /hooks/ci. */
  post(body: unknown, headers?: Record<string, string>): Promise<Response>;
  call(init: RequestInit): Promise<Response>;
  claim(): { state: string; reason: string; actor?: string } | undefined;
}

async function withWebhook(options: Partial<WebhookSourceOptions>, body: (rig: Rig) => Promise<void>): Promise<void> {
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [webhookSource({ name: "ci", ...options })]);
  const handler = createHandler({ store: arbiter, version: "t", plugins: host });
  const call = async (init: RequestInit) => await handler(new Request("http://x/hooks/ci", init), { remoteAddress: "127.0.0.1" });
  host.start();
  try {
    await body({
      arbiter,
      host,
      call,
      post: (payload, headers = {}) =>
        call({
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: typeof payload === "string" ? payload : JSON.stringify(payload),
        }),
      claim: () => arbiter.snapshot().claims.find((claim) => claim.source === "ci"),
    });
  } finally {
    await host.stop();
  }
}

const bearer = (token = TOKEN) => ({ authorization: `Bearer ${token}` });

/** Sends a request that must be refused with `status`, and checks that no claim changed. */
async function refused(rig: Rig, send: () => Promise<Response>, status: number): Promise<string> {
  const before = rig.arbiter.snapshot();
  const response = await send();
  const text = await response.text();
  assert.equal(response.status, status, text);
  assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.ok(text.endsWith("\n") && !text.slice(0, -1).includes("\n"), `one line: ${JSON.stringify(text)}`);
  assert.deepEqual(rig.arbiter.snapshot().claims, before.claims, "nothing changed");
  assert.equal(rig.arbiter.signal, before.signal);
  return text;
}

describe("webhook source", () => {
  test("without a token any POST is taken, Authorization header or not", async () => {
    await withWebhook({}, async (rig) => {
      const response = await rig.post({ state: "PAUSE" });
      assert.equal(response.status, 200);
      assert.equal(rig.arbiter.signal, "PAUSE");
      assert.equal((await rig.post({ state: "RUN" }, { authorization: "Bearer whatever" })).status, 200);
      assert.equal(rig.arbiter.signal, "RUN");
    });
  });

  test("with a token: missing or wrong gets 401 and a Bearer challenge; the right one gets 200", async () => {
    await withWebhook({ token: { value: TOKEN } }, async (rig) => {
      const missing = await rig.post({ state: "STOP" });
      assert.equal(missing.headers.get("www-authenticate"), CHALLENGE);
      assert.equal(await refused(rig, () => rig.post({ state: "STOP" }), 401), "missing bearer token: send Authorization: Bearer <token>\n");
      assert.equal(await refused(rig, () => rig.post({ state: "STOP" }, { authorization: `Basic ${btoa(`u:${TOKEN}`)}` }), 401), "missing bearer token: send Authorization: Bearer <token>\n");

      const wrong = await rig.post({ state: "STOP" }, bearer("not-the-token"));
      assert.equal(wrong.headers.get("www-authenticate"), CHALLENGE);
      assert.equal(await refused(rig, () => rig.post({ state: "STOP" }, bearer("not-the-token")), 401), "wrong bearer token\n");
      assert.equal(await refused(rig, () => rig.post({ state: "STOP" }, bearer(`${TOKEN}x`)), 401), "wrong bearer token\n");
      assert.equal(await refused(rig, () => rig.post({ state: "STOP" }, bearer(TOKEN.slice(0, -1))), 401), "wrong bearer token\n");
      assert.equal(rig.arbiter.signal, "RUN");

      const right = await rig.post({ state: "PAUSE" }, bearer());
      assert.equal(right.status, 200);
      assert.equal(rig.arbiter.signal, "PAUSE");
      // The scheme is case-insensitive (RFC 9110).
      assert.equal((await rig.post({ state: "RUN" }, { authorization: `bearer ${TOKEN}` })).status, 200);
      assert.equal(rig.arbiter.signal, "RUN");
    });
  });

  test("a refused token is checked before the body is read: a bad body without a token is 401, not 400", async () => {
    await withWebhook({ token: { value: TOKEN } }, async (rig) => {
      assert.equal(await refused(rig, () => rig.post("not json"), 401), "missing bearer token: send Authorization: Bearer <token>\n");
    });
  });

  test("GET, PUT, DELETE and HEAD get 405 with Allow: POST", async () => {
    await withWebhook({}, async (rig) => {
      for (const method of ["GET", "PUT", "DELETE"]) {
        const response = await rig.call({ method });
        assert.equal(response.status, 405, method);
        assert.equal(response.headers.get("allow"), "POST");
        assert.equal(await response.text(), `method ${method} is not allowed on /hooks/ci; allowed: POST\n`);
      }
      const head = await rig.call({ method: "HEAD" });
      assert.equal(head.status, 405);
      assert.equal(head.headers.get("allow"), "POST");
      assert.equal(await head.text(), "", "HEAD gets no body");
    });
  });

  test("a body that is not JSON gets 400 'body is not JSON: ...' naming what is expected", async () => {
    await withWebhook({}, async (rig) => {
      await rig.post({ state: "PAUSE", reason: "before" });
      for (const body of ["state=PAUSE", "", "{", '{"state": "PAUSE",}']) {
        const text = await refused(rig, () => rig.post(body), 400);
        assert.match(text, /^body is not JSON: .+; expected \{"state": "RUN" \| "PAUSE" \| "STOP", "reason": "\.\.\."\}\n$/, body);
      }
      // Not UTF-8 is not JSON either.
      const latin1 = await refused(rig, () => rig.call({ method: "POST", headers: { "content-type": "application/json" }, body: new Uint8Array([0x7b, 0x22, 0xe9, 0x22, 0x7d]) }), 400);
      assert.match(latin1, /^body is not JSON: /);
      assert.equal(rig.claim()?.reason, "before");
    });
  });

  test("a state other than RUN, PAUSE or STOP gets 400 naming body.state and the allowed values", async () => {
    await withWebhook({}, async (rig) => {
      assert.equal(await refused(rig, () => rig.post({ state: "HALT" }), 400), `body.state: got "HALT"; allowed: ${STATE_RULE}\n`);
      assert.equal(await refused(rig, () => rig.post({ state: 2 }), 400), `body.state: got 2; allowed: ${STATE_RULE}\n`);
      assert.equal(await refused(rig, () => rig.post({ state: "" }), 400), `body.state: got ""; allowed: ${STATE_RULE}\n`);
      assert.equal(await refused(rig, () => rig.post({ state: "PAUSED" }), 400), `body.state: got "PAUSED"; allowed: ${STATE_RULE}\n`);
      // Letter case is ASCII only: a long s upper-cases to S, but "ſtop" is not "stop".
      assert.equal(await refused(rig, () => rig.post({ state: "ſtop" }), 400), `body.state: got "ſtop"; allowed: ${STATE_RULE}\n`);
    });
  });

  test("a missing state gets 400; so does a body that is not an object", async () => {
    await withWebhook({}, async (rig) => {
      assert.equal(await refused(rig, () => rig.post({ reason: "no state" }), 400), "body.state: missing; it is required\n");
      assert.equal(await refused(rig, () => rig.post({}), 400), "body.state: missing; it is required\n");
      assert.equal(await refused(rig, () => rig.post({ state: null }), 400), `body.state: got null; allowed: ${STATE_RULE}\n`);
      const object = 'a JSON object such as {"state": "PAUSE", "reason": "deploying"}';
      assert.equal(await refused(rig, () => rig.post("null"), 400), `body: got null; allowed: ${object}\n`);
      assert.equal(await refused(rig, () => rig.post('"PAUSE"'), 400), `body: got "PAUSE"; allowed: ${object}\n`);
      assert.equal(await refused(rig, () => rig.post("7"), 400), `body: got 7; allowed: ${object}\n`);
      assert.equal(await refused(rig, () => rig.post('[{"state": "PAUSE"}]'), 400), `body: got [{"state":"PAUSE"}]; allowed: ${object}\n`);
    });
  });

  test("a reason over 500 characters gets 400; 500 are fine", async () => {
    await withWebhook({}, async (rig) => {
      const text = await refused(rig, () => rig.post({ state: "PAUSE", reason: "x".repeat(501) }), 400);
      assert.equal(text, `body.reason: got "${"x".repeat(76)}...; allowed: a string of up to 500 characters\n`);
      assert.equal(await refused(rig, () => rig.post({ state: "PAUSE", reason: 42 }), 400), "body.reason: got 42; allowed: a string of up to 500 characters\n");
      assert.equal((await rig.post({ state: "PAUSE", reason: "y".repeat(500) })).status, 200);
      assert.equal(rig.claim()?.reason, "y".repeat(500));
    });
  });

  test("unknown extra fields are tolerated", async () => {
    await withWebhook({}, async (rig) => {
      const response = await rig.post({ state: "PAUSE", reason: "deploying", pipeline: { id: 7 }, tags: ["a"], version: 2 });
      assert.equal(response.status, 200);
      assert.equal(rig.claim()?.state, "PAUSE");
      assert.equal(rig.claim()?.reason, "deploying");
    });
  });

  test("a body over 64 KiB gets 413, whether declared or streamed; 64 KiB exactly is fine", async () => {
    await withWebhook({}, async (rig) => {
      await rig.post({ state: "PAUSE", reason: "before" });
      const sized = (bytes: number) => {
        const head = '{"state": "STOP", "padding": "';
        const tail = '"}';
        return head + "p".repeat(bytes - head.length - tail.length) + tail;
      };
      const large = sized(64 * 1024 + 1);
      assert.equal(new TextEncoder().encode(large).byteLength, 65537);
      const streamed = await refused(rig, () => rig.post(large), 413);
      assert.match(streamed, /^request body is larger than the limit of 65536 bytes/);
      await refused(rig, () => rig.post(large, { "content-length": String(large.length) }), 413);
      // A stream that never ends is cut off at the limit.
      const endless = new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(new TextEncoder().encode("x".repeat(16 * 1024)));
        },
      });
      await refused(rig, () => rig.call({ method: "POST", headers: { "content-type": "application/json" }, body: endless, duplex: "half" } as RequestInit), 413);
      assert.equal(rig.claim()?.reason, "before");

      const fits = await rig.post(sized(64 * 1024));
      assert.equal(fits.status, 200);
      assert.equal(rig.arbiter.signal, "STOP");
    });
  });

  test("the 200 answer is JSON whose signal is the effective signal after the claim", async () => {
    await withWebhook({}, async (rig) => {
      const paused = await rig.post({ state: "pause", reason: "deploying" });
      assert.equal(paused.status, 200);
      assert.equal(paused.headers.get("content-type"), "application/json; charset=utf-8");
      assert.equal(paused.headers.get("cache-control"), "no-store");
      assert.deepEqual(await paused.json(), { signal: "PAUSE", source: "ci", state: "PAUSE" });
      assert.equal(rig.arbiter.signal, "PAUSE");
      const { state, reason, actor } = rig.claim()!;
      assert.deepEqual({ state, reason, actor }, { state: "PAUSE", reason: "deploying", actor: "127.0.0.1" });

      // Another source's STOP outranks this one's RUN: the answer tells the effective signal.
      rig.arbiter.claim("other", "STOP", "elsewhere");
      const released = await rig.post({ state: "RUN" });
      const body = await released.json();
      assert.deepEqual(body, { signal: "STOP", source: "ci", state: "RUN" });
      assert.equal(body.signal, rig.arbiter.signal);
    });
  });

  test('{"state": "run"} releases; letter case and blanks around the state do not matter', async () => {
    await withWebhook({}, async (rig) => {
      await rig.post({ state: " Pause\n" });
      assert.equal(rig.claim()?.state, "PAUSE");
      assert.equal(rig.claim()?.reason, "webhook said PAUSE");
      await rig.post({ state: "run" });
      assert.equal(rig.claim()?.state, "RUN");
      assert.equal(rig.claim()?.reason, "webhook said RUN");
      assert.equal(rig.arbiter.signal, "RUN");
      await rig.post({ state: "sToP", reason: "incident 42" });
      assert.equal(rig.arbiter.signal, "STOP");
      assert.equal(rig.claim()?.reason, "incident 42");
    });
  });

  test("an empty reason gets the default; a reason is kept on one line", async () => {
    await withWebhook({}, async (rig) => {
      await rig.post({ state: "PAUSE", reason: "" });
      assert.equal(rig.claim()?.reason, "webhook said PAUSE");
      await rig.post({ state: "PAUSE", reason: "   " });
      assert.equal(rig.claim()?.reason, "webhook said PAUSE");
      await rig.post({ state: "PAUSE", reason: "line one\r\nline two\u0000" });
      assert.equal(rig.claim()?.reason, "line one line two");
    });
  });

  test("every delivery shows in /status as the last observation", async () => {
    await withWebhook({}, async (rig) => {
      const status = () => rig.host.statuses().find((s) => s.name === "ci")!;
      await waitFor(() => status().last_observation, "the first observation");
      assert.equal(status().route, "/hooks/ci");
      assert.equal(status().last_observation?.received, 0);
      await rig.post({ state: "PAUSE", reason: "one" });
      await rig.post({ state: "STOP", reason: "two" });
      await rig.post({ state: "HALT" });
      assert.deepEqual({ ...status().last_observation, at: "" }, { at: "", received: 2, state: "STOP", reason: "two" });
    });
  });

  test("max_age: a claim not refreshed is released with a reason naming max_age", async () => {
    await withWebhook({ max_age: "1s" }, async (rig) => {
      const claimed = Date.now();
      await rig.post({ state: "PAUSE", reason: "deploying" });
      assert.equal(rig.arbiter.signal, "PAUSE");
      await waitFor(() => rig.claim()?.state === "RUN", "the claim to expire", 4000);
      const took = Date.now() - claimed;
      assert.ok(took >= 950, `released after ${took} ms, not before max_age`);
      assert.ok(took < 1800, `released after ${took} ms, soon after max_age`);
      assert.equal(rig.claim()?.reason, "no refresh within max_age 1s");
      assert.equal(rig.arbiter.signal, "RUN");
      // Released once: no repeated releases afterwards.
      const updated = rig.arbiter.snapshot().claims.find((c) => c.source === "ci")!.updated.getTime();
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(rig.arbiter.snapshot().claims.find((c) => c.source === "ci")!.updated.getTime(), updated);
    });
  });

  test("max_age: a refresh before expiry keeps the claim", async () => {
    await withWebhook({ max_age: "1s" }, async (rig) => {
      await rig.post({ state: "PAUSE", reason: "deploying" });
      for (let i = 0; i < 4; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        assert.equal(rig.claim()?.state, "PAUSE", `still claimed after ${(i + 1) * 500} ms`);
        await rig.post({ state: "PAUSE", reason: "still deploying" });
      }
      assert.equal(rig.arbiter.signal, "PAUSE");
      await waitFor(() => rig.claim()?.state === "RUN", "the claim to expire once refreshes stop", 4000);
      assert.equal(rig.claim()?.reason, "no refresh within max_age 1s");
    });
  });

  test("max_age: a RUN before expiry is not overwritten by an expiry later", async () => {
    await withWebhook({ max_age: "1s" }, async (rig) => {
      await rig.post({ state: "PAUSE" });
      await rig.post({ state: "RUN", reason: "done" });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(rig.claim()?.reason, "done");
    });
  });

  test("the token can come from an environment variable", async () => {
    const name = "CHAOS_SIGNAL_TEST_WEBHOOK_TOKEN";
    process.env[name] = "from-the-environment";
    try {
      await withWebhook({ token: { env: name } }, async (rig) => {
        assert.equal((await rig.post({ state: "PAUSE" }, bearer(TOKEN))).status, 401);
        assert.equal((await rig.post({ state: "PAUSE" }, bearer("from-the-environment"))).status, 200);
        assert.equal(rig.arbiter.signal, "PAUSE");
      });
    } finally {
      delete process.env[name];
    }
    // Unset: an error at construction, not an open webhook.
    assert.throws(() => webhookSource({ name: "ci", token: { env: name } }), {
      message: `webhook "ci": token: got (hidden); allowed: a token of 8 or more characters in the environment variable ${name}, which is unset`,
    });
  });

  test("the token can come from a file (trimmed, as Kubernetes secrets end in a newline)", async () => {
    const path = tempFile("from-a-file-token\n", "token");
    await withWebhook({ token: { file: path } }, async (rig) => {
      assert.equal((await rig.post({ state: "PAUSE" }, bearer("from-a-file"))).status, 401);
      assert.equal((await rig.post({ state: "PAUSE" }, bearer("from-a-file-token"))).status, 200);
      assert.equal(rig.arbiter.signal, "PAUSE");
    });
    const missing = join(tempDir(), "absent");
    assert.throws(() => webhookSource({ name: "ci", token: { file: missing } }), {
      message: 'webhook "ci": token: got (hidden); allowed: a readable token file (ENOENT)',
    });
  });

  test("token errors never show the token", () => {
    const attempts: [unknown, string][] = [
      [{ value: "short" }, "short"],
      ["a-plain-string-token", "a-plain-string-token"],
      [{ value: "long-enough-token", extra: "x" }, "long-enough-token"],
      [{ value: 12345678 }, "12345678"],
      [{ file: tempFile("tiny", "token") }, "tiny"],
    ];
    for (const [token, secret] of attempts) {
      assert.throws(() => webhookSource({ name: "ci", token } as WebhookSourceOptions), (error: Error) => {
        assert.match(error.message, /^webhook "ci": token(\.\w+)?: got \(hidden\); allowed: /, JSON.stringify(token));
        assert.ok(!error.message.includes(secret), `${error.message} shows ${secret}`);
        return true;
      });
    }
    assert.throws(() => webhookSource({ name: "ci", token: { value: "short" } }, "chaos_signal.sources[1]"), {
      message: /^chaos_signal\.sources\[1\] \(webhook "ci"\): token\.value: got \(hidden\); allowed: /,
    });
  });

  test("max_body_bytes sets the limit: over it 413 and nothing changes; it is validated", async () => {
    await withWebhook({ max_body_bytes: 1024 }, async (rig) => {
      const padded = (bytes: number) => JSON.stringify({ state: "STOP", padding: "p".repeat(bytes - 32) }).padEnd(bytes, " ");
      assert.match(await refused(rig, () => rig.post(padded(1025)), 413), /^request body is larger than the limit of 1024 bytes/);
      assert.equal(rig.claim(), undefined);
      assert.equal((await rig.post(padded(1024))).status, 200);
      assert.equal(rig.arbiter.signal, "STOP");
    });
    assert.throws(() => webhookSource({ name: "ci", max_body_bytes: 99_999_999 }), {
      message: 'webhook "ci": max_body_bytes: got 99999999; allowed: an integer number of bytes from 0 to 16777216',
    });
  });

  test("max_age is validated: at least 1s", () => {
    assert.throws(() => webhookSource({ name: "ci", max_age: "500ms" }), {
      message: 'webhook "ci": max_age: got "500ms"; allowed: a duration from 1s to 720h, such as 500ms, 15s, 1m30s or 2h',
    });
  });
});
