import { test } from "node:test";
import assert from "node:assert/strict";
import { WorkQueue } from "./queue.js";

/** A promise the test settles itself: a worker holds its key until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Lets the queue's promise callbacks (a finished worker, the next key started) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test("a key waits once, runs again if re-added while running, and concurrency is bounded", async () => {
  const runs: string[] = [];
  const held = new Map<string, ReturnType<typeof gate>[]>();
  const queue = new WorkQueue(
    2,
    async (key) => {
      runs.push(key);
      const hold = gate();
      held.set(key, [...(held.get(key) ?? []), hold]);
      await hold.promise;
    },
    () => assert.fail("no errors expected"),
  );
  const release = async (key: string) => {
    held.get(key)?.shift()?.open();
    await settle();
  };
  queue.add("a");
  queue.add("b");
  queue.add("c");
  queue.add("c");
  queue.add("a"); // running: runs again afterwards
  assert.deepEqual(runs, ["a", "b"], "two at a time; c waits");
  assert.equal(queue.length, 3, "a and b running, c waiting once");
  await release("a");
  assert.deepEqual(runs, ["a", "b", "c"], "c takes a's slot; a's second run waits for a slot");
  await release("b");
  assert.deepEqual(runs, ["a", "b", "c", "a"]);
  await release("c");
  await release("a");
  await queue.drain();
  assert.deepEqual(runs, ["a", "b", "c", "a"]);
  assert.equal(queue.length, 0);
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

test("retryLater adds a key again after its own doubling backoff; forget starts it over; stop cancels", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let runs = 0;
  const queue = new WorkQueue(
    1,
    async () => void runs++,
    () => undefined,
    { initialMs: 20, maxMs: 80 },
  );
  const advance = async (ms: number) => {
    t.mock.timers.tick(ms);
    await settle();
  };
  queue.retryLater("ns");
  queue.retryLater("ns"); // one retry at a time per key
  assert.equal(queue.retrying, 1);
  await advance(19);
  assert.equal(runs, 0, "not before 20 ms");
  await advance(1);
  assert.equal(runs, 1, "the first retry at 20 ms");
  assert.equal(queue.retrying, 0);

  queue.retryLater("ns"); // second failure: 40 ms
  await advance(39);
  assert.equal(runs, 1, "not yet: the backoff doubled");
  await advance(1);
  assert.equal(runs, 2);

  queue.retryLater("ns"); // third: 80 ms, the cap
  queue.forget("ns"); // the key succeeded meanwhile: the retry already scheduled stays, the next starts over
  await advance(80);
  assert.equal(runs, 3);
  queue.retryLater("ns");
  await advance(19);
  assert.equal(runs, 3);
  await advance(1);
  assert.equal(runs, 4, "after forget: 20 ms again");

  queue.retryLater("ns");
  queue.stop();
  assert.equal(queue.retrying, 0);
  await advance(1_000);
  assert.equal(runs, 4, "stopped: the scheduled retry never runs");
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
