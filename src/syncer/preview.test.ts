import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1Namespace } from "@kubernetes/client-node";
import type { Msi, SubscriptionListing } from "../azure/types.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { AzureIdentity, AzureIdentityBinding } from "../kube/resources.js";
import { template } from "../../test/support/templates.js";
import { desiredState, toAzureIdentity, type DesiredStateOptions } from "./desired.js";
import { formatPreview, previewExitCode, previewSync, type PreviewInput } from "./preview.js";

const options: DesiredStateOptions = {
  namespaceTemplate: template('{{index .Tags "k8snamespace"}}'),
  resourceNameTemplate: template("{{ .Name }}-{{ .ClientId }}"),
  labelFormat: "msi.azure.k8s.io/%s",
  ignoredNamespaces: new Set(["kube-system"]),
  namespaced: true,
};
const keys = lookupLabelKeys(options.labelFormat)!;

function msi(name: string, tag: string, fields: Partial<Msi> = {}): Msi {
  return {
    id: `/subscriptions/SUB-1/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`,
    name,
    location: "westeurope",
    resourceGroup: "RG",
    subscriptionId: "SUB-1",
    clientId: `${name}-client`,
    tenantId: "t",
    principalId: "p",
    tags: { k8snamespace: tag },
    type: "Microsoft.ManagedIdentity/userAssignedIdentities",
    ...fields,
  };
}

const listing = (msis: Msi[], complete = true): SubscriptionListing => ({
  subscriptionId: "SUB-1",
  identities: msis,
  skipped: [],
  complete,
  pages: 1,
  durationMs: 1,
});
const namespace = (name: string): V1Namespace => ({ metadata: { name }, status: { phase: "Active" } });
/** The identity a sync writes for `msi` in `ns`, as the API server would return it. */
const synced = (one: Msi, ns: string): AzureIdentity => {
  const desired = desiredState([one], options).byNamespace.get(ns)!.values().next().value!;
  return { ...toAzureIdentity(desired), metadata: { ...toAzureIdentity(desired).metadata, uid: `uid-${one.name}`, resourceVersion: "1" } };
};

function input(fields: Partial<PreviewInput>): PreviewInput {
  return {
    listings: [],
    desiredOptions: options,
    prune: false,
    bindingKeys: undefined,
    namespaces: [namespace("team-a")],
    identities: [],
    bindings: [],
    ...fields,
  };
}

test("a cluster in sync: no changes, exit 0", () => {
  const shop = msi("shop", "team-a");
  const preview = previewSync(input({ listings: [listing([shop])], identities: [synced(shop, "team-a")] }));
  assert.deepEqual(preview.changes, []);
  assert.equal(preview.unchanged, 1);
  assert.equal(previewExitCode(preview), 0);
  assert.match(formatPreview(preview), /0 to create, 0 to change, 0 to delete, 1 unchanged/);
});

test("create, field-by-field change, adoption of an unowned object and (with prune) delete", () => {
  const shop = msi("shop", "team-a");
  const cart = msi("cart", "team-a");
  const legacy = msi("legacy", "team-a");
  const drifted = synced(cart, "team-a");
  drifted.spec = { ...drifted.spec, clientID: "stale" };
  // The Go original's object: same name, no ownership label, no namespaced annotation.
  const fromGo = synced(legacy, "team-a");
  fromGo.metadata = { ...fromGo.metadata, labels: { [keys.name]: "legacy", [keys.resourcegroup]: "rg", [keys.subscription]: "sub-1" }, annotations: {} };
  const gone = synced(msi("gone", "team-a"), "team-a");
  const preview = previewSync(input({ listings: [listing([shop, cart, legacy])], identities: [drifted, fromGo, gone], prune: true }));
  assert.deepEqual(
    preview.changes.map((change) => `${change.action} ${change.name}`),
    ["change cart-cart-client", "change legacy-legacy-client", "create shop-shop-client", "delete gone-gone-client"],
  );
  const change = preview.changes.find((c) => c.name === "cart-cart-client");
  assert.ok(change?.action === "change" && change.kind === "AzureIdentity");
  assert.deepEqual(change.fields, [{ field: "spec.clientID", from: "stale", to: "cart-client" }]);
  assert.equal(change.adopt, false);
  const adopted = preview.changes.find((c) => c.name === "legacy-legacy-client");
  assert.ok(adopted?.action === "change" && adopted.kind === "AzureIdentity");
  assert.equal(adopted.adopt, true);
  assert.deepEqual(adopted.fields, [
    { field: "metadata.labels[app.kubernetes.io/managed-by]", from: null, to: "azure-msi-operator" },
    { field: "metadata.annotations[aadpodidentity.k8s.io/Behavior]", from: null, to: "namespaced" },
  ]);
  assert.equal(previewExitCode(preview), 1);
  const text = formatPreview(preview);
  assert.match(text, /^~ change AzureIdentity team-a\/cart-cart-client \(MSI .*\)\n {4}spec\.clientID: "stale" -> "cart-client"$/m);
  assert.match(text, /^~ change AzureIdentity team-a\/legacy-legacy-client \(adopt: not yet owned/m);
  assert.match(text, /^- delete AzureIdentity team-a\/gone-gone-client/m);
  assert.match(text, /^\+ create AzureIdentity team-a\/shop-shop-client/m);
  assert.match(text, /1 to create, 2 to change, 1 to delete, 0 unchanged/);
});

test("without prune, or with an incomplete or empty listing, nothing is deleted; unowned objects are never deleted", () => {
  const gone = synced(msi("gone", "team-a"), "team-a");
  const foreign: AzureIdentity = { metadata: { name: "by-hand", namespace: "team-a" }, spec: { type: 0, resourceID: "x", clientID: "y" } };
  const shop = msi("shop", "team-a");
  const owned = synced(shop, "team-a");
  const deletes = (fields: Partial<PreviewInput>) =>
    previewSync(input({ identities: [gone, foreign, owned], ...fields })).changes.filter((c) => c.action === "delete");
  assert.equal(deletes({ listings: [listing([shop])], prune: false }).length, 0);
  assert.equal(deletes({ listings: [listing([shop], false)], prune: true }).length, 0);
  assert.equal(previewSync(input({ listings: [listing([], true)], prune: true, identities: [gone] })).prune.skipped, "empty");
  assert.deepEqual(
    deletes({ listings: [listing([shop])], prune: true }).map((c) => c.name),
    ["gone-gone-client"],
  );
  // A subscription absent from the listing is no evidence its MSIs are gone.
  const other = { ...listing([shop]), subscriptionId: "SUB-2" };
  const kept = previewSync(input({ listings: [other], prune: true, identities: [gone] }));
  assert.deepEqual(kept.notPruned, [{ namespace: "team-a", name: "gone-gone-client" }]);
});

test("tagged namespaces that do not exist, ignored and skipped MSIs write nothing; skips are reported", () => {
  const preview = previewSync(input({ listings: [listing([msi("elsewhere", "team-z"), msi("sys", "kube-system"), msi("Bad_Name", "team-a")])] }));
  assert.deepEqual(preview.changes, []);
  assert.equal(preview.skipped.length, 1);
  assert.match(formatPreview(preview), /^! skip MSI .*Bad_Name: /m);
});

test("with binding sync, a labelled binding is pointed at the identity the sync would create", () => {
  const shop = msi("shop", "team-a");
  const binding: AzureIdentityBinding = {
    metadata: { name: "shop-binding", namespace: "team-a", labels: { [keys.name]: "shop", [keys.resourcegroup]: "rg", [keys.subscription]: "sub-1" } },
    spec: { azureIdentity: "", selector: "shop" },
  };
  const preview = previewSync(input({ listings: [listing([shop])], bindingKeys: keys, bindings: [binding] }));
  assert.deepEqual(
    preview.changes.map((c) => [c.kind, c.action, c.name, c.action === "change" ? c.fields : undefined]),
    [
      ["AzureIdentity", "create", "shop-shop-client", undefined],
      ["AzureIdentityBinding", "change", "shop-binding", [{ field: "spec.azureIdentity", from: "", to: "shop-shop-client" }]],
    ],
  );
});
