// The shipped webhook configurations against the code they call: one validating webhook per guarded
// kind on the path that judges it, each failing closed, each skipped (matchConditions) by exactly
// whom the guard allows anyway with the shipped Deployment's env (Kubernetes' own cleanup deletes,
// the admins, the kind's own writer), and nothing outside aadpodidentity.k8s.io. The
// workload identity overlay adds the ServiceAccount webhooks, scoped so that plain ServiceAccounts
// and the control plane's never reach them.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1Deployment, V1MutatingWebhook, V1MutatingWebhookConfiguration, V1ValidatingWebhookConfiguration } from "@kubernetes/client-node";
import { FLAGS } from "../src/config/flags.js";
import { lookupLabelKeys } from "../src/kube/lookup.js";
import { AAD_GROUP, WI_CLIENT_ID_ANNOTATION } from "../src/kube/resources.js";
import { GUARDS, NAMESPACE_CLEANUP_USERS } from "../src/webhook/decide-guard.js";
import { MUTATE_BINDING_PATH, MUTATE_SERVICE_ACCOUNT_PATH, VALIDATE_SERVICE_ACCOUNT_PATH, VALIDATING_WEBHOOKS, WEBHOOK_PATHS } from "../src/webhook/server.js";
import { OPERATOR_NAMESPACE } from "./controlplane/controlplane.js";
import { loadManifest, withOverlayPatches, WORKLOAD_IDENTITY_OVERLAY } from "./support/manifests.js";
import { evaluateCel, KINDS, OPERATIONS, policyOf, skipTable, webhookFor } from "./support/match-conditions.js";
import { startTestWebhook } from "./support/webhook-server.js";

const objects = await loadManifest("webhooks.yaml");
const validating = objects.find((object) => object.kind === "ValidatingWebhookConfiguration") as V1ValidatingWebhookConfiguration;
const mutating = objects.find((object) => object.kind === "MutatingWebhookConfiguration") as V1MutatingWebhookConfiguration;

test("one fail-closed validating webhook per guarded kind, on the path that judges that kind, for every write", () => {
  const shipped = (validating.webhooks ?? []).map((webhook) => ({
    path: webhook.clientConfig.service?.path,
    resources: webhook.rules?.flatMap((rule) => rule.resources ?? []),
    groups: [...new Set(webhook.rules?.flatMap((rule) => rule.apiGroups ?? []))],
    operations: webhook.rules?.flatMap((rule) => rule.operations ?? []),
    failurePolicy: webhook.failurePolicy,
    matchPolicy: webhook.matchPolicy,
    sideEffects: webhook.sideEffects,
  }));
  const expected = VALIDATING_WEBHOOKS.map(({ path, kind }) => ({
    path,
    resources: [GUARDS[kind].resource, `${GUARDS[kind].resource}/status`],
    groups: [AAD_GROUP],
    operations: ["CREATE", "UPDATE", "DELETE"],
    failurePolicy: "Fail",
    matchPolicy: "Equivalent",
    sideEffects: "None",
  }));
  assert.deepEqual(shipped, expected);
});

test("every validating webhook skips Kubernetes' own cleanup DELETEs, the admins, and its kind's own writer through matchConditions", () => {
  const names = Object.fromEntries((validating.webhooks ?? []).map((webhook) => [webhook.name, (webhook.matchConditions ?? []).map((c) => c.name)]));
  const common = ["skip-kubernetes-cleanup", "skip-admin-groups"];
  assert.deepEqual(names, {
    "azureidentities.azure-msi-operator.aadpodidentity.k8s.io": [...common, "skip-operator"],
    "azureassignedidentities.azure-msi-operator.aadpodidentity.k8s.io": [...common, "skip-mic"],
    "azurepodidentityexceptions.azure-msi-operator.aadpodidentity.k8s.io": common,
  });
  for (const webhook of validating.webhooks ?? []) {
    const cleanup = webhook.matchConditions![0]!.expression;
    assert.match(cleanup, /^!\(request\.operation == 'DELETE' && request\.userInfo\.username in \[[^\]]*\]\)$/, webhook.name);
    const users = [...cleanup.matchAll(/'(system:serviceaccount:[^']+)'/g)].map((match) => match[1]);
    assert.deepEqual(users.sort(), [...NAMESPACE_CLEANUP_USERS].sort(), webhook.name);
    // Simple expressions, far below the API server's 64 conditions per webhook and its CEL cost limit.
    assert.ok((webhook.matchConditions ?? []).length <= 4, webhook.name);
  }
});

test("matchConditions skip the webhook exactly where the guard allows, with the policy of the shipped Deployment's env: every principal × guarded kind × operation", async () => {
  const deployment = (await loadManifest("deployment.yaml")).find((object) => object.kind === "Deployment") as V1Deployment;
  const policy = policyOf(JSON.parse(JSON.stringify(deployment)) as V1Deployment);
  const cells = skipTable(validating, policy);
  assert.deepEqual(
    cells.filter((cell) => cell.admission === "error"),
    [],
    "no condition errors (an error with failurePolicy Fail refuses)",
  );
  const wrong = cells.filter((cell) => (cell.admission === "skip") !== cell.guardAllows);
  assert.deepEqual(wrong, [], "skipped exactly where the guard allows anyway");
  // The table is not vacuous: each kind has skips and calls, and jane is called everywhere.
  for (const kind of KINDS) {
    assert.ok(
      cells.some((cell) => cell.kind === kind && cell.admission === "skip"),
      kind,
    );
    assert.ok(
      cells.some((cell) => cell.kind === kind && cell.admission === "call"),
      kind,
    );
  }
  assert.ok(cells.filter((cell) => cell.who === "jane").every((cell) => cell.admission === "call"));
  const skipped = (who: RegExp) =>
    new Set(cells.filter((cell) => who.test(cell.who) && cell.admission === "skip").map((cell) => `${cell.kind} ${cell.operation}`));
  assert.deepEqual(skipped(/^the operator$/), new Set(OPERATIONS.map((operation) => `AzureIdentity ${operation}`)));
  assert.deepEqual(skipped(/^MIC /), new Set(OPERATIONS.map((operation) => `AzureAssignedIdentity ${operation}`)));
  assert.deepEqual(skipped(/^cleanup /), new Set(KINDS.map((kind) => `${kind} DELETE`)));
  assert.equal(skipped(/^a member of system:masters$/).size, KINDS.length * OPERATIONS.length);
  // And the check sees a condition one kind too broad: MIC skipping the AzurePodIdentityException webhook.
  const broader = JSON.parse(JSON.stringify(validating)) as V1ValidatingWebhookConfiguration;
  const mic = webhookFor(broader, "AzureAssignedIdentity").matchConditions!.find((condition) => condition.name === "skip-mic")!;
  webhookFor(broader, "AzurePodIdentityException").matchConditions!.push(mic);
  assert.deepEqual(
    [
      ...new Set(
        skipTable(broader, policy)
          .filter((cell) => (cell.admission === "skip") !== cell.guardAllows)
          .map((cell) => `${cell.kind} ${cell.who}`),
      ),
    ].sort(),
    [...policy.micUsers].map((user) => `AzurePodIdentityException MIC ${user}`).sort(),
  );
});

test("the CEL evaluator the table relies on: CEL's answers for the forms rendered, an absent field an error, anything else refused", () => {
  const request = (username: string, groups?: string[]) => ({ operation: "DELETE" as const, userInfo: { username, ...(groups ? { groups } : {}) } });
  assert.equal(evaluateCel("!(request.operation == 'DELETE' && request.userInfo.username in ['a', 'b'])", request("b")), false);
  assert.equal(evaluateCel("!(request.operation == 'CREATE' && request.userInfo.username in ['a', 'b'])", request("b")), true);
  assert.equal(evaluateCel("!(request.userInfo.username in ['a'])", request("c")), true);
  const groups = "!(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in ['x', 'y']))";
  assert.equal(evaluateCel(groups, request("c", ["z", "y"])), false);
  assert.equal(evaluateCel(groups, request("c", ["z"])), true);
  assert.equal(evaluateCel(groups, request("c")), true, "has() guards the absent field");
  assert.throws(() => evaluateCel("request.userInfo.groups.exists(g, g in ['x'])", request("c")), /no such key/);
  assert.throws(() => evaluateCel("request.userInfo.uid == 'x'", request("c")), /outside the rendered subset/);
  assert.throws(() => evaluateCel("size(request.userInfo.groups) > 0", request("c", [])), /outside the rendered subset/);
});

test("the mutating webhook sees only binding creates and updates, and never blocks them", () => {
  const webhook = mutating.webhooks?.[0];
  assert.equal(mutating.webhooks?.length, 1);
  assert.equal(webhook?.clientConfig.service?.path, MUTATE_BINDING_PATH);
  assert.deepEqual(
    webhook?.rules?.flatMap((rule) => rule.operations ?? []),
    ["CREATE", "UPDATE"],
  );
  assert.equal(webhook?.failurePolicy, "Ignore");
});

const overlay = await withOverlayPatches(objects, WORKLOAD_IDENTITY_OVERLAY);
const overlayValidating = overlay.find((object) => object.kind === "ValidatingWebhookConfiguration") as V1ValidatingWebhookConfiguration;
const overlayMutating = overlay.find((object) => object.kind === "MutatingWebhookConfiguration") as V1MutatingWebhookConfiguration;
const pathOf = (webhook: { clientConfig: { service?: { path?: string } } }) => webhook.clientConfig.service?.path;
const saWebhook = (configuration: { webhooks?: V1MutatingWebhook[] }, path: string) => {
  const found = (configuration.webhooks ?? []).filter((webhook) => pathOf(webhook) === path);
  assert.equal(found.length, 1, `one webhook on ${path}`);
  return found[0]!;
};

test("workload identity overlay: the base's webhooks unchanged, one ServiceAccount webhook appended to each configuration", () => {
  // As JSON: the base is parsed into the client's classes, the patched copy is plain data.
  const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
  assert.deepEqual(plain(overlayValidating.webhooks?.slice(0, -1)), plain(validating.webhooks));
  assert.deepEqual(plain(overlayMutating.webhooks?.slice(0, -1)), plain(mutating.webhooks));
  assert.equal(pathOf(overlayValidating.webhooks!.at(-1)!), VALIDATE_SERVICE_ACCOUNT_PATH);
  assert.equal(pathOf(overlayMutating.webhooks!.at(-1)!), MUTATE_SERVICE_ACCOUNT_PATH);
});

test("every webhook the base and the overlay ship calls a path the server answers (a 404 would fail closed), and every route is shipped", async () => {
  const shipped = [...(overlayValidating.webhooks ?? []), ...(overlayMutating.webhooks ?? [])].map(pathOf);
  assert.deepEqual([...shipped].sort(), [...WEBHOOK_PATHS].sort());
  const webhook = await startTestWebhook();
  try {
    for (const path of shipped) {
      const review = {
        apiVersion: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        request: { uid: "u", kind: {}, resource: {}, operation: "CREATE", userInfo: {} },
      };
      const body = {
        ...review,
        request: { ...review.request, kind: { group: "", version: "v1", kind: "X" }, resource: { group: "", version: "v1", resource: "x" } },
      };
      const answer = await webhook.post(path ?? "/", JSON.stringify(body));
      assert.equal(answer.status, 200, `${path}: ${answer.body}`);
    }
  } finally {
    await webhook.close();
  }
});

test("the ServiceAccount webhooks: core serviceaccounts only, CREATE and UPDATE, 5 s, Equivalent, no side effects; validating fails closed, mutating is ignored and reinvoked", () => {
  const validatingSa = saWebhook(overlayValidating, VALIDATE_SERVICE_ACCOUNT_PATH);
  const mutatingSa = saWebhook(overlayMutating, MUTATE_SERVICE_ACCOUNT_PATH);
  for (const webhook of [validatingSa, mutatingSa]) {
    assert.deepEqual(webhook.rules, [
      { apiGroups: [""], apiVersions: ["v1"], resources: ["serviceaccounts"], operations: ["CREATE", "UPDATE"], scope: "Namespaced" },
    ]);
    assert.equal(webhook.sideEffects, "None");
    assert.equal(webhook.timeoutSeconds, 5);
    assert.equal(webhook.matchPolicy, "Equivalent");
  }
  assert.equal(validatingSa.failurePolicy, "Fail");
  assert.equal(mutatingSa.failurePolicy, "Ignore");
  assert.equal(mutatingSa.reinvocationPolicy, "IfNeeded");
});

test("the ServiceAccount webhooks never see kube-system's or the operator's own ServiceAccounts (namespaceSelector)", () => {
  for (const webhook of [saWebhook(overlayValidating, VALIDATE_SERVICE_ACCOUNT_PATH), saWebhook(overlayMutating, MUTATE_SERVICE_ACCOUNT_PATH)]) {
    assert.deepEqual(webhook.namespaceSelector, {
      matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["kube-system", OPERATOR_NAMESPACE] }],
    });
  }
});

test("matchConditions: mutating only labelled objects (the default format's name label), validating only those that carry the client-id annotation", () => {
  const nameLabel = lookupLabelKeys(String(FLAGS.find((flag) => flag.name === "kubernetes.label.format")?.default))?.name;
  assert.equal(nameLabel, "msi.azure.k8s.io/name");
  assert.deepEqual(saWebhook(overlayMutating, MUTATE_SERVICE_ACCOUNT_PATH).matchConditions, [
    { name: "labelled-for-an-identity", expression: `has(object.metadata.labels) && '${nameLabel}' in object.metadata.labels` },
  ]);
  // The object alone: an UPDATE that adds the annotation carries it; one that removes it is always allowed, so not sent.
  assert.deepEqual(saWebhook(overlayValidating, VALIDATE_SERVICE_ACCOUNT_PATH).matchConditions, [
    { name: "names-a-client-id", expression: `has(object.metadata.annotations) && '${WI_CLIENT_ID_ANNOTATION}' in object.metadata.annotations` },
  ]);
});

test("the overlay's Deployment turns the mode on, through an env var the operator reads", async () => {
  const deployment = (await withOverlayPatches(await loadManifest("deployment.yaml"), WORKLOAD_IDENTITY_OVERLAY)).find(
    (object) => object.kind === "Deployment",
  ) as V1Deployment;
  const env = deployment.spec?.template.spec?.containers[0]?.env ?? [];
  assert.deepEqual(
    env.filter((variable) => variable.name.startsWith("WORKLOADIDENTITY_")),
    [{ name: "WORKLOADIDENTITY_ENABLE", value: "true" }],
  );
  assert.ok(FLAGS.find((flag) => flag.name === "workloadidentity.enable")?.env?.includes("WORKLOADIDENTITY_ENABLE"));
});
