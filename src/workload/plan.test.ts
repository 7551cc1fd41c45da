import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { DesiredIdentity, DesiredState } from "../model/desired.js";
import { clusterNameFor, FIC_AUDIENCE, ficName } from "./names.js";
import { desiredFics, MAX_FICS_PER_MSI, planMsi, type DesiredFic, type FederatedCredential } from "./plan.js";

const keys = lookupLabelKeys("msi.azure.k8s.io/%s")!;
const ISSUER = "https://oidc.example/cluster-1/";
const CLUSTER = clusterNameFor(ISSUER);
const SUB = "00000000-0000-0000-0000-0000000000aa";

const identity = (namespace: string, msi: string, resourceGroup = "RG-Apps"): DesiredIdentity => ({
  namespace,
  name: `${msi}-id`,
  labels: { [keys.name]: msi.toLowerCase(), [keys.resourcegroup]: resourceGroup.toLowerCase(), [keys.subscription]: SUB },
  annotations: {},
  spec: {
    type: 0,
    resourceID: `/subscriptions/${SUB}/resourcegroups/${resourceGroup.toLowerCase()}/providers/microsoft.managedidentity/userassignedidentities/${msi}`,
    clientID: "c",
  },
  subscriptionId: SUB,
  msiId: `/subscriptions/${SUB}/resourceGroups/${resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${msi}`,
  resourceGroup,
  msiName: msi,
});
const state = (...identities: DesiredIdentity[]): DesiredState => {
  const byNamespace = new Map<string, Map<string, DesiredIdentity>>();
  for (const id of identities) {
    if (!byNamespace.has(id.namespace)) byNamespace.set(id.namespace, new Map());
    byNamespace.get(id.namespace)!.set(id.name, id);
  }
  return { byNamespace, skipped: [] };
};
const account = (namespace: string, name: string, msi?: string, resourceGroup = "rg-apps") => ({
  namespace,
  name,
  labels: msi ? { [keys.name]: msi, [keys.resourcegroup]: resourceGroup, [keys.subscription]: SUB } : {},
});
const context = { issuer: ISSUER, cluster: CLUSTER, lookupKeys: keys };

describe("FIC names", () => {
  test("readable when valid, a digest otherwise; always with the cluster's prefix and a valid Azure name", () => {
    assert.equal(ficName("c1", "team-a", "api"), "c1_team-a_api");
    assert.match(ficName("c1", "team-a", "api.v2"), /^c1_[0-9a-f]{24}$/, "a dot is not allowed in FIC names");
    assert.match(ficName("c1", "n".repeat(63), "s".repeat(60)), /^c1_[0-9a-f]{24}$/, "too long");
    assert.notEqual(ficName("c1", "a-b", "c"), ficName("c1", "a", "b-c"), "dashes cannot make two accounts collide");
    assert.match(clusterNameFor(ISSUER), /^[0-9a-f]{10}$/);
    assert.notEqual(clusterNameFor(ISSUER), clusterNameFor("https://oidc.example/cluster-2/"));
  });

  test("property: distinct ServiceAccounts get distinct, valid names", () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
    const subdomain = fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?$/);
    fc.assert(
      fc.property(label, subdomain, label, subdomain, (ns1, sa1, ns2, sa2) => {
        const [a, b] = [ficName(CLUSTER, ns1, sa1), ficName(CLUSTER, ns2, sa2)];
        assert.match(a, /^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/);
        if (ns1 !== ns2 || sa1 !== sa2) assert.notEqual(a, b);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("desired FICs", () => {
  test("one per labelled ServiceAccount, on the MSI tagged for its own namespace; labels compare case-insensitively", () => {
    const { byMsi, unmatched } = desiredFics(
      [account("team-a", "api", "shop"), account("team-a", "worker", "SHOP", "RG-APPS"), account("team-b", "thief", "shop"), account("team-a", "plain")],
      state(identity("team-a", "shop"), identity("team-b", "other")),
      context,
    );
    assert.deepEqual(
      [...byMsi.values()].map((entry) => [entry.msi, entry.wanted.map((fic) => fic.subject)]),
      [[{ subscriptionId: SUB, resourceGroup: "RG-Apps", name: "shop" }, ["system:serviceaccount:team-a:api", "system:serviceaccount:team-a:worker"]]],
    );
    const fic = [...byMsi.values()][0]!.wanted[0]!;
    assert.deepEqual(
      { issuer: fic.issuer, audiences: fic.audiences, name: fic.name },
      { issuer: ISSUER, audiences: [FIC_AUDIENCE], name: `${CLUSTER}_team-a_api` },
    );
    assert.deepEqual(
      unmatched.map((sa) => `${sa.namespace}/${sa.name}`),
      ["team-b/thief"],
      "team-a's MSI asked for from team-b: nothing, and reported",
    );
  });
});

describe("plan per MSI", () => {
  const want = (name: string): DesiredFic => ({
    name: `${CLUSTER}_team-a_${name}`,
    issuer: ISSUER,
    subject: `system:serviceaccount:team-a:${name}`,
    audiences: [FIC_AUDIENCE],
    namespace: "team-a",
    serviceAccount: name,
  });
  const ours = (name: string, subject = `system:serviceaccount:team-a:${name}`): FederatedCredential => ({
    name: `${CLUSTER}_team-a_${name}`,
    issuer: ISSUER,
    subject,
    audiences: [FIC_AUDIENCE],
  });
  const foreign = (name: string, issuer = "https://other.example/"): FederatedCredential => ({
    name,
    issuer,
    subject: `system:serviceaccount:x:${name}`,
    audiences: [FIC_AUDIENCE],
  });
  const plan = (wanted: DesiredFic[], actual: FederatedCredential[], mayRevoke = true) =>
    planMsi(wanted, actual, { issuer: ISSUER, cluster: CLUSTER, mayRevoke });

  test("missing is created, right is left alone (zero writes), drifted is updated", () => {
    assert.deepEqual(
      plan([want("api")], []).map((a) => a.kind),
      ["create"],
    );
    assert.deepEqual(plan([want("api")], [ours("api")]), []);
    assert.deepEqual(
      plan([want("api")], [ours("api", "system:serviceaccount:team-a:other")]).map((a) => a.kind),
      ["update"],
    );
  });

  test("only our own FICs are revoked, and only when the listing was complete", () => {
    const actual = [ours("gone"), foreign("theirs"), foreign(`${CLUSTER}_team-a_old`, "https://another-issuer.example/"), foreign("cluster2_x_y")];
    assert.deepEqual(plan([], actual), [{ kind: "delete", name: `${CLUSTER}_team-a_gone`, subject: "system:serviceaccount:team-a:gone" }]);
    assert.deepEqual(plan([], actual, false), [], "an incomplete listing revokes nothing");
  });

  test("Azure's 20 per MSI: creates past the limit are skipped, nobody else's FIC is deleted to make room", () => {
    const others = Array.from({ length: MAX_FICS_PER_MSI - 1 }, (_, i) => foreign(`theirs-${i}`));
    const actions = plan([want("a"), want("b"), want("c")], others);
    assert.deepEqual(
      actions.map((a) => a.kind),
      ["create", "skip", "skip"],
    );
    assert.match(actions[1]!.kind === "skip" ? actions[1]!.reason : "", /already has 20/);
    // Revoking one of ours first makes room for one new.
    assert.deepEqual(
      plan([want("a"), want("b")], [...others, ours("gone")]).map((a) => a.kind),
      ["delete", "create", "skip"],
    );
  });

  test("a name taken by another issuer, or the pair already federated by hand, is skipped, not fought over", () => {
    assert.deepEqual(
      plan([want("api")], [{ ...ours("api"), issuer: "https://elsewhere.example/" }]).map((a) => a.kind),
      ["skip"],
    );
    assert.deepEqual(
      plan([want("api")], [{ ...ours("api"), name: "made-by-hand" }]).map((a) => a.kind),
      ["skip"],
    );
  });
});
