// The shipped webhook configurations against the code they call: one validating webhook per guarded
// kind on the path that judges it, each failing closed, each letting Kubernetes' own cleanup skip it
// (the same users the webhook itself lets delete), and nothing outside aadpodidentity.k8s.io.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1MutatingWebhookConfiguration, V1ValidatingWebhookConfiguration } from "@kubernetes/client-node";
import { AAD_GROUP } from "../src/kube/resources.js";
import { GUARDS, NAMESPACE_CLEANUP_USERS } from "../src/webhook/decide-guard.js";
import { MUTATE_BINDING_PATH, VALIDATING_WEBHOOKS } from "../src/webhook/server.js";
import { loadManifest } from "./support/manifests.js";

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
