// The audit history: what it records, paging and filtering, bounded memory, the JSONL log and its rotation, restarts.
import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { SignalStore, createHandler } from "../mod.ts";
import { boundedNote, History, type HistoryEntry, MAX_NOTE_REASON, type SignalEntry } from "../src/state/history.ts";
import { tempDir } from "./helpers/files.ts";
import { startServer } from "./helpers/server_process.ts";

test("claims and changes with time, source, actor, reason and the previous value, newest first", async () => {
  const arbiter = SignalStore.inMemory();
  const history = new History();
  history.follow(arbiter);
  const handler = createHandler({ store: arbiter, version: "t", history });
  await handler(new Request("http://x/PAUSE", { method: "POST" }), { remoteAddress: "192.0.2.3" });
  await arbiter.claim("load", "STOP", "load 9 above 8");
  const page = await (await handler(new Request("http://x/history"))).json() as { entries: SignalEntry[]; next_before: number | null };
  assert.deepEqual(
    page.entries.map(({ type, source, state, previous, reason, actor }) => ({ type, source, state, previous, reason, actor })),
    [
      { type: "change", source: "load", state: "STOP", previous: "PAUSE", reason: "load 9 above 8", actor: undefined },
      { type: "claim", source: "load", state: "STOP", previous: null, reason: "load 9 above 8", actor: undefined },
      { type: "change", source: "manual", state: "PAUSE", previous: "RUN", reason: "POST /PAUSE", actor: "192.0.2.3" },
      { type: "claim", source: "manual", state: "PAUSE", previous: "RUN", reason: "POST /PAUSE", actor: "192.0.2.3" },
    ],
  );
  assert.ok(page.entries.every((e) => !Number.isNaN(Date.parse(e.at))));
  assert.equal(page.next_before, null);
});

test("paging with before, filtering by source, bad parameters are 400", async () => {
  const arbiter = SignalStore.inMemory();
  const history = new History();
  history.follow(arbiter);
  const handler = createHandler({ store: arbiter, version: "t", history });
  for (let i = 0; i < 10; i++) await arbiter.claim(i % 2 ? "a" : "b", i % 4 < 2 ? "PAUSE" : "RUN", `step ${i}`);
  const get = async (query: string) => await (await handler(new Request(`http://x/history${query}`))).json();
  const first = await get("?limit=3");
  assert.equal(first.entries.length, 3);
  const second = await get(`?limit=3&before=${first.next_before}`);
  assert.ok(second.entries.every((e: HistoryEntry) => e.id < first.entries.at(-1).id));
  const onlyA = await get("?source=a&limit=1000");
  assert.ok(onlyA.entries.length > 0 && onlyA.entries.every((e: HistoryEntry) => e.source === "a"));
  for (const bad of ["?limit=0", "?limit=5000", "?before=x", "?sorce=a"]) {
    const response = await handler(new Request(`http://x/history${bad}`));
    assert.equal(response.status, 400, bad);
    assert.match(await response.text(), /^query parameter "\w+" of GET \/history: /);
  }
});

test("memory is bounded; the JSONL log rotates by size; a restart reads it back and ids go on", async () => {
  const logFile = join(tempDir(), "history.jsonl");
  const arbiter = SignalStore.inMemory();
  const history = new History({ maxEntries: 5, logFile, maxLogBytes: 2000 });
  history.follow(arbiter);
  for (let i = 0; i < 40; i++) await arbiter.claim("s", i % 2 ? "PAUSE" : "RUN", `step ${i} ${"x".repeat(20)}`);
  await history.flushed();
  assert.equal(history.page({ limit: 1000 }).entries.length, 5, "bounded in memory");
  assert.ok(statSync(`${logFile}.1`).size > 2000, "rotated");
  assert.ok(readFileSync(logFile, "utf8").trim().split("\n").every((line) => JSON.parse(line).source === "s"));
  const reloaded = new History({ logFile, maxEntries: 1000 });
  const count = await reloaded.load();
  assert.ok(count > 5);
  const newest = reloaded.page({ limit: 1 }).entries[0]!;
  assert.equal(newest.id, history.page({ limit: 1 }).entries[0]!.id);
  const next = reloaded.record({ type: "claim", at: new Date(), claim: { source: "t", state: "RUN", reason: "r", since: new Date(), updated: new Date() }, previous: null });
  assert.equal(next.id, newest.id + 1);
});

test("the real server keeps its history across a restart (beside the state file)", async () => {
  const stateFile = join(tempDir(), "state.json");
  const first = await startServer(["--state-file", stateFile]);
  await fetch(`${first.url}/PAUSE`, { method: "POST" });
  await fetch(`${first.url}/RUN`, { method: "POST" });
  await new Promise((resolve) => setTimeout(resolve, 200)); // the log is appended without holding up the answer
  await first.stop();
  const second = await startServer(["--state-file", stateFile]);
  try {
    const page = await (await fetch(`${second.url}/history?source=manual`)).json();
    const reasons = page.entries.filter((e: HistoryEntry) => e.type === "claim").map((e: HistoryEntry) => e.reason);
    assert.deepEqual(reasons.slice(0, 2), ["POST /RUN", "POST /PAUSE"]);
  } finally {
    await second.stop();
  }
});

test("at load, lines that are not entries are skipped and the rest of the log counts", async () => {
  const logFile = join(tempDir(), "history.jsonl");
  const good = (id: number, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ id, at: "2026-01-02T03:04:05.678Z", type: "claim", source: "load", state: "PAUSE", previous: null, reason: `entry ${id}`, ...extra });
  const lines = [
    good(1),
    good(2, { actor: "ops" }),
    '{"id": 3, "source": "load"}', // no state, type, reason, at
    good(4, { state: "HALT" }),
    good(5, { type: "vote" }),
    good(6, { previous: "maybe" }),
    good(7, { at: "yesterday" }),
    good(8, { id: "8" }),
    good(9, { reason: 9 }),
    good(10, { actor: 10 }),
    good(1e9, { id: 1.5 }),
    "[1, 2, 3]",
    "null",
    good(11).slice(0, 40), // cut short by a crash
    good(12, { type: "change", state: "RUN", previous: "PAUSE" }),
  ];
  writeFileSync(logFile, `${lines.join("\n")}\n`);
  const history = new History({ logFile });
  assert.equal(await history.load(), 3);
  assert.deepEqual(history.page({ limit: 100 }).entries.map((e) => [e.id, e.type, (e as SignalEntry).state, (e as SignalEntry).actor]), [
    [12, "change", "RUN", undefined],
    [2, "claim", "PAUSE", "ops"],
    [1, "claim", "PAUSE", undefined],
  ]);
  const next = history.record({ type: "claim", at: new Date(), claim: { source: "t", state: "RUN", reason: "r", since: new Date(), updated: new Date() }, previous: null });
  assert.equal(next.id, 13, "ids go on from the last good entry");
});

test("a plugin's note (type note) is kept beside claims, in the log and back at load, and filtered by type; bounded", async () => {
  const logFile = join(tempDir(), "history.jsonl");
  const claim = JSON.stringify({ id: 1, at: "2026-01-02T03:04:05.678Z", type: "claim", source: "load", state: "PAUSE", previous: null, reason: "older log" });
  writeFileSync(logFile, `${claim}\n`);
  const history = new History({ logFile });
  assert.equal(await history.load(), 1, "a log from before notes still loads");
  const details = { added: ["http://127.0.0.1:8081"], removed: [], added_count: 1, removed_count: 0, targets: 3 };
  history.note({ source: "fleet", kind: "targets", reason: "targets: 1 added; 3 now", details });
  await history.flushed();
  const reloaded = new History({ logFile });
  assert.equal(await reloaded.load(), 2);
  const handler = createHandler({ store: SignalStore.inMemory(), version: "t", history: reloaded });
  const page = await (await handler(new Request("http://x/history?type=note"))).json();
  assert.deepEqual(page.entries, [{ id: 2, at: page.entries[0].at, type: "note", source: "fleet", kind: "targets", reason: "targets: 1 added; 3 now", details }]);
  assert.equal((await handler(new Request("http://x/history?type=vote"))).status, 400);

  assert.equal(boundedNote({ source: "s", kind: "k", reason: "x".repeat(5000) }).note.reason.length, MAX_NOTE_REASON);
  const large = boundedNote({ source: "s", kind: "k", reason: "r", details: { list: "y".repeat(5000) } });
  assert.deepEqual([large.note.details, large.problem], [undefined, 'audit note "k": details dropped, 5011 characters as JSON, at most 1024']);
  assert.throws(() => boundedNote({ source: "s", kind: "Targets!", reason: "r" }), /allowed: lower-case letters/);
});
