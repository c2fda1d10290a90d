import assert from "node:assert/strict";
import { test } from "node:test";
import { Arbiter, type ArbiterEvent, MANUAL_SOURCE, STOP_LATCH } from "../mod.ts";

/** A clock that moves one second per reading, so `since` values are distinguishable. */
function steppingClock(start = Date.UTC(2026, 0, 1)) {
  let t = start;
  return () => new Date((t += 1000));
}

function recorder(arbiter: Arbiter) {
  const events: ArbiterEvent[] = [];
  arbiter.subscribe((event) => events.push(event));
  return events;
}

test("starts from the manual source's initial claim", () => {
  assert.equal(new Arbiter().signal, "RUN");
  const paused = new Arbiter({ initialSignal: "PAUSE" });
  assert.equal(paused.signal, "PAUSE");
  const snapshot = paused.snapshot();
  assert.equal(snapshot.decidedBy, MANUAL_SOURCE);
  assert.equal(snapshot.seq, 0);
  assert.deepEqual(snapshot.claims.map((c) => [c.source, c.state]), [[MANUAL_SOURCE, "PAUSE"]]);
});

test("an initial STOP is latched from the start", () => {
  const arbiter = new Arbiter({ initialSignal: "STOP" });
  assert.equal(arbiter.signal, "STOP");
  assert.equal(arbiter.snapshot().latch?.source, MANUAL_SOURCE);
});

test("the most severe claim wins", () => {
  const arbiter = new Arbiter();
  arbiter.claim("load", "PAUSE", "load 5 > 4");
  assert.equal(arbiter.signal, "PAUSE");
  assert.equal(arbiter.snapshot().decidedBy, "load");
  arbiter.claim(MANUAL_SOURCE, "RUN", "POST /RUN");
  assert.equal(arbiter.signal, "PAUSE", "a manual RUN does not outvote a source's PAUSE");
  arbiter.release("load", "load 1 < 3");
  assert.equal(arbiter.signal, "RUN");
});

test("on a tie the claim that has held its state longest is named as the decider", () => {
  const arbiter = new Arbiter({ now: steppingClock() });
  arbiter.release("a", "a has no objection yet"); // a exists first, but claims PAUSE later
  arbiter.claim("b", "PAUSE", "b");
  arbiter.claim("a", "PAUSE", "a");
  assert.equal(arbiter.snapshot().decidedBy, "b");
  arbiter.claim("b", "PAUSE", "b again"); // re-asserting keeps since
  assert.equal(arbiter.snapshot().decidedBy, "b");
});

test("STOP latches until a manual RUN, even after the source lets go", () => {
  const arbiter = new Arbiter();
  arbiter.claim("alerts", "STOP", "critical alert");
  assert.equal(arbiter.signal, "STOP");
  arbiter.release("alerts", "resolved");
  assert.equal(arbiter.signal, "STOP");
  assert.equal(arbiter.snapshot().decidedBy, STOP_LATCH);
  assert.deepEqual(
    { source: arbiter.snapshot().latch?.source, reason: arbiter.snapshot().latch?.reason },
    { source: "alerts", reason: "critical alert" },
  );
  arbiter.claim("other", "RUN", "no objection");
  assert.equal(arbiter.signal, "STOP", "only the manual source opens the latch");
  arbiter.claim(MANUAL_SOURCE, "PAUSE", "POST /PAUSE");
  assert.equal(arbiter.signal, "STOP", "a manual PAUSE does not open the latch");
  arbiter.claim(MANUAL_SOURCE, "RUN", "POST /RUN");
  assert.equal(arbiter.signal, "RUN");
  assert.equal(arbiter.snapshot().latch, null);
});

test("a manual RUN while a source still claims STOP leaves the signal at STOP, latched again", () => {
  const arbiter = new Arbiter();
  arbiter.claim("alerts", "STOP", "critical alert");
  arbiter.claim(MANUAL_SOURCE, "RUN", "POST /RUN");
  assert.equal(arbiter.signal, "STOP");
  assert.equal(arbiter.snapshot().decidedBy, "alerts");
  arbiter.release("alerts", "resolved");
  assert.equal(arbiter.signal, "STOP", "the latch was set again by the standing STOP claim");
});

test("events: a claim event per state change, a change event per signal change, in order", () => {
  const arbiter = new Arbiter({ now: steppingClock() });
  const events = recorder(arbiter);
  arbiter.claim("load", "PAUSE", "high");
  arbiter.claim("load", "PAUSE", "still high"); // same state, not explicit: no event
  arbiter.claim(MANUAL_SOURCE, "RUN", "POST /RUN", { explicit: true, actor: "10.0.0.1" }); // explicit: claim event only
  arbiter.release("load", "low");
  assert.deepEqual(
    events.map((e) => (e.type === "claim" ? `claim ${e.claim.source} ${e.previous}->${e.claim.state}` : `change ${e.seq} ${e.previous}->${e.signal}`)),
    [
      "claim load null->PAUSE",
      "change 1 RUN->PAUSE",
      "claim manual RUN->RUN",
      "claim load PAUSE->RUN",
      "change 2 PAUSE->RUN",
    ],
  );
  const manual = events[2];
  assert.equal(manual?.type === "claim" && manual.claim.actor, "10.0.0.1");
  assert.equal(arbiter.snapshot().seq, 2);
});

test("re-asserting a state keeps since and refreshes updated and reason", () => {
  const arbiter = new Arbiter({ now: steppingClock() });
  arbiter.claim("load", "PAUSE", "load 5");
  const first = arbiter.snapshot().claims.find((c) => c.source === "load")!;
  arbiter.claim("load", "PAUSE", "load 6");
  const second = arbiter.snapshot().claims.find((c) => c.source === "load")!;
  assert.equal(second.since.getTime(), first.since.getTime());
  assert.ok(second.updated > first.updated);
  assert.equal(second.reason, "load 6");
});

test("a listener that throws does not stop the arbiter or other listeners", () => {
  const errors: unknown[] = [];
  const arbiter = new Arbiter({ onListenerError: (error) => errors.push(error) });
  arbiter.subscribe(() => {
    throw new Error("boom");
  });
  const events = recorder(arbiter);
  assert.equal(arbiter.claim("x", "PAUSE", "r"), "PAUSE");
  assert.equal(events.length, 2);
  assert.equal(errors.length, 2);
});

test("unsubscribe stops delivery", () => {
  const arbiter = new Arbiter();
  const events: ArbiterEvent[] = [];
  const unsubscribe = arbiter.subscribe((e) => events.push(e));
  unsubscribe();
  arbiter.claim("x", "PAUSE", "r");
  assert.equal(events.length, 0);
});

test("snapshots are consistent with the signal after every one of many mixed claims", () => {
  const arbiter = new Arbiter();
  const states = ["RUN", "PAUSE", "STOP"] as const;
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 2000; i++) {
    const source = random() < 0.5 ? MANUAL_SOURCE : `s${Math.floor(random() * 3)}`;
    arbiter.claim(source, states[Math.floor(random() * 3)]!, `step ${i}`);
    const snapshot = arbiter.snapshot();
    const max = snapshot.claims.reduce((m, c) => Math.max(m, states.indexOf(c.state)), 0);
    const expected = snapshot.latch ? "STOP" : states[max];
    assert.equal(snapshot.signal, expected, `step ${i}`);
    assert.equal(arbiter.signal, snapshot.signal);
  }
});

test("a listener that claims in turn: events stay in order, each change reports its true previous signal", () => {
  const arbiter = new Arbiter();
  arbiter.subscribe((event) => {
    // A guard that stops the run as soon as anyone pauses it.
    if (event.type === "claim" && event.claim.source === MANUAL_SOURCE && event.claim.state === "PAUSE") {
      arbiter.claim("guard", "STOP", "paused means stop here");
    }
  });
  const events = recorder(arbiter);
  assert.equal(arbiter.claim(MANUAL_SOURCE, "PAUSE", "POST /PAUSE"), "STOP", "the outer call returns the signal after the nested claim");
  assert.deepEqual(
    events.map((e) => (e.type === "claim" ? `claim ${e.claim.source} ${e.previous}->${e.claim.state}` : `change ${e.seq} ${e.previous}->${e.signal}`)),
    ["claim manual RUN->PAUSE", "change 1 RUN->PAUSE", "claim guard null->STOP", "change 2 PAUSE->STOP"],
  );
});

test("claims with a state that is not a signal are refused before anything changes", () => {
  const arbiter = new Arbiter();
  assert.throws(() => arbiter.claim("x", "pause" as never, "r"), /claim state must be one of RUN, PAUSE, STOP, not "pause"/);
  assert.throws(() => arbiter.claim("", "PAUSE", "r"), /non-empty/);
  assert.equal(arbiter.signal, "RUN");
  assert.equal(arbiter.snapshot().claims.length, 1);
});

test("a planned change, committed after its write, never undoes what came in between", () => {
  // A: a person's RUN is being saved when a source says STOP (and then RUN): the STOP latched
  // after the RUN was asked for, so the RUN must not open that latch.
  const a = new Arbiter();
  a.claim("manual", "PAUSE", "POST /PAUSE");
  const resume = a.plan((target) => target.claim("manual", "RUN", "POST /RUN", { explicit: true }));
  assert.equal(resume.snapshot.signal, "RUN", "the plan, on the state as it was");
  a.claim("alerts", "STOP", "critical alert");
  a.claim("alerts", "RUN", "resolved");
  assert.equal(resume.commit(), "STOP");
  assert.equal(a.snapshot().latch?.source, "alerts", "the later STOP's latch holds");
  assert.equal(a.snapshot().claims.find((c) => c.source === "manual")?.state, "RUN");

  // The same RUN, planned after the latch closed, opens it.
  assert.equal(a.plan((target) => target.claim("manual", "RUN", "POST /RUN", { explicit: true })).commit(), "RUN");
  assert.equal(a.snapshot().latch, null);

  // B: a forced RUN overrides the claims as they were when it was planned, not a STOP made
  // during its write.
  const b = new Arbiter();
  b.claim("load", "PAUSE", "load 5");
  const force = b.plan((target) => target.forceRun("POST /RUN?force=true"));
  assert.deepEqual(force.snapshot.override?.sources, ["load"]);
  b.claim("deploys", "STOP", "rolling back");
  assert.equal(force.commit(), "STOP");
  const claims = new Map(b.snapshot().claims.map((c) => [c.source, c.state]));
  assert.equal(claims.get("load"), "RUN", "overridden, as planned");
  assert.equal(claims.get("deploys"), "STOP", "made after the plan: it stands");
  assert.deepEqual(b.snapshot().override?.sources, ["load"]);
});
