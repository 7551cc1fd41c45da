import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decideSyncNow,
  handledAnnotations,
  SYNC_NOW_ANNOTATION,
  SYNC_NOW_HANDLED_ANNOTATION,
  SYNC_NOW_HANDLED_AT_ANNOTATION,
  syncNowState,
} from "./sync-now.js";

const NOW = Date.parse("2026-01-01T12:00:00Z");
const MINUTE = 60_000;

describe("sync now decisions", () => {
  test("no request, or the request already handled: nothing to do", () => {
    assert.deepEqual(decideSyncNow(syncNowState(undefined), NOW, MINUTE), { kind: "none" });
    assert.deepEqual(decideSyncNow(syncNowState({ [SYNC_NOW_ANNOTATION]: "  " }), NOW, MINUTE), { kind: "none" });
    const handled = { [SYNC_NOW_ANNOTATION]: "a", ...handledAnnotations("a", NOW - 10 * MINUTE) };
    assert.deepEqual(decideSyncNow(syncNowState(handled), NOW, MINUTE), { kind: "none" });
  });

  test("a new value runs at once when nothing was handled or the interval is over", () => {
    assert.deepEqual(decideSyncNow(syncNowState({ [SYNC_NOW_ANNOTATION]: "a" }), NOW, MINUTE), { kind: "run", value: "a" });
    const old = { [SYNC_NOW_ANNOTATION]: "b", ...handledAnnotations("a", NOW - MINUTE) };
    assert.deepEqual(decideSyncNow(syncNowState(old), NOW, MINUTE), { kind: "run", value: "b" });
  });

  test("a new value within the interval waits until the interval is over", () => {
    const recent = { [SYNC_NOW_ANNOTATION]: "b", ...handledAnnotations("a", NOW - 20_000) };
    assert.deepEqual(decideSyncNow(syncNowState(recent), NOW, MINUTE), { kind: "defer", value: "b", untilMs: NOW + 40_000 });
  });

  test("a handled time in the future (a skewed clock) delays by at most one interval", () => {
    const future = { [SYNC_NOW_ANNOTATION]: "b", ...handledAnnotations("a", NOW + 60 * MINUTE) };
    assert.deepEqual(decideSyncNow(syncNowState(future), NOW, MINUTE), { kind: "defer", value: "b", untilMs: NOW + MINUTE });
  });

  test("an unreadable handled time does not block a request", () => {
    const broken = { [SYNC_NOW_ANNOTATION]: "b", [SYNC_NOW_HANDLED_ANNOTATION]: "a", [SYNC_NOW_HANDLED_AT_ANNOTATION]: "yesterday" };
    assert.deepEqual(decideSyncNow(syncNowState(broken), NOW, MINUTE), { kind: "run", value: "b" });
  });
});
