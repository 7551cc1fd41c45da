import { test } from "node:test";
import assert from "node:assert/strict";
import { compileLayout, formatGoTime } from "./timelayout.js";

// Go's reference time, in UTC, with milliseconds to see fractions.
const reference = new Date(Date.UTC(2006, 0, 2, 15, 4, 5, 123));
const later = new Date(Date.UTC(2024, 10, 28, 9, 7, 3, 50)); // a Thursday, day 333 of a leap year

test("Go's predefined layouts format as Go formats them in UTC", () => {
  const cases: Array<[string, string]> = [
    ["2006-01-02", "2006-01-02"],
    ["Mon Jan _2 15:04:05 2006", "Mon Jan  2 15:04:05 2006"], // ANSIC
    ["Mon Jan _2 15:04:05 MST 2006", "Mon Jan  2 15:04:05 UTC 2006"], // UnixDate
    ["Mon Jan 02 15:04:05 -0700 2006", "Mon Jan 02 15:04:05 +0000 2006"], // RubyDate
    ["02 Jan 06 15:04 MST", "02 Jan 06 15:04 UTC"], // RFC822
    ["02 Jan 06 15:04 -0700", "02 Jan 06 15:04 +0000"], // RFC822Z
    ["Monday, 02-Jan-06 15:04:05 MST", "Monday, 02-Jan-06 15:04:05 UTC"], // RFC850
    ["Mon, 02 Jan 2006 15:04:05 MST", "Mon, 02 Jan 2006 15:04:05 UTC"], // RFC1123
    ["2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05Z"], // RFC3339
    ["2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.123Z"], // RFC3339Nano
    ["3:04PM", "3:04PM"], // Kitchen
    ["Jan _2 15:04:05.000", "Jan  2 15:04:05.123"], // StampMilli
    ["Jan _2 15:04:05.000000", "Jan  2 15:04:05.123000"], // StampMicro
    ["2006-01-02 15:04:05", "2006-01-02 15:04:05"], // DateTime
    ["15:04:05", "15:04:05"], // TimeOnly
    ["01/02/06", "01/02/06"],
  ];
  for (const [layout, expected] of cases) assert.equal(formatGoTime(reference, layout), expected, layout);
});

test("every element, on a date that differs from the reference in every field", () => {
  const cases: Array<[string, string]> = [
    ["2006 06 January Jan 1 01", "2024 24 November Nov 11 11"],
    ["Monday Mon 2 _2 02 __2 002", "Thursday Thu 28 28 28 333 333"],
    ["15 3 03 4 04 5 05 PM pm", "09 9 09 7 07 3 03 AM am"],
    ["MST -0700 -07:00 -07 -070000 -07:00:00", "UTC +0000 +00:00 +00 +000000 +00:00:00"],
    ["Z0700 Z07:00 Z07 Z070000 Z07:00:00", "Z Z Z Z Z"],
    [".0 .000 .000000000 ,000 .9 .999 .999999", ".0 .050 .050000000 ,050  .05 .05"],
  ];
  for (const [layout, expected] of cases) assert.equal(formatGoTime(later, layout), expected, layout);
});

test("Go's tokenizing quirks: Jan/Mon need a non-lower-case follower, _2006 is _ + year, digits after a point are not a fraction", () => {
  assert.equal(formatGoTime(later, "Janet 2006"), "Janet 2024");
  assert.equal(formatGoTime(later, "Mondays"), "Thursdays");
  assert.equal(formatGoTime(later, "Monte 2006"), "Monte 2024");
  assert.equal(formatGoTime(later, "_2006"), "_2024");
  assert.equal(formatGoTime(later, "2006.01"), "2024.11");
  assert.equal(formatGoTime(later, "day-2"), "day-28");
  assert.equal(formatGoTime(new Date(Date.UTC(2024, 0, 5, 0, 0, 0)), "3PM _2 __2"), "12AM  5   5");
});

test("formats in UTC whatever the process time zone", () => {
  const tz = process.env.TZ;
  try {
    process.env.TZ = "Pacific/Kiritimati"; // UTC+14: local date is a day ahead
    assert.equal(formatGoTime(new Date(Date.UTC(2024, 4, 24, 23, 0, 0)), "2006-01-02"), "2024-05-24");
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
});

test("a layout without any element is rejected; anything with one is accepted", () => {
  for (const layout of ["", "yyyy-mm-dd", "%Y-%m-%d", "today", "Janet"]) {
    const result = compileLayout(layout);
    assert.ok(!result.ok, layout);
    assert.match(result.error, /not a Go time layout/);
  }
  for (const layout of ["2006", "expires 2006-01-02", "Jan", "15h"]) assert.ok(compileLayout(layout).ok, layout);
});
