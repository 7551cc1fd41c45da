import { test } from "node:test";
import assert from "node:assert/strict";
import { withRetry } from "./retry.js";

const apiError = (code: number, headers: Record<string, string> = {}) => Object.assign(new Error(`HTTP ${code}`), { code, headers });

test("429 is retried after Retry-After, 409 and 5xx with backoff, until success", async () => {
  const failures = [apiError(429, { "retry-after": "0" }), apiError(409), apiError(503)];
  let attempts = 0;
  const result = await withRetry(async () => {
    attempts++;
    const failure = failures.shift();
    if (failure) throw failure;
    return "done";
  }, { attempts: 5, baseDelayMs: 1, maxDelayMs: 10 });
  assert.equal(result, "done");
  assert.equal(attempts, 4);
});

test("a 400 or 403 is not retried; attempts are bounded; shouldStop ends retrying", async () => {
  let attempts = 0;
  await assert.rejects(withRetry(async () => { attempts++; throw apiError(403); }, { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 }), /HTTP 403/);
  assert.equal(attempts, 1);
  attempts = 0;
  await assert.rejects(withRetry(async () => { attempts++; throw apiError(500); }, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 }), /HTTP 500/);
  assert.equal(attempts, 3);
  attempts = 0;
  await assert.rejects(withRetry(async () => { attempts++; throw apiError(500); }, { attempts: 5, baseDelayMs: 1, maxDelayMs: 5, shouldStop: () => true }), /HTTP 500/);
  assert.equal(attempts, 1);
});
