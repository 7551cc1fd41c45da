import { test } from "node:test";
import assert from "node:assert/strict";
import type { Msi } from "../azure/types.js";
import { desiredState, toAzureIdentity, type DesiredStateOptions } from "../syncer/desired.js";
import { template } from "../../test/support/templates.js";
import { audit, VIOLATION_KINDS, type AuditAssignedIdentity, type AuditIdentity, type AuditState, type Violation } from "./audit.js";
import { auditEvent, auditExitCode, auditJson, formatAudit, violationSeries } from "./report.js";
import { policyReportFor, sameReport, type PolicyReport } from "./policy-report.js";

const SUB = "sub-1";
const options: DesiredStateOptions = {
  namespaceTemplate: template('{{index .Tags "k8snamespace"}}'),
  resourceNameTemplate: template("{{ .Name }}-{{ .ClientId }}"),
  labelFormat: "msi.azure.k8s.io/%s",
  ignoredNamespaces: new Set(["kube-system"]),
  namespaced: true,
};

function msi(name: string, tag: string, clientId: string, subscriptionId = SUB): Msi {
  return {
    id: `/subscriptions/${subscriptionId}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`,
    name,
    location: "westeurope",
    resourceGroup: "rg",
    subscriptionId,
    clientId,
    tenantId: "t",
    principalId: "p",
    tags: { k8snamespace: tag },
    type: "Microsoft.ManagedIdentity/userAssignedIdentities",
  };
}

const MSIS = [msi("shop", "team-a", "c-shop"), msi("pay", "team-b", "c-pay")];

/** A clean cluster: exactly the identities the listing wants, namespaced, nothing else. */
function cleanState(msis: readonly Msi[] = MSIS): AuditState {
  const desired = desiredState(msis, options);
  const identities: AuditIdentity[] = [...desired.byNamespace.values()].flatMap((byName) => [...byName.values()].map(toAzureIdentity));
  return {
    identities,
    assignedIdentities: [],
    exceptions: [],
    listing: { desired, msis, subscriptions: [{ subscriptionId: SUB, complete: true }] },
    options: { micForceNamespaced: false, micManagers: ["aad-pod-identity"] },
  };
}

const kinds = (violations: readonly Violation[]) => violations.map((violation) => `${violation.kind} ${violation.namespace}/${violation.object?.name ?? ""}`);

const assigned = (name: string, namespace: string, identityNamespace: string, podNamespace: string, managers: string[]): AuditAssignedIdentity => ({
  metadata: { name, namespace, uid: `uid-${name}`, managedFields: managers.map((manager) => ({ manager })) },
  spec: {
    pod: "app",
    podNamespace,
    azureIdentityRef: { metadata: { name: "shop-c-shop", namespace: identityNamespace } },
    azureBindingRef: { metadata: { name: "b", namespace: podNamespace } },
  },
});

test("a clean cluster has no violation, exit code 0, and no series", () => {
  const violations = audit(cleanState());
  assert.deepEqual(violations, []);
  assert.equal(auditExitCode(violations), 0);
  assert.equal(violationSeries(violations, () => true).size, 0);
  assert.match(formatAudit(violations), /^no violations\n$/);
});

test("an unowned identity is a violation; so is one without the namespaced annotation unless MIC is forced namespaced", () => {
  const state = cleanState();
  state.identities = [
    ...state.identities,
    { metadata: { name: "hand-made", namespace: "team-a", uid: "u1" }, spec: { resourceID: "/subscriptions/x/y", clientID: "c-pay" } },
  ];
  assert.deepEqual(kinds(audit(state)), ["UnownedIdentity team-a/hand-made", "IdentityNotNamespaced team-a/hand-made"]);
  state.options = { ...state.options, micForceNamespaced: true };
  assert.deepEqual(kinds(audit(state)), ["UnownedIdentity team-a/hand-made"]);
});

test("an owned identity whose MSI lost its tag for the namespace, or is gone from a complete listing, is stale", () => {
  const state = cleanState();
  const retagged = [msi("shop", "team-b", "c-shop"), msi("pay", "team-b", "c-pay")];
  state.listing = { ...state.listing, desired: desiredState(retagged, options), msis: retagged };
  assert.deepEqual(kinds(audit(state)), ["StaleIdentity team-a/shop-c-shop"]);
  const gone = [msi("pay", "team-b", "c-pay")];
  state.listing = { ...state.listing, desired: desiredState(gone, options), msis: gone };
  assert.deepEqual(kinds(audit(state)), ["StaleIdentity team-a/shop-c-shop"]);
});

test("identities of a subscription missing from the listing or answering 403 are unknown, not stale; a failed subscription with nothing here still counts", () => {
  const state = cleanState();
  state.listing = { desired: desiredState([], options), msis: [], subscriptions: [] };
  const missing = audit(state);
  assert.deepEqual(kinds(missing), ["SubscriptionUnknown team-a/shop-c-shop", "SubscriptionUnknown team-b/pay-c-pay"]);
  assert.match(missing[0]!.message, /missing from the Azure listing/);
  state.listing = { ...state.listing, subscriptions: [{ subscriptionId: SUB, complete: false, error: "HTTP 403 AuthorizationFailed" }] };
  const forbidden = audit(state);
  assert.deepEqual(kinds(forbidden), ["SubscriptionUnknown team-a/shop-c-shop", "SubscriptionUnknown team-b/pay-c-pay"]);
  assert.match(forbidden[0]!.message, /listing of subscription sub-1 failed \(HTTP 403 AuthorizationFailed\)/);
  state.identities = [];
  assert.deepEqual(kinds(audit(state)), ["SubscriptionUnknown /"]);
});

test("assigned identities: MIC's own in the identity's namespace pass; across namespaces or by another writer they do not", () => {
  const state = cleanState();
  state.assignedIdentities = [
    assigned("ok", "team-a", "team-a", "team-a", ["aad-pod-identity"]),
    // MIC's back-compat place for a non-namespaced identity's assignments.
    assigned("compat", "default", "team-a", "team-a", ["aad-pod-identity"]),
    assigned("cross", "team-a", "team-a", "team-b", ["aad-pod-identity"]),
    assigned("forged", "team-b", "team-b", "team-b", ["kubectl-create"]),
    assigned("edited", "team-a", "team-a", "team-a", ["aad-pod-identity", "kubectl-edit"]),
    assigned("unknown", "team-a", "team-a", "team-a", []),
  ];
  assert.deepEqual(kinds(audit(state)), [
    "AssignedIdentityCrossNamespace team-a/cross",
    "AssignedIdentityNotFromMic team-a/edited",
    "AssignedIdentityNotFromMic team-a/unknown",
    "AssignedIdentityNotFromMic team-b/forged",
  ]);
  state.options = { ...state.options, micManagers: ["aad-pod-identity", "kubectl-create", "kubectl-edit"] };
  assert.deepEqual(kinds(audit(state)), ["AssignedIdentityCrossNamespace team-a/cross", "AssignedIdentityNotFromMic team-a/unknown"]);
});

test("every pod identity exception is a violation", () => {
  const state = cleanState();
  state.exceptions = [{ metadata: { name: "skip", namespace: "team-a" } }];
  assert.deepEqual(kinds(audit(state)), ["PodIdentityException team-a/skip"]);
});

test("a ServiceAccount naming a listed MSI tagged elsewhere is a violation; tagged here or unknown to the listing it is not", () => {
  const state = cleanState();
  state.serviceAccounts = [
    { namespace: "team-a", name: "good", clientId: "C-SHOP" },
    { namespace: "team-a", name: "thief", uid: "u-thief", clientId: "c-pay" },
    { namespace: "team-a", name: "app-registration", clientId: "c-unknown" },
  ];
  const violations = audit(state);
  assert.deepEqual(kinds(violations), ["ServiceAccountUntaggedClientId team-a/thief"]);
  assert.match(violations[0]!.message, /tagged for team-b, not for team-a/);
  assert.equal(violations[0]!.azure?.msiId, MSIS[1]!.id);
});

test("FICs for this cluster's issuer not made by the operator, for a namespace the MSI is not tagged for, are violations", () => {
  const state = cleanState();
  const issuer = "https://issuer.example/cluster";
  state.options = { ...state.options, workload: { issuer, ownedFicPrefix: "abc_" } };
  const pay = { subscriptionId: SUB, resourceGroup: "rg", name: "pay" };
  const fic = (name: string, subject: string, from = issuer) => ({ name, issuer: from, subject, audiences: ["api://AzureADTokenExchange"] });
  state.fics = [
    {
      msi: pay,
      fics: [
        fic("abc_team-a_x", "system:serviceaccount:team-a:x"), // the operator's own (revoked by the FIC controller, not audited)
        fic("hand-made", "system:serviceaccount:team-b:app"), // tagged for team-b: fine
        fic("other-cluster", "system:serviceaccount:team-a:app", "https://elsewhere"), // not this cluster
        fic("stolen", "system:serviceaccount:team-a:app"), // the violation
      ],
    },
    // An MSI no longer listed: nothing known about its tag.
    { msi: { subscriptionId: SUB, resourceGroup: "rg", name: "gone" }, fics: [fic("stolen-too", "system:serviceaccount:team-a:app")] },
  ];
  const violations = audit(state);
  assert.deepEqual(kinds(violations), ["FederatedCredentialUntaggedNamespace team-a/app"]);
  assert.equal(violations[0]!.azure?.fic, "stolen");
});

test("Events go on the object, else on the namespace or the operator's pod; series count per kind and existing namespace", () => {
  const pod = { apiVersion: "v1", kind: "Pod", namespace: "ops", name: "op-1" };
  const onObject: Violation = {
    kind: "PodIdentityException",
    namespace: "team-a",
    object: { apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzurePodIdentityException", namespace: "team-a", name: "skip", uid: "u" },
    message: "m",
  };
  assert.equal(auditEvent(onObject, () => "ns-uid", pod)?.regarding.name, "skip");
  const fic: Violation = {
    kind: "FederatedCredentialUntaggedNamespace",
    namespace: "team-a",
    object: { apiVersion: "v1", kind: "ServiceAccount", namespace: "team-a", name: "app" },
    message: "m",
  };
  assert.deepEqual(auditEvent(fic, () => "ns-uid", pod)?.regarding, {
    apiVersion: "v1",
    kind: "Namespace",
    namespace: "team-a",
    name: "team-a",
    uid: "ns-uid",
  });
  assert.equal(
    auditEvent(fic, () => undefined, pod),
    undefined,
    "a namespace that does not exist takes no Event",
  );
  const cluster: Violation = { kind: "SubscriptionUnknown", namespace: "", message: "m" };
  assert.equal(auditEvent(cluster, () => undefined, pod)?.regarding, pod);
  assert.equal(
    auditEvent(cluster, () => undefined, undefined),
    undefined,
  );
  const series = violationSeries([onObject, onObject, fic, { ...fic, namespace: "gone" }, cluster], (namespace) => namespace === "team-a");
  assert.deepEqual(Object.fromEntries(series), {
    "PodIdentityException\u0000team-a": 2,
    "FederatedCredentialUntaggedNamespace\u0000team-a": 1,
    "FederatedCredentialUntaggedNamespace\u0000": 1,
    "SubscriptionUnknown\u0000": 1,
  });
  assert.equal(auditExitCode([cluster]), 1);
  assert.deepEqual(Object.keys(auditJson([cluster]).counts), [...VIOLATION_KINDS]);
  assert.match(
    formatAudit([onObject, cluster]),
    /^PodIdentityException \(1\):\n {2}! AzurePodIdentityException team-a\/skip: m\nSubscriptionUnknown \(1\):\n {2}! cluster: m\n2 violation\(s\) of 2 kind\(s\)\n$/,
  );
});

test("a stored PolicyReport equals a built one whatever its key order and timestamps; a changed result does not", () => {
  const violation: Violation = {
    kind: "StaleIdentity",
    namespace: "team-c",
    object: { apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentity", namespace: "team-c", name: "old", uid: "u" },
    message: "m",
  };
  const built = policyReportFor("team-c", [violation]);
  const stored = JSON.parse(
    JSON.stringify(built, (_key, value: unknown) =>
      value !== null && typeof value === "object" && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).reverse()) : value,
    ),
  ) as PolicyReport;
  stored.results = stored.results.map((result) => ({ ...result, timestamp: { seconds: 1, nanos: 0 } }));
  assert.equal(sameReport(stored, built), true);
  assert.equal(sameReport(stored, policyReportFor("team-c", [{ ...violation, message: "other" }])), false);
  assert.deepEqual(built.summary, { pass: 0, fail: 1, warn: 0, error: 0, skip: 0 });
  assert.equal(built.results[0]?.rule, "StaleIdentity");
});
