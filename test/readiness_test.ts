// Readiness that fits Kubernetes: ready means "can serve the signal". A source that has not
// observed yet (Prometheus down at start) keeps its fail-closed PAUSE and shows in /status, but
// does not take the pod out of its Service: clients must get that PAUSE, not connection errors.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createServer } from "node:net";
import { startServer } from "./helpers/server_process.ts";
import { tempFile } from "./helpers/files.ts";

/** A loopback port nothing listens on: Prometheus is down. */
async function closedPort(): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

test("Prometheus down at start → /readyz 200, GET / PAUSE, /status and /metrics show the source waiting", async () => {
  const config = tempFile(`chaos_signal:
  sources:
    - type: prometheus
      name: load
      url: http://127.0.0.1:${await closedPort()}
      query: max(node_load1)
      pause_above: 4
      resume_below: 3
      interval: 1s
      timeout: 500ms
`);
  const server = await startServer(["--config", config]);
  try {
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200, "the pod stays in its Service: it can serve the signal");
    assert.equal(await ready.text(), "ready (not observed yet: load; see /status)\n");
    const signal = await fetch(`${server.url}/`);
    assert.equal(await signal.text(), "PAUSE", "fail closed until Prometheus answers");
    const status = await (await fetch(`${server.url}/status`)).json();
    assert.deepEqual(status.sources_waiting, ["load"]);
    const load = status.sources.find((s: { name: string }) => s.name === "load");
    assert.equal(load.last_observation, null);
    assert.match(await (await fetch(`${server.url}/metrics`)).text(), /^chaos_signal_source_waiting\{source="load",kind="prometheus"\} 1$/m);
  } finally {
    await server.stop();
  }
});
