import { test } from "node:test";
import assert from "node:assert/strict";
import type { Msi } from "../azure/types.js";
import { desiredState, namespacesFromTag, toAzureIdentity, type DesiredStateOptions } from "./desired.js";
import { template } from "../../test/support/templates.js";

const options: DesiredStateOptions = {
  namespaceTemplate: template('{{index .Tags "k8snamespace"}}'),
  resourceNameTemplate: template("{{ .Name }}-{{ .ClientId }}"),
  labelFormat: "msi.azure.k8s.io/%s",
  ignoredNamespaces: new Set(["kube-system", "default"]),
  namespaced: true,
  expiry: { annotation: "janitor/expires", value: "2027-05-24" },
};

function msi(name: string, tag: string, fields: Partial<Msi> = {}): Msi {
  return {
    id: `/subscriptions/SUB-1/resourceGroups/RG-One/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`,
    name,
    location: "westeurope",
    resourceGroup: "RG-One",
    subscriptionId: "SUB-1",
    clientId: "c1",
    tenantId: "t",
    principalId: "p",
    tags: { k8snamespace: tag },
    type: "Microsoft.ManagedIdentity/userAssignedIdentities",
    ...fields,
  };
}

test("namespaces from the tag: split, trimmed, lower-cased, ignored and duplicates dropped", () => {
  assert.deepEqual(namespacesFromTag(" team-a, Team-B,,kube-system,team-a ", new Set(["kube-system"])), ["team-a", "team-b"]);
});

test("the object is exactly as DESIGN §3 says", () => {
  const state = desiredState([msi("app", "ns1, NS2")], options);
  assert.deepEqual([...state.byNamespace.keys()], ["ns1", "ns2"]);
  const object = toAzureIdentity(state.byNamespace.get("ns1")!.get("app-c1")!);
  assert.deepEqual(object, {
    apiVersion: "aadpodidentity.k8s.io/v1",
    kind: "AzureIdentity",
    metadata: {
      name: "app-c1",
      namespace: "ns1",
      labels: {
        "app.kubernetes.io/managed-by": "azure-msi-operator",
        "msi.azure.k8s.io/name": "app",
        "msi.azure.k8s.io/resourcegroup": "rg-one",
        "msi.azure.k8s.io/subscription": "sub-1",
      },
      annotations: { "aadpodidentity.k8s.io/Behavior": "namespaced", "janitor/expires": "2027-05-24" },
    },
    spec: { type: 0, resourceID: "/subscriptions/sub-1/resourcegroups/rg-one/providers/microsoft.managedidentity/userassignedidentities/app", clientID: "c1" },
  });
});

test("without namespaced mode the Behavior annotation is owned and must be absent; without a label format only the ownership label", () => {
  const state = desiredState([msi("app", "ns1")], { ...options, namespaced: false, labelFormat: "", expiry: undefined });
  const desired = state.byNamespace.get("ns1")!.get("app-c1")!;
  assert.deepEqual(desired.annotations, { "aadpodidentity.k8s.io/Behavior": null });
  assert.deepEqual(desired.labels, { "app.kubernetes.io/managed-by": "azure-msi-operator" });
  assert.equal(toAzureIdentity(desired).metadata?.annotations, undefined);
});

test("invalid names, namespaces and label values skip only that MSI, with a reason", () => {
  const msis = [msi("Upper", "ns1"), msi("ok", "Bad_Namespace!"), msi(`n${"x".repeat(70)}`, "ns1", { clientId: "c2" }), msi("fine", "ns1", { clientId: "c3" })];
  const state = desiredState(msis, options);
  assert.deepEqual([...state.byNamespace.get("ns1")!.keys()], ["fine-c3"]);
  assert.equal(state.skipped.length, 3);
  assert.match(state.skipped.find((s) => s.msiId.endsWith("/Upper"))!.reason, /not a valid Kubernetes name/);
  assert.match(state.skipped.find((s) => s.msiId.endsWith("/ok"))!.reason, /namespace "bad_namespace!"/);
  assert.match(state.skipped.find((s) => s.msiId.includes("/nxxx"))!.reason, /not a valid label value/);
  // The namespaces told with an Event: those it was tagged for that can hold one.
  assert.deepEqual(
    state.skipped.map((s) => s.namespaces),
    [["ns1"], [], ["ns1"]],
  );
});

test("two MSIs rendering one name in one namespace: the first by ID wins, the other is skipped", () => {
  const nameOnly = { ...options, resourceNameTemplate: template("{{ .Name }}") };
  const a = msi("app", "ns1", { id: "/subscriptions/s/resourceGroups/a/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app", resourceGroup: "a" });
  const b = msi("app", "ns1", { id: "/subscriptions/s/resourceGroups/b/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app", resourceGroup: "b" });
  const state = desiredState([b, a], nameOnly);
  assert.equal(state.byNamespace.get("ns1")!.get("app")!.msiId, a.id);
  assert.match(state.skipped[0]!.reason, /already used by/);
  assert.deepEqual(state.skipped[0]!.namespaces, ["ns1"]);
});

test("an MSI without the tag is simply not wanted anywhere", () => {
  const state = desiredState([msi("app", "")], options);
  assert.equal(state.byNamespace.size, 0);
  assert.equal(state.skipped.length, 0);
});
