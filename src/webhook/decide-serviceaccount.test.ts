import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import jsonpatch from "fast-json-patch";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { AzureIdentity } from "../kube/resources.js";
import type { AdmissionRequest, KubeObject } from "./admission.js";
import { annotationsPatch, mutateServiceAccount, pointerSegment, validateServiceAccount, type ServiceAccountPolicy } from "./decide-serviceaccount.js";
import { loadReview } from "./fixtures.js";
import { admissionResponse } from "./respond.js";

const CLIENT_ID = "azure.workload.identity/client-id";
const TENANT_ID = "azure.workload.identity/tenant-id";
const APP_CLIENT = "aaaaaaaa-0000-0000-0000-00000000000a";
const APP_TENANT = "7a7a7a7a-0000-0000-0000-00000000000a";
const OTHER_CLIENT = "bbbbbbbb-0000-0000-0000-00000000000b";
const keys = lookupLabelKeys("msi.azure.k8s.io/%s")!;

const owned = (namespace: string, msi: string, rg: string, sub: string, clientID: string, tenant?: string): AzureIdentity => ({
  metadata: {
    name: `${msi}-${clientID}`,
    namespace,
    labels: { [keys.name]: msi, [keys.resourcegroup]: rg, [keys.subscription]: sub },
    ...(tenant ? { annotations: { [TENANT_ID]: tenant } } : {}),
  },
  spec: { type: 0, resourceID: `/subscriptions/${sub}/resourcegroups/${rg}/providers/microsoft.managedidentity/userassignedidentities/${msi}`, clientID },
});
// team-a holds "app" (with its tenant), team-b "other"; the fixtures label for these.
const CACHE = new Map<string, AzureIdentity[]>([
  ["team-a", [owned("team-a", "app", "rg-a", "00000000-0000-0000-0000-00000000000a", APP_CLIENT, APP_TENANT)]],
  ["team-b", [owned("team-b", "other", "rg-b", "00000000-0000-0000-0000-00000000000b", OTHER_CLIENT)]],
]);
const policy = (changes: Partial<ServiceAccountPolicy> = {}): ServiceAccountPolicy => ({
  enable: true,
  strict: false,
  lookupKeys: keys,
  identitiesIn: (namespace) => CACHE.get(namespace) ?? [],
  allIdentities: () => [...CACHE.values()].flat(),
  namespaceTags: ["k8snamespace"],
  ...changes,
});
const admins = { adminUsers: new Set(["break-glass"]), adminGroups: new Set(["system:masters"]) };
const annotationsAfter = (request: AdmissionRequest, patch: jsonpatch.Operation[] | undefined) =>
  (jsonpatch.applyPatch(structuredClone(request.object), patch ?? []).newDocument as KubeObject).metadata?.annotations;

describe("mutate ServiceAccount (workload identity mode)", () => {
  test("a labelled ServiceAccount without annotations gets client-id and tenant-id in one add, sent as base64 JSONPatch", () => {
    const review = loadReview("serviceaccount-create-labelled");
    const decision = mutateServiceAccount(review.request, policy());
    assert.equal(decision.result, "patched");
    assert.deepEqual(decision.patch, [{ op: "add", path: "/metadata/annotations", value: { [CLIENT_ID]: APP_CLIENT, [TENANT_ID]: APP_TENANT } }]);
    assert.deepEqual(annotationsAfter(review.request, decision.patch as jsonpatch.Operation[]), { [CLIENT_ID]: APP_CLIENT, [TENANT_ID]: APP_TENANT });
    const response = admissionResponse(review.apiVersion, review.request.uid, decision).response;
    assert.equal(response.patchType, "JSONPatch");
    assert.deepEqual(JSON.parse(Buffer.from(response.patch ?? "", "base64").toString()), decision.patch);
  });

  test("existing annotations stay; each key is added or replaced with / escaped as ~1; a wrong client-id is corrected", () => {
    const review = loadReview("serviceaccount-create-labelled");
    review.request.object!.metadata!.annotations = { team: "a", [CLIENT_ID]: OTHER_CLIENT };
    const decision = mutateServiceAccount(review.request, policy());
    assert.deepEqual(decision.patch, [
      { op: "replace", path: "/metadata/annotations/azure.workload.identity~1client-id", value: APP_CLIENT },
      { op: "add", path: "/metadata/annotations/azure.workload.identity~1tenant-id", value: APP_TENANT },
    ]);
    assert.deepEqual(annotationsAfter(review.request, decision.patch as jsonpatch.Operation[]), {
      team: "a",
      [CLIENT_ID]: APP_CLIENT,
      [TENANT_ID]: APP_TENANT,
    });
  });

  test("labels and a client-id annotation that disagree: the labels decide, the annotation is replaced and the warning says so", () => {
    const review = loadReview("serviceaccount-create-labelled");
    review.request.object!.metadata!.annotations = { [CLIENT_ID]: OTHER_CLIENT.toUpperCase(), [TENANT_ID]: APP_TENANT };
    const decision = mutateServiceAccount(review.request, policy());
    assert.equal(decision.result, "patched");
    assert.equal(decision.warnings?.length, 1);
    assert.match(decision.warnings[0]!, /disagrees with the lookup labels \(managed identity app\): replaced by aaaaaaaa-.*the labels decide/);
    // Agreeing in another case: patched to Azure's spelling, nothing to warn about.
    review.request.object!.metadata!.annotations = { [CLIENT_ID]: APP_CLIENT.toUpperCase(), [TENANT_ID]: APP_TENANT };
    assert.equal(mutateServiceAccount(review.request, policy()).warnings, undefined);
    // Labels naming no identity of the namespace: the annotation is left, and the warning says it gets no FIC while the labels stay.
    review.request.object!.metadata!.labels = { ...review.request.object!.metadata!.labels, [keys.name]: "other", [keys.resourcegroup]: "rg-b" };
    review.request.object!.metadata!.annotations = { [CLIENT_ID]: APP_CLIENT };
    const unmatched = mutateServiceAccount(review.request, policy());
    assert.deepEqual([unmatched.allowed, unmatched.patch], [true, undefined]);
    assert.match(unmatched.warnings?.[1] ?? "", /the lookup labels decide .* gets none while they match nothing/);
  });

  test("already right: no patch (idempotent under reinvocation)", () => {
    const review = loadReview("serviceaccount-create-labelled");
    review.request.object!.metadata!.annotations = { [CLIENT_ID]: APP_CLIENT, [TENANT_ID]: APP_TENANT };
    assert.deepEqual(mutateServiceAccount(review.request, policy()), { allowed: true, result: "allowed" });
  });

  test("an identity without the tenant annotation (mode just turned on): only client-id, a tenant-id already there is left alone", () => {
    const review = loadReview("serviceaccount-create-labelled");
    review.request.object!.metadata!.annotations = { [TENANT_ID]: "someone-elses" };
    const withoutTenant = owned("team-a", "app", "rg-a", "00000000-0000-0000-0000-00000000000a", APP_CLIENT);
    const decision = mutateServiceAccount(review.request, policy({ identitiesIn: () => [withoutTenant] }));
    assert.deepEqual(decision.patch, [{ op: "add", path: "/metadata/annotations/azure.workload.identity~1client-id", value: APP_CLIENT }]);
  });

  test("lookup values compare case-insensitively, as Azure names do", () => {
    const review = loadReview("serviceaccount-create-labelled");
    review.request.object!.metadata!.labels = { [keys.name]: "APP", [keys.resourcegroup]: "RG-A", [keys.subscription]: "00000000-0000-0000-0000-00000000000A" };
    assert.equal(mutateServiceAccount(review.request, policy()).result, "patched");
  });

  test("relabelled to another namespace's MSI: allowed, not filled, a short warning; denied with 403 when strict, naming the tag", () => {
    const review = loadReview("serviceaccount-update-relabelled");
    const lenient = mutateServiceAccount(review.request, policy());
    assert.equal(lenient.allowed, true);
    assert.equal(lenient.patch, undefined);
    assert.match(
      lenient.warnings?.[0] ?? "",
      /^no AzureIdentity for managed identity other \(resource group rg-b, .*\) is assigned to namespace "team-a" \(yet\)/,
    );
    assert.ok((lenient.warnings?.[0] ?? "").length <= 256);
    const strict = mutateServiceAccount(review.request, policy({ strict: true }));
    assert.equal(strict.allowed, false);
    assert.equal(strict.code, 403);
    assert.match(strict.message ?? "", /tag the managed identity in Azure with k8snamespace: team-a$/);
    assert.match(mutateServiceAccount(review.request, policy({ strict: true, namespaceTags: ["team"] })).message ?? "", /with team: team-a$/);
  });

  test("an identity being deleted does not count", () => {
    const review = loadReview("serviceaccount-create-labelled");
    const deleting = { ...CACHE.get("team-a")![0]!, metadata: { ...CACHE.get("team-a")![0]!.metadata, deletionTimestamp: new Date() } };
    assert.equal(mutateServiceAccount(review.request, policy({ identitiesIn: () => [deleting] })).patch, undefined);
  });

  test("untouched: mode off, no or partial labels, an empty label format, DELETE; another resource is unowned", () => {
    const untouched = { allowed: true, result: "allowed" };
    assert.deepEqual(mutateServiceAccount(loadReview("serviceaccount-create-labelled").request, policy({ enable: false })), untouched);
    assert.deepEqual(mutateServiceAccount(loadReview("serviceaccount-create-annotated-by-developer").request, policy()), untouched);
    const partial = loadReview("serviceaccount-create-labelled");
    delete partial.request.object!.metadata!.labels![keys.subscription];
    assert.deepEqual(mutateServiceAccount(partial.request, policy()), untouched);
    assert.deepEqual(mutateServiceAccount(loadReview("serviceaccount-create-labelled").request, policy({ lookupKeys: undefined })), untouched);
    const deletion = loadReview("serviceaccount-create-labelled");
    deletion.request.operation = "DELETE";
    assert.deepEqual(mutateServiceAccount(deletion.request, policy()), untouched);
    for (const resource of [
      { group: "", version: "v1", resource: "configmaps" },
      { group: "aadpodidentity.k8s.io", version: "v1", resource: "serviceaccounts" },
    ]) {
      const review = loadReview("serviceaccount-create-labelled");
      review.request.resource = resource;
      const decision = mutateServiceAccount(review.request, policy());
      assert.equal(decision.result, "unowned");
      assert.equal(decision.patch, undefined);
      assert.match(decision.warnings?.[0] ?? "", /ServiceAccount webhook was called for .*; check the MutatingWebhookConfiguration's rules/);
    }
  });

  test("pointer segments escape ~ before /", () => {
    assert.equal(pointerSegment("a~/b/~1"), "a~0~1b~1~01");
  });

  test("property: applied with fast-json-patch the patch gives the object with exactly the wanted annotations set, and nothing else changed", () => {
    const key = fc.constantFrom(CLIENT_ID, TENANT_ID, "team", "a~b/c", "kubectl.kubernetes.io/last-applied-configuration");
    const annotations = fc.option(fc.dictionary(key, fc.constantFrom(APP_CLIENT, APP_TENANT, OTHER_CLIENT, "")), { nil: undefined });
    const metadata = fc.option(
      // Through JSON, as the API server sends it: plain objects, an absent key rather than one set to undefined.
      fc
        .record({ name: fc.constant("sa"), annotations, labels: fc.constant({ app: "x" }) }, { requiredKeys: ["name"] })
        .map((value) => JSON.parse(JSON.stringify(value)) as NonNullable<KubeObject["metadata"]>),
      { nil: undefined },
    );
    const wanted = fc.oneof(
      fc.constant({ [CLIENT_ID]: APP_CLIENT }),
      fc.constant({ [CLIENT_ID]: APP_CLIENT, [TENANT_ID]: APP_TENANT }),
      fc.dictionary(key, fc.string(), { minKeys: 1 }).map((value) => ({ ...value })),
    );
    fc.assert(
      fc.property(metadata, wanted, (meta, want) => {
        const object: KubeObject = { apiVersion: "v1", kind: "ServiceAccount", ...(meta === undefined ? {} : { metadata: meta }), secrets: [{ name: "s" }] };
        const before = structuredClone(object);
        const patch = annotationsPatch(object, want);
        assert.deepEqual(object, before, "the object itself is not modified");
        const expected = { ...object, metadata: { ...object.metadata, annotations: { ...object.metadata?.annotations, ...want } } };
        const patched = jsonpatch.applyPatch(structuredClone(object), patch as jsonpatch.Operation[], true).newDocument;
        assert.deepEqual(patched, expected);
        const alreadyRight = Object.entries(want).every(([name, value]) => object.metadata?.annotations?.[name] === value);
        assert.equal(patch.length === 0, alreadyRight);
        // The same operations a deep compare of before and after gives (order aside).
        const byPath = (ops: readonly { path: string }[]) => [...ops].sort((a, b) => a.path.localeCompare(b.path));
        assert.deepEqual(byPath(patch), byPath(jsonpatch.compare(object, expected)));
      }),
    );
  });
});

describe("validate ServiceAccount (workload identity mode)", () => {
  const annotated = (clientId: string | undefined, change: (request: AdmissionRequest) => void = () => undefined) => {
    const review = loadReview("serviceaccount-create-annotated-by-developer");
    const annotations = review.request.object!.metadata!.annotations!;
    if (clientId === undefined) delete annotations[CLIENT_ID];
    else annotations[CLIENT_ID] = clientId;
    change(review.request);
    return review.request;
  };

  test("another team's client ID: 403 saying what to do (the lookup labels, the tag the namespace template reads); dry-run too", () => {
    for (const dryRun of [false, true]) {
      const decision = validateServiceAccount(
        annotated(OTHER_CLIENT, (request) => (request.dryRun = dryRun)),
        policy(),
        admins,
      );
      assert.equal(decision.allowed, false);
      assert.equal(decision.code, 403);
      const message = decision.message ?? "";
      assert.match(
        message,
        /^azure\.workload\.identity\/client-id names only managed identities assigned to the ServiceAccount's namespace: jane may not set it/,
      );
      assert.match(message, new RegExp(`"${OTHER_CLIENT}", which no AzureIdentity in "team-a" has`));
      assert.match(message, /Azure tags decide/);
      assert.match(
        message,
        /label the ServiceAccount with msi\.azure\.k8s\.io\/name, msi\.azure\.k8s\.io\/resourcegroup and msi\.azure\.k8s\.io\/subscription/,
      );
      assert.match(message, /tagged in Azure with k8snamespace: team-a;/);
    }
    assert.match(
      validateServiceAccount(annotated(OTHER_CLIENT), policy({ namespaceTags: ["k8s-ns", "team"] }), admins).message ?? "",
      /k8s-ns: team-a or team: team-a/,
    );
    assert.match(validateServiceAccount(annotated(OTHER_CLIENT), policy({ lookupKeys: undefined }), admins).message ?? "", /a platform admin tags/);
  });

  test("its own namespace's client ID passes, in any case; the same ID in another namespace does not", () => {
    assert.equal(validateServiceAccount(annotated(APP_CLIENT), policy(), admins).allowed, true);
    assert.equal(validateServiceAccount(annotated(APP_CLIENT.toUpperCase()), policy(), admins).allowed, true);
    const inTeamB = annotated(APP_CLIENT, (request) => (request.namespace = "team-b"));
    assert.equal(validateServiceAccount(inTeamB, policy(), admins).allowed, false);
    assert.equal(
      validateServiceAccount(
        annotated(OTHER_CLIENT, (request) => (request.namespace = "team-b")),
        policy(),
        admins,
      ).allowed,
      true,
    );
  });

  test("an empty value, or an identity being deleted, is no client ID of the namespace: unknown, so allowed with a warning, denied under strict", () => {
    const deleting = { ...CACHE.get("team-a")![0]!, metadata: { ...CACHE.get("team-a")![0]!.metadata, deletionTimestamp: new Date() } };
    const onlyDeleting = { identitiesIn: () => [deleting], allIdentities: () => [deleting] };
    for (const [request, changes] of [
      [annotated(""), {}],
      [annotated(APP_CLIENT), onlyDeleting],
    ] as const) {
      const lenient = validateServiceAccount(request, policy(changes), admins);
      assert.deepEqual([lenient.allowed, lenient.unknownClientId, lenient.warnings?.length], [true, true, 1]);
      const strict = validateServiceAccount(request, policy({ ...changes, strict: true }), admins);
      assert.deepEqual([strict.allowed, strict.code, strict.unknownClientId], [false, 403, true]);
    }
    // Being deleted in team-b is no evidence that the client ID is team-b's.
    const deletingInB = { ...deleting, metadata: { ...deleting.metadata, namespace: "team-b" } };
    const decision = validateServiceAccount(annotated(APP_CLIENT), policy({ identitiesIn: () => [], allIdentities: () => [deletingInB] }), admins);
    assert.equal(decision.allowed, true);
  });

  test("a client ID the operator does not know (an app registration, another tool's MSI): allowed with a warning and flagged for the metric; denied under strict", () => {
    const appRegistration = "cccccccc-0000-0000-0000-00000000000c";
    const decision = validateServiceAccount(annotated(appRegistration), policy(), admins);
    assert.deepEqual([decision.allowed, decision.result, decision.unknownClientId], [true, "allowed", true]);
    assert.match(decision.warnings?.[0] ?? "", /"cccccccc-0000-0000-0000-00000000000c" is no managed identity this operator lists: it grants nothing unless/);
    const response = admissionResponse("admission.k8s.io/v1", "u", decision).response;
    assert.ok((response.warnings?.[0]?.length ?? 0) <= 256, "fits the API server's warning length");
    const strict = validateServiceAccount(annotated(appRegistration), policy({ strict: true }), admins);
    assert.deepEqual([strict.allowed, strict.code, strict.result, strict.unknownClientId], [false, 403, "denied", true]);
    assert.match(
      strict.message ?? "",
      /--workloadidentity\.strict admits only managed identities tagged for the namespace\. Azure tags decide .* k8snamespace: team-a/,
    );
    // Another namespace's MSI is refused whatever strict says, and is not "unknown".
    for (const strictness of [false, true]) {
      const foreign = validateServiceAccount(annotated(OTHER_CLIENT.toUpperCase()), policy({ strict: strictness }), admins);
      assert.deepEqual([foreign.allowed, foreign.unknownClientId], [false, undefined]);
    }
  });

  test("property: denied exactly when the client ID is another namespace's and not this one's, or unknown under strict", () => {
    const clients = ["c1", "c2", "c3", "c4"];
    const identities = fc.array(fc.record({ namespace: fc.constantFrom("team-a", "team-b", "team-c"), client: fc.constantFrom(...clients) }), { maxLength: 6 });
    fc.assert(
      fc.property(identities, fc.constantFrom(...clients), fc.boolean(), (held, client, strict) => {
        const all = held.map(({ namespace, client: id }) => owned(namespace, "m", "rg", "s", id));
        const decision = validateServiceAccount(
          annotated(client),
          policy({ strict, identitiesIn: (namespace) => all.filter((i) => i.metadata?.namespace === namespace), allIdentities: () => all }),
          admins,
        );
        const own = held.some((h) => h.namespace === "team-a" && h.client === client);
        const elsewhere = held.some((h) => h.namespace !== "team-a" && h.client === client);
        assert.equal(decision.allowed, own || (!elsewhere && !strict));
        assert.equal(decision.unknownClientId === true, !own && !elsewhere);
      }),
      { numRuns: 500 },
    );
  });

  test("the admins (users and groups) may set any client ID", () => {
    const byAdmin = annotated(OTHER_CLIENT, (request) => (request.userInfo = { username: "admin", groups: ["system:masters"] }));
    assert.equal(validateServiceAccount(byAdmin, policy(), admins).allowed, true);
    const byUser = annotated(OTHER_CLIENT, (request) => (request.userInfo = { username: "break-glass" }));
    assert.equal(validateServiceAccount(byUser, policy(), admins).allowed, true);
  });

  test("removing the annotation passes; an update that keeps it as stored passes, one that changes it is judged", () => {
    const old = (clientId: string) => (request: AdmissionRequest) => {
      request.operation = "UPDATE";
      request.oldObject = { ...structuredClone(request.object), metadata: { name: "grab", namespace: "team-a", annotations: { [CLIENT_ID]: clientId } } };
    };
    assert.equal(validateServiceAccount(annotated(undefined, old(OTHER_CLIENT)), policy(), admins).allowed, true, "removed");
    assert.equal(validateServiceAccount(annotated(OTHER_CLIENT, old(OTHER_CLIENT)), policy(), admins).allowed, true, "kept as stored");
    assert.equal(validateServiceAccount(annotated(OTHER_CLIENT, old(APP_CLIENT)), policy(), admins).allowed, false, "changed to another team's");
    assert.equal(validateServiceAccount(annotated(OTHER_CLIENT.toUpperCase(), old(OTHER_CLIENT)), policy(), admins).allowed, false, "changed in case");
  });

  test("the relabel fixture keeps team-a's own client ID: allowed", () => {
    assert.equal(validateServiceAccount(loadReview("serviceaccount-update-relabelled").request, policy(), admins).allowed, true);
  });

  test("allowed: mode off, DELETE, no annotation; another resource is unowned", () => {
    assert.equal(validateServiceAccount(annotated(OTHER_CLIENT), policy({ enable: false }), admins).allowed, true);
    assert.equal(
      validateServiceAccount(
        annotated(OTHER_CLIENT, (request) => (request.operation = "DELETE")),
        policy(),
        admins,
      ).allowed,
      true,
    );
    assert.deepEqual(validateServiceAccount(loadReview("serviceaccount-create-labelled").request, policy(), admins), { allowed: true, result: "allowed" });
    const misrouted = annotated(OTHER_CLIENT, (request) => (request.resource = { group: "", version: "v1", resource: "secrets" }));
    const decision = validateServiceAccount(misrouted, policy(), admins);
    assert.equal(decision.result, "unowned");
    assert.match(decision.warnings?.[0] ?? "", /check the ValidatingWebhookConfiguration's rules/);
  });
});
