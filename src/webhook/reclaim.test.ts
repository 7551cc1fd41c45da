import { test } from "node:test";
import assert from "node:assert/strict";
import { LargeBodyReclaimer } from "./reclaim.js";

test("a collection after every so many bytes of large bodies, at most once per interval; small bodies never count", () => {
  let collections = 0;
  const reclaimer = new LargeBodyReclaimer(64, 1000, 250, () => collections++);
  for (let index = 0; index < 1000; index++) reclaimer.done(64, 0);
  assert.equal(collections, 0, "small bodies");
  assert.deepEqual(
    [reclaimer.done(600, 1000), reclaimer.done(600, 1001), reclaimer.done(2000, 1100), reclaimer.done(10, 1300), reclaimer.done(2000, 1300)],
    [false, true, false, false, true],
    "the third is within 250 ms of the second; its bytes count toward the fifth",
  );
  assert.equal(collections, 2);
});

test("V8's gc() is reachable for the default collector without a global gc", () => {
  const reclaimer = new LargeBodyReclaimer(0, 1, 0);
  assert.equal(reclaimer.done(2, 0), true);
  assert.equal((globalThis as { gc?: unknown }).gc, undefined);
});
