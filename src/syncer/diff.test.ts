import { test } from "node:test";
import assert from "node:assert/strict";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { AzureIdentity, AzureIdentityBinding } from "../kube/resources.js";
import type { DesiredIdentity } from "./desired.js";
import { identityPatch, planBindings, planIdentities, unmatchedBindings } from "./diff.js";

const desired: DesiredIdentity = {
  namespace: "ns1",
  name: "app-c1",
  labels: { "app.kubernetes.io/managed-by": "azure-msi-operator", "msi.azure.k8s.io/name": "app" },
  annotations: { "aadpodidentity.k8s.io/Behavior": null, "janitor/expires": "2027-05-24" },
  spec: { type: 0, resourceID: "/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/app", clientID: "c1" },
  subscriptionId: "s",
  msiId: "id",
  resourceGroup: "rg",
  msiName: "app",
};

function actual(overrides: Partial<AzureIdentity["metadata"]> = {}, spec: AzureIdentity["spec"] = desired.spec): AzureIdentity {
  return {
    metadata: {
      name: "app-c1",
      namespace: "ns1",
      labels: { ...desired.labels, team: "a" },
      annotations: { "janitor/expires": "2027-05-24", "owner/foreign": "x" },
      resourceVersion: "1",
      uid: "u",
      ...overrides,
    },
    spec,
  };
}

test("equal on the owned fields: no action, foreign labels and annotations do not count", () => {
  assert.equal(identityPatch(desired, actual()), undefined);
  const plan = planIdentities(new Map([["app-c1", desired]]), [actual()], false);
  assert.deepEqual(plan, { actions: [], unchanged: 1 });
});

test("a patch touches only what differs among the owned keys", () => {
  const drifted = actual(
    { annotations: { "aadpodidentity.k8s.io/Behavior": "namespaced", "janitor/expires": "2027-05-23", "owner/foreign": "x" } },
    { ...desired.spec, clientID: "old" },
  );
  const diff = identityPatch(desired, drifted);
  assert.deepEqual(diff?.patch, {
    metadata: { annotations: { "aadpodidentity.k8s.io/Behavior": null, "janitor/expires": "2027-05-24" } },
    spec: { clientID: "c1" },
  });
  assert.deepEqual(diff?.changed.sort(), ["metadata.annotations.aadpodidentity.k8s.io/Behavior", "metadata.annotations.janitor/expires", "spec.clientID"]);
});

test("missing is created; extra is deleted only with prune; terminating objects are left alone", () => {
  const extra = actual({ name: "gone-c9" });
  const none = planIdentities(new Map([["app-c1", desired]]), [extra], false);
  assert.deepEqual(
    none.actions.map((a) => a.kind),
    ["create"],
  );
  const pruned = planIdentities(new Map([["app-c1", desired]]), [extra], true);
  assert.deepEqual(
    pruned.actions.map((a) => a.kind),
    ["create", "delete"],
  );
  const terminating = actual({ deletionTimestamp: new Date() }, { ...desired.spec, clientID: "old" });
  assert.deepEqual(planIdentities(new Map([["app-c1", desired]]), [terminating], true).actions, []);
});

test("bindings with all three lookup labels point at the matching identity of their namespace", () => {
  const keys = lookupLabelKeys("msi.azure.k8s.io/%s")!;
  const labels = { [keys.name]: "app", [keys.resourcegroup]: "rg", [keys.subscription]: "s" };
  const identity: AzureIdentity = { metadata: { name: "app-c2", namespace: "ns1", labels: { ...labels, [keys.name]: "APP" } } };
  const bindings: AzureIdentityBinding[] = [
    { metadata: { name: "stale", namespace: "ns1", labels }, spec: { azureIdentity: "app-c1", selector: "x" } },
    { metadata: { name: "right", namespace: "ns1", labels }, spec: { azureIdentity: "app-c2" } },
    { metadata: { name: "partial", namespace: "ns1", labels: { [keys.name]: "app" } }, spec: {} },
  ];
  assert.deepEqual(planBindings(bindings, [identity], keys), [{ namespace: "ns1", name: "stale", from: "app-c1", to: "app-c2" }]);
  assert.deepEqual(unmatchedBindings(bindings, [identity], keys), [], "all three labels match an identity, or the binding is not a lookup one");
  const elsewhere = { metadata: { name: "elsewhere", namespace: "ns1", uid: "u1", labels: { ...labels, [keys.resourcegroup]: "other" } }, spec: {} };
  assert.deepEqual(unmatchedBindings([...bindings, elsewhere], [identity], keys), [
    { namespace: "ns1", name: "elsewhere", uid: "u1", values: { name: "app", resourcegroup: "other", subscription: "s" } },
  ]);
  assert.deepEqual(unmatchedBindings([{ ...elsewhere, metadata: { ...elsewhere.metadata, deletionTimestamp: new Date() } }], [identity], keys), []);
});
