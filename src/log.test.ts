import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { atLeast, createLogger, levelRank } from "./log.js";

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return {
    stream,
    lines: () =>
      text
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

test("--log.json: zap's level names and msg, an ISO ts, secrets redacted", () => {
  const out = capture();
  const log = createLogger({ debug: true, json: true }, out.stream);
  log.debug("d");
  log.info({ subscription: "s", request: { token: "abc" } }, "listed");
  log.warn("w");
  log.error({ err: "boom" }, "e");
  const lines = out.lines();
  assert.deepEqual(
    lines.map((line) => line.level),
    ["debug", "info", "warn", "error"],
  );
  assert.deepEqual(Object.keys(lines[1]!).slice(0, 2), ["level", "ts"]);
  assert.equal(lines[1]!.msg, "listed");
  assert.ok(!Number.isNaN(Date.parse(String(lines[1]!.ts))) && /Z$/.test(String(lines[1]!.ts)), "ts is ISO 8601 UTC");
  assert.deepEqual(lines[1]!.request, { token: "[redacted]" });
  assert.equal(lines[1]!.time, undefined, "no second time key");
});

test("info level without --log.debug", () => {
  const out = capture();
  const log = createLogger({ debug: false, json: true }, out.stream);
  log.debug("hidden");
  log.info("shown");
  assert.deepEqual(
    out.lines().map((line) => line.msg),
    ["shown"],
  );
});

test("levels compare by name, and pino's numbers from in-process loggers too", () => {
  assert.ok(atLeast({ level: "error" }, "warn"));
  assert.ok(!atLeast({ level: "info" }, "warn"));
  assert.ok(atLeast({ level: 40 }, "warn"));
  assert.ok(!atLeast({ level: "loud" }, "trace"));
  assert.equal(levelRank("fatal"), 5);
});
