import { mock, test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { DutyManager, dutySequence, type Duty, type LeaderDutyFactory, type Term } from "./duty.js";

const log = pino({ level: "silent" });

/** Lets every promise callback and I/O callback queued so far run (no wall-clock time passes). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

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

/**
 * Leader duties whose stop() waits for the test to release it, and a ledger of which instances run:
 * each instance is named after its term's generation.
 */
function slowStoppingTerms() {
  const live = new Set<string>();
  const stops = new Map<string, number>();
  const events: string[] = [];
  const stopGates: Deferred[] = [];
  const terms: Term[] = [];
  const factory: LeaderDutyFactory = (term) => {
    terms.push(term);
    const name = `syncer-${term.generation}`;
    return {
      name,
      async start() {
        live.add(name);
        events.push(`start ${name}`);
      },
      async stop() {
        events.push(`stopping ${name}`);
        const gate = deferred();
        stopGates.push(gate);
        await gate.promise;
        stops.set(name, (stops.get(name) ?? 0) + 1);
        live.delete(name);
        events.push(`stopped ${name}`);
      },
    };
  };
  const releaseStops = async () => {
    // Each released stop may let a queued transition start or stop the next term.
    for (let round = 0; round < 10; round++) {
      await flush();
      for (const gate of stopGates.splice(0)) gate.resolve();
    }
    await flush();
  };
  return { live, stops, events, terms, factory, releaseStops };
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

test("each term as leader gets new duty instances, with a generation one higher; losing the Lease stops them", async () => {
  const generations: number[] = [];
  const events: string[] = [];
  const manager = new DutyManager(
    [
      (term) => {
        generations.push(term.generation);
        return recorder(`syncer-${term.generation}`, events);
      },
    ],
    log,
  );
  assert.equal(manager.currentGeneration, 0);
  for (let term = 0; term < 3; term++) {
    await manager.startLeading();
    await manager.stopLeading();
  }
  assert.deepEqual(generations, [1, 2, 3]);
  assert.equal(manager.currentGeneration, 3);
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
  await flush();
  await manager.stopLeading();
  await starting;
  assert.deepEqual(events, ["start caches", "stop caches"], "aborted, stopped, and the next duty never started");
});

test("canWrite() turns false the moment the loss is signalled, before the term's duties have stopped", async () => {
  const churn = slowStoppingTerms();
  const manager = new DutyManager([churn.factory], log);
  await manager.startLeading();
  const term = churn.terms[0]!;
  assert.equal(term.canWrite(), true);
  const stopping = manager.stopLeading();
  assert.equal(term.canWrite(), false, "false synchronously on loss");
  assert.equal(term.signal.aborted, true);
  await flush();
  assert.deepEqual(churn.events, ["start syncer-1", "stopping syncer-1"], "its duty is still stopping");
  await churn.releaseStops();
  await stopping;
  assert.deepEqual(churn.live, new Set());
});

test("canWrite() is false while the elector says the Lease is not held, and for a term a newer gain replaced", async () => {
  let held = true;
  const terms: Term[] = [];
  const manager = new DutyManager([(term) => (terms.push(term), recorder("syncer", []))], log, { holdsLease: () => held });
  await manager.startLeading();
  assert.equal(terms[0]!.canWrite(), true);
  held = false;
  assert.equal(terms[0]!.canWrite(), false, "renew deadline passed: no write even before the loss is signalled");
  held = true;
  await manager.startLeading();
  assert.equal(terms[0]!.canWrite(), false, "the old term never writes again");
  assert.equal(terms[1]!.canWrite(), true);
  await manager.stop();
});

test("defect 1 (issue 22): gain, lose, gain, lose while a stop is still running ends with no term running, each duty stopped once", async () => {
  // At f48d249 the second gain's start ran after the second loss had found nothing to stop: a whole
  // term ran on a follower, and the next gain overwrote it without stopping it.
  const churn = slowStoppingTerms();
  const manager = new DutyManager([churn.factory], log);
  await manager.startLeading();
  const transitions = [manager.stopLeading(), manager.startLeading(), manager.stopLeading()];
  await churn.releaseStops();
  await Promise.all(transitions);
  assert.deepEqual(churn.live, new Set(), "nothing of any term runs on a follower");
  for (const [name, count] of churn.stops) assert.equal(count, 1, `${name} stopped exactly once`);
  assert.deepEqual([...churn.stops.keys()], ["syncer-1"], "the second term never started: it ended before the first had stopped");
  assert.equal(manager.currentGeneration, 2);
  // The next gain starts a clean term, and nothing old is left to overwrite.
  await manager.startLeading();
  assert.deepEqual(churn.live, new Set(["syncer-3"]));
  const stopping = manager.stop();
  await churn.releaseStops();
  await stopping;
  assert.deepEqual(churn.live, new Set());
  assert.deepEqual([...churn.stops.values()], [1, 1]);
});

test("a gain during a slow stop: the new term starts only after the old one has stopped", async () => {
  const churn = slowStoppingTerms();
  const manager = new DutyManager([churn.factory], log);
  await manager.startLeading();
  void manager.stopLeading();
  const gaining = manager.startLeading();
  await flush();
  assert.deepEqual(churn.events, ["start syncer-1", "stopping syncer-1"], "term 2 waits for term 1's stop");
  await churn.releaseStops();
  await gaining;
  assert.deepEqual(churn.events, ["start syncer-1", "stopping syncer-1", "stopped syncer-1", "start syncer-2"]);
  assert.deepEqual(churn.live, new Set(["syncer-2"]));
  const stopping = manager.stop();
  await churn.releaseStops();
  await stopping;
});

test("a gain with no loss in between never leaves two terms: the old one is stopped before the new one starts", async () => {
  const churn = slowStoppingTerms();
  const manager = new DutyManager([churn.factory], log);
  await manager.startLeading();
  const gaining = manager.startLeading();
  assert.equal(churn.terms[0]!.signal.aborted, true, "the old term ended at once");
  await churn.releaseStops();
  await gaining;
  assert.deepEqual(churn.live, new Set(["syncer-2"]));
  const stopping = manager.stop();
  await churn.releaseStops();
  await stopping;
});

test("stop() while a leader duty is starting: aborted, stopped once, nothing starts after, stop() resolves when all is stopped", async () => {
  const events: string[] = [];
  const never = new Promise<void>(() => undefined);
  const manager = new DutyManager([() => recorder("caches", events, never), () => recorder("after", events)], log);
  await manager.startDuty(recorder("ops", events));
  const starting = manager.startLeading();
  await flush();
  await manager.stop();
  await starting;
  assert.deepEqual(events, ["start ops", "running ops", "start caches", "stop caches", "stop ops"]);
  await manager.startLeading();
  assert.deepEqual(events.length, 5, "after stop() no term begins");
});

test("stopLeading() resolves only once the term's duties have stopped", async () => {
  const churn = slowStoppingTerms();
  const manager = new DutyManager([churn.factory], log);
  await manager.startLeading();
  let resolved = false;
  const stopping = manager.stopLeading().then(() => (resolved = true));
  await flush();
  assert.equal(resolved, false, "the duty's stop() has not returned yet");
  await churn.releaseStops();
  await stopping;
  assert.deepEqual(churn.live, new Set());
});

test("defect 5 (issue 22): a leader duty that fails to start is retried with backoff, /healthz fails after 2 minutes, and the retries end with the term", async () => {
  // At f48d249 the failure was logged once and the replica kept the Lease with no syncer, healthy.
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  try {
    const events: string[] = [];
    const attempts: number[] = [];
    let failUntil = Infinity;
    const lines: { attempt?: number; msg?: string }[] = [];
    const logged = pino({ level: "error" }, { write: (line: string) => void lines.push(JSON.parse(line) as { attempt?: number; msg?: string }) });
    const flaky: LeaderDutyFactory = () => {
      const attempt = attempts.length + 1;
      return {
        name: "syncer",
        async start() {
          attempts.push(Date.now());
          events.push(`start ${attempt}`);
          if (attempt < failUntil) throw new Error("issuer discovery failed");
        },
        async stop() {
          events.push(`stop ${attempt}`);
        },
      };
    };
    const manager = new DutyManager([flaky, () => recorder("sync now", events)], logged, {
      startBackoff: { initialMs: 1_000, maxMs: 30_000 },
      unhealthyAfterMs: 120_000,
    });
    void manager.startLeading();
    await flush();
    assert.deepEqual(attempts, [0]);
    assert.deepEqual(events, ["start 1", "stop 1"], "the failed instance is stopped (it may hold caches)");
    for (let elapsed = 0; elapsed < 130_000; elapsed += 500) {
      mock.timers.tick(500);
      await flush();
    }
    // 1, 2, 4, 8, 16, 30, 30, 30... seconds apart.
    assert.deepEqual(attempts.slice(0, 7), [0, 1_000, 3_000, 7_000, 15_000, 31_000, 61_000]);
    assert.ok(!events.includes("start sync now"), "the duties after it wait for it");
    assert.deepEqual(
      lines.map((line) => line.attempt),
      attempts.map((_, index) => index + 1),
      "each failure logged with its attempt",
    );
    assert.match(manager.unhealthy() ?? "", /leader duty "syncer" has failed to start for 130 s \(\d+ attempts\): issuer discovery failed/);
    // The fault heals: the next attempt starts, the rest of the term follows, and /healthz is fine again.
    failUntil = attempts.length + 1;
    mock.timers.tick(30_000);
    await flush();
    assert.equal(manager.unhealthy(), undefined);
    assert.ok(events.includes("running sync now"));
    // A term that keeps failing: the retries end at once when the term does.
    failUntil = Infinity;
    await manager.stopLeading();
    void manager.startLeading();
    await flush();
    const before = attempts.length;
    await manager.stopLeading();
    mock.timers.tick(600_000);
    await flush();
    assert.equal(attempts.length, before, "no attempt after the term ended");
    assert.equal(manager.unhealthy(), undefined);
    const starts = events.filter((event) => event.startsWith("start ") && event !== "start sync now").length;
    const stops = events.filter((event) => event.startsWith("stop ") && event !== "stop sync now").length;
    assert.equal(stops, starts, "every instance started was stopped");
  } finally {
    mock.timers.reset();
  }
});

test("after stop() nothing starts again", async () => {
  const events: string[] = [];
  const manager = new DutyManager([() => recorder("syncer", events)], log);
  await manager.stop();
  await manager.startDuty(recorder("late", events));
  await manager.startLeading();
  assert.deepEqual(events, []);
});

test("dutySequence starts in order, stops what started in reverse, and starts nothing after an abort", async () => {
  const events: string[] = [];
  const both = dutySequence("syncer", [recorder("a", events), recorder("b", events)]);
  await both.start(new AbortController().signal);
  await both.stop();
  await both.stop();
  assert.deepEqual(events, ["start a", "running a", "start b", "running b", "stop b", "stop a"]);
  events.length = 0;
  const never = new Promise<void>(() => undefined);
  const abort = new AbortController();
  const gated = dutySequence("syncer", [recorder("a", events, never), recorder("b", events)]);
  const starting = gated.start(abort.signal);
  abort.abort(new Error("leadership lost"));
  await assert.rejects(starting, /a aborted/);
  await gated.stop();
  assert.deepEqual(events, ["start a", "stop a"]);
});

test("a leader duty factory or start() that throws at once is a failed start, retried; later transitions still happen", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    let builds = 0;
    const events: string[] = [];
    const manager = new DutyManager(
      [
        () => {
          if (++builds === 1) throw new Error("cannot build");
          return {
            name: "sync",
            start: () => {
              if (builds === 2) throw new Error("cannot start");
              events.push("start");
              return Promise.resolve();
            },
            stop: async () => void events.push("stop"),
          };
        },
      ],
      log,
      { startBackoff: { initialMs: 1_000, maxMs: 1_000 } },
    );
    const gaining = manager.startLeading();
    for (let second = 0; second < 3; second++) {
      await flush();
      mock.timers.tick(1_000);
    }
    await gaining;
    assert.equal(builds, 3);
    assert.deepEqual(events, ["stop", "start"], "the instance whose start threw was stopped; the third one runs");
    await manager.stopLeading();
    assert.deepEqual(events, ["stop", "start", "stop"]);
  } finally {
    mock.timers.reset();
  }
});
