import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { formatDuration, formatDurationNs, msToNs, nsToMs, parseDuration } from "./duration.js";

const S = 1_000_000_000n;
const MIN = -(1n << 63n);
const MAX = (1n << 63n) - 1n;

const ns = (text: string): bigint => {
  const parsed = parseDuration(text);
  assert.ok(parsed.ok, `${text}: ${parsed.ok ? "" : parsed.error}`);
  return parsed.ns;
};

// Cases from Go's own time package tests, so the semantics are Go's and not our reading of them.
test("parses what Go's time.ParseDuration parses, to the nanosecond", () => {
  const cases: Array<[string, bigint]> = [
    ["0", 0n],
    ["5s", 5n * S],
    ["30s", 30n * S],
    ["1478s", 1478n * S],
    ["-5s", -5n * S],
    ["+5s", 5n * S],
    ["-0", 0n],
    ["+0", 0n],
    ["5.0s", 5n * S],
    ["5.6s", 5n * S + 600_000_000n],
    ["5.s", 5n * S],
    [".5s", 500_000_000n],
    ["1.0s", S],
    ["1.00s", S],
    ["1.004s", S + 4_000_000n],
    ["1.0040s", S + 4_000_000n],
    ["100.00100s", 100n * S + 1_000_000n],
    ["10ns", 10n],
    ["11us", 11_000n],
    ["12µs", 12_000n],
    ["12μs", 12_000n],
    ["13ms", 13_000_000n],
    ["14s", 14n * S],
    ["15m", 900n * S],
    ["16h", 16n * 3600n * S],
    ["3h30m", (3n * 3600n + 1800n) * S],
    ["10.5s4m", 250n * S + 500_000_000n],
    ["-2m3.4s", -(123n * S + 400_000_000n)],
    ["1h2m3s4ms5us6ns", 3723n * S + 4_005_006n],
    ["39h9m14.425s", (39n * 3600n + 9n * 60n + 14n) * S + 425_000_000n],
    ["52763797000ns", 52_763_797_000n],
    ["0.3333333333333333333h", 1200n * S],
    ["9007199254740993ns", (1n << 53n) + 1n],
    ["9223372036854775807ns", MAX],
    ["9223372036854775.807us", MAX],
    ["9223372036854ms775us807ns", MAX],
    ["-9223372036854775808ns", MIN],
    ["-9223372036854775.808us", MIN],
    ["-2562047h47m16.854775808s", MIN],
    ["0.100000000000000000000h", 360n * S],
    ["0.830103483285477580700h", (49n * 60n + 48n) * S + 372_539_827n],
    ["1h", 3600n * S],
    ["2190h", 2190n * 3600n * S],
    ["1.5h", 5400n * S],
  ];
  for (const [text, expected] of cases) assert.equal(ns(text), expected, text);
});

test("rejects what Go rejects: empty, unitless, unknown units, garbage, overflow", () => {
  const bad = [
    "",
    "3",
    "-",
    "s",
    ".",
    "-.",
    ".s",
    "+.s",
    "1d",
    "\x85\x85",
    "\xffff",
    "hello \xffff world",
    "1x",
    "1h 30m",
    " 1h",
    "1.2.3s",
    "1e3s",
    "--1s",
    "9223372036854775808ns",
    "9223372036854775.808us",
    "9223372036854ms775us808ns",
    "-9223372036854775809ns",
    "99999999999999999999h",
  ];
  for (const text of bad) assert.equal(parseDuration(text).ok, false, JSON.stringify(text));
  const unit = parseDuration("90");
  assert.ok(!unit.ok && /missing unit/.test(unit.error));
  const unknown = parseDuration("1d");
  assert.ok(!unknown.ok && /unknown unit "d"/.test(unknown.error));
});

test("returns milliseconds, exact for whole milliseconds however large", () => {
  const parsed = parseDuration("87600h");
  assert.ok(parsed.ok);
  assert.equal(parsed.ms, 87_600 * 3_600_000);
  assert.equal((parseDuration("1.5s") as { ms: number }).ms, 1500);
  assert.equal((parseDuration("250us") as { ms: number }).ms, 0.25);
  assert.equal((parseDuration("-1m") as { ms: number }).ms, -60_000);
});

test("formats like Go's Duration.String()", () => {
  const cases: Array<[bigint, string]> = [
    [0n, "0s"],
    [1n, "1ns"],
    [1_100n, "1.1µs"],
    [2_200_000n, "2.2ms"],
    [3_300_000_000n, "3.3s"],
    [245n * S, "4m5s"],
    [245n * S + 1_000_000n, "4m5.001s"],
    [(5n * 3600n + 6n * 60n + 7n) * S + 1_000_000n, "5h6m7.001s"],
    [480n * S + 1n, "8m0.000000001s"],
    [MAX, "2562047h47m16.854775807s"],
    [MIN, "-2562047h47m16.854775808s"],
    [3600n * S, "1h0m0s"],
    [-1500_000_000n, "-1.5s"],
  ];
  for (const [value, text] of cases) assert.equal(formatDurationNs(value), text);
  assert.equal(formatDuration(3_600_000), "1h0m0s");
  assert.equal(formatDuration(90_000), "1m30s");
  assert.equal(formatDuration(0.25), "250µs");
  assert.equal(formatDuration(7_884_000_000), "2190h0m0s");
});

test("property: format then parse gives back every int64 nanosecond value", () => {
  fc.assert(
    fc.property(fc.bigInt({ min: MIN, max: MAX }), (value) => {
      assert.equal(ns(formatDurationNs(value)), value);
    }),
    { numRuns: 2000 },
  );
});

test("property: format then parse gives back milliseconds, whole or fractional", () => {
  fc.assert(
    fc.property(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.integer({ min: 0, max: 999_999 }), (whole, nanos) => {
      const ms = nsToMs(BigInt(whole) * 1_000_000n + BigInt(nanos));
      const parsed = parseDuration(formatDuration(ms));
      assert.ok(parsed.ok);
      assert.equal(parsed.ms, ms);
      assert.equal(msToNs(parsed.ms), parsed.ns);
    }),
    { numRuns: 2000 },
  );
});

test("property: a sum of unit terms parses to the sum", () => {
  const units: Array<[string, bigint]> = [
    ["h", 3600n * S],
    ["m", 60n * S],
    ["s", S],
    ["ms", 1_000_000n],
    ["us", 1_000n],
    ["µs", 1_000n],
    ["ns", 1n],
  ];
  const term = fc.tuple(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom(...units));
  fc.assert(
    fc.property(fc.array(term, { minLength: 1, maxLength: 6 }), fc.boolean(), (terms, negative) => {
      const text = (negative ? "-" : "") + terms.map(([n, [unit]]) => `${n}${unit}`).join("");
      const sum = terms.reduce((total, [n, [, size]]) => total + BigInt(n) * size, 0n);
      assert.equal(ns(text), negative ? -sum : sum);
    }),
  );
});
