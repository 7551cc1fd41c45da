import { describe, test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { loggable, operationLabel, resourceLabel, resultLabel } from "./labels.js";
import { ThrottledLog } from "./throttled-log.js";

describe("admission metric labels", () => {
  test("known values are kept, anything else is other", () => {
    assert.equal(resourceLabel("azureidentities"), "azureidentities");
    assert.equal(resourceLabel("serviceaccounts"), "serviceaccounts");
    assert.equal(resourceLabel("pods"), "other");
    assert.equal(resourceLabel("x".repeat(10_000)), "other");
    assert.equal(operationLabel("DELETE"), "DELETE");
    assert.equal(operationLabel("delete"), "other");
    assert.equal(resultLabel("unowned"), "unowned");
    assert.equal(resultLabel("weird"), "other");
  });

  test("a raw value in a log line is cut to what a real name could be", () => {
    assert.equal(loggable("pods"), "pods");
    assert.equal(loggable("y".repeat(1_000)).length, 259);
  });
});

describe("ThrottledLog", () => {
  test("a burst, then a line per refill, each saying how many were left out", () => {
    const lines: { suppressedBefore: number; n: number }[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => lines.push(JSON.parse(line) as { suppressedBefore: number; n: number }) });
    let now = 1_000_000;
    const throttled = new ThrottledLog(log, () => now, 2, 6);
    for (let n = 0; n < 100; n++) throttled.warn({ n }, "again");
    assert.deepEqual(
      lines.map((line) => [line.n, line.suppressedBefore]),
      [
        [0, 0],
        [1, 0],
      ],
    );
    now += 10_000; // 6 a minute: one token
    throttled.warn({ n: 100 }, "again");
    throttled.warn({ n: 101 }, "again");
    assert.deepEqual(
      lines.slice(2).map((line) => [line.n, line.suppressedBefore]),
      [[100, 98]],
    );
  });
});
