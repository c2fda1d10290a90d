// The Alertmanager webhook source's edge cases, driven through the real handler at /hooks/<name>
// with payloads shaped like the ones Alertmanager sends (webhook version 4).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { alertmanagerSource, type AlertmanagerSourceOptions, SignalStore, createHandler, PluginHost } from "../mod.ts";
import { alert, notification } from "./helpers/alertmanager_payload.ts";
import { waitFor } from "./helpers/wait.ts";

const TOKEN = "alertmanager-bearer-token";
const NO_ALERT = "no matching alert is firing";

interface Rig {
  readonly arbiter: SignalStore;
  readonly host: PluginHost;
  /** POSTs `body` (an object is sent as JSON) to /hooks/alerts, with the token unless told otherwise. */
  post(body: unknown, headers?: Record<string, string>): Promise<Response>;
  call(init: RequestInit): Promise<Response>;
  /** POSTs and expects 200; returns the JSON answer. */
  deliver(body: unknown): Promise<{ signal: string; source: string; firing: number }>;
  claim(): { state: string; reason: string; actor?: string } | undefined;
  status(): ReturnType<PluginHost["statuses"]>[number];
}

async function withAlertmanager(options: Partial<AlertmanagerSourceOptions>, body: (rig: Rig) => Promise<void>): Promise<void> {
  const arbiter = SignalStore.inMemory();
  const host = new PluginHost(arbiter, [alertmanagerSource({ name: "alerts", token: { value: TOKEN }, ...options })]);
  const handler = createHandler({ store: arbiter, version: "t", plugins: host });
  const call = async (init: RequestInit) => await handler(new Request("http://x/hooks/alerts", init), { remoteAddress: "127.0.0.1" });
  const post = (payload: unknown, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) =>
    call({
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof payload === "string" ? payload : JSON.stringify(payload),
    });
  host.start();
  try {
    // The source's first claim (no objection) is made once saved.
    await waitFor(() => arbiter.snapshot().claims.some((c) => c.source === "alerts"), "the source's first claim");
    await body({
      arbiter,
      host,
      post,
      call,
      async deliver(payload) {
        const response = await post(payload);
        const text = await response.text();
        assert.equal(response.status, 200, text);
        const answer = JSON.parse(text);
        // The answer is sent after the claim is applied: it tells the signal as it is now.
        assert.equal(answer.signal, arbiter.signal, "the answer's signal is the effective signal");
        return answer;
      },
      claim: () => arbiter.snapshot().claims.find((claim) => claim.source === "alerts"),
      status: () => host.statuses().find((status) => status.name === "alerts")!,
    });
  } finally {
    await host.stop();
  }
}

/** Sends a payload that must be refused with `status`; checks that nothing changed and returns the one-line reason. */
async function refused(rig: Rig, send: () => Promise<Response>, status: number): Promise<string> {
  const before = rig.arbiter.snapshot();
  const observed = rig.status().last_observation;
  const response = await send();
  const text = await response.text();
  assert.equal(response.status, status, text);
  assert.ok(text.endsWith("\n") && !text.slice(0, -1).includes("\n"), `one line: ${JSON.stringify(text)}`);
  assert.deepEqual(rig.arbiter.snapshot().claims, before.claims, "no claim changed");
  assert.equal(rig.arbiter.signal, before.signal);
  assert.deepEqual(rig.status().last_observation, observed, "nothing was observed");
  return text.slice(0, -1);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("alertmanager source", () => {
  test("a realistic version-4 notification of a firing alert claims PAUSE", async () => {
    await withAlertmanager({}, async (rig) => {
      const answer = await rig.deliver(notification([alert("firing", { severity: "warning" }, "8a6d0a2ad1e3c3f1")]));
      assert.deepEqual(answer, { signal: "PAUSE", source: "alerts", firing: 1 });
      assert.equal(rig.arbiter.signal, "PAUSE");
      assert.equal(rig.arbiter.snapshot().decidedBy, "alerts");
      const claim = rig.claim()!;
      assert.equal(claim.state, "PAUSE");
      assert.equal(claim.reason, "1 alert firing: NodeLoadHigh");
      assert.equal(claim.actor, "127.0.0.1");
      assert.deepEqual(rig.status().last_observation?.firing, ["NodeLoadHigh"]);
      assert.equal(rig.status().last_observation?.deliveries, 1);

      const resolved = await rig.deliver(notification([alert("resolved", { severity: "warning" }, "8a6d0a2ad1e3c3f1")]));
      assert.deepEqual(resolved, { signal: "RUN", source: "alerts", firing: 0 });
      assert.equal(rig.claim()?.reason, NO_ALERT);
    });
  });

  test("a partial resolve keeps the claim for the alert still firing; both resolved releases it", async () => {
    await withAlertmanager({}, async (rig) => {
      const node1 = { instance: "node-1:9100" };
      const node2 = { instance: "node-2:9100" };
      await rig.deliver(notification([alert("firing", node1, "fp-node-1"), alert("firing", node2, "fp-node-2")]));
      assert.equal(rig.claim()?.reason, "2 alerts firing: NodeLoadHigh");

      // Alertmanager sends the whole group: one alert resolved, the other still firing.
      const partial = await rig.deliver(notification([alert("resolved", node1, "fp-node-1"), alert("firing", node2, "fp-node-2")]));
      assert.equal(partial.firing, 1);
      assert.equal(rig.claim()?.state, "PAUSE");
      assert.equal(rig.claim()?.reason, "1 alert firing: NodeLoadHigh");

      // A resolve for an alert never seen changes nothing.
      await rig.deliver(notification([alert("resolved", { instance: "node-9:9100" }, "fp-node-9")]));
      assert.equal(rig.claim()?.state, "PAUSE");

      const done = await rig.deliver(notification([alert("resolved", node1, "fp-node-1"), alert("resolved", node2, "fp-node-2")]));
      assert.deepEqual(done, { signal: "RUN", source: "alerts", firing: 0 });
      assert.equal(rig.claim()?.state, "RUN");
      assert.equal(rig.claim()?.reason, NO_ALERT);
    });
  });

  test("the first matching rule decides: critical gives STOP, others PAUSE", async () => {
    const rules = [{ match: ['severity="critical"'], claim: "STOP" as const }, { claim: "PAUSE" as const }];
    await withAlertmanager({ rules }, async (rig) => {
      await rig.deliver(notification([alert("firing", { severity: "warning" }, "fp-warn")]));
      assert.equal(rig.claim()?.state, "PAUSE");
      assert.equal(rig.arbiter.signal, "PAUSE");
      const stop = await rig.deliver(notification([alert("firing", { alertname: "DiskFull", severity: "critical" }, "fp-crit")]));
      assert.equal(stop.signal, "STOP");
      assert.equal(rig.claim()?.state, "STOP");
      assert.equal(rig.claim()?.reason, "2 alerts firing: NodeLoadHigh, DiskFull");
      // The critical one resolves: the claim falls back to PAUSE, the latch keeps the signal at STOP.
      const latched = await rig.deliver(notification([alert("resolved", { alertname: "DiskFull", severity: "critical" }, "fp-crit")]));
      assert.equal(rig.claim()?.state, "PAUSE");
      assert.equal(rig.claim()?.reason, "1 alert firing: NodeLoadHigh");
      assert.equal(latched.signal, "STOP");
    });
    // Order matters: a rule listed first wins even when a later one is more severe.
    const teamFirst = [{ match: ['team="db"'], claim: "PAUSE" as const }, { match: ['severity="critical"'], claim: "STOP" as const }];
    await withAlertmanager({ rules: teamFirst }, async (rig) => {
      await rig.deliver(notification([alert("firing", { team: "db", severity: "critical" }, "fp-db")]));
      assert.equal(rig.claim()?.state, "PAUSE");
      assert.equal(rig.arbiter.signal, "PAUSE");
    });
  });

  test("without rules every alert pauses", async () => {
    await withAlertmanager({}, async (rig) => {
      await rig.deliver(notification([alert("firing", { severity: "critical" }, "fp")]));
      assert.equal(rig.claim()?.state, "PAUSE");
    });
  });

  test("alerts that match no rule are ignored", async () => {
    await withAlertmanager({ rules: [{ match: ['team="db"'] }] }, async (rig) => {
      const ignored = await rig.deliver(notification([alert("firing", { team: "web", severity: "critical" }, "fp-web"), alert("firing", {}, "fp-none")]));
      assert.deepEqual(ignored, { signal: "RUN", source: "alerts", firing: 0 });
      assert.equal(rig.claim()?.state, "RUN");
      assert.equal(rig.claim()?.reason, NO_ALERT);

      await rig.deliver(notification([alert("firing", { team: "db" }, "fp-db"), alert("firing", { team: "web" }, "fp-web")]));
      assert.equal(rig.claim()?.reason, "1 alert firing: NodeLoadHigh");
      // Resolving the ignored alert changes nothing; resolving the matching one releases.
      await rig.deliver(notification([alert("resolved", { team: "web" }, "fp-web")]));
      assert.equal(rig.claim()?.state, "PAUSE");
      await rig.deliver(notification([alert("resolved", { team: "db" }, "fp-db")]));
      assert.equal(rig.claim()?.state, "RUN");
    });
  });

  test('severity!="none" matches an alert without a severity label, and not severity="none"', async () => {
    await withAlertmanager({ rules: [{ match: ['severity!="none"'] }] }, async (rig) => {
      await rig.deliver(notification([alert("firing", { severity: "none" }, "fp-none")]));
      assert.equal(rig.claim()?.state, "RUN", "severity=none is excluded");
      await rig.deliver(notification([alert("firing", { alertname: "Watchdog" }, "fp-unlabelled")]));
      assert.equal(rig.claim()?.state, "PAUSE", "a missing severity is not none");
      assert.equal(rig.claim()?.reason, "1 alert firing: Watchdog");
    });
  });

  test('regex matchers are anchored: severity=~"crit" does not match "critical"', async () => {
    await withAlertmanager({ rules: [{ match: ['severity=~"crit"'], claim: "STOP" }] }, async (rig) => {
      await rig.deliver(notification([alert("firing", { severity: "critical" }, "fp-critical")]));
      assert.equal(rig.claim()?.state, "RUN");
      assert.equal(rig.arbiter.signal, "RUN");
      await rig.deliver(notification([alert("firing", { severity: "crit" }, "fp-crit")]));
      assert.equal(rig.claim()?.state, "STOP");
    });
    await withAlertmanager({ rules: [{ match: ['severity=~"crit.*"', 'env!~"dev|test"'] }] }, async (rig) => {
      await rig.deliver(notification([alert("firing", { severity: "critical", env: "dev" }, "fp-dev")]));
      assert.equal(rig.claim()?.state, "RUN", "every matcher of a rule must match");
      await rig.deliver(notification([alert("firing", { severity: "critical", env: "devops" }, "fp-devops")]));
      assert.equal(rig.claim()?.state, "PAUSE");
    });
  });

  test("max_age: an alert not re-sent is dropped and the claim released, naming max_age", async () => {
    await withAlertmanager({ max_age: "1s" }, async (rig) => {
      const sent = Date.now();
      await rig.deliver(notification([alert("firing", {}, "fp-stale")]));
      assert.equal(rig.arbiter.signal, "PAUSE");
      await waitFor(() => rig.claim()?.state === "RUN", "the alert to expire", 4000);
      const took = Date.now() - sent;
      assert.ok(took >= 950 && took < 1800, `released after ${took} ms`);
      assert.equal(rig.claim()?.reason, `${NO_ALERT}; NodeLoadHigh not re-sent within max_age 1s`);
      assert.equal(rig.arbiter.signal, "RUN");
      assert.deepEqual(rig.status().last_observation?.firing, []);
    });
  });

  test("max_age: a re-send refreshes the alert; only the one not re-sent is dropped", async () => {
    await withAlertmanager({ max_age: "1s" }, async (rig) => {
      const kept = alert("firing", { alertname: "Kept" }, "fp-kept");
      await rig.deliver(notification([kept, alert("firing", { alertname: "Dropped" }, "fp-dropped")]));
      for (let i = 0; i < 4; i++) {
        await sleep(500);
        assert.equal(rig.claim()?.state, "PAUSE", `still claimed after ${(i + 1) * 500} ms`);
        await rig.deliver(notification([kept]));
      }
      assert.equal(rig.claim()?.reason, "1 alert firing: Kept");
      await waitFor(() => rig.claim()?.state === "RUN", "the kept alert to expire once re-sends stop", 4000);
    });
  });

  test("a forced RUN holds until the next notification: the source does not re-claim on its own", async () => {
    await withAlertmanager({ max_age: "10s" }, async (rig) => {
      await rig.deliver(notification([alert("firing", {}, "fp")]));
      assert.equal(rig.arbiter.signal, "PAUSE");
      await rig.arbiter.forceRun("POST /RUN?force=true");
      assert.equal(rig.arbiter.signal, "RUN");
      // max_age 10s checks for stale alerts every second; those checks must not re-claim.
      await sleep(1500);
      assert.equal(rig.arbiter.signal, "RUN");
      assert.match(rig.claim()!.reason, /^overridden by POST \/RUN\?force=true/);
      await rig.deliver(notification([alert("firing", {}, "fp")]));
      assert.equal(rig.arbiter.signal, "PAUSE", "re-asserted by the next notification");
    });
  });

  test("an alert without a fingerprint is tracked by its labels, in any order", async () => {
    await withAlertmanager({}, async (rig) => {
      const a = alert("firing", { instance: "node-1:9100" });
      const b = alert("firing", { instance: "node-2:9100" });
      assert.equal(a.fingerprint, undefined);
      await rig.deliver(notification([a, b]));
      assert.equal(rig.claim()?.reason, "2 alerts firing: NodeLoadHigh");
      // The same labels, listed in another order, name the same alert.
      const reordered = Object.fromEntries(Object.entries(a.labels).reverse());
      await rig.deliver(notification([{ ...a, status: "resolved", labels: reordered }]));
      assert.equal(rig.claim()?.reason, "1 alert firing: NodeLoadHigh");
      // An empty fingerprint counts as none.
      await rig.deliver(notification([{ ...b, status: "resolved", fingerprint: "" }]));
      assert.equal(rig.claim()?.state, "RUN");
    });
  });

  test("unknown top-level and alert fields are tolerated (a newer payload version)", async () => {
    await withAlertmanager({}, async (rig) => {
      const firing = alert("firing", {}, "fp", { silenceURL: "http://am/silence", annotations: { runbook: { url: "x" } }, values: { A: 5.2 } });
      const answer = await rig.deliver(notification([firing], { version: "5", groupId: 17, mutedBy: ["x"], truncatedAlerts: 0, extra: null }));
      assert.equal(answer.signal, "PAUSE");
      // Only alerts is needed.
      await rig.deliver({ alerts: [alert("resolved", {}, "fp")] });
      assert.equal(rig.claim()?.state, "RUN");
    });
  });

  test("malformed payloads get 400 with a one-line reason naming the field, and change nothing", async () => {
    await withAlertmanager({}, async (rig) => {
      await rig.deliver(notification([alert("firing", {}, "fp-held")]));
      const good = alert("firing", { alertname: "Other" }, "fp-other");
      const cases: [unknown, string][] = [
        [{ version: "4", status: "firing" }, "body.alerts: missing; it is required"],
        [{ alerts: "none" }, 'body.alerts: got "none"; allowed: a list of alerts'],
        [{ alerts: [1] }, "body.alerts[0]: got 1; allowed: an alert object"],
        [{ alerts: [good, { ...good, status: "burning" }] }, 'body.alerts[1].status: got "burning"; allowed: firing or resolved'],
        [{ alerts: [{ ...good, labels: { alertname: "X", severity: 3 } }] }, "body.alerts[0].labels.severity: got 3; allowed: a string (label values are strings)"],
        [{ alerts: [{ ...good, labels: ["severity=critical"] }] }, 'body.alerts[0].labels: got ["severity=critical"]; allowed: an object of label names to strings'],
        [{ alerts: [{ status: "firing" }] }, "body.alerts[0].labels: missing; it is required"],
        [{ alerts: [{ ...good, fingerprint: 42 }] }, "body.alerts[0].fingerprint: got 42; allowed: a string"],
        [{ alerts: [good], truncatedAlerts: "3" }, 'body.truncatedAlerts: got "3"; allowed: a number'],
        [[good], 'body: got [{"status":"firing","labels":{"alertname":"Other","instance":"node-1:9100","j...; allowed: Alertmanager\'s webhook payload (a JSON object with an alerts list)'],
      ];
      for (const [payload, reason] of cases) {
        assert.equal(await refused(rig, () => rig.post(payload), 400), reason);
      }
      assert.match(await refused(rig, () => rig.post('{"alerts": ['), 400), /^body is not JSON: .+; expected Alertmanager's webhook payload$/);
      assert.equal(rig.claim()?.reason, "1 alert firing: NodeLoadHigh", "the first, valid alert of a refused payload was not taken");
    });
  });

  test("a payload not sent as JSON gets 415 naming the JSON types (a page of another site can send text/plain)", async () => {
    await withAlertmanager({}, async (rig) => {
      const payload = JSON.stringify(notification([alert("firing", {}, "fp-forged")]));
      const plain = await refused(rig, () => rig.post(payload, { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" }), 415);
      assert.equal(plain, "got Content-Type text/plain; the body must be sent as application/json, or a +json type such as application/vnd.example+json");
      await refused(rig, () => rig.call({ method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: new Blob([payload]) }), 415);
    });
  });

  test("truncatedAlerts > 0 is a warning in /status; the alerts sent still count", async () => {
    await withAlertmanager({}, async (rig) => {
      await waitFor(() => rig.status().last_observation, "the first observation");
      await rig.deliver(notification([alert("firing", {}, "fp")], { truncatedAlerts: 0 }));
      assert.equal(rig.status().warnings, 0);
      await rig.deliver(notification([alert("firing", {}, "fp")], { truncatedAlerts: 3 }));
      const status = rig.status();
      assert.equal(status.warnings, 1);
      assert.equal(status.health, "warning");
      assert.equal(status.last_warning?.message, "Alertmanager left out 3 alerts (max_alerts): claims may be incomplete");
      assert.equal(rig.claim()?.state, "PAUSE");
    });
  });

  test("the token: missing or wrong gets 401 and changes nothing; the right one is taken", async () => {
    await withAlertmanager({}, async (rig) => {
      const payload = notification([alert("firing", {}, "fp")]);
      assert.equal(await refused(rig, () => rig.post(payload, {}), 401), "missing bearer token: send Authorization: Bearer <token>");
      assert.equal(await refused(rig, () => rig.post(payload, { authorization: "Bearer wrong-token-value" }), 401), "wrong bearer token");
      const challenge = await rig.post(payload, {});
      assert.equal(challenge.headers.get("www-authenticate"), 'Bearer realm="chaos-signal"');
      assert.equal(rig.arbiter.signal, "RUN");
      await rig.deliver(payload);
      assert.equal(rig.arbiter.signal, "PAUSE");
    });
  });

  test("only POST delivers: GET gets 405 with Allow: POST", async () => {
    await withAlertmanager({}, async (rig) => {
      const response = await refused(rig, () => rig.call({ method: "GET", headers: { authorization: `Bearer ${TOKEN}` } }), 405);
      assert.equal(response, "method GET is not allowed on /hooks/alerts; allowed: POST");
      const put = await rig.call({ method: "PUT", body: "{}" });
      assert.equal(put.status, 405);
      assert.equal(put.headers.get("allow"), "POST");
    });
  });

  test("the reason names at most three alerts", async () => {
    await withAlertmanager({}, async (rig) => {
      const names = ["A", "B", "C", "D", "E"];
      await rig.deliver(notification(names.map((name) => alert("firing", { alertname: name }, `fp-${name}`))));
      assert.equal(rig.claim()?.reason, "5 alerts firing: A, B, C and 2 more");
    });
  });

  test("a payload over max_body_bytes (4 MiB by default) gets 413 and changes nothing", async () => {
    // A group of 2,000 alerts with long annotations: about 2.5 MB, fine by default.
    const big = notification(Array.from({ length: 2000 }, (_, i) => alert("firing", { pod: `p-${i}` }, `fp-${i}`, { annotations: { description: "d".repeat(1200) } })));
    const bytes = new TextEncoder().encode(JSON.stringify(big)).byteLength;
    assert.ok(bytes > 2_000_000 && bytes < 4 * 1024 * 1024, `${bytes} bytes`);
    await withAlertmanager({}, async (rig) => {
      assert.equal((await rig.deliver(big)).firing, 2000);
    });
    await withAlertmanager({ max_body_bytes: 1_000_000 }, async (rig) => {
      assert.match(await refused(rig, () => rig.post(big), 413), /^request body is larger than the limit of 1000000 bytes/);
      assert.equal(rig.arbiter.signal, "RUN");
      assert.equal(rig.status().last_observation?.deliveries, 0, "the refused payload was not a delivery");
    });
  });

  test("rules are validated at construction; a bad matcher names the rule and says what is allowed", () => {
    assert.throws(() => alertmanagerSource({ name: "alerts", rules: [{ match: ["severity"] }] }), {
      message: 'alertmanager "alerts": rules[0].match[0]: got "severity"; allowed: a label matcher: label="value", label!="value", label=~"regex" or label!~"regex"',
    });
    assert.throws(() => alertmanagerSource({ name: "alerts", rules: [{ claim: "PAUSE" }, { match: ['severity=~"("'] }] }), {
      message: /^alertmanager "alerts": rules\[1\]\.match\[0\]: got "severity=~\\"\(\\""; allowed: a label matcher with a valid regex \(.+\)$/,
    });
    assert.throws(() => alertmanagerSource({ name: "alerts", rules: [] }), { message: 'alertmanager "alerts": rules: got []; allowed: at least one rule' });
    assert.throws(() => alertmanagerSource({ name: "alerts", rules: [{ claim: "RUN" as "PAUSE" }] }), {
      message: 'alertmanager "alerts": rules[0].claim: got "RUN"; allowed: PAUSE or STOP',
    });
  });
});
