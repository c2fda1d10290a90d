// End to end against a real Prometheus and a real Alertmanager (Debian
// packages prometheus and prometheus-alertmanager; .ci/run installs them):
// Prometheus scrapes a target whose values the test sets, chaos-signal's
// prometheus source polls it, and a Prometheus alerting rule fires through
// Alertmanager into chaos-signal's /hooks/alerts webhook.
//
// Everything is started once, lazily, by the first test that needs it (no
// before() hook: Bun reports tests as passed when a hook throws), and each
// test first brings the world back to its baseline (load 1, no errors, no
// alert, signal RUN), so a failed test does not take the others with it.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { after, describe, test } from "node:test";
import { tempFile } from "./helpers/files.ts";
import {
  type AlertmanagerInstance,
  freePort,
  type MetricsTarget,
  type PrometheusInstance,
  startAlertmanager,
  startPrometheus,
  startTarget,
  waitFor,
} from "./helpers/prometheus.ts";
import { type ServerProcess, startServer } from "./helpers/server_process.ts";

/** Each awaited step; every one normally takes 1 to 5 s. */
const STEP_MS = 30_000;

interface Status {
  signal: string;
  decided_by: string;
  stop_latch: { source: string; reason: string } | null;
  claims: { source: string; state: string; reason: string; actor?: string }[];
  sources: {
    name: string;
    kind: string;
    health: string;
    route?: string;
    warnings: number;
    last_observation: ({ at: string } & Record<string, unknown>) | null;
    last_warning: { at: string; message: string } | null;
  }[];
}

interface World {
  configFile?: string;
  target?: MetricsTarget;
  server?: ServerProcess;
  alertmanager?: AlertmanagerInstance;
  prometheus?: PrometheusInstance;
}

const LOAD = "chaos_test_load";
const ERRORS = "chaos_test_errors";

describe("a real Prometheus and Alertmanager drive the signal", () => {
  const world: World = {};
  const token = randomBytes(16).toString("hex");
  let starting: Promise<Required<World>> | undefined;
  let serverExit: string | undefined;

  /** Target, chaos-signal, Alertmanager, Prometheus: started once, by the first test that asks. */
  function started(): Promise<Required<World>> {
    starting ??= (async () => {
      world.target = await startTarget({ [LOAD]: 1, [ERRORS]: 0 });
      // chaos-signal needs Prometheus' port and Alertmanager needs chaos-signal's:
      // pick Prometheus' and Alertmanager's ports first, start chaos-signal on port 0.
      const prometheusPort = await freePort();
      const alertmanagerPort = await freePort();
      const config = world.configFile = tempFile([
        "chaos_signal:",
        "  sources:",
        "    - type: prometheus",
        "      name: load",
        `      url: http://127.0.0.1:${prometheusPort}`,
        `      query: max(${LOAD})`,
        "      pause_above: 4",
        "      resume_below: 3",
        "      interval: 500ms",
        "      timeout: 400ms",
        "      consecutive_errors: 2",
        "    - type: alertmanager",
        "      name: alerts",
        `      token: {value: "${token}"}`,
        "      rules:",
        `        - match: ['severity="critical"']`,
        "          claim: STOP",
        "        - claim: PAUSE",
        "",
      ].join("\n"));
      world.server = await startServer(["--config", config]);
      world.server.exited.then((exit) => (serverExit = `chaos-signal exited (${exit.code ?? exit.signal})`));
      world.alertmanager = await startAlertmanager({
        port: alertmanagerPort,
        webhookUrl: `${world.server.url}/hooks/alerts`,
        token,
      });
      world.prometheus = await startPrometheus({
        port: prometheusPort,
        // chaos-signal's own /metrics is scraped beside the test's target.
        targets: [world.target.address, `${world.server.host}:${world.server.port}`],
        alertmanager: `127.0.0.1:${alertmanagerPort}`,
        alertRules: [
          { alert: "ChaosTestErrors", expr: `${ERRORS} > 0`, labels: { severity: "warning" } },
          { alert: "ChaosTestLoadCritical", expr: `${LOAD} > 8`, labels: { severity: "critical" } },
        ],
      });
      return world as Required<World>;
    })();
    return starting;
  }

  after(async () => {
    await Promise.allSettled([world.prometheus?.stop(), world.alertmanager?.stop(), world.server?.stop()]);
    await world.target?.close();
    // tempFile() cleans up on process exit, which `deno test` does not emit.
    if (world.configFile) rmSync(dirname(world.configFile), { recursive: true, force: true });
  });

  async function signal(): Promise<string> {
    const { server } = await started();
    return await (await fetch(`${server.url}/`, { signal: AbortSignal.timeout(5000) })).text();
  }

  async function status(): Promise<Status> {
    const { server } = await started();
    const response = await fetch(`${server.url}/status`, { signal: AbortSignal.timeout(5000) });
    assert.equal(response.status, 200);
    return await response.json() as Status;
  }

  async function post(path: string, init: RequestInit = {}): Promise<Response> {
    const { server } = await started();
    return await fetch(`${server.url}${path}`, { method: "POST", signal: AbortSignal.timeout(5000), ...init });
  }

  const claimOf = (doc: Status, source: string) => doc.claims.find((claim) => claim.source === source);
  const sourceOf = (doc: Status, name: string) => doc.sources.find((source) => source.name === name);

  /** What the failure message shows: /status and the tail of every process' log. */
  async function diagnose(): Promise<string> {
    const parts: string[] = [];
    try {
      const doc = await status();
      for (const source of doc.sources) {
        const warning = source.last_warning ? `; last warning: ${source.last_warning.message}` : "";
        parts.push(`source ${source.name}: ${source.health}, claim ${claimOf(doc, source.name)?.state ?? "none"}${warning}`);
      }
      parts.push(`/status: ${JSON.stringify(doc, null, 2)}`);
    } catch (error) {
      parts.push(`/status failed: ${error}`);
    }
    if (world.target) parts.push(`target values: ${JSON.stringify(world.target.values())}, scrapes: ${world.target.scrapes()}`);
    if (world.server) parts.push(`chaos-signal output:\n${world.server.output().slice(-3000)}`);
    if (world.alertmanager) parts.push(`alertmanager output:\n${world.alertmanager.output().slice(-3000)}`);
    if (world.prometheus) parts.push(`prometheus output:\n${world.prometheus.output().slice(-2000)}`);
    return parts.join("\n");
  }

  /** Polls /status until `check` accepts it; returns that document. */
  function statusWhere(what: string, check: (doc: Status) => boolean): Promise<Status> {
    return waitFor(async () => {
      const doc = await status();
      return check(doc) && doc;
    }, { what, timeoutMs: STEP_MS, diagnose, giveUpIf: () => serverExit });
  }

  function signalIs(expected: string, why: string): Promise<Status> {
    return statusWhere(`the signal to be ${expected} (${why})`, (doc) => doc.signal === expected);
  }

  /**
   * Once the baseline could not be reached, the later tests fail at once with
   * that reason instead of waiting for it again (the whole file stays short).
   */
  let unreachable: Error | undefined;

  /** Load 1, no errors, no alert, Prometheus up, latch open: signal RUN. */
  async function baseline(): Promise<Required<World>> {
    if (unreachable) throw new Error(`the baseline was not reached in an earlier test: ${unreachable.message}`);
    try {
      return await reachBaseline();
    } catch (error) {
      unreachable = error as Error;
      throw error;
    }
  }

  async function reachBaseline(): Promise<Required<World>> {
    const w = await started();
    w.target.set(LOAD, 1);
    w.target.set(ERRORS, 0);
    if (w.prometheus.process.hasExited()) await w.prometheus.restart();
    await statusWhere("the baseline: load and alerts claim RUN (load 1, no alert firing)", (doc) =>
      claimOf(doc, "load")?.state === "RUN" &&
      sourceOf(doc, "load")?.last_observation?.value === 1 &&
      (claimOf(doc, "alerts")?.state ?? "RUN") === "RUN");
    if ((await signal()) !== "RUN") await post("/RUN");
    assert.equal(await signal(), "RUN", "baseline: GET / after POST /RUN");
    return w;
  }

  test("load 1: RUN, and /status shows the prometheus source healthy with value 1", async () => {
    const w = await baseline();
    const doc = await statusWhere("GET / RUN with the load source healthy at value 1", (doc) =>
      doc.signal === "RUN" && sourceOf(doc, "load")?.health === "ok" && sourceOf(doc, "load")?.last_observation?.value === 1);
    assert.equal(await signal(), "RUN");
    assert.equal(doc.decided_by, "manual", "no source objects");
    const load = sourceOf(doc, "load")!;
    assert.equal(load.kind, "prometheus");
    assert.equal(load.last_observation!.query, `max(${LOAD})`);
    assert.equal(load.last_observation!.series, 1);
    assert.equal(claimOf(doc, "load")?.state, "RUN");
    assert.match(claimOf(doc, "load")!.reason, /value 1\b/);
    const alerts = sourceOf(doc, "alerts")!;
    assert.equal(alerts.kind, "alertmanager");
    assert.equal(alerts.route, "/hooks/alerts");
    assert.ok(w.target.scrapes() > 0, "Prometheus scraped the target");
  });

  test("the webhook refuses a request without Alertmanager's bearer token, and nothing changes", async () => {
    await started();
    const deliveries = (doc: Status) => sourceOf(doc, "alerts")?.last_observation?.deliveries;
    const before = await status();
    const body = JSON.stringify({
      version: "4",
      status: "firing",
      alerts: [{ status: "firing", labels: { alertname: "Forged", severity: "critical" } }],
    });
    const headers = { "content-type": "application/json" };
    const missing = await post("/hooks/alerts", { headers, body });
    assert.equal(missing.status, 401, await missing.text());
    const wrong = await post("/hooks/alerts", { headers: { ...headers, authorization: "Bearer not-the-token" }, body });
    assert.equal(wrong.status, 401, await wrong.text());
    const afterwards = await status();
    assert.equal(claimOf(afterwards, "alerts")?.state ?? "RUN", "RUN");
    assert.equal(deliveries(afterwards), deliveries(before), "no delivery was counted");
    assert.notEqual(afterwards.signal, "STOP");
  });

  test("load rises above pause_above: PAUSE; holds between resume_below and pause_above; falls below: RUN", async () => {
    const w = await baseline();
    w.target.set(LOAD, 5);
    let doc = await signalIs("PAUSE", "load 5 > pause_above 4");
    assert.equal(await signal(), "PAUSE");
    assert.equal(doc.decided_by, "load");
    assert.equal(claimOf(doc, "load")?.state, "PAUSE");
    assert.match(claimOf(doc, "load")!.reason, /value 5, above pause_above 4/);

    // Hysteresis: 3.5 is below pause_above but not below resume_below, so the pause holds.
    w.target.set(LOAD, 3.5);
    doc = await statusWhere("the load source to observe 3.5", (doc) => sourceOf(doc, "load")?.last_observation?.value === 3.5);
    assert.equal(claimOf(doc, "load")?.state, "PAUSE", JSON.stringify(claimOf(doc, "load")));
    assert.equal(doc.signal, "PAUSE");

    w.target.set(LOAD, 1);
    doc = await signalIs("RUN", "load 1 < resume_below 3");
    assert.equal(await signal(), "RUN");
    assert.equal(claimOf(doc, "load")?.state, "RUN");
    assert.match(claimOf(doc, "load")!.reason, /value 1, .*below resume_below 3/);
  });

  test("a warning alert fires through Alertmanager: PAUSE; it resolves: RUN", async () => {
    const w = await baseline();
    w.target.set(ERRORS, 1);
    let doc = await signalIs("PAUSE", `alert ChaosTestErrors (${ERRORS} > 0, severity=warning) posted by Alertmanager`);
    assert.equal(await signal(), "PAUSE");
    assert.equal(doc.decided_by, "alerts");
    const claim = claimOf(doc, "alerts")!;
    assert.equal(claim.state, "PAUSE");
    assert.match(claim.reason, /1 alert firing: ChaosTestErrors/);
    assert.equal(claim.actor, "127.0.0.1", "the actor is Alertmanager's address");
    const alerts = sourceOf(doc, "alerts")!;
    assert.deepEqual(alerts.last_observation?.firing, ["ChaosTestErrors"]);
    assert.ok((alerts.last_observation?.deliveries as number) >= 1, JSON.stringify(alerts));
    assert.equal(claimOf(doc, "load")?.state, "RUN", "the load is still low");

    w.target.set(ERRORS, 0);
    doc = await signalIs("RUN", "Alertmanager posted the resolved alert");
    assert.equal(await signal(), "RUN");
    assert.equal(claimOf(doc, "alerts")?.state, "RUN");
    assert.match(claimOf(doc, "alerts")!.reason, /no matching alert is firing/);
    assert.deepEqual(sourceOf(doc, "alerts")?.last_observation?.firing, []);
  });

  test("a critical alert: STOP; after it resolves the claim is RUN but the STOP latch holds until POST /RUN", async () => {
    const w = await baseline();
    w.target.set(LOAD, 9);
    let doc = await signalIs("STOP", `alert ChaosTestLoadCritical (${LOAD} > 8, severity=critical) posted by Alertmanager`);
    assert.equal(await signal(), "STOP");
    assert.equal(doc.decided_by, "alerts");
    assert.equal(claimOf(doc, "alerts")?.state, "STOP");
    assert.match(claimOf(doc, "alerts")!.reason, /ChaosTestLoadCritical/);
    assert.equal(doc.stop_latch?.source, "alerts");
    doc = await statusWhere("the load source to claim PAUSE at 9", (doc) => claimOf(doc, "load")?.state === "PAUSE");

    w.target.set(LOAD, 1);
    doc = await statusWhere("the alert to resolve and the load to fall: both claims RUN", (doc) =>
      claimOf(doc, "alerts")?.state === "RUN" && claimOf(doc, "load")?.state === "RUN");
    assert.equal(doc.signal, "STOP", "the latch keeps STOP after every claim let go");
    assert.equal(doc.decided_by, "stop_latch");
    assert.equal(await signal(), "STOP");
    // Sources re-asserting RUN do not open the latch.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(await signal(), "STOP", "still STOP after more polls of the load source");

    const resumed = await post("/RUN");
    assert.equal(resumed.status, 200);
    assert.equal(await resumed.text(), "RUN");
    assert.equal(await signal(), "RUN");
    doc = await status();
    assert.equal(doc.stop_latch, null);
    assert.equal(doc.signal, "RUN");
  });

  /** One instant query against the real Prometheus: the value of the first series, or undefined. */
  async function promValue(query: string): Promise<string | undefined> {
    const { prometheus } = await started();
    const response = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(query)}`, { signal: AbortSignal.timeout(5000) });
    const body = await response.json() as { data?: { result?: { value: [number, string] }[] } };
    return body.data?.result?.[0]?.value[1];
  }

  test("Prometheus scrapes chaos-signal's /metrics: the signal, the poller's value and thresholds, requests", async () => {
    const w = await baseline();
    w.target.set(LOAD, 5);
    await waitFor(async () => (await signal()) === "PAUSE", { what: "PAUSE at load 5", timeoutMs: 30_000, diagnose });
    await waitFor(async () => (await promValue('chaos_signal_signal{signal="PAUSE"}')) === "1", {
      what: 'Prometheus to see chaos_signal_signal{signal="PAUSE"} 1',
      timeoutMs: 30_000,
      diagnose,
    });
    await waitFor(async () => (await promValue('chaos_signal_prometheus_value{source="load"}')) === "5", {
      what: "Prometheus to see the poller's value 5",
      timeoutMs: 30_000,
      diagnose,
    });
    assert.equal(await promValue('chaos_signal_prometheus_threshold{source="load",threshold="pause_above"}'), "4");
    assert.equal(await promValue('chaos_signal_prometheus_threshold{source="load",threshold="resume_below"}'), "3");
    assert.equal(await promValue('chaos_signal_source_healthy{source="load"}'), "1");
    assert.equal(await promValue('chaos_signal_claim{source="load",state="PAUSE"}'), "1");
    assert.ok(Number(await promValue('sum(chaos_signal_http_requests_total{route="/",code="200"})')) > 0, "GET / requests counted");
    w.target.set(LOAD, 1);
    await waitFor(async () => (await promValue('chaos_signal_signal{signal="RUN"}')) === "1", {
      what: 'Prometheus to see chaos_signal_signal{signal="RUN"} 1 after the load fell',
      timeoutMs: 30_000,
      diagnose,
    });
  });

  test("Prometheus killed: after consecutive_errors failed polls on_error pauses; restarted: RUN", async () => {
    const w = await baseline();
    await w.prometheus.kill();
    let doc = await signalIs("PAUSE", "Prometheus is down: 2 failed polls, on_error: pause");
    assert.equal(await signal(), "PAUSE");
    assert.equal(doc.decided_by, "load");
    const claim = claimOf(doc, "load")!;
    assert.equal(claim.state, "PAUSE");
    assert.match(claim.reason, /\d+ query errors in a row \(on_error: pause\)/);
    const load = sourceOf(doc, "load")!;
    assert.equal(load.health, "warning");
    assert.ok(load.last_warning, JSON.stringify(load));
    assert.ok(load.last_warning.message.length > 0);
    assert.ok(load.warnings >= 2, `warnings: ${load.warnings}`);
    assert.equal(load.last_observation?.value, 1, "the last observation is kept");

    // Same port, same data directory: the poller finds it again by itself.
    await w.prometheus.restart();
    doc = await statusWhere("RUN with the load source healthy again after Prometheus restarted", (doc) =>
      doc.signal === "RUN" && sourceOf(doc, "load")?.health === "ok");
    assert.equal(await signal(), "RUN");
    assert.equal(claimOf(doc, "load")?.state, "RUN");
    assert.equal(sourceOf(doc, "load")?.last_observation?.value, 1);
  });
});
