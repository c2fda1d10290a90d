import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type Change,
  type EventDraft,
  initialSnapshot,
  MANUAL_SOURCE,
  nextExpiry,
  type Snapshot,
  STOP_LATCH,
  towardSafety,
  transition,
} from "../mod.ts";

const T0 = Date.UTC(2026, 0, 1);

/** Applies changes one after the other, one second apart, keeping every event: the arbiter's old behaviour, as values. */
function machine(initial: "RUN" | "PAUSE" | "STOP" = "RUN") {
  let t = T0;
  let snapshot: Snapshot = initialSnapshot(initial, new Date(t));
  const events: EventDraft[] = [];
  const apply = (change: Change) => {
    const result = transition(snapshot, change, new Date((t += 1000)));
    snapshot = result.next;
    events.push(...result.events);
    return result;
  };
  return {
    get s() {
      return snapshot;
    },
    events,
    apply,
    claim: (source: string, state: "RUN" | "PAUSE" | "STOP", reason = "r", more: Partial<Extract<Change, { kind: "claim" }>> = {}) =>
      apply({ kind: "claim", source, state, reason, ...more }).next.signal,
  };
}

const claimOf = (s: Snapshot, source: string) => s.claims.find((c) => c.source === source);
const line = (e: EventDraft) => (e.type === "claim" ? `claim ${e.claim.source} ${e.previous}->${e.claim.state}` : `change ${e.previous}->${e.signal}`);

test("starts from the manual source's initial claim; an initial STOP is latched", () => {
  const paused = initialSnapshot("PAUSE", new Date(T0));
  assert.equal(paused.signal, "PAUSE");
  assert.equal(paused.name, "default", "the snapshot names its signal");
  assert.equal(paused.decidedBy, MANUAL_SOURCE);
  assert.deepEqual(paused.claims.map((c) => [c.source, c.state]), [[MANUAL_SOURCE, "PAUSE"]]);
  assert.equal(initialSnapshot("STOP", new Date(T0)).latch?.source, MANUAL_SOURCE);
});

test("the most severe claim wins", () => {
  const m = machine();
  assert.equal(m.claim("load", "PAUSE", "load 5 > 4"), "PAUSE");
  assert.equal(m.s.decidedBy, "load");
  assert.equal(m.claim(MANUAL_SOURCE, "RUN", "POST /RUN"), "PAUSE", "a manual RUN does not outvote a source's PAUSE");
  assert.equal(m.claim("load", "RUN", "load 1 < 3"), "RUN");
});

test("on a tie the claim that has held its state longest is named as the decider", () => {
  const m = machine();
  m.claim("a", "RUN");
  m.claim("b", "PAUSE");
  m.claim("a", "PAUSE");
  assert.equal(m.s.decidedBy, "b");
  m.claim("b", "PAUSE", "b again");
  assert.equal(m.s.decidedBy, "b");
});

test("STOP latches until a manual RUN, even after the source lets go", () => {
  const m = machine();
  m.claim("alerts", "STOP", "critical alert");
  assert.equal(m.claim("alerts", "RUN", "resolved"), "STOP");
  assert.equal(m.s.decidedBy, STOP_LATCH);
  assert.deepEqual({ source: m.s.latch?.source, reason: m.s.latch?.reason }, { source: "alerts", reason: "critical alert" });
  assert.equal(m.claim("other", "RUN"), "STOP", "only the manual source opens the latch");
  assert.equal(m.claim(MANUAL_SOURCE, "PAUSE"), "STOP", "a manual PAUSE does not open the latch");
  assert.equal(m.claim(MANUAL_SOURCE, "RUN"), "RUN");
  assert.equal(m.s.latch, null);
});

test("a manual RUN while a source still claims STOP leaves the signal at STOP, latched again", () => {
  const m = machine();
  m.claim("alerts", "STOP");
  assert.equal(m.claim(MANUAL_SOURCE, "RUN"), "STOP");
  assert.equal(m.s.decidedBy, "alerts");
  assert.equal(m.claim("alerts", "RUN"), "STOP", "the latch was set again by the standing STOP claim");
});

test("events: a claim event per state change, a change event per signal change, in order", () => {
  const m = machine();
  m.claim("load", "PAUSE", "high");
  const quiet = m.apply({ kind: "claim", source: "load", state: "PAUSE", reason: "still high" });
  assert.equal(quiet.durable, false, "a re-assertion with a new reason is made, not written");
  assert.equal(claimOf(quiet.next, "load")?.reason, "still high");
  m.claim(MANUAL_SOURCE, "RUN", "POST /RUN", { explicit: true, actor: "10.0.0.1" });
  m.claim("load", "RUN", "low");
  assert.deepEqual(m.events.map(line), ["claim load null->PAUSE", "change RUN->PAUSE", "claim manual RUN->RUN", "claim load PAUSE->RUN", "change PAUSE->RUN"]);
  const manual = m.events[2];
  assert.equal(manual?.type === "claim" && manual.claim.actor, "10.0.0.1");
});

test("a changed memo makes a change durable; the same memo does not", () => {
  const m = machine();
  m.claim("am", "PAUSE", "1 alert", { memo: { a: 1 } });
  assert.equal(m.apply({ kind: "claim", source: "am", state: "PAUSE", reason: "1 alert", memo: { a: 1 } }).durable, false);
  assert.equal(m.apply({ kind: "claim", source: "am", state: "PAUSE", reason: "1 alert", memo: { a: 2 } }).durable, true);
  assert.deepEqual(claimOf(m.s, "am")?.memo, { a: 2 });
});

test("re-asserting a state keeps since and refreshes updated and reason", () => {
  const m = machine();
  m.claim("load", "PAUSE", "load 5");
  const first = claimOf(m.s, "load")!;
  m.claim("load", "PAUSE", "load 6");
  const second = claimOf(m.s, "load")!;
  assert.equal(second.since.getTime(), first.since.getTime());
  assert.ok(second.updated > first.updated);
  assert.equal(second.reason, "load 6");
});

test("a transition changes nothing it was given", () => {
  const m = machine();
  m.claim("load", "PAUSE");
  const before = m.s;
  const copy = structuredClone(before);
  transition(before, { kind: "force-run", reason: "POST /RUN?force=true" }, new Date(T0 + 99_000));
  transition(before, { kind: "claim", source: "x", state: "STOP", reason: "r" }, new Date(T0 + 99_000));
  assert.deepEqual(before, copy);
});

test("snapshots are consistent with the signal after every one of many mixed claims", () => {
  const m = machine();
  const states = ["RUN", "PAUSE", "STOP"] as const;
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 2000; i++) {
    const source = random() < 0.5 ? MANUAL_SOURCE : `s${Math.floor(random() * 3)}`;
    m.claim(source, states[Math.floor(random() * 3)]!, `step ${i}`);
    const max = m.s.claims.reduce((top, c) => Math.max(top, states.indexOf(c.state)), 0);
    assert.equal(m.s.signal, m.s.latch ? "STOP" : states[max], `step ${i}`);
  }
});

test("a forced RUN overrides every automatic claim, opens the latch and records the override", () => {
  const m = machine();
  m.claim("load", "PAUSE", "load 5");
  m.claim("alerts", "STOP", "critical");
  m.events.length = 0;
  const forced = m.apply({ kind: "force-run", reason: "POST /RUN?force=true", actor: "ops" });
  assert.equal(forced.next.signal, "RUN");
  assert.equal(forced.next.latch, null);
  assert.deepEqual(forced.next.override?.sources, ["load", "alerts"]);
  assert.equal(forced.next.override?.actor, "ops");
  assert.match(claimOf(forced.next, "load")!.reason, /^overridden by POST \/RUN\?force=true \(was PAUSE: load 5\)$/);
  assert.equal(claimOf(forced.next, "load")!.actor, "ops");
  assert.deepEqual(m.events.map(line), ["claim load PAUSE->RUN", "claim alerts STOP->RUN", "claim manual RUN->RUN", "change STOP->RUN"]);
  assert.equal(towardSafety({ kind: "force-run", reason: "x" }), false);
});

test("a timed pause: until from the transition's time; its end is a no-op unless that pause still stands", () => {
  const m = machine();
  const paused = m.apply({ kind: "timed-pause", ms: 60_000, actor: "ops" });
  const manual = claimOf(paused.next, MANUAL_SOURCE)!;
  assert.equal(manual.state, "PAUSE");
  assert.equal(manual.until?.getTime(), manual.updated.getTime() + 60_000);
  assert.match(manual.reason, /^POST \/PAUSE\?for=1m \(until .+Z\)$/);
  const end = nextExpiry(paused.next)!;
  assert.deepEqual(end, { until: manual.until, lengthMs: 60_000 });
  assert.equal(towardSafety({ kind: "timed-pause", ms: 1 }), true);

  // A STOP meanwhile: the end makes the manual claim RUN but never opens the latch.
  m.claim("alerts", "STOP");
  const ended = m.apply({ kind: "pause-expired", ...end });
  assert.equal(claimOf(ended.next, MANUAL_SOURCE)?.reason, "timed pause of 1m expired");
  assert.equal(ended.next.signal, "STOP");
  assert.equal(nextExpiry(ended.next), undefined);

  // Replaced by another request: the old end changes nothing.
  const n = machine();
  const first = nextExpiry(n.apply({ kind: "timed-pause", ms: 60_000 }).next)!;
  n.claim(MANUAL_SOURCE, "PAUSE", "POST /PAUSE", { explicit: true });
  const stale = n.apply({ kind: "pause-expired", ...first });
  assert.equal(stale.durable, false);
  assert.equal(stale.next, n.s);
  assert.equal(n.s.signal, "PAUSE");
});

test("restore keeps the manual claim and configured sources' claims, and the latch", () => {
  const m = machine();
  m.claim("gone", "PAUSE");
  m.claim("alerts", "STOP");
  m.claim("alerts", "RUN");
  const saved = m.s;
  const fresh = initialSnapshot("RUN", new Date(T0));
  const restored = transition(fresh, { kind: "restore", saved, sources: ["alerts"] }, new Date(T0 + 50_000));
  assert.deepEqual(restored.next.claims.map((c) => c.source), [MANUAL_SOURCE, "alerts"]);
  assert.equal(restored.next.signal, "STOP");
  assert.equal(restored.next.decidedBy, STOP_LATCH);
  assert.deepEqual(restored.events.map(line), ["change RUN->STOP"]);
  assert.equal(restored.durable, true);
});

test("claims with a state that is not a signal are refused", async () => {
  const { checkChange } = await import("../src/core/transition.ts");
  assert.throws(() => checkChange({ kind: "claim", source: "x", state: "pause" as never, reason: "r" }), /claim state must be one of RUN, PAUSE, STOP, not "pause"/);
  assert.throws(() => checkChange({ kind: "claim", source: "", state: "PAUSE", reason: "r" }), /non-empty/);
});
