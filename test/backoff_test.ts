// The one retry delay (source restarts, relay targets, the client): grows by its factor up to its cap.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff } from "../src/util/backoff.ts";

test("Backoff doubles from initialMs up to maxMs, counts failures, and starts over after reset()", () => {
  const backoff = new Backoff({ initialMs: 250, maxMs: 5000 });
  assert.equal(backoff.failures, 0);
  const delays = Array.from({ length: 8 }, () => backoff.next());
  assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
  assert.equal(backoff.failures, 8);
  backoff.reset();
  assert.equal(backoff.failures, 0);
  assert.equal(backoff.next(), 250);
});

test("Backoff: another factor, and no overflow after very many failures", () => {
  const triple = new Backoff({ initialMs: 10, maxMs: 1000, factor: 3 });
  assert.deepEqual([triple.next(), triple.next(), triple.next(), triple.next(), triple.next()], [10, 30, 90, 270, 810]);
  assert.equal(triple.next(), 1000);
  const long = new Backoff({ initialMs: 1000, maxMs: 30_000 });
  for (let i = 0; i < 5000; i++) long.next();
  assert.equal(long.next(), 30_000);
});
