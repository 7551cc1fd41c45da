import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import jsonpatch from "fast-json-patch";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { AzureIdentity } from "../kube/resources.js";
import { azureIdentityPatch, decideBinding, type BindingPolicy } from "./decide-binding.js";
import { decideGuarded, guardPolicyFrom, type GuardedKind, type GuardPolicy } from "./decide-guard.js";
import { loadReview } from "./fixtures.js";
import { admissionResponse } from "./respond.js";

const OPERATOR = "system:serviceaccount:azure-msi-operator:azure-msi-operator";
const MIC = "system:serviceaccount:default:aad-pod-id-mic-service-account";
const policy: GuardPolicy = {
  operatorUser: OPERATOR,
  adminUsers: new Set(["break-glass"]),
  adminGroups: new Set(["system:masters"]),
  micUsers: new Set([MIC]),
  namespaceTags: ["k8snamespace"],
};

/** Each guarded kind with a developer's create of it, and who besides the admins writes it. */
const KINDS: ReadonlyArray<{ kind: GuardedKind; fixture: string; writer: string | undefined; instead: RegExp }> = [
  {
    kind: "AzureIdentity",
    fixture: "identity-create-by-developer",
    writer: OPERATOR,
    instead: /tags the user-assigned managed identity in Azure with k8snamespace: team-a/,
  },
  {
    kind: "AzureAssignedIdentity",
    fixture: "assigned-identity-create-by-developer",
    writer: MIC,
    instead: /label the pod aadpodidbinding: <selector> matching an AzureIdentityBinding in "team-a"/,
  },
  { kind: "AzurePodIdentityException", fixture: "exception-create-by-developer", writer: undefined, instead: /use an AzureIdentityBinding/ },
];

describe("validate the kinds that decide who gets a token", () => {
  for (const { kind, fixture, writer, instead } of KINDS) {
    test(`${kind}: a developer's create, change and delete are denied with 403 and what to do instead; dry-run too`, () => {
      for (const operation of ["CREATE", "UPDATE", "DELETE"] as const) {
        for (const dryRun of [false, true]) {
          const review = loadReview(fixture);
          review.request.operation = operation;
          review.request.dryRun = dryRun;
          const decision = decideGuarded(kind, review.request, policy);
          assert.equal(decision.allowed, false, `${operation} dryRun=${dryRun}`);
          assert.equal(decision.code, 403);
          assert.match(
            decision.message ?? "",
            new RegExp(`^${kind} objects are .*: jane may not ${{ CREATE: "create", UPDATE: "change", DELETE: "delete" }[operation]} them\\. `),
          );
          assert.match(decision.message ?? "", instead);
        }
      }
    });

    test(`${kind}: admins pass; ${writer ? "its writer passes, the other writers do not" : "nobody else, not even the operator or MIC"}`, () => {
      const pass = (userInfo: { username: string; groups?: string[] }) => {
        const review = loadReview(fixture);
        review.request.userInfo = userInfo;
        return decideGuarded(kind, review.request, policy).allowed;
      };
      assert.equal(pass({ username: "break-glass" }), true);
      assert.equal(pass({ username: "admin", groups: ["system:masters"] }), true);
      for (const user of [OPERATOR, MIC]) assert.equal(pass({ username: user, groups: ["system:serviceaccounts"] }), user === writer, user);
    });

    test(`${kind}: namespace cleanup controllers may delete, but not create or change`, () => {
      const review = loadReview(fixture);
      review.request.userInfo = { username: "system:serviceaccount:kube-system:namespace-controller" };
      for (const [operation, allowed] of [
        ["DELETE", true],
        ["CREATE", false],
        ["UPDATE", false],
      ] as const) {
        review.request.operation = operation;
        assert.equal(decideGuarded(kind, review.request, policy).allowed, allowed, operation);
      }
    });
  }

  test("an UPDATE that only changes an AzureAssignedIdentity's status is judged like any other (the CRD has no status subresource)", () => {
    const review = loadReview("assigned-identity-status-update-by-developer");
    assert.notDeepEqual(review.request.object?.status, review.request.oldObject?.status);
    assert.equal(decideGuarded("AzureAssignedIdentity", review.request, policy).allowed, false);
    review.request.userInfo = { username: MIC };
    assert.equal(decideGuarded("AzureAssignedIdentity", review.request, policy).allowed, true);
  });

  test("the AzureIdentity denial names the tags the namespace template reads", () => {
    const request = loadReview("identity-create-by-developer").request;
    assert.match(decideGuarded("AzureIdentity", request, { ...policy, namespaceTags: ["team"] }).message ?? "", /with team: team-a;/);
    assert.match(
      decideGuarded("AzureIdentity", request, { ...policy, namespaceTags: ["k8s-ns", "team"] }).message ?? "",
      /with k8s-ns: team-a or team: team-a;/,
    );
    assert.match(
      decideGuarded("AzureIdentity", request, { ...policy, namespaceTags: [] }).message ?? "",
      /with the tag your namespace template reads set to team-a;/,
    );
    assert.doesNotMatch(decideGuarded("AzureIdentity", request, { ...policy, namespaceTags: ["team"] }).message ?? "", /k8snamespace/);
  });

  test("the namespace-controller fixture (a real DELETE) passes", () => {
    assert.equal(decideGuarded("AzureIdentity", loadReview("identity-delete-by-namespace-controller").request, policy).allowed, true);
  });

  test("a resource a validating webhook does not guard is allowed with a warning, also another guarded kind sent to the wrong path", () => {
    for (const resource of [
      { group: "", version: "v1", resource: "configmaps" },
      { group: "aadpodidentity.k8s.io", version: "v1", resource: "azureassignedidentities" },
    ]) {
      const review = loadReview("identity-create-by-developer");
      review.request.resource = resource;
      const decision = decideGuarded("AzureIdentity", review.request, policy);
      assert.equal(decision.allowed, true);
      assert.equal(decision.result, "unowned");
      assert.match(decision.warnings?.[0] ?? "", new RegExp(resource.resource));
    }
  });
});

describe("mutate AzureIdentityBinding", () => {
  const keys = lookupLabelKeys("msi.azure.k8s.io/%s");
  const owned = (namespace: string, name: string, msi: string): AzureIdentity => ({
    metadata: {
      name,
      namespace,
      labels: {
        "msi.azure.k8s.io/name": msi,
        "msi.azure.k8s.io/resourcegroup": "rg-a",
        "msi.azure.k8s.io/subscription": "00000000-0000-0000-0000-00000000000a",
      },
    },
  });
  const cache = new Map([
    ["team-a", [owned("team-a", "app-1111", "app")]],
    ["team-b", [owned("team-b", "other-2222", "other")]],
  ]);
  const bindingPolicy = (strict = false, namespaceTags: readonly string[] = ["k8snamespace"]): BindingPolicy => ({
    lookupKeys: keys,
    strict,
    identitiesIn: (ns) => cache.get(ns) ?? [],
    namespaceTags,
  });

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
    assert.match(strict.message ?? "", /tag the managed identity in Azure with k8snamespace: team-a$/);
    // The denial names the tag the configured namespace template reads.
    assert.match(decideBinding(review.request, bindingPolicy(true, ["team"])).message ?? "", /with team: team-a$/);
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
    const spec = fc.option(
      fc.dictionary(fc.constantFrom("azureIdentity", "selector", "weight", "extra"), fc.oneof(fc.string(), fc.integer(), fc.constant(null))),
      { nil: undefined },
    );
    fc.assert(
      fc.property(spec, fc.constantFrom("app-1111", "other"), (bindingSpec, name) => {
        const binding = {
          apiVersion: "aadpodidentity.k8s.io/v1",
          kind: "AzureIdentityBinding",
          metadata: { name: "b" },
          ...(bindingSpec === undefined ? {} : { spec: bindingSpec }),
        };
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

test("guardPolicyFrom: the --webhook.allow.* flags and the operator's own user, as the guard reads them", () => {
  assert.deepEqual(guardPolicyFrom(OPERATOR, { allowUsers: ["break-glass"], allowGroups: ["system:masters"], allowMic: [MIC] }, ["k8snamespace"]), policy);
});
