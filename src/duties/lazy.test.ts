import { test } from "node:test";
import assert from "node:assert/strict";
import type { Duty } from "../lifecycle/duty.js";
import { lazyDuty } from "./lazy.js";

function recorder(events: string[]): Duty {
  return {
    name: "inner",
    start: async () => void events.push("start"),
    stop: async () => void events.push("stop"),
  };
}

test("the duty's module is loaded when it starts, not when it is built; stop() stops what was started", async () => {
  const events: string[] = [];
  const duty = lazyDuty("syncer", async () => (events.push("load"), recorder(events)));
  assert.deepEqual(events, [], "nothing loaded before start");
  await duty.start(new AbortController().signal);
  await duty.stop();
  assert.deepEqual(events, ["load", "start", "stop"]);
  assert.equal(duty.name, "syncer");
});

test("leadership lost while the module loads: the inner duty never starts, and stop() has nothing to stop", async () => {
  const events: string[] = [];
  const abort = new AbortController();
  let loaded!: () => void;
  const gate = new Promise<void>((resolve) => (loaded = resolve));
  const duty = lazyDuty("syncer", async () => (await gate, recorder(events)));
  const starting = duty.start(abort.signal);
  abort.abort(new Error("leadership lost"));
  loaded();
  await assert.rejects(starting, /leadership lost/);
  await duty.stop();
  assert.deepEqual(events, []);
});

test("a module that fails to load fails the start, with its error", async () => {
  const duty = lazyDuty("syncer", () => Promise.reject(new Error("cannot find module")));
  await assert.rejects(duty.start(new AbortController().signal), /cannot find module/);
  await duty.stop();
});
