import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { TokenBucket } from "../retry/token-bucket.js";
import {
  COMBINED_PREFIX,
  correlatorOptionsFrom,
  DEFAULT_CORRELATOR,
  EventCorrelator,
  type CorrelatorOptions,
  type Decision,
  type ObjectEvent,
} from "./event-correlator.js";

const MINUTE = 60_000;
const skipped = (namespace: string, msi: string): ObjectEvent => ({
  regarding: { apiVersion: "v1", kind: "Namespace", namespace, name: namespace, uid: `uid-${namespace}` },
  type: "Warning",
  reason: "MSISkipped",
  note: `MSI ${msi} skipped: its name is not a valid label value`,
  action: "Sync",
});
const kinds = (decisions: Decision[]) => decisions.map((decision) => decision.kind);
const options = (overrides: Partial<CorrelatorOptions> = {}): CorrelatorOptions => ({ ...DEFAULT_CORRELATOR, ...overrides });

describe("TokenBucket", () => {
  test("burst at once, then the rate; refused takes cost nothing", () => {
    const bucket = new TokenBucket(3, 2, 0);
    assert.deepEqual(
      [0, 0, 0, 0].map((t) => bucket.take(t)),
      [true, true, true, false],
    );
    assert.equal(bucket.take(400), false, "0.8 tokens after 400 ms");
    assert.equal(bucket.take(500), true, "1 token after 500 ms");
    assert.equal(bucket.take(10_000), true);
    assert.deepEqual(
      [10_000, 10_000, 10_000].map((t) => bucket.take(t)),
      [true, true, false],
      "refilled up to the burst only",
    );
  });

  test("bad settings are refused with a clear error", () => {
    assert.throws(() => new TokenBucket(0, 1, 0), /burst >= 1 and a positive rate, not 0 and 1/);
    assert.throws(() => new TokenBucket(1, 0, 0), /positive rate/);
  });
});

describe("EventCorrelator", () => {
  test("the same Event again is one series: created once, its count patched at most every refresh", () => {
    const correlator = new EventCorrelator(options({ refreshMs: 10 * MINUTE }), 0);
    const event = skipped("team-a", "shop");
    assert.deepEqual(kinds([correlator.observe(event, 0), correlator.observe(event, MINUTE), correlator.observe(event, 2 * MINUTE)]), [
      "create",
      "deferred",
      "deferred",
    ]);
    assert.deepEqual(correlator.due(5 * MINUTE), [], "not before the refresh");
    const [due, ...rest] = correlator.due(10 * MINUTE);
    assert.equal(rest.length, 0);
    assert.deepEqual([due?.count, due?.writtenCount, due?.lastObservedMs], [3, 3, 2 * MINUTE]);
    assert.deepEqual(correlator.due(30 * MINUTE), [], "nothing new to write");
    assert.equal(correlator.observe(event, 31 * MINUTE).kind, "deferred", "a repeat is only counted, new Events get the tokens first");
    assert.deepEqual(
      correlator.due(31 * MINUTE).map((series) => series.count),
      [4],
      "and written by the next due() after the refresh",
    );
  });

  test("another note, type, reason or object is another Event", () => {
    const correlator = new EventCorrelator(options(), 0);
    const base = skipped("team-a", "shop");
    const others: ObjectEvent[] = [
      { ...base, note: "another note" },
      { ...base, type: "Normal" },
      { ...base, reason: "IdentityCreated" },
      { ...base, regarding: { ...base.regarding, uid: "uid-of-a-new-team-a" } },
      skipped("team-b", "shop"),
    ];
    assert.deepEqual(kinds([base, ...others].map((event) => correlator.observe(event, 0))), Array(6).fill("create"));
    assert.equal(correlator.size, 6);
  });

  test("past similarLimit notes for one object and reason, the rest become one combined Event", () => {
    const correlator = new EventCorrelator(options({ similarLimit: 3 }), 0);
    const decisions = Array.from({ length: 8 }, (_, i) => correlator.observe(skipped("team-a", `msi-${i}`), i));
    assert.deepEqual(kinds(decisions), ["create", "create", "create", "create", "deferred", "deferred", "deferred", "deferred"]);
    const combined = decisions[3];
    assert.ok(combined?.kind === "create");
    assert.equal(combined.series.event.note, `${COMBINED_PREFIX}MSI msi-3 skipped: its name is not a valid label value`);
    assert.equal(combined.series.count, 5, "the combined Event counts every note folded into it");
    assert.equal(correlator.observe(skipped("team-a", "msi-1"), 9).kind, "deferred", "a note seen before stays its own series");
    assert.equal(correlator.observe(skipped("team-b", "msi-9"), 10).kind, "create", "another object has its own limit");
  });

  test("over the rate limit new Events are dropped and not remembered; repeats wait for the next refresh", () => {
    const correlator = new EventCorrelator(options({ burst: 2, perSecond: 1, refreshMs: 0 }), 0);
    const a = skipped("team-a", "a");
    assert.deepEqual(kinds([correlator.observe(a, 0), correlator.observe(skipped("team-b", "b"), 0), correlator.observe(skipped("team-c", "c"), 0)]), [
      "create",
      "create",
      "dropped",
    ]);
    assert.equal(correlator.size, 2, "the dropped one is not remembered");
    assert.equal(correlator.observe(a, 0).kind, "deferred", "no token for the repeat: counted, written later");
    assert.deepEqual(
      correlator.due(1_000).map((series) => [series.event.regarding.name, series.count]),
      [["team-a", 2]],
    );
    assert.equal(correlator.observe(skipped("team-c", "c"), 2_000).kind, "create", "tried again at its next occurrence");
  });

  test("a flood of notes fills the similar limit even when dropped: the rest is combined at once", () => {
    const correlator = new EventCorrelator(options({ burst: 1, perSecond: 1, similarLimit: 2 }), 0);
    assert.deepEqual(kinds([0, 1, 2, 3].map((i) => correlator.observe(skipped("team-a", `msi-${i}`), 0))), ["create", "dropped", "dropped", "dropped"]);
    const combined = correlator.observe(skipped("team-a", "msi-4"), 1_000);
    assert.ok(combined.kind === "create" && combined.series.event.note.startsWith(COMBINED_PREFIX), "the combined Event gets the next token");
    assert.equal(correlator.observe(skipped("team-a", "msi-1"), 2_000).kind, "create", "a dropped note within the limit is its own Event later");
  });

  test("forgotten after forgetMs without an occurrence, and after a failed write", () => {
    const correlator = new EventCorrelator(options({ forgetMs: 60 * MINUTE, refreshMs: 90 * MINUTE }), 0);
    const event = skipped("team-a", "shop");
    correlator.observe(event, 0);
    assert.equal(correlator.observe(event, 59 * MINUTE).kind, "deferred");
    assert.equal(correlator.observe(event, 120 * MINUTE).kind, "create", "61 minutes quiet: a new Event");
    const failed = correlator.observe(skipped("team-b", "shop"), 120 * MINUTE);
    assert.ok(failed.kind === "create");
    correlator.failed(failed.series);
    assert.equal(correlator.observe(skipped("team-b", "shop"), 120 * MINUTE).kind, "create");
    correlator.due(200 * MINUTE);
    assert.equal(correlator.size, 0, "due() sweeps what was not seen for forgetMs");
  });

  test("maxEntries: the least recently seen series is forgotten first", () => {
    const correlator = new EventCorrelator(options({ maxEntries: 2 }), 0);
    const [a, b, c] = ["a", "b", "c"].map((namespace) => skipped(namespace, "shop")) as [ObjectEvent, ObjectEvent, ObjectEvent];
    correlator.observe(a, 0);
    correlator.observe(b, 1);
    correlator.observe(a, 2);
    correlator.observe(c, 3);
    assert.equal(correlator.size, 2);
    assert.equal(correlator.observe(a, 4).kind, "deferred", "a was seen last: kept");
    assert.equal(correlator.observe(b, 5).kind, "create", "b was the oldest: forgotten");
  });

  test("10,000 skipped MSIs, every hour for a day, with the defaults: writes stay within the rate limit", () => {
    const correlator = new EventCorrelator(DEFAULT_CORRELATOR, 0);
    const count = { create: 0, deferred: 0, dropped: 0, patch: 0 };
    let firstSyncWrites = 0;
    for (let hour = 0; hour < 24; hour++) {
      const start = hour * 60 * MINUTE;
      // 10,000 MSIs over 100 namespaces, all skipped, reported within one sync's 20 s.
      for (let i = 0; i < 10_000; i++) count[correlator.observe(skipped(`team-${i % 100}`, `msi-${i}`), start + Math.floor(i * 2)).kind]++;
      if (hour === 0) firstSyncWrites = count.create;
      // The recorder's timer: due() once a minute.
      for (let minute = 1; minute < 60; minute++) count.patch += correlator.due(start + minute * MINUTE).length;
    }
    const { burst, perSecond, similarLimit } = DEFAULT_CORRELATOR;
    assert.ok(firstSyncWrites <= burst + 20 * perSecond, `first sync: ${firstSyncWrites} writes for 10,000 skips`);
    const writes = count.create + count.patch;
    assert.ok(writes <= burst + 24 * 60 * 60 * perSecond, `${writes} writes within the token bucket for a day`);
    // 100 namespaces x (10 notes + 1 combined): every series exists by the end, each created once.
    assert.equal(count.create, 100 * (similarLimit + 1));
    assert.equal(correlator.size, 100 * (similarLimit + 1));
    assert.ok(count.patch <= 100 * (similarLimit + 1) * 24 * 2, `${count.patch} patches: at most one per series per 30-minute refresh`);
  });
});

test("correlatorOptionsFrom: the --events.* flags over the defaults, the rate per minute turned per second", () => {
  assert.deepEqual(correlatorOptionsFrom({ burst: 5, perMinute: 30, refreshMs: 60_000 }), {
    ...DEFAULT_CORRELATOR,
    burst: 5,
    perSecond: 0.5,
    refreshMs: 60_000,
  });
});
