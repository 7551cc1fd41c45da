import { test } from "node:test";
import assert from "node:assert/strict";
import { certCheckIntervalMs, certPolicyFrom } from "./certs.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

test("certificates are checked every tenth of the serving validity, at least every 10 min and at most every 10 s", () => {
  assert.equal(certCheckIntervalMs(HOUR), 360_000);
  assert.equal(certCheckIntervalMs(365 * DAY), 600_000);
  assert.equal(certCheckIntervalMs(30_000), 10_000);
});

test("the certificate policy from the flags: rotation as a share of the validity, propagation a hundredth of it within 2 s to 1 min", () => {
  const rotate = { kind: "before", beforeMs: 30 * DAY, text: "720h" } as const;
  assert.deepEqual(certPolicyFrom({ caValidityMs: 3_650 * DAY, certValidityMs: 90 * DAY, rotate }), {
    caValidityMs: 3_650 * DAY,
    leafValidityMs: 90 * DAY,
    rotateRemainingFraction: 1 / 3,
    propagationMs: 60_000,
  });
  const short = certPolicyFrom({ caValidityMs: HOUR, certValidityMs: 60_000, rotate: { kind: "fraction", fraction: 0.5, text: "0.5" } });
  assert.equal(short.rotateRemainingFraction, 0.5);
  assert.equal(short.propagationMs, 2_000);
});
