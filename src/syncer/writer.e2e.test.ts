// IdentityWriter against a real API server, as the operator's service account (RBAC from manifests/).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { ControlPlane, type AuditEvent } from "../../test/controlplane/controlplane.js";
import { reservePort } from "../../test/controlplane/ports.js";
import { applyOperatorRbac, eventually, operatorWrites } from "../../test/support/operator.js";
import { kubeClients } from "../kube/clients.js";
import { kubeErrorMessage, statusCode } from "../kube/errors.js";
import {
  AAD_API_VERSION,
  AAD_GROUP,
  AAD_VERSION,
  AZURE_IDENTITIES,
  AZURE_IDENTITY_BINDINGS,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  NAMESPACED_ANNOTATION,
  NAMESPACED_VALUE,
  type AzureIdentity,
  type AzureIdentityBinding,
} from "../kube/resources.js";
import { Metrics } from "../metrics/metrics.js";
import type { RetryOptions } from "../retry/backoff.js";
import { toAzureIdentity, type DesiredIdentity } from "./desired.js";
import type { IdentityPatch } from "./diff.js";
import { FIELD_MANAGER, IdentityWriter, NotLeaderError } from "./writer.js";

const SUB = "00000000-0000-0000-0000-0000000000a1";
const LOOKUP = "msi.azure.k8s.io";
/** Retries as in production (src/kube/retry.ts: 5 attempts), only with short delays. */
const FAST: Partial<RetryOptions> = { backoff: { initialMs: 5, maxMs: 20 } };

function desiredIn(namespace: string, clientID = "11111111-0000-0000-0000-000000000001"): DesiredIdentity {
  return {
    namespace,
    name: `shop-${clientID}`,
    labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [`${LOOKUP}/name`]: "shop", [`${LOOKUP}/resourcegroup`]: "rg-apps", [`${LOOKUP}/subscription`]: SUB },
    // Owned and wanted; owned and wanted absent.
    annotations: { [NAMESPACED_ANNOTATION]: NAMESPACED_VALUE, "janitor/expires": null },
    spec: { type: 0, resourceID: `/subscriptions/${SUB}/resourcegroups/rg-apps/providers/microsoft.managedidentity/userassignedidentities/shop`, clientID },
    subscriptionId: SUB,
    msiId: `/subscriptions/${SUB}/resourceGroups/RG-Apps/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shop`,
    resourceGroup: "RG-Apps",
    msiName: "shop",
  };
}

/** kubeWrites samples as "resource verb result" -> value. */
async function writeMetric(metrics: Metrics): Promise<Record<string, number>> {
  const { values } = await metrics.kubeWrites.get();
  return Object.fromEntries(values.map((sample) => [`${sample.labels.resource} ${sample.labels.verb} ${sample.labels.result}`, sample.value]));
}

/** Rejects with what `promise` rejected with; fails the test if it resolved. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected the write to fail");
}

describe("IdentityWriter against a real API server", () => {
  let plane: ControlPlane;
  let admin: CustomObjectsApi;
  let operatorApi: CustomObjectsApi;

  const newWriter = (options: { canWrite?: () => boolean; retry?: Partial<RetryOptions>; api?: CustomObjectsApi } = {}) => {
    const metrics = new Metrics({ defaultMetrics: false });
    const writer = new IdentityWriter(options.api ?? operatorApi, options.canWrite ?? (() => true), metrics, options.retry ?? FAST);
    return { writer, metrics };
  };
  const getIdentity = async (namespace: string, name: string) =>
    (await admin.getNamespacedCustomObject({ group: AAD_GROUP, version: AAD_VERSION, namespace, plural: AZURE_IDENTITIES, name }).catch((error: unknown) => {
      if (statusCode(error) === 404) return undefined;
      throw error;
    })) as AzureIdentity | undefined;
  const createAsAdmin = async (namespace: string, body: AzureIdentity) =>
    (await admin.createNamespacedCustomObject({ group: AAD_GROUP, version: AAD_VERSION, namespace, plural: AZURE_IDENTITIES, body })) as AzureIdentity;
  const patchAsAdmin = async (namespace: string, name: string, body: object) =>
    await plane
      .kubectlOrThrow("admin", ["patch", "azureidentity", name, "-n", namespace, "--type=merge", "-p", JSON.stringify(body), "-o", "json"])
      .then((out) => JSON.parse(out) as AzureIdentity);
  /** The operator's writes in `namespace` among `events`, as "verb name code". */
  const writesIn = (events: AuditEvent[], namespace: string) =>
    operatorWrites(events)
      .filter((event) => event.objectRef?.namespace === namespace)
      .map((event) => `${event.verb} ${event.objectRef?.resource}/${event.objectRef?.name ?? ""} ${event.responseStatus?.code}`);
  const auditedWrites = async (namespace: string) => writesIn(await plane.auditEvents(), namespace);
  /** Every write in `namespace` the API server audited, up to and including those just answered. */
  const settledWrites = async (namespace: string) => writesIn(await plane.auditEventsSettled(), namespace);

  before(async () => {
    plane = await ControlPlane.start();
    await applyOperatorRbac(plane);
    admin = plane.api("admin", CustomObjectsApi);
    operatorApi = kubeClients(plane.kubeConfig("operator")).custom;
    const core = plane.api("admin", CoreV1Api);
    for (const name of [
      "w-create",
      "w-adopt",
      "w-exists",
      "w-patch",
      "w-delete",
      "w-gone",
      "w-leader",
      "w-lost",
      "w-retry",
      "w-invalid",
      "w-binding",
      "w-counts",
    ]) {
      await core.createNamespace({ body: { metadata: { name } } });
    }
  });
  after(async () => plane?.stop());

  test("create: exactly the desired object, as the operator's field manager; one create counted and measured", async () => {
    const desired = desiredIn("w-create");
    const { writer, metrics } = newWriter();
    const returned = await writer.createIdentity(desired);
    const stored = await getIdentity("w-create", desired.name);
    assert.ok(stored, "the identity exists on the server");
    assert.equal(returned.metadata?.uid, stored.metadata?.uid);
    assert.deepEqual(
      { apiVersion: stored.apiVersion, kind: stored.kind, labels: stored.metadata?.labels, annotations: stored.metadata?.annotations, spec: stored.spec },
      {
        apiVersion: AAD_API_VERSION,
        kind: "AzureIdentity",
        labels: desired.labels,
        annotations: { [NAMESPACED_ANNOTATION]: NAMESPACED_VALUE },
        spec: desired.spec,
      },
    );
    assert.deepEqual(
      stored.metadata?.managedFields?.map((entry) => entry.manager),
      [FIELD_MANAGER],
    );
    assert.deepEqual(writer.writes(), { create: 1, patch: 0, delete: 0 });
    assert.deepEqual(await writeMetric(metrics), { "azureidentities create success": 1 });
    assert.deepEqual(await settledWrites("w-create"), [`create azureidentities/${desired.name} 201`]);
  });

  test("adoption: an existing unlabelled object is patched to the owned fields; foreign labels and annotations survive", async () => {
    const desired = desiredIn("w-adopt");
    const handMade = await createAsAdmin("w-adopt", {
      apiVersion: AAD_API_VERSION,
      kind: "AzureIdentity",
      metadata: {
        name: desired.name,
        labels: { "team.example/owner": "a", [`${LOOKUP}/name`]: "evil" },
        annotations: { "note.example/why": "kept", "janitor/expires": "2020-01-01" },
      },
      spec: {
        type: 1,
        resourceID: "/subscriptions/other/resourcegroups/x/providers/microsoft.managedidentity/userassignedidentities/y",
        clientID: "hand-made",
      },
    });
    const { writer, metrics } = newWriter();
    const adopted = await writer.createIdentity(desired);
    const stored = await getIdentity("w-adopt", desired.name);
    assert.ok(stored);
    assert.equal(stored.metadata?.uid, handMade.metadata?.uid, "the same object, not a new one");
    assert.equal(adopted.metadata?.resourceVersion, stored.metadata?.resourceVersion, "the patched object is returned");
    assert.deepEqual(stored.metadata?.labels, { ...desired.labels, "team.example/owner": "a" });
    assert.deepEqual(stored.metadata?.annotations, { [NAMESPACED_ANNOTATION]: NAMESPACED_VALUE, "note.example/why": "kept" });
    assert.deepEqual(stored.spec, desired.spec);
    assert.deepEqual(writer.writes(), { create: 1, patch: 1, delete: 0 });
    assert.deepEqual(await writeMetric(metrics), { "azureidentities create error": 1, "azureidentities patch success": 1 });
    assert.deepEqual(await settledWrites("w-adopt"), [`create azureidentities/${desired.name} 409`, `patch azureidentities/${desired.name} 200`]);
  });

  test("a 409 on create is not retried; an object already as desired is returned without a patch", async () => {
    const desired = desiredIn("w-exists");
    const existing = await createAsAdmin("w-exists", toAzureIdentity(desired));
    const { writer, metrics } = newWriter();
    const returned = await writer.createIdentity(desired);
    assert.equal(returned.metadata?.uid, existing.metadata?.uid);
    assert.equal(returned.metadata?.resourceVersion, existing.metadata?.resourceVersion, "not written");
    assert.deepEqual(writer.writes(), { create: 1, patch: 0, delete: 0 });
    assert.deepEqual(await writeMetric(metrics), { "azureidentities create error": 1 });
    assert.deepEqual(await settledWrites("w-exists"), [`create azureidentities/${desired.name} 409`]);
  });

  test("patch: a merge patch changes the given keys only (null removes a key); everything else is kept", async () => {
    const desired = desiredIn("w-patch");
    await createAsAdmin("w-patch", {
      ...toAzureIdentity(desired),
      metadata: { ...toAzureIdentity(desired).metadata, labels: { ...desired.labels, "team.example/owner": "a" } },
    });
    const { writer, metrics } = newWriter();
    const patch: IdentityPatch = {
      metadata: { labels: { [`${LOOKUP}/name`]: null }, annotations: { "janitor/expires": "2030-01-01" } },
      spec: { clientID: "22222222-0000-0000-0000-000000000002" },
    };
    const returned = await writer.patchIdentity("w-patch", desired.name, patch);
    const stored = await getIdentity("w-patch", desired.name);
    assert.equal(returned.metadata?.resourceVersion, stored?.metadata?.resourceVersion);
    const { [`${LOOKUP}/name`]: removed, ...otherLabels } = desired.labels;
    assert.ok(removed);
    assert.deepEqual(stored?.metadata?.labels, { ...otherLabels, "team.example/owner": "a" });
    assert.deepEqual(stored?.metadata?.annotations, { [NAMESPACED_ANNOTATION]: NAMESPACED_VALUE, "janitor/expires": "2030-01-01" });
    assert.deepEqual(stored?.spec, { ...desired.spec, clientID: "22222222-0000-0000-0000-000000000002" });
    assert.deepEqual(writer.writes(), { create: 0, patch: 1, delete: 0 });
    assert.deepEqual(await writeMetric(metrics), { "azureidentities patch success": 1 });
  });

  test("delete: only the very object planned (uid and resourceVersion preconditions); a changed or recreated object is kept", async () => {
    const desired = desiredIn("w-delete");
    const planned = await createAsAdmin("w-delete", toAzureIdentity(desired));
    const { writer, metrics } = newWriter();

    // Changed since it was planned: new resourceVersion.
    const changed = await patchAsAdmin("w-delete", desired.name, { metadata: { labels: { "team.example/owner": "b" } } });
    assert.notEqual(changed.metadata?.resourceVersion, planned.metadata?.resourceVersion);
    const stale = await rejection(
      writer.deleteIdentity("w-delete", desired.name, { uid: planned.metadata?.uid, resourceVersion: planned.metadata?.resourceVersion }),
    );
    assert.equal(statusCode(stale), 409);
    assert.equal(
      (await getIdentity("w-delete", desired.name))?.metadata?.resourceVersion,
      changed.metadata?.resourceVersion,
      "the changed object is not deleted",
    );

    // Deleted and recreated under the same name: new uid.
    await admin.deleteNamespacedCustomObject({ group: AAD_GROUP, version: AAD_VERSION, namespace: "w-delete", plural: AZURE_IDENTITIES, name: desired.name });
    const recreated = await createAsAdmin("w-delete", toAzureIdentity(desired));
    assert.notEqual(recreated.metadata?.uid, planned.metadata?.uid);
    const otherUid = await rejection(
      writer.deleteIdentity("w-delete", desired.name, { uid: planned.metadata?.uid, resourceVersion: recreated.metadata?.resourceVersion }),
    );
    assert.equal(statusCode(otherUid), 409);
    assert.equal((await getIdentity("w-delete", desired.name))?.metadata?.uid, recreated.metadata?.uid, "the recreated object is not deleted");

    // Both preconditions match: deleted.
    await writer.deleteIdentity("w-delete", desired.name, { uid: recreated.metadata?.uid, resourceVersion: recreated.metadata?.resourceVersion });
    assert.equal(await getIdentity("w-delete", desired.name), undefined);

    assert.deepEqual(writer.writes(), { create: 0, patch: 0, delete: 3 }, "a failed precondition is not retried");
    assert.deepEqual(await writeMetric(metrics), { "azureidentities delete error": 2, "azureidentities delete success": 1 });
    assert.deepEqual(await settledWrites("w-delete"), [
      `delete azureidentities/${desired.name} 409`,
      `delete azureidentities/${desired.name} 409`,
      `delete azureidentities/${desired.name} 200`,
    ]);
  });

  test("a delete of an object that is already gone (404) is tolerated, counted once", async () => {
    const { writer, metrics } = newWriter();
    await writer.deleteIdentity("w-gone", "never-existed", { uid: "7c2d3b1e-0000-0000-0000-000000000000", resourceVersion: "1" });
    assert.deepEqual(writer.writes(), { create: 0, patch: 0, delete: 1 });
    assert.deepEqual(await writeMetric(metrics), { "azureidentities delete error": 1 });
    assert.deepEqual(await settledWrites("w-gone"), ["delete azureidentities/never-existed 404"]);
  });

  test("not the leader: every write throws NotLeaderError and no request is made", async () => {
    const desired = desiredIn("w-leader");
    const existing = await createAsAdmin("w-leader", { ...toAzureIdentity(desired), spec: { ...desired.spec, clientID: "drifted" } });
    const before = (await auditedWrites("w-leader")).length;
    const { writer, metrics } = newWriter({ canWrite: () => false });
    const attempts: [string, Promise<unknown>][] = [
      ["createIdentity", writer.createIdentity(desiredIn("w-leader", "33333333-0000-0000-0000-000000000003"))],
      ["patchIdentity", writer.patchIdentity("w-leader", desired.name, { spec: { clientID: desired.spec.clientID } })],
      ["deleteIdentity", writer.deleteIdentity("w-leader", desired.name, { uid: existing.metadata?.uid, resourceVersion: existing.metadata?.resourceVersion })],
      ["patchBinding", writer.patchBinding("w-leader", "any", desired.name)],
    ];
    for (const [what, attempt] of attempts) {
      const error = await rejection(attempt);
      assert.ok(error instanceof NotLeaderError, `${what}: ${String(error)}`);
      assert.equal(error.message, "not the leader: write skipped");
    }
    assert.deepEqual(writer.writes(), { create: 0, patch: 0, delete: 0 });
    assert.deepEqual(await writeMetric(metrics), {});
    assert.equal((await settledWrites("w-leader")).length, before, "the API server saw no write");
    assert.equal((await getIdentity("w-leader", desired.name))?.metadata?.resourceVersion, existing.metadata?.resourceVersion);
  });

  test("leadership lost while a write is being retried: no further attempt, NotLeaderError", async () => {
    const desired = desiredIn("w-lost");
    const existing = await createAsAdmin("w-lost", toAzureIdentity(desired));
    let leader = true;
    // A long pause between attempts, and leadership lost during it.
    const { writer, metrics } = newWriter({ canWrite: () => leader, retry: { backoff: { initialMs: 1_500, maxMs: 1_500 } } });
    const conflicting = { metadata: { resourceVersion: "1", labels: { "team.example/owner": "c" } } } as IdentityPatch; // a stale resourceVersion: 409, retryable for a patch
    const write = rejection(writer.patchIdentity("w-lost", desired.name, conflicting));
    // The first attempt's 409 has arrived (measured), so the writer is now waiting to retry.
    await eventually(async () => (await writeMetric(metrics))["azureidentities patch error"] === 1 || undefined, 5_000, "the first attempt's answer");
    leader = false;
    const error = await write;
    assert.ok(error instanceof NotLeaderError, String(error));
    assert.deepEqual(writer.writes(), { create: 0, patch: 1, delete: 0 });
    assert.deepEqual(await writeMetric(metrics), { "azureidentities patch error": 1 });
    assert.deepEqual(await settledWrites("w-lost"), [`patch azureidentities/${desired.name} 409`]);
    assert.equal((await getIdentity("w-lost", desired.name))?.metadata?.resourceVersion, existing.metadata?.resourceVersion);
  });

  test("retries follow src/kube/retry.ts: a conflicting patch and a network error get 5 attempts, a 404 one", async () => {
    const desired = desiredIn("w-retry");
    await createAsAdmin("w-retry", toAzureIdentity(desired));
    const { writer, metrics } = newWriter();
    const conflicting = { metadata: { resourceVersion: "1", labels: { "team.example/owner": "c" } } } as IdentityPatch;
    assert.equal(statusCode(await rejection(writer.patchIdentity("w-retry", desired.name, conflicting))), 409);
    assert.deepEqual(writer.writes(), { create: 0, patch: 5, delete: 0 });
    assert.equal(statusCode(await rejection(writer.patchIdentity("w-retry", "missing", { spec: { clientID: "x" } }))), 404);
    assert.deepEqual(writer.writes(), { create: 0, patch: 6, delete: 0 }, "a 404 is not retried");
    assert.deepEqual(await writeMetric(metrics), { "azureidentities patch error": 6 });
    assert.deepEqual(await settledWrites("w-retry"), [
      ...Array<string>(5).fill(`patch azureidentities/${desired.name} 409`),
      "patch azureidentities/missing 404",
    ]);
    assert.equal((await getIdentity("w-retry", desired.name))?.metadata?.labels?.["team.example/owner"], undefined);

    // Nothing listens on this port: connection refused, no HTTP status.
    const port = await reservePort();
    const direct = plane.kubeConfig("operator");
    const unreachable = new KubeConfig();
    unreachable.loadFromOptions({
      clusters: direct.clusters.map((cluster) => ({ ...cluster, server: `https://127.0.0.1:${port}` })),
      users: direct.users,
      contexts: direct.contexts,
      currentContext: direct.currentContext,
    });
    const down = newWriter({ api: kubeClients(unreachable).custom });
    const error = await rejection(down.writer.createIdentity(desiredIn("w-retry", "44444444-0000-0000-0000-000000000004")));
    assert.equal(statusCode(error), undefined, String(error));
    assert.deepEqual(down.writer.writes(), { create: 5, patch: 0, delete: 0 });
    assert.deepEqual(await writeMetric(down.metrics), { "azureidentities create error": 5 });
  });

  test("bad input: the API server's refusal (422) is thrown with its message, not retried, and nothing else is lost", async () => {
    const good = desiredIn("w-invalid");
    const { writer, metrics } = newWriter();
    await writer.createIdentity(good);
    const bad = { ...desiredIn("w-invalid", "66666666-0000-0000-0000-000000000006"), name: "Bad_Name" };
    const error = await rejection(writer.createIdentity(bad));
    assert.equal(statusCode(error), 422);
    assert.match(kubeErrorMessage(error), /Bad_Name/);
    assert.deepEqual(writer.writes(), { create: 2, patch: 0, delete: 0 });
    assert.deepEqual(await writeMetric(metrics), { "azureidentities create success": 1, "azureidentities create error": 1 });
    assert.deepEqual((await getIdentity("w-invalid", good.name))?.spec, good.spec, "the earlier write stands");
  });

  test("patchBinding fills spec.azureIdentity and keeps the rest of the binding", async () => {
    const labels = { [`${LOOKUP}/name`]: "shop", [`${LOOKUP}/resourcegroup`]: "rg-apps", [`${LOOKUP}/subscription`]: SUB, "team.example/owner": "a" };
    await admin.createNamespacedCustomObject({
      group: AAD_GROUP,
      version: AAD_VERSION,
      namespace: "w-binding",
      plural: AZURE_IDENTITY_BINDINGS,
      body: { apiVersion: AAD_API_VERSION, kind: "AzureIdentityBinding", metadata: { name: "shop", labels }, spec: { selector: "shop", azureIdentity: "old" } },
    });
    const { writer, metrics } = newWriter();
    const returned = await writer.patchBinding("w-binding", "shop", "shop-new");
    const stored = (await admin.getNamespacedCustomObject({
      group: AAD_GROUP,
      version: AAD_VERSION,
      namespace: "w-binding",
      plural: AZURE_IDENTITY_BINDINGS,
      name: "shop",
    })) as AzureIdentityBinding;
    assert.equal(returned.metadata?.resourceVersion, stored.metadata?.resourceVersion);
    assert.deepEqual(stored.spec, { selector: "shop", azureIdentity: "shop-new" });
    assert.deepEqual(stored.metadata?.labels, labels);
    assert.deepEqual(writer.writes(), { create: 0, patch: 1, delete: 0 });
    assert.deepEqual(await writeMetric(metrics), { "azureidentitybindings patch success": 1 });
  });

  test("write counts are per verb, across identities and bindings, and writes() is a copy", async () => {
    const desired = desiredIn("w-counts");
    await admin.createNamespacedCustomObject({
      group: AAD_GROUP,
      version: AAD_VERSION,
      namespace: "w-counts",
      plural: AZURE_IDENTITY_BINDINGS,
      body: { apiVersion: AAD_API_VERSION, kind: "AzureIdentityBinding", metadata: { name: "b" }, spec: { selector: "b" } },
    });
    const { writer, metrics } = newWriter();
    const created = await writer.createIdentity(desired);
    const patched = await writer.patchIdentity("w-counts", desired.name, { spec: { clientID: "55555555-0000-0000-0000-000000000005" } });
    await writer.patchBinding("w-counts", "b", desired.name);
    const snapshot = writer.writes();
    (snapshot as { create: number }).create = 99;
    await writer.deleteIdentity("w-counts", desired.name, { uid: created.metadata?.uid, resourceVersion: patched.metadata?.resourceVersion });
    assert.deepEqual(writer.writes(), { create: 1, patch: 2, delete: 1 });
    assert.deepEqual(await writeMetric(metrics), {
      "azureidentities create success": 1,
      "azureidentities patch success": 1,
      "azureidentitybindings patch success": 1,
      "azureidentities delete success": 1,
    });
    assert.equal(await getIdentity("w-counts", desired.name), undefined);
  });
});
