// Leadership gained and lost many times (a real Lease on a real API server, taken away by an admin
// and handed back): every term builds a syncer and its caches, and losing the Lease must leave
// nothing of it behind: no handlers on the long-lived identity cache, no retained heap.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { CoordinationV1Api, V1MicroTime } from "@kubernetes/client-node";
import { FakeAzure } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "./controlplane/controlplane.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "./support/operator.js";

const SUB = "00000000-0000-0000-0000-0000000000c7";
const LEASE = "azure-msi-operator-leader";
const TERMS = 25;
const WARM_UP_TERMS = 5;
/** Heap growth allowed from the warm-up to the last term (a leaked term holds its listing of 300 MSIs). */
const HEAP_BOUND_BYTES = 3 * 1024 * 1024;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

describe("leadership churn: nothing of a lost term survives", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: RunningOperator;
  let leases: CoordinationV1Api;

  const logCount = (message: string) => operator.logs.filter((line) => line.msg === message).length;
  /** Rewrites the Lease as an admin; a 409 (the leader renewed meanwhile) is tried again. */
  const setHolder = (holderIdentity: string, leaseDurationSeconds: number) =>
    eventually(
      async () => {
        const current = await leases.readNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: LEASE });
        const body = {
          metadata: current.metadata,
          spec: { ...current.spec, holderIdentity, leaseDurationSeconds, acquireTime: new V1MicroTime(), renewTime: new V1MicroTime() },
        };
        return leases.replaceNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: LEASE, body }).then(
          () => true,
          (error: { code?: number }) => {
            if (error.code !== 409) throw error;
            return undefined;
          },
        );
      },
      10_000,
      "lease rewritten",
    );
  const heapUsed = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    await createTeamNamespace(plane, "team-l");
    fake.model.addIdentities(SUB, 300, () => ({ tags: { k8snamespace: "team-l" } }));
    leases = plane.api("admin", CoordinationV1Api);
    operator = await startOperator(plane, fake.credentialEnv(), [
      "run",
      "--webhook.enable=false",
      "--lease.enable",
      "--lease.duration=2s",
      "--lease.renewdeadline=1s",
      "--lease.retryperiod=100ms",
      "--sync.watch",
      "--azureidentity.binding.sync",
      "--sync.locktime=0s",
    ]);
  });
  after(async () => {
    await operator?.stop();
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test(`${TERMS} terms as leader: identity-cache handlers and retained heap stay flat`, { timeout: 240_000 }, async (t) => {
    const handlersWhileLeading: number[] = [];
    let baselineHeap = 0;
    for (let term = 1; term <= TERMS; term++) {
      // Leading, with this term's syncer through a full sync (its listing and caches built).
      await eventually(() => logCount("became leader") >= term || undefined, 20_000, `term ${term}: leading`);
      await eventually(() => logCount("sync finished") >= term || undefined, 30_000, `term ${term}: synced`);
      handlersWhileLeading.push(operator.app.identityCacheHandlers);
      // An admin hands the Lease to someone else: renewal fails, the term ends within the renew deadline.
      await setHolder("someone-else", 3_600);
      await eventually(() => logCount("stopped leading") >= term || undefined, 20_000, `term ${term}: stopped leading`);
      if (term === WARM_UP_TERMS) baselineHeap = heapUsed();
      // ...and releases it again: the next term begins.
      await setHolder("", 1);
    }
    const finalHeap = heapUsed();
    const growth = finalHeap - baselineHeap;
    t.diagnostic(
      `identity-cache handlers while leading: ${[...new Set(handlersWhileLeading)].join(", ")}; heap after term ${WARM_UP_TERMS} ${(baselineHeap / 2 ** 20).toFixed(1)} MiB, after term ${TERMS} ${(finalHeap / 2 ** 20).toFixed(1)} MiB (${(growth / 2 ** 20).toFixed(2)} MiB)`,
    );
    assert.deepEqual(new Set(handlersWhileLeading).size, 1, `handlers per term: ${handlersWhileLeading.join(", ")}`);
    assert.ok(growth < HEAP_BOUND_BYTES, `retained heap grew ${(growth / 2 ** 20).toFixed(2)} MiB over ${TERMS - WARM_UP_TERMS} terms`);
  });
});
