import { test } from "node:test";
import assert from "node:assert/strict";
import { withRetry } from "../retry/backoff.js";
import { kubeWriteRetry } from "./retry.js";

const apiError = (code: number, headers: Record<string, string> = {}) => Object.assign(new Error(`HTTP ${code}`), { code, headers });
const fast = { backoff: { initialMs: 1, maxMs: 10 } };

test("429 is retried after Retry-After, 409 and 5xx with backoff, until success", async () => {
  const failures = [apiError(429, { "retry-after": "0" }), apiError(409), apiError(503)];
  let attempts = 0;
  const result = await withRetry(
    async () => {
      attempts++;
      const failure = failures.shift();
      if (failure) throw failure;
      return "done";
    },
    kubeWriteRetry("patch", { attempts: 5, ...fast }),
  );
  assert.equal(result, "done");
  assert.equal(attempts, 4);
});

test("a 400 or 403 is not retried; attempts are bounded; shouldStop ends retrying", async () => {
  let attempts = 0;
  await assert.rejects(
    withRetry(
      async () => {
        attempts++;
        throw apiError(403);
      },
      kubeWriteRetry("patch", { attempts: 5, ...fast }),
    ),
    /HTTP 403/,
  );
  assert.equal(attempts, 1);
  attempts = 0;
  await assert.rejects(
    withRetry(
      async () => {
        attempts++;
        throw apiError(500);
      },
      kubeWriteRetry("patch", { attempts: 3, ...fast }),
    ),
    /HTTP 500/,
  );
  assert.equal(attempts, 3);
  attempts = 0;
  await assert.rejects(
    withRetry(
      async () => {
        attempts++;
        throw apiError(500);
      },
      kubeWriteRetry("patch", { attempts: 5, ...fast, shouldStop: () => true }),
    ),
    /HTTP 500/,
  );
  assert.equal(attempts, 1);
});

test("a create's or delete's 409 is not retried (AlreadyExists, failed precondition); a patch's is", async () => {
  for (const [verb, expected] of [
    ["create", 1],
    ["delete", 1],
    ["patch", 3],
  ] as const) {
    let attempts = 0;
    await assert.rejects(
      withRetry(
        async () => {
          attempts++;
          throw apiError(409);
        },
        kubeWriteRetry(verb, { attempts: 3, ...fast }),
      ),
      /HTTP 409/,
    );
    assert.equal(attempts, expected, verb);
  }
});
