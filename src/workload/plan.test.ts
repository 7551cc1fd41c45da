import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { DesiredIdentity, DesiredState } from "../model/desired.js";
import { clusterNameFor, FIC_AUDIENCE, ficName } from "./names.js";
import {
  desiredFics,
  fairShares,
  isOurFic,
  MAX_FICS_PER_MSI,
  planMsi,
  sameSelection,
  selectionOf,
  type DesiredFic,
  type FederatedCredential,
  type NamespaceShare,
} from "./plan.js";

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
const account = (namespace: string, name: string, msi?: string, resourceGroup = "rg-apps", clientId?: string) => ({
  namespace,
  name,
  labels: msi ? { [keys.name]: msi, [keys.resourcegroup]: resourceGroup, [keys.subscription]: SUB } : {},
  clientId,
});
const withClient = (id: DesiredIdentity, clientID: string): DesiredIdentity => ({ ...id, spec: { ...id.spec, clientID } });
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

describe("desired FICs by the client-id annotation alone (the Azure Workload Identity convention)", () => {
  const SHOP = "5h0p0000-0000-0000-0000-000000000001";
  const OTHER = "07he0000-0000-0000-0000-000000000002";
  const tagged = state(withClient(identity("team-a", "shop"), SHOP), withClient(identity("team-b", "other"), OTHER));

  test("an annotation naming an MSI tagged for the account's namespace gets its FIC; one naming another namespace's MSI or an unknown one gets none and is not reported", () => {
    const { byMsi, unmatched } = desiredFics(
      [
        account("team-a", "api", undefined, undefined, SHOP.toUpperCase()),
        account("team-a", "thief", undefined, undefined, OTHER),
        account("team-a", "app-registration", undefined, undefined, "99999999-0000-0000-0000-000000000000"),
        account("team-a", "blank", undefined, undefined, " "),
      ],
      tagged,
      context,
    );
    assert.deepEqual(
      [...byMsi.values()].map((entry) => [entry.msi.name, entry.wanted.map((fic) => fic.name)]),
      [["shop", [`${CLUSTER}_team-a_api`]]],
    );
    assert.deepEqual(unmatched, [], "an annotation may name an app registration: nothing to warn about on every sync");
  });

  test("the lookup labels win over a disagreeing annotation, even when they match nothing", () => {
    const labelled = account("team-a", "api", "shop", "rg-apps", OTHER);
    assert.deepEqual(
      [...desiredFics([labelled], tagged, context).byMsi.values()].map((entry) => entry.msi.name),
      ["shop"],
    );
    const unmatchedLabels = account("team-a", "api", "nothing-here", "rg-apps", SHOP);
    const result = desiredFics([unmatchedLabels], tagged, context);
    assert.equal(result.byMsi.size, 0);
    assert.deepEqual(result.unmatched, [unmatchedLabels]);
  });

  test("property: a FIC only ever lands on an MSI tagged for the account's own namespace, whatever it names", () => {
    const namespaces = ["team-a", "team-b", "team-c"];
    const msis = ["m1", "m2", "m3"];
    const clientOf = (msi: string) => `client-${msi}`;
    fc.assert(
      fc.property(
        fc.array(fc.record({ namespace: fc.constantFrom(...namespaces), msi: fc.constantFrom(...msis) }), { maxLength: 6 }),
        fc.array(
          fc.record({
            namespace: fc.constantFrom(...namespaces),
            msi: fc.option(fc.constantFrom(...msis), { nil: undefined }),
            client: fc.option(fc.constantFrom(...msis.map(clientOf), "unknown"), { nil: undefined }),
          }),
          { maxLength: 8 },
        ),
        (tags, accounts) => {
          const desired = state(...tags.map((tag) => withClient(identity(tag.namespace, tag.msi), clientOf(tag.msi))));
          const sas = accounts.map((sa, i) => account(sa.namespace, `sa-${i}`, sa.msi, "rg-apps", sa.client));
          for (const entry of desiredFics(sas, desired, context).byMsi.values()) {
            for (const fic of entry.wanted) {
              assert.ok(
                tags.some((tag) => tag.namespace === fic.namespace && tag.msi === entry.msi.name),
                `${fic.subject} on ${entry.msi.name}`,
              );
              const sa = sas.find((candidate) => candidate.name === fic.serviceAccount)!;
              const selection = selectionOf(sa, keys)!;
              assert.equal(
                selection.by === "labels" ? sa.labels[keys.name] : selection.clientId,
                selection.by === "labels" ? entry.msi.name : clientOf(entry.msi.name),
              );
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  test("selection: labels when all three are there, else the annotation (trimmed, case-insensitive)", () => {
    assert.deepEqual(selectionOf(account("n", "a", undefined, undefined, " ABC "), keys), { by: "clientId", clientId: "abc" });
    assert.equal(selectionOf(account("n", "a"), keys), undefined);
    assert.equal(selectionOf(account("n", "a", "shop", "rg", "x"), keys)?.by, "labels");
    assert.ok(sameSelection(selectionOf(account("n", "a", "shop", "rg", "x"), keys), selectionOf(account("n", "a", "SHOP", "rg", "y"), keys)));
    assert.ok(!sameSelection(selectionOf(account("n", "a", undefined, undefined, "x"), keys), selectionOf(account("n", "a", undefined, undefined, "y"), keys)));
    assert.ok(!sameSelection(selectionOf(account("n", "a", undefined, undefined, "x"), keys), undefined));
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
      ["create", "skip", "skip", "share"],
    );
    assert.match(actions[1]!.kind === "skip" ? actions[1]!.reason : "", /already has 20/);
    assert.deepEqual(actions[3]!.kind === "share" && actions[3]!.share, {
      namespace: "team-a",
      asked: 3,
      holds: 0,
      slots: 1,
      share: 1,
      asking: 1,
      reason: "limit",
    });
    // Revoking one of ours first makes room for one new.
    assert.deepEqual(
      plan([want("a"), want("b")], [...others, ours("gone")]).map((a) => a.kind),
      ["delete", "create", "skip", "share"],
    );
  });

  test("a name taken by another issuer is skipped, not fought over; the pair already federated by hand is adopted, left as it is", () => {
    assert.deepEqual(
      plan([want("api")], [{ ...ours("api"), issuer: "https://elsewhere.example/" }]).map((a) => a.kind),
      ["skip"],
    );
    assert.deepEqual(plan([want("api")], [{ ...ours("api"), name: "made-by-hand" }]), []);
    assert.deepEqual(plan([want("api")], [{ ...ours("api"), name: "made-by-hand", audiences: ["x"] }]), [], "not ours to update");
    assert.deepEqual(plan([], [{ ...ours("api"), name: "made-by-hand" }]), [], "nor to revoke");
  });
});

describe("fair shares of an MSI's 20 FIC slots", () => {
  const demands = (...entries: [string, number, number][]) => new Map(entries.map(([namespace, holds, asks]) => [namespace, { holds, asks }]));
  const slots = (shares: Map<string, NamespaceShare>) => Object.fromEntries([...shares].map(([namespace, share]) => [namespace, share.slots]));

  test("three namespaces asking 10 each of 20 free slots: 7, 7, 6; one asking little leaves the rest to the others", () => {
    assert.deepEqual(slots(fairShares(demands(["a", 0, 10], ["b", 0, 10], ["c", 0, 10]), 20, 0)), { a: 7, b: 7, c: 6 });
    assert.deepEqual(slots(fairShares(demands(["a", 0, 2], ["b", 0, 10], ["c", 0, 10]), 20, 0)), { a: 2, b: 9, c: 9 });
    assert.deepEqual(slots(fairShares(demands(["a", 0, 3]), 20, 0)), { a: 3 });
  });

  test("what a namespace holds is never taken away to make room: it gets nothing more while another waits", () => {
    const shares = fairShares(demands(["a", 12, 20], ["b", 0, 10], ["c", 0, 10]), 8, 0);
    assert.deepEqual(slots(shares), { a: 12, b: 4, c: 4 });
    assert.deepEqual(
      { ...shares.get("a"), namespace: undefined },
      { namespace: undefined, asked: 20, holds: 12, slots: 12, share: 7, asking: 3, reason: "share" },
    );
  });

  test("a per-namespace cap limits grants (never what is held); unused slots stay free", () => {
    assert.deepEqual(slots(fairShares(demands(["a", 0, 10], ["b", 0, 10]), 20, 4)), { a: 4, b: 4 });
    assert.equal(fairShares(demands(["a", 0, 10], ["b", 0, 10]), 20, 4).get("a")!.reason, "cap");
    assert.deepEqual(slots(fairShares(demands(["a", 6, 10]), 14, 4)), { a: 6 });
  });

  test("property: within the free slots, nothing held is lost, no namespace past its ceiling, no slot left idle while someone waits, and none granted past another that waits by more than one", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(8), fc.nat(12)), { minLength: 1, maxLength: 5 }), fc.nat(20), fc.nat(6), (entries, free, cap) => {
        const input = demands(...entries.map(([holds, more], i): [string, number, number] => [`ns-${i}`, holds, holds + more]));
        const shares = fairShares(input, free, cap);
        const total = free + [...input.values()].reduce((sum, d) => sum + d.holds, 0);
        const ceiling = (d: { holds: number; asks: number }) => Math.max(d.holds, cap > 0 ? Math.min(d.asks, cap) : d.asks);
        let used = 0;
        for (const [namespace, d] of input) {
          const got = shares.get(namespace)!.slots;
          used += got;
          assert.ok(got >= d.holds && got <= ceiling(d), `${namespace}: ${got} of ${JSON.stringify(d)}`);
        }
        assert.ok(used <= total, "never past the free slots");
        const waiting = [...input].filter(([namespace, d]) => shares.get(namespace)!.slots < ceiling(d));
        if (used < total) assert.deepEqual(waiting, [], "work-conserving");
        for (const [namespace, d] of input) {
          const got = shares.get(namespace)!.slots;
          if (got <= d.holds) continue;
          for (const [other] of waiting) assert.ok(got <= shares.get(other)!.slots + 1, `${namespace} got ${got} while ${other} waits`);
        }
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("plan per MSI: shares, and FICs of a renamed cluster", () => {
  const wantInCluster = (namespace: string, name: string, cluster: string): DesiredFic => ({
    name: ficName(cluster, namespace, name),
    issuer: ISSUER,
    subject: `system:serviceaccount:${namespace}:${name}`,
    audiences: [FIC_AUDIENCE],
    namespace,
    serviceAccount: name,
  });
  const wantIn = (namespace: string, name: string, cluster = CLUSTER) => wantInCluster(namespace, name, cluster);
  const existing = (fic: DesiredFic): FederatedCredential => ({ name: fic.name, issuer: fic.issuer, subject: fic.subject, audiences: fic.audiences });

  test("three namespaces asking for 30 slots on an empty MSI: 7, 7, 6 created, the rest skipped for their share, one share note per namespace", () => {
    const wanted = ["team-a", "team-b", "team-c"].flatMap((namespace) =>
      Array.from({ length: 10 }, (_, i) => wantIn(namespace, `sa-${String(i).padStart(2, "0")}`)),
    );
    const actions = planMsi(wanted, [], { issuer: ISSUER, cluster: CLUSTER, mayRevoke: true });
    const creates = actions.filter((a) => a.kind === "create");
    assert.equal(creates.length, MAX_FICS_PER_MSI);
    const count = (namespace: string) => creates.filter((a) => a.kind === "create" && a.fic.namespace === namespace).length;
    assert.deepEqual([count("team-a"), count("team-b"), count("team-c")], [7, 7, 6]);
    const skips = actions.filter((a) => a.kind === "skip");
    assert.equal(skips.length, 10);
    assert.ok(skips.every((a) => a.kind === "skip" && a.why === "share" && /3 namespaces share the MSI and its fair share is (6|7)/.test(a.reason)));
    const notes = actions.flatMap((a) => (a.kind === "share" ? [a.share] : []));
    assert.deepEqual(
      notes.map((n) => [n.namespace, n.asked, n.slots]),
      [
        ["team-a", 10, 7],
        ["team-b", 10, 7],
        ["team-c", 10, 6],
      ],
    );
    // Once made, they are kept: the next plan is quiet but for the notes.
    const after = planMsi(
      wanted,
      creates.map((a) => existing((a as { fic: DesiredFic }).fic)),
      { issuer: ISSUER, cluster: CLUSTER, mayRevoke: true },
    );
    assert.deepEqual([...new Set(after.map((a) => a.kind))], ["skip", "share"]);
  });

  test("a namespace that filled the MSI first keeps its FICs; a newcomer waits and is told so; never a delete to make room", () => {
    const early = Array.from({ length: MAX_FICS_PER_MSI }, (_, i) => wantIn("team-a", `sa-${i}`));
    const late = [wantIn("team-b", "api")];
    const actions = planMsi([...early, ...late], early.map(existing), { issuer: ISSUER, cluster: CLUSTER, mayRevoke: true });
    assert.deepEqual(
      actions.map((a) => a.kind),
      ["skip", "share"],
    );
    assert.ok(!actions.some((a) => a.kind === "delete"));
  });

  test("after a rename of --workloadidentity.cluster, our FICs under the old name are adopted for the subjects still wanted, duplicates and unwanted ones revoked, hand-made ones left", () => {
    // From the default name (derived from the issuer) to a chosen one.
    const OLD = clusterNameFor(ISSUER);
    const CLUSTER = "renamed";
    const wantIn = (namespace: string, name: string, cluster = CLUSTER) => wantInCluster(namespace, name, cluster);
    const adopted = existing(wantIn("team-a", "api", OLD));
    const gone = existing(wantIn("team-a", "left", OLD));
    const duplicate = existing(wantIn("team-a", "both", OLD));
    const handMade: FederatedCredential = {
      name: "terraform_team-a_tool",
      issuer: ISSUER,
      subject: "system:serviceaccount:team-a:tool",
      audiences: [FIC_AUDIENCE],
    };
    const oldIssuer = { ...existing(wantIn("team-a", "moved", OLD)), issuer: "https://old-issuer.example/" };
    const actual = [adopted, gone, duplicate, existing(wantIn("team-a", "both")), handMade, oldIssuer];
    const actions = planMsi([wantIn("team-a", "api"), wantIn("team-a", "both"), wantIn("team-a", "new")], actual, {
      issuer: ISSUER,
      cluster: CLUSTER,
      mayRevoke: true,
    });
    assert.deepEqual(
      actions.map((a) => (a.kind === "delete" ? ["delete", a.name, a.keeps] : a.kind === "create" || a.kind === "update" ? [a.kind, a.fic.name] : [a.kind])),
      [
        ["delete", gone.name, undefined],
        ["delete", duplicate.name, ficName(CLUSTER, "team-a", "both")],
        ["create", ficName(CLUSTER, "team-a", "new")],
      ],
      "api keeps its old-named FIC (no outage, no duplicate); nothing else is touched",
    );
    assert.ok(isOurFic(adopted, { issuer: ISSUER, cluster: CLUSTER }));
    assert.ok(!isOurFic(handMade, { issuer: ISSUER, cluster: CLUSTER }), "a name not made by ficName under a known earlier name is nobody's we know");
    // A chosen earlier name counts once it is listed (--workloadidentity.cluster.previous).
    const fromChosen = existing(wantIn("team-a", "gone", "prod-eu"));
    assert.ok(!isOurFic(fromChosen, { issuer: ISSUER, cluster: CLUSTER }));
    assert.ok(isOurFic(fromChosen, { issuer: ISSUER, cluster: CLUSTER, previousClusters: ["prod-eu"] }));
    assert.ok(isOurFic(handMade, { issuer: ISSUER, cluster: CLUSTER, previousClusters: ["terraform"] }), "listing a name claims its FICs");
    assert.ok(!isOurFic(oldIssuer, { issuer: ISSUER, cluster: CLUSTER }), "another issuer: never ours to change or revoke");
    // An adopted FIC whose audiences drifted is updated under its own (old) name.
    const drifted = planMsi([wantIn("team-a", "api")], [{ ...adopted, audiences: ["x"] }], { issuer: ISSUER, cluster: CLUSTER, mayRevoke: true });
    assert.deepEqual(
      drifted.map((a) => (a.kind === "update" ? a.fic.name : a.kind)),
      [adopted.name],
    );
  });

  test("property: only our FICs are ever deleted, only when the listing was complete, and the MSI never holds more than 20", () => {
    const names = ["a", "b", "c", "d", "e", "f"];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("team-a", "team-b", "team-c"), fc.constantFrom(...names)), { maxLength: 24 }),
        fc.array(fc.tuple(fc.constantFrom("ours", "old", "foreign", "other-issuer"), fc.constantFrom("team-a", "team-b"), fc.constantFrom(...names)), {
          maxLength: 22,
        }),
        fc.boolean(),
        fc.nat(5),
        (wants, haves, mayRevoke, cap) => {
          const wanted = [...new Map(wants.map(([namespace, name]) => [`${namespace}/${name}`, wantIn(namespace, name)])).values()];
          const actual = [
            ...new Map(
              haves.map(([kind, namespace, name]): [string, FederatedCredential] => {
                const base = existing(wantIn(namespace, name, kind === "old" ? "old" : CLUSTER));
                // "old": a FIC made under an earlier, listed name of this cluster.
                const fic =
                  kind === "foreign"
                    ? { ...base, name: `hand-${namespace}-${name}` }
                    : kind === "other-issuer"
                      ? { ...base, issuer: "https://x.example/" }
                      : base;
                return [fic.name, fic];
              }),
            ).values(),
          ].slice(0, MAX_FICS_PER_MSI);
          const owner = { issuer: ISSUER, cluster: CLUSTER, previousClusters: ["old"] };
          const actions = planMsi(wanted, actual, { ...owner, mayRevoke, namespaceCap: cap });
          const deleted = actions.flatMap((a) => (a.kind === "delete" ? [a.name] : []));
          for (const name of deleted)
            assert.ok(
              isOurFic(
                actual.find((fic) => fic.name === name)!,
                owner,
              ),
            );
          if (!mayRevoke) assert.deepEqual(deleted, []);
          const created = actions.filter((a) => a.kind === "create").length;
          assert.ok(actual.length - deleted.length + created <= MAX_FICS_PER_MSI);
          const subjects = new Set([...actual.filter((fic) => !deleted.includes(fic.name)).map((fic) => `${fic.issuer} ${fic.subject}`)]);
          for (const a of actions) if (a.kind === "create") assert.ok(!subjects.has(`${a.fic.issuer} ${a.fic.subject}`), "never a second FIC for a subject");
        },
      ),
      { numRuns: 1_000 },
    );
  });
});
