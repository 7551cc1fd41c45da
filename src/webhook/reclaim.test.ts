import { test } from "node:test";
import assert from "node:assert/strict";
import { LargeBodyReclaimer } from "./reclaim.js";

test("a collection is asked for after every so many bytes of large bodies; small bodies never count", () => {
  let collections = 0;
  const reclaimer = new LargeBodyReclaimer(64, 1000, () => collections++);
  for (let index = 0; index < 1000; index++) reclaimer.done(64);
  assert.equal(collections, 0, "small bodies");
  assert.deepEqual(
    [400, 400, 400, 400, 400, 400].map((bytes) => reclaimer.done(bytes)),
    [false, false, true, false, false, true],
  );
  assert.equal(reclaimer.done(5000), true, "one body past the threshold");
  assert.equal(collections, 3);
});

test("V8's gc() is reachable for the default collector without a global gc", () => {
  const reclaimer = new LargeBodyReclaimer(0, 1);
  assert.equal(reclaimer.done(2), true);
  assert.equal((globalThis as { gc?: unknown }).gc, undefined);
});
