import assert from "node:assert/strict";
import { test } from "node:test";
import * as v from "valibot";
import { durationSchema, formatDuration, parseDuration } from "../mod.ts";

test("durations in Prometheus' notation or seconds", () => {
  const cases: [string, number | undefined][] = [
    ["500ms", 500], ["15s", 15_000], ["1m30s", 90_000], ["2h", 7_200_000], ["1d", 86_400_000], ["1.5s", 1500],
    ["30", 30_000], [" 5s ", 5000], ["", undefined], ["5", 5000], ["s", undefined], ["5 s", undefined], ["1x", undefined], ["5s5", undefined],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, JSON.stringify(text));
  assert.equal(formatDuration(90_000), "1m30s");
  assert.equal(formatDuration(250), "250ms");
  assert.equal(formatDuration(3_600_500), "1h500ms");
  const schema = durationSchema(100, 60_000);
  assert.equal(v.parse(schema, "1m"), 60_000);
  assert.equal(v.parse(schema, 2), 2000);
  assert.equal(v.safeParse(schema, "2m").success, false);
  assert.equal(v.safeParse(schema, "50ms").success, false);
  assert.equal(v.safeParse(schema, "often").success, false);
});
