import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import jsonpatch from "fast-json-patch";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { AzureIdentity } from "../kube/resources.js";
import { azureIdentityPatch, decideBinding, type BindingPolicy } from "./decide-binding.js";
import { decideIdentity, type IdentityPolicy } from "./decide-identity.js";
import { loadReview } from "./fixtures.js";
import { admissionResponse } from "./respond.js";

const policy: IdentityPolicy = {
  operatorUser: "system:serviceaccount:azure-msi-operator:azure-msi-operator",
  allowedUsers: new Set(["break-glass"]),
  allowedGroups: new Set(["system:masters"]),
};

describe("validate AzureIdentity", () => {
  test("a developer's create is denied with 403 and a message that says how to get an identity", () => {
    const decision = decideIdentity(loadReview("identity-create-by-developer").request, policy);
    assert.equal(decision.allowed, false);
    assert.equal(decision.code, 403);
    assert.match(decision.message ?? "", /jane may not create them/);
    assert.match(decision.message ?? "", /k8snamespace: team-a/);
  });

  test("dry-run is judged the same", () => {
    const review = loadReview("identity-create-by-developer");
    review.request.dryRun = true;
    assert.equal(decideIdentity(review.request, policy).allowed, false);
  });

  test("the operator, allowed users and allowed groups pass", () => {
    for (const userInfo of [{ username: policy.operatorUser }, { username: "break-glass" }, { username: "admin", groups: ["system:masters"] }]) {
      const review = loadReview("identity-create-by-developer");
      review.request.userInfo = userInfo;
      assert.equal(decideIdentity(review.request, policy).allowed, true, userInfo.username);
    }
  });

  test("namespace cleanup controllers may delete, but not create", () => {
    const review = loadReview("identity-delete-by-namespace-controller");
    assert.equal(decideIdentity(review.request, policy).allowed, true);
    review.request.operation = "CREATE";
    assert.equal(decideIdentity(review.request, policy).allowed, false);
  });

  test("a resource it does not own is allowed with a warning", () => {
    const review = loadReview("identity-create-by-developer");
    review.request.resource = { group: "", version: "v1", resource: "configmaps" };
    const decision = decideIdentity(review.request, policy);
    assert.equal(decision.allowed, true);
    assert.equal(decision.result, "unowned");
    assert.match(decision.warnings?.[0] ?? "", /configmaps/);
  });
});

describe("mutate AzureIdentityBinding", () => {
  const keys = lookupLabelKeys("msi.azure.k8s.io/%s");
  const owned = (namespace: string, name: string, msi: string): AzureIdentity => ({
    metadata: {
      name,
      namespace,
      labels: { "msi.azure.k8s.io/name": msi, "msi.azure.k8s.io/resourcegroup": "rg-a", "msi.azure.k8s.io/subscription": "00000000-0000-0000-0000-00000000000a" },
    },
  });
  const cache = new Map([
    ["team-a", [owned("team-a", "app-1111", "app")]],
    ["team-b", [owned("team-b", "other-2222", "other")]],
  ]);
  const bindingPolicy = (strict = false): BindingPolicy => ({ lookupKeys: keys, strict, identitiesIn: (ns) => cache.get(ns) ?? [] });

  test("a labelled binding gets spec.azureIdentity, as a JSONPatch computed from before and after", () => {
    const review = loadReview("binding-create-labelled");
    const decision = decideBinding(review.request, bindingPolicy());
    assert.equal(decision.result, "patched");
    const patched = jsonpatch.applyPatch(structuredClone(review.request.object), decision.patch ?? []).newDocument;
    assert.equal((patched as { spec: { azureIdentity: string; selector: string } }).spec.azureIdentity, "app-1111");
    assert.equal((patched as { spec: { selector: string } }).spec.selector, "app");
    const response = admissionResponse(review.apiVersion, review.request.uid, decision).response;
    assert.equal(response.patchType, "JSONPatch");
    assert.deepEqual(JSON.parse(Buffer.from(response.patch ?? "", "base64").toString()), decision.patch);
  });

  test("an already-right binding gets no patch (idempotent under reinvocation)", () => {
    const review = loadReview("binding-create-labelled");
    review.request.object!.spec = { selector: "app", azureIdentity: "app-1111" };
    const decision = decideBinding(review.request, bindingPolicy());
    assert.equal(decision.allowed, true);
    assert.equal(decision.patch, undefined);
  });

  test("labels naming another namespace's MSI: not filled, warned; denied when strict", () => {
    const review = loadReview("binding-create-labelled");
    review.request.object!.metadata!.labels!["msi.azure.k8s.io/name"] = "other";
    const lenient = decideBinding(review.request, bindingPolicy());
    assert.equal(lenient.allowed, true);
    assert.equal(lenient.patch, undefined);
    assert.match(lenient.warnings?.[0] ?? "", /no AzureIdentity for managed identity other/);
    const strict = decideBinding(review.request, bindingPolicy(true));
    assert.equal(strict.allowed, false);
    assert.equal(strict.code, 403);
  });

  test("a binding without the labels passes untouched, answered in v1beta1 when asked in v1beta1", () => {
    const review = loadReview("binding-create-unlabelled-v1beta1");
    const decision = decideBinding(review.request, bindingPolicy());
    assert.deepEqual(decision, { allowed: true, result: "allowed" });
    const body = admissionResponse(review.apiVersion, review.request.uid, decision);
    assert.equal(body.apiVersion, "admission.k8s.io/v1beta1");
    assert.equal(body.response.uid, review.request.uid);
  });

  test("the patch is what a deep compare of the binding before and after gives, and applying it sets spec.azureIdentity", () => {
    const spec = fc.option(fc.dictionary(fc.constantFrom("azureIdentity", "selector", "weight", "extra"), fc.oneof(fc.string(), fc.integer(), fc.constant(null))), { nil: undefined });
    fc.assert(
      fc.property(spec, fc.constantFrom("app-1111", "other"), (bindingSpec, name) => {
        const binding = { apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentityBinding", metadata: { name: "b" }, ...(bindingSpec === undefined ? {} : { spec: bindingSpec }) };
        const patch = azureIdentityPatch(binding, name);
        assert.deepEqual(patch, jsonpatch.compare(binding, { ...binding, spec: { ...bindingSpec, azureIdentity: name } }));
        const patched: { spec?: Record<string, unknown> } = jsonpatch.applyPatch(structuredClone(binding), patch).newDocument;
        assert.equal(patched.spec?.azureIdentity, name);
      }),
    );
  });

  test("with an empty label format nothing is filled", () => {
    const review = loadReview("binding-create-labelled");
    assert.equal(decideBinding(review.request, { ...bindingPolicy(), lookupKeys: undefined }).patch, undefined);
  });
});
