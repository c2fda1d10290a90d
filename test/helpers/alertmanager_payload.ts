/** Alertmanager webhook payloads (version 4), shaped like the ones Alertmanager sends. */

export type Labels = Record<string, string>;

export interface Alert {
  status: "firing" | "resolved";
  labels: Labels;
  fingerprint?: string;
  [key: string]: unknown;
}

/** One alert as Alertmanager sends it. */
export function alert(status: Alert["status"], labels: Labels, fingerprint?: string, extra: Record<string, unknown> = {}): Alert {
  return {
    status,
    labels: { alertname: "NodeLoadHigh", instance: "node-1:9100", job: "node", ...labels },
    annotations: { summary: "load above 4", description: "node_load1 is 5.2" },
    startsAt: "2026-11-30T04:30:00.000Z",
    endsAt: status === "firing" ? "0001-01-01T00:00:00Z" : "2026-11-30T04:35:00.000Z",
    generatorURL: "http://prometheus.local:9090/graph?g0.expr=node_load1+%3E+4&g0.tab=1",
    ...(fingerprint === undefined ? {} : { fingerprint }),
    ...extra,
  };
}

/** A notification as Alertmanager sends it: a group of alerts with their common labels. */
export function notification(alerts: Alert[], extra: Record<string, unknown> = {}) {
  return {
    version: "4",
    groupKey: '{}/{severity=~".+"}:{alertname="NodeLoadHigh"}',
    truncatedAlerts: 0,
    status: alerts.some((a) => a.status === "firing") ? "firing" : "resolved",
    receiver: "chaos-signal",
    groupLabels: { alertname: "NodeLoadHigh" },
    commonLabels: { alertname: "NodeLoadHigh", job: "node" },
    commonAnnotations: { summary: "load above 4" },
    externalURL: "http://alertmanager.local:9093",
    alerts,
    ...extra,
  };
}
