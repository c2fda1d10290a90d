// Every source, built-in or example, through the one conformance suite.
import { rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { alertmanagerSource, fileSource, prometheusSource, type Signal, webhookSource } from "../mod.ts";
import { tcpSource } from "../examples/tcp_source.ts";
import { startFakePrometheus, vector } from "./helpers/fake_prometheus.ts";
import { tempDir } from "./helpers/files.ts";
import { sourceConformance } from "../testing.ts";

sourceConformance("file", { canStop: true, hasProblems: true }, async () => {
  const path = join(tempDir(), "signal");
  return {
    plugin: fileSource({ name: "switch", path, interval: "200ms" }),
    reassertsByItself: true,
    async drive(state: Signal) {
      // RUN by removing the file: a missing file is no objection.
      if (state === "RUN") rmSync(path, { force: true });
      else writeFileSync(path, `${state.toLowerCase()}\n`);
    },
    async provokeWarning() {
      writeFileSync(path, "halt please");
    },
  };
});

const TOKEN = "conformance-token";

sourceConformance("webhook", { canStop: true, hasProblems: true }, async () => ({
  plugin: webhookSource({ name: "ci", token: { value: TOKEN } }),
  reassertsByItself: false,
  async drive(state: Signal, rig) {
    const response = await rig.call("/hooks/ci", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ state, reason: `pipeline says ${state}` }),
    });
    if (response.status !== 200) throw new Error(`webhook answered ${response.status}: ${await response.text()}`);
  },
  sendMalformed: (rig) =>
    rig.call("/hooks/ci", { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: '{"state": "HALT"}' }),
}));

function alertPayload(status: "firing" | "resolved", severity: string, extra: Record<string, unknown> = {}) {
  return JSON.stringify({
    version: "4",
    groupKey: "{}:{}",
    status,
    receiver: "chaos-signal",
    alerts: [{ status, labels: { alertname: "Load", severity }, annotations: {}, fingerprint: `fp-${severity}` }],
    ...extra,
  });
}

sourceConformance("alertmanager", { canStop: true, hasProblems: true }, async () => {
  let firing: string | undefined;
  const send = (rig: { call(path: string, init?: RequestInit): Promise<Response> }, body: string) =>
    rig.call("/hooks/alerts", { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body });
  return {
    plugin: alertmanagerSource({
      name: "alerts",
      token: { value: TOKEN },
      rules: [{ match: ['severity="critical"'], claim: "STOP" }, { claim: "PAUSE" }],
    }),
    reassertsByItself: false,
    async drive(state: Signal, rig) {
      if (firing) await send(rig, alertPayload("resolved", firing));
      firing = state === "RUN" ? undefined : state === "STOP" ? "critical" : "warning";
      const response = await send(rig, firing ? alertPayload("firing", firing) : alertPayload("resolved", "warning"));
      if (response.status !== 200) throw new Error(`webhook answered ${response.status}: ${await response.text()}`);
    },
    async provokeWarning(rig) {
      await send(rig, alertPayload("firing", "info", { truncatedAlerts: 3 }));
      await send(rig, alertPayload("resolved", "info"));
    },
    sendMalformed: (rig) => send(rig, '{"alerts": [{"status": "burning", "labels": {}}]}'),
  };
});

sourceConformance("prometheus", { canStop: true, hasProblems: true }, async () => {
  const fake = await startFakePrometheus();
  const values: Record<Signal, string> = { RUN: "1", PAUSE: "5", STOP: "9" };
  return {
    plugin: prometheusSource({
      name: "load",
      url: fake.url,
      query: "max(node_load1)",
      pause_above: 4,
      stop_above: 8,
      interval: "100ms",
      consecutive_errors: 1,
    }),
    reassertsByItself: true,
    async drive(state: Signal) {
      fake.answer(vector(values[state]));
    },
    async provokeWarning() {
      fake.answer({ status: 503, body: '{"status":"error","errorType":"timeout","error":"query timed out"}' });
    },
    cleanup: () => fake.close(),
  };
});

sourceConformance("example tcp source", { canStop: false, hasProblems: false }, async () => {
  let server: Server | undefined;
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((socket) => socket.end()).listen(port, "127.0.0.1", () => resolve());
    });
  const close = () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await listen();
  return {
    plugin: tcpSource({ name: "db", host: "127.0.0.1", port, interval: "100ms" }),
    reassertsByItself: true,
    async drive(state: Signal) {
      if (state === "RUN" && !server?.listening) await listen();
      if (state !== "RUN" && server?.listening) await close();
    },
    // An unreachable endpoint is this source's claim, not a problem: it has no warnings to show.
    cleanup: close,
  };
});
