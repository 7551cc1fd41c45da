import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { declaredBody, InflightBudget } from "./inflight.js";

const KiB = 1024;
const limits = { limitBytes: 100 * KiB, reserveBytes: 20 * KiB, smallBytes: 4 * KiB, overheadBytes: 1 * KiB };

describe("InflightBudget", () => {
  test("large bodies fill the budget only up to the reserve; what they hold comes back on release", () => {
    const budget = new InflightBudget(limits);
    const first = budget.take({ bytes: 39 * KiB });
    const second = budget.take({ bytes: 39 * KiB });
    assert.deepEqual([first, second], [40 * KiB, 40 * KiB]);
    assert.equal(budget.take({ bytes: 5 * KiB }), undefined, "80 + 6 KiB would eat into the 20 KiB kept for small bodies");
    assert.equal(budget.take({ unknownUpTo: 5 * KiB }), undefined, "a chunked body is never small");
    assert.equal(budget.inUse, 80 * KiB);
    budget.release(first!);
    assert.equal(budget.take({ bytes: 5 * KiB }), 6 * KiB);
    assert.equal(budget.inUse, 46 * KiB);
  });

  test("small bodies still get in while large ones hold all they may, up to the whole limit", () => {
    const budget = new InflightBudget(limits);
    while (budget.take({ bytes: 9 * KiB }) !== undefined);
    assert.equal(budget.inUse, 80 * KiB);
    let small = 0;
    while (budget.take({ bytes: 4 * KiB }) !== undefined) small++;
    assert.equal(small, 4, "four of 4 + 1 KiB in the 20 KiB reserve");
    assert.equal(budget.inUse, 100 * KiB);
  });

  test("the first request gets in however large, so a limit below one body does not refuse it forever", () => {
    const budget = new InflightBudget(limits);
    assert.equal(budget.take({ bytes: 500 * KiB }), 501 * KiB);
    assert.equal(budget.take({ bytes: 0 }), undefined);
    budget.release(501 * KiB);
    assert.equal(budget.inUse, 0);
  });

  test("refuses limits that make no sense", () => {
    assert.throws(() => new InflightBudget({ ...limits, reserveBytes: limits.limitBytes }), /0 <= reserve < limit/);
    assert.throws(() => new InflightBudget({ ...limits, limitBytes: 0, reserveBytes: 0 }), /0 <= reserve < limit/);
  });
});

describe("declaredBody", () => {
  test("Content-Length as declared, chunked as the body limit, neither as no body", () => {
    assert.deepEqual(declaredBody({ "content-length": "1234" }, 99), { bytes: 1234 });
    assert.deepEqual(declaredBody({ "transfer-encoding": "chunked" }, 99), { unknownUpTo: 99 });
    assert.deepEqual(declaredBody({}, 99), { bytes: 0 });
    assert.deepEqual(declaredBody({ "content-length": "12abc" }, 99), { unknownUpTo: 99 });
  });
});
