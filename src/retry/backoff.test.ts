import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, sleep, withRetry } from "./backoff.js";

test("backoff doubles from the initial delay up to the cap; jitter only shortens", () => {
  const policy = { initialMs: 100, maxMs: 1_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((failures) => backoffDelay(policy, failures)),
    [100, 200, 400, 800, 1_000, 1_000],
  );
  assert.equal(backoffDelay({ ...policy, factor: 3 }, 3), 900);
  assert.equal(
    backoffDelay({ ...policy, jitter: 0.5 }, 2, () => 1),
    100,
  );
  assert.equal(
    backoffDelay({ ...policy, jitter: 0.5 }, 2, () => 0),
    200,
  );
});

test("withRetry takes the delay the server asked for, and an abort ends the wait at once", async () => {
  let attempts = 0;
  const started = Date.now();
  const result = await withRetry(
    async () => {
      if (++attempts < 3) throw new Error("busy");
      return attempts;
    },
    { attempts: 5, backoff: { initialMs: 10_000, maxMs: 10_000 }, retryable: () => true, retryAfterMs: () => 5 },
  );
  assert.equal(result, 3);
  assert.ok(Date.now() - started < 5_000, "the 10 s backoff was not used");

  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error("leadership lost")), 20);
  await assert.rejects(
    withRetry(
      async () => {
        throw new Error("busy");
      },
      { attempts: 5, backoff: { initialMs: 60_000, maxMs: 60_000 }, retryable: () => true, signal: controller.signal },
    ),
    /leadership lost/,
  );
  await assert.rejects(sleep(10, AbortSignal.abort(new Error("gone"))), /gone/);
});
