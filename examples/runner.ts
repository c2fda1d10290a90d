/**
 * A small chaos runner built on chaos-signal's client: before each scenario
 * it waits until the signal is RUN, and it resumes the moment the signal
 * returns to RUN instead of sleeping a fixed `wait_duration` as Krkn's runner
 * does. STOP ends the run, and so does Ctrl-C (SIGINT) or SIGTERM, mid-wait
 * or mid-scenario.
 *
 *   deno run -A examples/runner.ts http://127.0.0.1:8090 [scenario duration, default 3s]
 *   bun run examples/runner.ts http://127.0.0.1:8090
 *
 * The scenarios are simulated: each logs what it would inject and sleeps.
 * It works against Krkn's own signal server too (by polling `GET /`).
 */
import process from "node:process";
import { parseDuration, RunStoppedError, SignalClient } from "../client.ts";
import { delay } from "../plugin.ts";

const SCENARIOS = ["pod-delete: kill one etcd pod", "node-cpu-hog: 80% for the duration", "network-chaos: 200 ms latency on ingress"];

function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} runner: ${message}\n`);
}

const [url = "http://127.0.0.1:8090", durationText = "3s"] = process.argv.slice(2);
const scenarioMs = parseDuration(durationText);
if (scenarioMs === undefined) {
  process.stderr.write(`runner: scenario duration: got ${JSON.stringify(durationText)}; allowed: a duration such as 500ms, 3s or 1m\n`);
  process.exit(2);
}

const client = new SignalClient(url);
// Ctrl-C or SIGTERM aborts whatever the runner is doing: a wait for RUN or a scenario.
const interrupt = new AbortController();
for (const name of ["SIGINT", "SIGTERM"] as const) {
  process.on(name, () => interrupt.abort(new Error(`interrupted by ${name}`)));
}

try {
  for (const [index, scenario] of SCENARIOS.entries()) {
    log(`scenario ${index + 1}/${SCENARIOS.length}: waiting for RUN at ${url}`);
    await client.waitUntilRunnable({
      signal: interrupt.signal,
      onError: (error) => log(`signal server: ${(error as Error).message} (retrying)`),
    });
    log(`injecting ${scenario}`);
    await delay(scenarioMs, interrupt.signal);
    log(`done: ${scenario}`);
  }
  log("all scenarios done");
} catch (error) {
  if (error instanceof RunStoppedError) {
    log(`STOP: ending the run (${error.message})`);
  } else if (interrupt.signal.aborted && error === interrupt.signal.reason) {
    log(`${(error as Error).message}: ending the run`);
    process.exitCode = 130;
  } else {
    throw error;
  }
}
