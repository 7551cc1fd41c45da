import { test } from "node:test";
import assert from "node:assert/strict";
import { WorkQueue } from "./queue.js";

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

test("a key waits once, runs again if re-added while running, and concurrency is bounded", async () => {
  const runs: string[] = [];
  let running = 0;
  let peak = 0;
  const queue = new WorkQueue(2, async (key) => {
    running++;
    peak = Math.max(peak, running);
    runs.push(key);
    await tick();
    running--;
  }, () => assert.fail("no errors expected"));
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
  const queue = new WorkQueue(1, async (key) => {
    if (key === "bad") throw new Error("boom");
    done.push(key);
  }, (key) => failed.push(key));
  queue.add("bad");
  queue.add("good");
  await queue.drain();
  assert.deepEqual(failed, ["bad"]);
  assert.deepEqual(done, ["good"]);
});
