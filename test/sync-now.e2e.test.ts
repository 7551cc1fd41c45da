// "Sync now" and the JSON log format, with real operator processes (--log.json, Lease election) against
// a real API server and the Azure fake: an admin annotates the Lease, the leader lists Azure afresh at
// once despite --sync.locktime, a developer is refused by RBAC, a second request within
// --sync.request.interval waits for it, and a value is handled once, also across a leader change.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoordinationV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { FakeAzure } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "./controlplane/controlplane.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { leaseRenewals } from "./support/lease.js";
import { OperatorProcess } from "./support/process.js";
import { createTeamNamespace } from "./support/developers.js";
import { LOG_LEVELS } from "../src/log.js";
import { SYNC_NOW_ANNOTATION, SYNC_NOW_HANDLED_ANNOTATION, SYNC_NOW_HANDLED_AT_ANNOTATION } from "../src/syncer/sync-now.js";

const SUB = "00000000-0000-0000-0000-0000000000e1";
const LEASE = "azure-msi-operator-leader";
const INTERVAL_MS = 8_000;
const FLAGS = [
  "sync",
  "--lease.enable",
  "--lease.duration=4s",
  "--lease.renewdeadline=3s",
  "--lease.retryperiod=500ms",
  "--sync.interval=1h",
  "--sync.locktime=1h",
  `--sync.request.interval=${INTERVAL_MS / 1000}s`,
];
const REQUESTED = "sync now requested: full sync with a fresh Azure listing";

describe("sync now and JSON logs end to end", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let custom: CustomObjectsApi;
  let coordination: CoordinationV1Api;
  let a: OperatorProcess;
  let b: OperatorProcess | undefined;

  const start = (name: string) =>
    OperatorProcess.start(name, {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE },
      flags: FLAGS,
    });
  const identityNamed = async (prefix: string) =>
    (
      (await custom.listNamespacedCustomObject({ group: "aadpodidentity.k8s.io", version: "v1", namespace: "team-a", plural: "azureidentities" })) as {
        items: { metadata?: { name?: string } }[];
      }
    ).items.find((item) => item.metadata?.name?.startsWith(`${prefix}-`));
  const annotate = (who: "admin" | "jane", value: string) =>
    plane.kubectl(who, ["-n", OPERATOR_NAMESPACE, "annotate", "--overwrite", "lease", LEASE, `${SYNC_NOW_ANNOTATION}=${value}`]);
  const leaseAnnotations = async () => (await coordination.readNamespacedLease({ name: LEASE, namespace: OPERATOR_NAMESPACE })).metadata?.annotations ?? {};
  const listings = () => fake.armRequests().filter((request) => /userAssignedIdentities(\?|$)/.test(request.url)).length;
  const requested = (proc: OperatorProcess, value: string) => proc.logs.filter((line) => line.msg === REQUESTED && line.value === value);

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    custom = plane.api("admin", CustomObjectsApi);
    coordination = plane.api("admin", CoordinationV1Api);
    await createTeamNamespace(plane, "team-a");
    fake.model.addSubscription({ subscriptionId: SUB });
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "first", tags: { k8snamespace: "team-a" } });
    a = await start("sync-now-a");
    await a.waitForLog((line) => line.msg === "sync finished", 60_000);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("--log.json lines of the running operator carry zap's level names, msg and an ISO ts", () => {
    assert.ok(a.logs.length > 5, "the operator logged");
    for (const line of a.logs) {
      assert.ok((LOG_LEVELS as readonly unknown[]).includes(line.level), `level as a name: ${JSON.stringify(line)}`);
      assert.equal(typeof line.msg, "string", JSON.stringify(line));
      assert.match(String(line.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, JSON.stringify(line));
      assert.equal(line.time, undefined);
    }
    assert.ok(
      a.logs.some((line) => line.level === "warn"),
      "a warning (identities not namespaced) is logged as warn",
    );
    assert.ok(a.logs.some((line) => line.level === "info" && line.msg === "became leader"));
  });

  test("a developer may not ask: RBAC refuses her the Lease", async () => {
    const denied = await annotate("jane", "from-jane");
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden/i);
    assert.equal((await leaseAnnotations())[SYNC_NOW_ANNOTATION], undefined);
  });

  test("an admin's request: a fresh Azure listing at once despite --sync.locktime, recorded on the Lease", { timeout: 60_000 }, async () => {
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "second", tags: { k8snamespace: "team-a" } });
    const before = listings();
    const asked = Date.now();
    const result = await annotate("admin", "r1");
    assert.equal(result.code, 0, result.stderr);
    await eventually(() => identityNamed("second"), 20_000, "the identity of the newly tagged MSI");
    assert.ok(Date.now() - asked < 15_000);
    assert.equal(requested(a, "r1").length, 1);
    assert.ok(listings() > before, "Azure was listed again");
    const annotations = await leaseAnnotations();
    assert.equal(annotations[SYNC_NOW_HANDLED_ANNOTATION], "r1");
    assert.ok(Math.abs(Date.parse(annotations[SYNC_NOW_HANDLED_AT_ANNOTATION] ?? "") - asked) < 15_000);
  });

  test("a second request within --sync.request.interval waits for it, with one log line", { timeout: 60_000 }, async () => {
    const handledAt = Date.parse((await leaseAnnotations())[SYNC_NOW_HANDLED_AT_ANNOTATION] ?? "");
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "third", tags: { k8snamespace: "team-a" } });
    assert.equal((await annotate("admin", "r2")).code, 0);
    const deferred = await a.waitForLog((line) => /too soon/.test(String(line.msg)) && line.value === "r2", 10_000);
    assert.equal(deferred.level, "info");
    assert.equal(Date.parse(String(deferred.until)), handledAt + INTERVAL_MS);
    assert.equal(await identityNamed("third"), undefined, "not synced while deferred");
    await eventually(() => identityNamed("third"), 30_000, "the deferred request ran");
    assert.ok(Date.now() >= handledAt + INTERVAL_MS, "not before the interval was over");
    assert.equal(requested(a, "r2").length, 1);
    assert.equal(a.logs.filter((line) => /too soon/.test(String(line.msg)) && line.value === "r2").length, 1, "one deferral line, not one per Lease renewal");
  });

  test("the same value is handled once, also by a new leader", { timeout: 90_000 }, async () => {
    assert.equal((await annotate("admin", "r2")).code, 0, "the same value again");
    b = await start("sync-now-b");
    // Each renewal is a Lease update the leader checks for a request: two of them, and r2 was looked at again.
    await leaseRenewals(plane, "sync-now-a", 2, { name: LEASE });
    assert.equal(requested(a, "r2").length, 1, "the leader did not run it again");
    await a.stop();
    await b.waitForLog((line) => line.msg === "became leader", 30_000);
    await b.waitForLog((line) => line.msg === "sync finished", 30_000);
    await leaseRenewals(plane, "sync-now-b", 2, { name: LEASE });
    assert.deepEqual(requested(b, "r2"), [], "the new leader read r2 as handled from the Lease");

    // A new value reaches the new leader (the interval since r2 is over by now).
    const handledAt = Date.parse((await leaseAnnotations())[SYNC_NOW_HANDLED_AT_ANNOTATION] ?? "");
    await eventually(() => Date.now() > handledAt + INTERVAL_MS || undefined, INTERVAL_MS + 1_000);
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "fourth", tags: { k8snamespace: "team-a" } });
    assert.equal((await annotate("admin", "r3")).code, 0);
    await eventually(() => identityNamed("fourth"), 20_000, "the new leader handled r3");
    assert.equal(requested(b, "r3").length, 1);
    assert.equal((await leaseAnnotations())[SYNC_NOW_HANDLED_ANNOTATION], "r3");
  });
});
