import { test } from "node:test";
import assert from "node:assert/strict";
import { WorkQueue } from "./queue.js";

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

test("a key waits once, runs again if re-added while running, and concurrency is bounded", async () => {
  const runs: string[] = [];
  let running = 0;
  let peak = 0;
  const queue = new WorkQueue(
    2,
    async (key) => {
      running++;
      peak = Math.max(peak, running);
      runs.push(key);
      await tick();
      running--;
    },
    () => assert.fail("no errors expected"),
  );
  queue.add("a");
  queue.add("b");
  queue.add("c");
  queue.add("c");
  queue.add("a"); // running: runs again afterwards
  await queue.drain();
  assert.deepEqual(runs.sort(), ["a", "a", "b", "c"]);
  assert.equal(peak, 2);
});

test("errors are reported per key and do not stop the queue", async () => {
  const failed: string[] = [];
  const done: string[] = [];
  const queue = new WorkQueue(
    1,
    async (key) => {
      if (key === "bad") throw new Error("boom");
      done.push(key);
    },
    (key) => failed.push(key),
  );
  queue.add("bad");
  queue.add("good");
  await queue.drain();
  assert.deepEqual(failed, ["bad"]);
  assert.deepEqual(done, ["good"]);
});

test("retryLater adds a key again after its own doubling backoff; forget starts it over; stop cancels", async () => {
  const runs: number[] = [];
  const started = Date.now();
  const queue = new WorkQueue(
    1,
    async () => void runs.push(Date.now() - started),
    () => undefined,
    { initialMs: 20, maxMs: 80 },
  );
  queue.retryLater("ns");
  queue.retryLater("ns"); // one retry at a time per key
  assert.equal(queue.retrying, 1);
  await tick(60);
  assert.equal(runs.length, 1);
  assert.ok(runs[0]! >= 15, `first retry after ~20 ms, not ${runs[0]}`);
  queue.retryLater("ns"); // second failure: ~40 ms
  const second = Date.now();
  await tick(30);
  assert.equal(runs.length, 1, "not yet: the backoff doubled");
  await tick(40);
  assert.equal(runs.length, 2);
  assert.ok(Date.now() - second >= 35);
  queue.forget("ns");
  queue.retryLater("ns"); // after forget: ~20 ms again
  await tick(35);
  assert.equal(runs.length, 3);
  queue.retryLater("ns");
  queue.stop();
  assert.equal(queue.retrying, 0);
  await tick(100);
  assert.equal(runs.length, 3, "stopped: no more runs");
});

test("shutdown() drops waiting keys and resolves only once the running ones have finished", async () => {
  const started: string[] = [];
  const release = new Map<string, () => void>();
  const queue = new WorkQueue(
    1,
    (key) =>
      new Promise<void>((resolve) => {
        started.push(key);
        release.set(key, resolve);
      }),
    () => assert.fail("no errors expected"),
  );
  queue.add("running");
  queue.add("waiting");
  let finished = false;
  const shutdown = queue.shutdown().then(() => (finished = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(finished, false, "the running key has not returned");
  queue.add("late");
  release.get("running")!();
  await shutdown;
  assert.deepEqual(started, ["running"], "neither the waiting key nor one added after shutdown ran");
  assert.equal(queue.length, 0);
});
