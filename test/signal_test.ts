import assert from "node:assert/strict";
import { test } from "node:test";
import { mostSevere, parseSignal, severity, SIGNALS } from "../mod.ts";

test("signals are ordered RUN < PAUSE < STOP", () => {
  assert.deepEqual([...SIGNALS], ["RUN", "PAUSE", "STOP"]);
  assert.ok(severity("RUN") < severity("PAUSE"));
  assert.ok(severity("PAUSE") < severity("STOP"));
  assert.equal(mostSevere("RUN", "PAUSE"), "PAUSE");
  assert.equal(mostSevere("STOP", "PAUSE"), "STOP");
  assert.equal(mostSevere("RUN", "RUN"), "RUN");
});

test("parseSignal accepts the three words in any ASCII letter case, nothing else", () => {
  assert.equal(parseSignal("pause"), "PAUSE");
  assert.equal(parseSignal("Stop"), "STOP");
  assert.equal(parseSignal("RUN"), "RUN");
  for (const bad of ["", " STOP", "STOP\n", "\tRUN", "\u00a0STOP", "\u017ftop", "RUNNING", "PAUS", "STOP!", "\"RUN\"", "0", "true"]) {
    assert.equal(parseSignal(bad), undefined, bad);
  }
});
