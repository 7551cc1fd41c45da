import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { DutyManager, type Duty } from "./duty.js";

const log = pino({ level: "silent" });

/** A duty that records its life in `events`; `gate` holds its start until released or aborted. */
function recorder(name: string, events: string[], gate?: Promise<void>): Duty {
  return {
    name,
    async start(signal) {
      events.push(`start ${name}`);
      if (gate) {
        await new Promise<void>((resolve, reject) => {
          void gate.then(resolve);
          signal.addEventListener("abort", () => reject(new Error(`${name} aborted`)), { once: true });
        });
      }
      events.push(`running ${name}`);
    },
    async stop() {
      events.push(`stop ${name}`);
    },
  };
}

test("duties start in order and stop in reverse; leader duties stop first", async () => {
  const events: string[] = [];
  const manager = new DutyManager([() => recorder("syncer", events)], log);
  await manager.startDuty(recorder("ops", events));
  await manager.startDuty(recorder("cache", events));
  await manager.startLeading();
  await manager.stop();
  assert.deepEqual(events, [
    "start ops",
    "running ops",
    "start cache",
    "running cache",
    "start syncer",
    "running syncer",
    "stop syncer",
    "stop cache",
    "stop ops",
  ]);
});

test("each term as leader gets new duty instances, and losing the Lease stops them", async () => {
  let built = 0;
  const events: string[] = [];
  const manager = new DutyManager([() => recorder(`syncer-${++built}`, events)], log);
  for (let term = 0; term < 3; term++) {
    await manager.startLeading();
    await manager.stopLeading();
  }
  assert.equal(built, 3);
  assert.deepEqual(
    events.filter((event) => event.startsWith("stop")),
    ["stop syncer-1", "stop syncer-2", "stop syncer-3"],
  );
});

test("losing the Lease while a leader duty is still starting aborts it, stops it, and starts no later one", async () => {
  const events: string[] = [];
  const never = new Promise<void>(() => undefined);
  const manager = new DutyManager([() => recorder("caches", events, never), () => recorder("after", events)], log);
  const starting = manager.startLeading();
  await new Promise((resolve) => setImmediate(resolve));
  await manager.stopLeading();
  await starting;
  assert.deepEqual(events, ["start caches", "stop caches"], "aborted, stopped, and the next duty never started");
});

test("a leader duty that fails to start is logged and stopped; the manager goes on", async () => {
  const events: string[] = [];
  const failing: Duty = { name: "broken", start: () => Promise.reject(new Error("boom")), stop: async () => void events.push("stop broken") };
  const manager = new DutyManager([() => failing, () => recorder("next", events)], log);
  await manager.startLeading();
  await manager.stop();
  assert.deepEqual(events, ["start next", "running next", "stop next", "stop broken"]);
});

test("after stop() nothing starts again", async () => {
  const events: string[] = [];
  const manager = new DutyManager([() => recorder("syncer", events)], log);
  await manager.stop();
  await manager.startDuty(recorder("late", events));
  await manager.startLeading();
  assert.deepEqual(events, []);
});
