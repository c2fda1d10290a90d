// The Prometheus poller's decisions, observation by observation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type Observation, ThresholdGate, type ThresholdSettings } from "../plugins/thresholds.ts";

const base: ThresholdSettings = {
  pauseAbove: 4,
  resumeBelow: 4,
  consecutiveBreaches: 1,
  consecutiveRecoveries: 1,
  consecutiveErrors: 3,
  onError: "pause",
  onEmpty: "pause",
};

const value = (v: number): Observation => ({ kind: "value", value: v });
const error = (message = "connection refused"): Observation => ({ kind: "error", message });
const empty: Observation = { kind: "empty" };

/** Feeds observations and returns the state after each. */
function run(settings: Partial<ThresholdSettings>, observations: Observation[]): string[] {
  const gate = new ThresholdGate({ ...base, ...settings });
  return observations.map((o) => gate.observe(o).state);
}

test("fail closed: PAUSE until the first observation with on_error: pause, RUN otherwise", () => {
  assert.equal(new ThresholdGate(base).decision.state, "PAUSE");
  assert.equal(new ThresholdGate({ ...base, onError: "hold" }).decision.state, "RUN");
  assert.equal(new ThresholdGate({ ...base, onError: "ignore" }).decision.state, "RUN");
});

test("above pause_above pauses, back at or below it runs (no hysteresis by default)", () => {
  assert.deepEqual(run({}, [value(1), value(4.5), value(4), value(3.9)]), ["RUN", "PAUSE", "RUN", "RUN"]);
});

test("stop_above claims STOP", () => {
  assert.deepEqual(run({ stopAbove: 8 }, [value(1), value(5), value(9), value(5)]), ["RUN", "PAUSE", "STOP", "PAUSE"]);
});

test("hysteresis: between resume_below and pause_above the claim holds", () => {
  assert.deepEqual(
    run({ resumeBelow: 3 }, [value(1), value(3.5), value(5), value(3.5), value(3.9), value(2.9), value(3.5)]),
    ["RUN", "RUN", "PAUSE", "PAUSE", "PAUSE", "RUN", "RUN"],
  );
});

test("the first observation decides at once, even inside the band", () => {
  assert.deepEqual(run({ resumeBelow: 3, consecutiveBreaches: 3 }, [value(3.5)]), ["RUN"]);
  assert.deepEqual(run({ consecutiveBreaches: 3 }, [value(5)]), ["PAUSE"]);
});

test("consecutive_breaches and consecutive_recoveries need streaks; an interruption resets them", () => {
  assert.deepEqual(
    run({ consecutiveBreaches: 3, consecutiveRecoveries: 2 }, [value(1), value(5), value(5), value(1), value(5), value(5), value(5), value(1), value(5), value(1), value(1)]),
    ["RUN", "RUN", "RUN", "RUN", "RUN", "RUN", "PAUSE", "PAUSE", "PAUSE", "PAUSE", "RUN"],
  );
});

test("errors: nothing changes until consecutive_errors, then on_error: pause claims PAUSE", () => {
  assert.deepEqual(run({}, [value(1), error(), error(), error(), error()]), ["RUN", "RUN", "RUN", "PAUSE", "PAUSE"]);
});

test("after errors paused, the next good value decides at once (recovery)", () => {
  assert.deepEqual(run({ consecutiveRecoveries: 5 }, [value(1), error(), error(), error(), value(1)]), ["RUN", "RUN", "RUN", "PAUSE", "RUN"]);
});

test("a success resets the error streak", () => {
  assert.deepEqual(run({}, [value(1), error(), error(), value(1), error(), error()]), ["RUN", "RUN", "RUN", "RUN", "RUN", "RUN"]);
});

test("on_error: hold keeps the claim, ignore releases it", () => {
  assert.deepEqual(run({ onError: "hold", consecutiveErrors: 1 }, [value(5), error(), error()]), ["PAUSE", "PAUSE", "PAUSE"]);
  assert.deepEqual(run({ onError: "ignore", consecutiveErrors: 1 }, [value(5), error()]), ["PAUSE", "RUN"]);
});

test("on_empty: pause, hold and run", () => {
  assert.deepEqual(run({ onEmpty: "pause" }, [value(1), empty]), ["RUN", "PAUSE"]);
  assert.deepEqual(run({ onEmpty: "hold" }, [value(5), empty, value(1), empty]), ["PAUSE", "PAUSE", "RUN", "RUN"]);
  assert.deepEqual(run({ onEmpty: "run" }, [value(5), empty]), ["PAUSE", "RUN"]);
  assert.deepEqual(run({ onEmpty: "hold" }, [empty]), ["RUN"], "hold from unknown is no objection");
});

test("±Infinity compare as numbers", () => {
  assert.deepEqual(run({}, [value(Number.POSITIVE_INFINITY), value(Number.NEGATIVE_INFINITY)]), ["PAUSE", "RUN"]);
});

test("reasons say the value, the threshold and the streak", () => {
  const gate = new ThresholdGate({ ...base, consecutiveBreaches: 2 });
  gate.observe(value(1));
  assert.equal(gate.observe(value(5)).reason, "value 5, above pause_above 4 (breach 1 of 2)");
  assert.equal(gate.observe(value(6)).reason, "value 6, above pause_above 4");
  assert.match(gate.observe(error("timeout")).reason, /\[error 1 of 3: timeout\]$/);
  gate.observe(error("timeout"));
  assert.equal(gate.observe(error("timeout")).reason, "3 query errors in a row (on_error: pause): timeout");
});
