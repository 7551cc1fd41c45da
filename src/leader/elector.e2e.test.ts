// LeaderElector against a real API server, as the operator's service account (RBAC from manifests/).
// Expiry and the renew deadline are driven through the injectable clock; the retry loop runs on real,
// short timers. Lease reads are counted by a pass-through wrapper (every call still goes to the real
// API server) so a test knows how many tries happened before it asserts that nothing changed.
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoordinationV1Api, RbacAuthorizationV1Api, V1MicroTime, type V1Lease } from "@kubernetes/client-node";
import pino from "pino";
import { ControlPlane, OPERATOR_NAMESPACE } from "../../test/controlplane/controlplane.js";
import { applyOperatorRbac, eventually } from "../../test/support/operator.js";
import { kubeConfigVia, TcpProxy } from "../../test/support/tcp-proxy.js";
import { kubeClients } from "../kube/clients.js";
import { statusCode } from "../kube/errors.js";
import { Metrics } from "../metrics/metrics.js";
import { LeaderElector, type LeaseOptions } from "./elector.js";

/** The Lease the shipped Role lets the operator get and update (resourceNames). */
const LEASE = "azure-msi-operator-leader";

/** A clock that moves only when told to. */
class ManualClock {
  private time = Date.now();
  readonly now = (): number => this.time;
  advance(ms: number): void {
    this.time += ms;
  }
}

/** A pass-through CoordinationV1Api that counts Lease reads and can run a hook before a call. */
function instrumented(api: CoordinationV1Api) {
  const probe = {
    reads: 0,
    beforeRead: undefined as (() => void) | undefined,
    beforeCreate: undefined as (() => void) | undefined,
    /** While set, Lease reads wait for it (a test changes the Lease between two tries). */
    gate: undefined as Promise<void> | undefined,
  };
  const wrapped = new Proxy(api, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        if (property === "readNamespacedLease") {
          probe.reads++;
          probe.beforeRead?.();
          const gate = probe.gate;
          if (gate) return gate.then(() => method.apply(target, args));
        }
        if (property === "createNamespacedLease") probe.beforeCreate?.();
        return method.apply(target, args);
      };
    },
  });
  return { api: wrapped, probe };
}

interface Candidate {
  elector: LeaderElector;
  metrics: Metrics;
  /** "started" / "stopped", in the order the callbacks ran. */
  events: string[];
  probe: ReturnType<typeof instrumented>["probe"];
  identity: string;
}

/** MicroTime fields come back as strings (or Dates, whatever the client does): milliseconds either way. */
function millis(value: unknown): number {
  return value instanceof Date ? value.getTime() : Date.parse(String(value));
}

async function gauge(metrics: Metrics): Promise<number | undefined> {
  return (await metrics.leader.get()).values[0]?.value;
}

async function transitions(metrics: Metrics, event: "acquired" | "lost"): Promise<number> {
  return (await metrics.leaderTransitions.get()).values.find((value) => value.labels.event === event)?.value ?? 0;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("LeaderElector against a real API server", () => {
  let plane: ControlPlane;
  let admin: CoordinationV1Api;
  const running: LeaderElector[] = [];

  const candidate = (identity: string, timing: Partial<LeaseOptions>, now?: () => number, direct?: CoordinationV1Api): Candidate => {
    const metrics = new Metrics({ defaultMetrics: false });
    const events: string[] = [];
    const { api, probe } = instrumented(direct ?? plane.api("operator", CoordinationV1Api));
    const options: LeaseOptions = {
      namespace: OPERATOR_NAMESPACE,
      name: LEASE,
      identity,
      durationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 100,
      ...timing,
    };
    const elector = new LeaderElector(
      api,
      options,
      { onStartedLeading: () => events.push("started"), onStoppedLeading: () => events.push("stopped") },
      pino({ level: "silent" }),
      metrics,
      now,
    );
    running.push(elector);
    return { elector, metrics, events, probe, identity };
  };

  /** Waits until `n` tries have completed from now on (a try starts with a read; tries never overlap). */
  const tries = async (who: Candidate, n: number) => {
    const target = who.probe.reads + n + 1;
    await eventually(() => who.probe.reads >= target || undefined, 10_000, `${n} tries by ${who.identity}`);
  };

  const readLease = () => admin.readNamespacedLease({ name: LEASE, namespace: OPERATOR_NAMESPACE });

  /** A Lease held by someone else, written by the admin: `renewTime` as that holder's clock had it. */
  const heldBy = (holder: string, durationSeconds: number, renewTime: number, leaseTransitions = 3): Promise<V1Lease> =>
    admin.createNamespacedLease({
      namespace: OPERATOR_NAMESPACE,
      body: {
        metadata: { name: LEASE },
        spec: {
          holderIdentity: holder,
          leaseDurationSeconds: durationSeconds,
          acquireTime: new V1MicroTime(renewTime),
          renewTime: new V1MicroTime(renewTime),
          leaseTransitions,
        },
      },
    });

  before(async () => {
    plane = await ControlPlane.start({ crds: false });
    await applyOperatorRbac(plane);
    admin = plane.api("admin", CoordinationV1Api);
  });
  beforeEach(async () => {
    await admin.deleteNamespacedLease({ name: LEASE, namespace: OPERATOR_NAMESPACE }).catch((error: unknown) => {
      if (statusCode(error) !== 404) throw error;
    });
  });
  afterEach(async () => {
    for (const elector of running.splice(0)) await elector.stop(false);
  });
  after(async () => plane?.stop());

  test("acquires an absent Lease, renews it, and on stop(true) gives it up and writes no more", async () => {
    const a = candidate("replica-a", { durationMs: 2_500, renewDeadlineMs: 2_000, retryPeriodMs: 100 });
    assert.equal(a.elector.isLeader(), false);
    a.elector.start();
    await eventually(() => a.elector.isLeader() || undefined, 10_000, "a leads");
    assert.deepEqual(a.events, ["started"]);
    assert.equal(await gauge(a.metrics), 1);
    assert.equal(await transitions(a.metrics, "acquired"), 1);
    assert.equal(await transitions(a.metrics, "lost"), 0);

    const first = await readLease();
    assert.equal(first.spec?.holderIdentity, "replica-a");
    assert.equal(first.spec?.leaseDurationSeconds, 3, "2.5 s rounds up to whole seconds, never down");
    assert.equal(first.spec?.leaseTransitions, 0);
    const acquiredAt = millis(first.spec?.acquireTime);
    assert.ok(Number.isFinite(acquiredAt));

    // Renewals: renewTime moves on, the holder, acquireTime and transition count stay.
    const renewed = await eventually(
      async () => {
        const lease = await readLease();
        return millis(lease.spec?.renewTime) > millis(first.spec?.renewTime) ? lease : undefined;
      },
      5_000,
      "the Lease is renewed",
    );
    assert.equal(renewed.spec?.holderIdentity, "replica-a");
    assert.equal(millis(renewed.spec?.acquireTime), acquiredAt);
    assert.equal(renewed.spec?.leaseTransitions, 0);
    assert.notEqual(renewed.metadata?.resourceVersion, first.metadata?.resourceVersion);
    assert.equal(a.elector.isLeader(), true);
    assert.deepEqual(a.events, ["started"], "renewing is not a new term");
    assert.equal(await transitions(a.metrics, "acquired"), 1);

    await a.elector.stop(true);
    assert.equal(a.elector.isLeader(), false);
    assert.deepEqual(a.events, ["started", "stopped"]);
    assert.equal(await gauge(a.metrics), 0);
    assert.equal(await transitions(a.metrics, "lost"), 1);
    const released = await readLease();
    assert.equal(released.spec?.holderIdentity, "", "released: no holder");
    assert.equal(released.spec?.leaseDurationSeconds, 1, "released: shortened so the next candidate need not wait");
    assert.equal(millis(released.spec?.acquireTime), acquiredAt, "acquireTime survives the release");
    // Stopped means stopped: no try is scheduled any more, so nothing can write the Lease again.
    assert.equal(a.elector.nextTryInMs(), undefined, "no try scheduled after stop()");
    assert.equal((await readLease()).metadata?.resourceVersion, released.metadata?.resourceVersion);
  });

  test("a follower leaves a held Lease alone and takes it only once its own clock says it expired, counted from the last change it saw", async () => {
    // The holder's clock is an hour behind: its renewTime is long past. Judged by renewTime the Lease
    // would look expired at once; judged by when the follower saw it change, it has 10 s left.
    const skewed = Date.now() - 3_600_000;
    await heldBy("ghost", 10, skewed);
    const clock = new ManualClock();
    const b = candidate("replica-b", { durationMs: 10_000, renewDeadlineMs: 8_000, retryPeriodMs: 50 }, clock.now);
    b.elector.start();
    await tries(b, 3);
    const untouched = await readLease();
    assert.equal(untouched.spec?.holderIdentity, "ghost");
    assert.equal(b.elector.isLeader(), false);

    clock.advance(9_000);
    await tries(b, 3);
    assert.equal((await readLease()).spec?.holderIdentity, "ghost", "9 s of 10 s: still held");

    // The holder renews (with its skewed clock): the follower starts counting again from here.
    await admin.replaceNamespacedLease({
      name: LEASE,
      namespace: OPERATOR_NAMESPACE,
      body: { ...untouched, spec: { ...untouched.spec, acquireTime: new V1MicroTime(skewed), renewTime: new V1MicroTime(skewed + 1_000) } },
    });
    await tries(b, 3);
    clock.advance(9_000);
    await tries(b, 3);
    const stillHeld = await readLease();
    assert.equal(stillHeld.spec?.holderIdentity, "ghost", "18 s since first seen but only 9 s since the last change: still held");
    assert.equal(b.elector.isLeader(), false);
    assert.deepEqual(b.events, []);
    assert.equal(await transitions(b.metrics, "acquired"), 0);

    // The clock moves while a read is in flight, as it does on a busy node: the try must judge expiry
    // and stamp the Lease with one and the same instant, the one after the read.
    b.probe.beforeRead = () => {
      b.probe.beforeRead = undefined;
      clock.advance(1_500);
    };
    await eventually(() => b.elector.isLeader() || undefined, 5_000, "b takes the expired Lease");
    const taken = await readLease();
    assert.equal(taken.spec?.holderIdentity, "replica-b");
    assert.equal(taken.spec?.leaseTransitions, 4, "a takeover from another holder is a transition");
    assert.equal(taken.spec?.leaseDurationSeconds, 10);
    assert.equal(millis(taken.spec?.acquireTime), clock.now(), "acquireTime is the new holder's own time");
    assert.equal(millis(taken.spec?.renewTime), clock.now());
    assert.deepEqual(b.events, ["started"]);
    assert.equal(await gauge(b.metrics), 1);
    assert.equal(await transitions(b.metrics, "acquired"), 1);
  });

  test("isLeader() turns false the moment the renew deadline passes; failing renewals end the term", async () => {
    const clock = new ManualClock();
    const a = candidate("replica-a", { durationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 50 }, clock.now);
    const rbac = plane.api("admin", RbacAuthorizationV1Api);
    const asOperator = plane.api("operator", CoordinationV1Api);
    a.elector.start();
    await eventually(() => a.elector.isLeader() || undefined, 10_000, "a leads");
    try {
      // Renewals start failing: the operator loses its Role on the Lease.
      await rbac.deleteNamespacedRoleBinding({ name: "azure-msi-operator", namespace: OPERATOR_NAMESPACE });
      await eventually(
        () =>
          asOperator.readNamespacedLease({ name: LEASE, namespace: OPERATOR_NAMESPACE }).then(
            () => undefined,
            (error: unknown) => statusCode(error) === 403 || undefined,
          ),
        10_000,
        "the operator is refused the Lease",
      );
      await tries(a, 3);
      assert.equal(a.elector.isLeader(), true, "failed renewals inside the renew deadline keep the term");
      assert.deepEqual(a.events, ["started"]);

      clock.advance(1_999);
      assert.equal(a.elector.isLeader(), true, "1 ms before the deadline");
      clock.advance(1);
      // No await in between: no try ran, yet the answer is already no.
      assert.equal(a.elector.isLeader(), false, "at the deadline");

      await eventually(() => a.events.includes("stopped") || undefined, 5_000, "the loop ends the term");
      assert.deepEqual(a.events, ["started", "stopped"]);
      assert.equal(await gauge(a.metrics), 0);
      assert.equal(await transitions(a.metrics, "lost"), 1);
      assert.equal(a.elector.isLeader(), false);
    } finally {
      await a.elector.stop(false);
      await applyOperatorRbac(plane);
    }
  });

  test("nudge() tries at once instead of at the next retry period; a leader ignores it", async () => {
    await heldBy("ghost", 30, Date.now());
    const b = candidate("replica-b", { durationMs: 10_000, renewDeadlineMs: 8_000, retryPeriodMs: 60_000 });
    b.elector.start();
    await eventually(() => (b.probe.reads >= 1 && b.elector.nextTryInMs() !== undefined) || undefined, 5_000, "first try done");
    assert.ok(b.elector.nextTryInMs()! > 50_000, "the next try is a retry period (60 s) away");
    assert.equal(b.probe.reads, 1);

    const lease = await readLease();
    await admin.replaceNamespacedLease({
      name: LEASE,
      namespace: OPERATOR_NAMESPACE,
      body: {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: "",
          leaseDurationSeconds: 1,
          acquireTime: new V1MicroTime(millis(lease.spec?.acquireTime)),
          renewTime: new V1MicroTime(Date.now()),
        },
      },
    });
    assert.equal(b.elector.isLeader(), false, "released, but nobody told b");
    assert.ok(b.elector.nextTryInMs()! > 50_000, "still a retry period away");
    assert.equal(b.probe.reads, 1);

    b.elector.nudge();
    await eventually(() => b.elector.isLeader() || undefined, 5_000, "b acquires after the nudge");
    assert.equal((await readLease()).spec?.holderIdentity, "replica-b");
    assert.equal(b.probe.reads, 2, "one try, right away");
    const readsWhileLeading = b.probe.reads;
    await eventually(() => b.elector.nextTryInMs() !== undefined || undefined, 5_000, "the renewal scheduled");
    b.elector.nudge();
    assert.ok(b.elector.nextTryInMs()! > 50_000, "a leader ignores nudges: its next renewal stays a retry period away");
    assert.equal(b.probe.reads, readsWhileLeading);
  });

  test("a nudge that arrives while a try is in flight is kept: another try follows at once", async () => {
    await heldBy("ghost", 30, Date.now());
    const b = candidate("replica-b", { durationMs: 10_000, renewDeadlineMs: 8_000, retryPeriodMs: 60_000 });
    // The first try sees the Lease held; the nudge lands while it is in flight.
    b.probe.beforeRead = () => {
      b.probe.beforeRead = undefined;
      b.elector.nudge();
    };
    b.elector.start();
    await eventually(() => (b.probe.reads >= 2 && b.elector.nextTryInMs() !== undefined) || undefined, 5_000, "a second try right after the first");
    assert.ok(b.elector.nextTryInMs()! > 50_000, "one nudge, one extra try: then back to the retry period");
    assert.equal(b.probe.reads, 2);
    assert.equal(b.elector.isLeader(), false);
    assert.equal((await readLease()).spec?.holderIdentity, "ghost");
  });

  test("stop(false) keeps the Lease; a follower's stop(true) writes nothing", async () => {
    const a = candidate("replica-a", {});
    a.elector.start();
    await eventually(() => a.elector.isLeader() || undefined, 10_000, "a leads");
    await a.elector.stop(false);
    assert.deepEqual(a.events, ["started", "stopped"]);
    assert.equal(await gauge(a.metrics), 0);
    const kept = await readLease();
    assert.equal(kept.spec?.holderIdentity, "replica-a", "not released: the next leader waits for expiry");

    const b = candidate("replica-b", {});
    b.elector.start();
    await tries(b, 2);
    assert.equal(b.elector.isLeader(), false, "a's Lease has not expired for b");
    await b.elector.stop(true);
    assert.deepEqual(b.events, [], "a follower never started, so it never stops leading");
    assert.equal(await transitions(b.metrics, "lost"), 0);
    const after = await readLease();
    assert.equal(after.spec?.holderIdentity, "replica-a");
    assert.equal(after.metadata?.resourceVersion, kept.metadata?.resourceVersion, "nothing written by b");
  });

  test("two candidates: never two leaders; on release the other leads within a retry period, not a lease duration", async () => {
    const a = candidate("replica-a", { durationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 100 });
    const b = candidate("replica-b", { durationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 100 });
    a.elector.start();
    b.elector.start();
    await eventually(() => a.elector.isLeader() || b.elector.isLeader() || undefined, 10_000, "someone leads");
    const deadline = Date.now() + 1_500;
    while (Date.now() < deadline) {
      assert.ok(!(a.elector.isLeader() && b.elector.isLeader()), "two leaders at once");
      await sleep(20);
    }
    const [leader, follower] = a.elector.isLeader() ? [a, b] : [b, a];
    assert.equal(follower.elector.isLeader(), false);
    assert.equal((await readLease()).spec?.holderIdentity, leader.identity);
    assert.equal(await gauge(leader.metrics), 1);
    assert.equal(await gauge(follower.metrics), 0);

    const releasedAt = Date.now();
    await leader.elector.stop(true);
    await eventually(() => follower.elector.isLeader() || undefined, 4_000, "the follower takes over");
    const handoverMs = Date.now() - releasedAt;
    assert.ok(handoverMs < 1_000, `handover took ${handoverMs} ms (lease duration 4 s)`);
    assert.equal((await readLease()).spec?.holderIdentity, follower.identity);
    assert.deepEqual(follower.events, ["started"]);
    assert.equal(await gauge(follower.metrics), 1);
  });

  test("stop(true) while an acquisition is in flight leaves no Lease held by the stopped candidate", async () => {
    const a = candidate("replica-a", { durationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 100 });
    let stopped: Promise<void> | undefined;
    // SIGTERM lands while the first try is creating the Lease.
    a.probe.beforeCreate = () => {
      a.probe.beforeCreate = undefined;
      stopped = a.elector.stop(true);
    };
    a.elector.start();
    await eventually(() => (stopped ? true : undefined), 10_000, "the create is under way");
    await stopped;
    assert.equal(a.elector.isLeader(), false);
    const lease = await readLease().catch((error: unknown) => {
      if (statusCode(error) === 404) return undefined;
      throw error;
    });
    assert.notEqual(
      lease?.spec?.holderIdentity,
      "replica-a",
      "a stopped candidate still holds the Lease: every other replica waits out the 15 s lease duration",
    );
  });
  // Issue 22 item 6: against f48d249 the try on the black-holed connection never ended, so the loss
  // was never signalled ("stopped" never came) and the replica never campaigned again.
  test("a leader cut off by a black hole (packets dropped, not reset) signals loss by its renew deadline, and campaigns again once the API server answers", async (t) => {
    const apiPort = Number(new URL(plane.server).port);
    const proxy = await TcpProxy.start(() => apiPort);
    const viaProxy = kubeConfigVia(plane.kubeConfig("operator"), proxy.port);
    // The operator's own clients (their 30 s request deadline is far beyond the renew deadline: the
    // elector's own deadline is what must end the try).
    const renewDeadlineMs = 2_000;
    const a = candidate("replica-a", { durationMs: 3_000, renewDeadlineMs, retryPeriodMs: 100 }, undefined, kubeClients(viaProxy).coordination);
    try {
      a.elector.start();
      await eventually(() => a.elector.isLeader() || undefined, 10_000, "a leads");
      await tries(a, 1);
      proxy.blackhole();
      const cutAt = performance.now();
      await eventually(() => a.events.includes("stopped") || undefined, renewDeadlineMs + 5_000, "a signals the loss");
      const lostAfterMs = performance.now() - cutAt;
      t.diagnostic(`loss signalled ${Math.round(lostAfterMs)} ms after the cut (renew deadline ${renewDeadlineMs} ms)`);
      assert.ok(lostAfterMs <= renewDeadlineMs + 500, `loss signalled ${Math.round(lostAfterMs)} ms after the cut (renew deadline ${renewDeadlineMs} ms)`);
      assert.equal(a.elector.isLeader(), false);
      assert.equal(await gauge(a.metrics), 0);

      proxy.heal();
      await eventually(() => (a.events.length === 3 && a.elector.isLeader()) || undefined, 10_000, "a campaigns again and leads");
      assert.deepEqual(a.events, ["started", "stopped", "started"]);
    } finally {
      await a.elector.stop(false);
      await proxy.close();
    }
  });

  // Issue 22 item 8: against f48d249 isLeader() was time-only, so with the clock standing still it
  // stayed true although the Lease now named another replica, which wrote as leader too.
  test("a renewal that finds the Lease deleted and re-created by another replica ends the term at once, whatever the clock says", async () => {
    const clock = new ManualClock();
    const a = candidate("replica-a", { durationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 50 }, clock.now);
    a.elector.start();
    await eventually(() => a.elector.isLeader() || undefined, 10_000, "a leads");
    // Between two of a's tries (its next read held back), the Lease is deleted and replica-b creates it.
    let open = () => undefined as void;
    a.probe.gate = new Promise<void>((resolve) => (open = resolve));
    await tries(a, 0);
    await admin.deleteNamespacedLease({ name: LEASE, namespace: OPERATOR_NAMESPACE });
    await heldBy("replica-b", 3, Date.now(), 0);
    a.probe.gate = undefined;
    open();
    // The clock stands still: only the observed holder can end the term.
    await eventually(() => a.events.includes("stopped") || undefined, 10_000, "a sees replica-b's Lease");
    assert.equal(a.elector.isLeader(), false, "not leader the moment a try saw another holder");
    assert.deepEqual(a.events, ["started", "stopped"]);
    await tries(a, 3);
    const lease = await readLease();
    assert.equal(lease.spec?.holderIdentity, "replica-b", "a leaves the other holder's Lease alone");
    assert.equal(a.elector.isLeader(), false);
  });
});
