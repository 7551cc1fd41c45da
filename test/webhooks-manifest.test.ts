// The shipped webhook configurations against the code they call: one validating webhook per guarded
// kind on the path that judges it, each failing closed, each letting Kubernetes' own cleanup skip it
// (the same users the webhook itself lets delete), and nothing outside aadpodidentity.k8s.io. The
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

test("every validating webhook skips exactly Kubernetes' own cleanup DELETEs through matchConditions", () => {
  for (const webhook of validating.webhooks ?? []) {
    const conditions = webhook.matchConditions ?? [];
    assert.equal(conditions.length, 1, webhook.name);
    const expression = conditions[0]!.expression;
    assert.match(expression, /^!\(request\.operation == 'DELETE' && request\.userInfo\.username in \[[^\]]*\]\)$/, webhook.name);
    const users = [...expression.matchAll(/'(system:serviceaccount:[^']+)'/g)].map((match) => match[1]);
    assert.deepEqual(users.sort(), [...NAMESPACE_CLEANUP_USERS].sort(), webhook.name);
  }
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
