// `diff`'s FIC section: planned with the controller's own functions, rendered so that a revocation
// costing tokens cannot be missed, and (property) exactly the writes the controller then makes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import pino from "pino";
import { Metrics } from "../metrics/metrics.js";
import { FicController, type ServiceAccountView } from "./fic-controller.js";
import { account, CLUSTER, clientIdOf, context, identity, MemoryFicApi, msiRef, ourFic, state } from "./fixtures.js";
import { ficName, serviceAccountSubject } from "./names.js";
import { MAX_FICS_PER_MSI, msiKey, type FederatedCredential, type MsiRef } from "./plan.js";
import { ficChangeCount, ficTargets, formatFicPreview, outageRevocations, previewFics, type FicPreview, type MsiFicListing } from "./preview.js";

const shop = msiRef("shop");
const shared = msiRef("shared");
const other = msiRef("other");
const previewContext = { ...context, previousClusters: [], namespaceCap: 0 };
const foreign = (i: number): FederatedCredential => ({
  name: `terraform-${i}`,
  issuer: "https://other.example/",
  subject: `system:serviceaccount:x:y${i}`,
  audiences: ["api://AzureADTokenExchange"],
});

function preview(
  accounts: ServiceAccountView[],
  desired: ReturnType<typeof state>,
  onAzure: Map<MsiRef, FederatedCredential[]>,
  options: { complete?: boolean; fail?: MsiRef } = {},
): FicPreview {
  const targets = ficTargets(accounts, desired, context, [...onAzure.keys()]);
  const on = new Map([...onAzure].map(([msi, fics]) => [msiKey(msi), fics]));
  const listed: MsiFicListing[] = [...targets.targets.values()].map((msi) =>
    options.fail && msiKey(msi) === msiKey(options.fail) ? { msi, error: "HTTP 403" } : { msi, fics: [...(on.get(msiKey(msi)) ?? [])] },
  );
  return previewFics({ targets, listed, serviceAccounts: accounts, context: previewContext, complete: options.complete ?? true });
}

describe("the FIC preview", () => {
  test("a create, an outage revocation, a skip for the fair share; the revocation stands out", () => {
    // shared: tagged for team-a and team-b, 18 FICs of another issuer, and ours for team-b/old (gone).
    const desired = state(identity("team-a", shop), identity("team-a", shared), identity("team-b", shared));
    const accounts = [
      account("team-a", "api", shop),
      account("team-a", "one", shared),
      account("team-a", "two", shared),
      account("team-b", "three", shared),
      account("team-b", "four", shared),
    ];
    const onAzure = new Map<MsiRef, FederatedCredential[]>([
      [shop, [ourFic("team-a", "api")]],
      [shared, [...Array.from({ length: 18 }, (_, i) => foreign(i)), ourFic("team-b", "old")]],
      [other, []],
    ]);
    const result = preview(accounts, desired, onAzure);
    assert.equal(result.looked, 3);
    assert.equal(result.unchanged, 1, "team-a/api is right");
    assert.deepEqual(
      result.msis.map((msi) => msi.msi),
      [`/subscriptions/${shared.subscriptionId}/resourceGroups/rg-fic/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared`],
    );
    const [msi] = result.msis;
    // 19 now, one revoked: 2 free slots for 2 namespaces asking 2 each: one each.
    assert.deepEqual(
      msi!.changes.map((change) => `${change.action} ${change.name}`),
      [`revoke ${ficName(CLUSTER, "team-b", "old")}`, `create ${ficName(CLUSTER, "team-a", "one")}`, `create ${ficName(CLUSTER, "team-b", "four")}`],
    );
    assert.equal(msi!.before, 19);
    assert.equal(msi!.after, 20);
    assert.deepEqual(
      msi!.skipped.map((skip) => `${skip.namespace}/${skip.serviceAccount} ${skip.why}`),
      ["team-a/two share", "team-b/three share"],
    );
    assert.deepEqual(
      msi!.shares.map((share) => [share.namespace, share.asked, share.slots, share.share]),
      [
        ["team-a", 2, 1, 1],
        ["team-b", 2, 1, 1],
      ],
    );
    const revoke = msi!.changes[0]!;
    assert.ok(revoke.action === "revoke");
    assert.equal(revoke.keeps, null);
    assert.equal(revoke.reason, "ServiceAccount team-b/old no longer exists");
    assert.equal(ficChangeCount(result), 3);
    assert.equal(outageRevocations(result).length, 1);

    const text = formatFicPreview(result);
    const lines = text.split("\n");
    // The banner comes before any MSI's block, framed, with the subject and why.
    const banner = lines.findIndex((line) => line.startsWith("!!! REVOKE: 1 federated identity credential(s) would be deleted"));
    assert.ok(banner > 0 && banner < lines.findIndex((line) => line.startsWith("MSI ")), text);
    assert.match(lines[banner - 1]!, /^!{100}$/);
    assert.match(lines[banner + 1]!, /^!!! {3}system:serviceaccount:team-b:old on \/subscriptions\/.*\/shared: ServiceAccount team-b\/old no longer exists$/);
    assert.match(lines[banner + 2]!, /^!{100}$/);
    assert.match(text, /^MSI \/subscriptions\/.*\/shared \(19 of 20 FICs now, 20 after\)$/m);
    assert.match(
      text,
      new RegExp(`^  - REVOKE FIC ${ficName(CLUSTER, "team-b", "old")} \\(subject system:serviceaccount:team-b:old\\): .*lose their Azure tokens$`, "m"),
    );
    assert.match(
      text,
      new RegExp(`^  \\+ create FIC ${ficName(CLUSTER, "team-a", "one")} for ServiceAccount team-a/one \\(subject system:serviceaccount:team-a:one\\)$`, "m"),
    );
    assert.match(text, /^ {2}! skip ServiceAccount team-a\/two \(share\): namespace "team-a" has 1 of the MSI's 20 .* fair share is 1$/m);
    assert.match(text, /^ {2}! namespace team-b asks for 2 FICs, gets 1 \(share: 2 namespace\(s\) ask, fair share 1\)$/m);
    assert.match(text, /^FICs: 3 MSIs looked at; 2 to create, 0 to change, 1 to revoke \(1 losing tokens\), 1 unchanged, 2 skipped$/m);
  });

  test("a full MSI skips for Azure's limit; a drifted FIC is changed field by field", () => {
    const desired = state(identity("team-a", shop));
    const accounts = [account("team-a", "api", shop), account("team-a", "late", shop)];
    const drifted = { ...ourFic("team-a", "api"), audiences: ["api://Other"] };
    const onAzure = new Map([[shop, [drifted, ...Array.from({ length: MAX_FICS_PER_MSI - 1 }, (_, i) => foreign(i))]]]);
    const result = preview(accounts, desired, onAzure);
    const [msi] = result.msis;
    assert.deepEqual(msi!.changes, [
      {
        action: "change",
        name: drifted.name,
        subject: serviceAccountSubject("team-a", "api"),
        namespace: "team-a",
        serviceAccount: "api",
        fields: [{ field: "audiences", from: '["api://Other"]', to: '["api://AzureADTokenExchange"]' }],
      },
    ]);
    assert.deepEqual(
      msi!.skipped.map((skip) => [skip.serviceAccount, skip.why]),
      [["late", "limit"]],
    );
    const text = formatFicPreview(result);
    assert.match(
      text,
      /^ {2}~ change FIC .*_team-a_api for ServiceAccount team-a\/api\n {6}audiences: \["api:\/\/Other"\] -> \["api:\/\/AzureADTokenExchange"\]$/m,
    );
    assert.match(text, /^ {2}! skip ServiceAccount team-a\/late \(limit\): the MSI already has 20 federated identity credentials/m);
    assert.doesNotMatch(text, /REVOKE/);
  });

  test("why a FIC goes: a duplicate after a rename (no banner), an account that names nothing or another MSI, a tag removed", () => {
    const desired = state(identity("team-a", shop), identity("team-a", other));
    const renamed = { ...previewContext, cluster: "renamed" };
    const accounts = [account("team-a", "kept", shop), account("team-a", "bare"), account("team-a", "moved", other), account("team-b", "untagged", shop)];
    const onAzure = new Map<MsiRef, FederatedCredential[]>([
      [
        shop,
        [
          // Both names serve team-a/kept: the new one stays, the old default name's duplicate goes.
          ourFic("team-a", "kept"),
          { ...ourFic("team-a", "kept"), name: ficName("renamed", "team-a", "kept") },
          { ...ourFic("team-a", "bare"), name: ficName("renamed", "team-a", "bare") },
          { ...ourFic("team-a", "moved"), name: ficName("renamed", "team-a", "moved") },
          { ...ourFic("team-b", "untagged"), name: ficName("renamed", "team-b", "untagged") },
        ],
      ],
      [other, []],
    ]);
    const targets = ficTargets(accounts, desired, renamed, [...onAzure.keys()]);
    const on = new Map([...onAzure].map(([msi, fics]) => [msiKey(msi), fics]));
    const listed = [...targets.targets.values()].map((msi) => ({ msi, fics: on.get(msiKey(msi))! }));
    const result = previewFics({ targets, listed, serviceAccounts: accounts, context: renamed, complete: true });
    const shopChanges = result.msis.find((msi) => msi.msi.endsWith("/shop"))!.changes;
    const reasons = Object.fromEntries(shopChanges.flatMap((change) => (change.action === "revoke" ? [[change.name, [change.keeps, change.reason]]] : [])));
    assert.deepEqual(reasons, {
      [ficName(CLUSTER, "team-a", "kept")]: [
        ficName("renamed", "team-a", "kept"),
        `a duplicate: ${ficName("renamed", "team-a", "kept")} stays for the same subject, so no token is lost`,
      ],
      [ficName("renamed", "team-a", "bare")]: [null, "ServiceAccount team-a/bare no longer names an MSI (no lookup labels, no client-id annotation)"],
      [ficName("renamed", "team-a", "moved")]: [
        null,
        `ServiceAccount team-a/moved now names another MSI (/subscriptions/${other.subscriptionId}/resourceGroups/rg-fic/providers/Microsoft.ManagedIdentity/userAssignedIdentities/other)`,
      ],
      [ficName("renamed", "team-b", "untagged")]: [null, "the MSI ServiceAccount team-b/untagged names is not tagged for namespace team-b (any more)"],
    });
    assert.deepEqual(result.unmatched, [{ namespace: "team-b", name: "untagged" }]);
    const text = formatFicPreview(result);
    assert.match(text, /^!!! REVOKE: 3 federated identity credential\(s\)/m, "the duplicate is not among those losing tokens");
    assert.match(text, new RegExp(`^ {2}- revoke FIC ${CLUSTER}_team-a_kept \\(subject system:serviceaccount:team-a:kept\\): a duplicate: `, "m"));
    assert.match(text, /^! ServiceAccount team-b\/untagged: its lookup labels name no MSI tagged for namespace team-b$/m);
  });

  test("an annotation-only ServiceAccount is planned like a labelled one", () => {
    const desired = state(identity("team-a", shop));
    const annotated = { ...account("team-a", "awi"), clientId: clientIdOf(shop).toUpperCase() };
    const result = preview([annotated], desired, new Map([[shop, []]]));
    assert.deepEqual(
      result.msis.flatMap((msi) => msi.changes.map((change) => `${change.action} ${change.name}`)),
      [`create ${ficName(CLUSTER, "team-a", "awi")}`],
    );
  });

  test("an incomplete listing revokes nothing and says so; an MSI whose FICs cannot be read is an error", () => {
    const desired = state(identity("team-a", shop));
    const onAzure = new Map([[shop, [ourFic("team-a", "gone")]]]);
    const incomplete = preview([], desired, onAzure, { complete: false });
    assert.equal(ficChangeCount(incomplete), 0);
    assert.deepEqual(incomplete.msis, []);
    assert.match(formatFicPreview(incomplete), /^! no revocation planned: the Azure listing is incomplete/m);
    const failed = preview([account("team-a", "api", shop)], desired, onAzure, { fail: shop });
    assert.deepEqual(failed.errors, [
      { msi: `/subscriptions/${shop.subscriptionId}/resourceGroups/rg-fic/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shop`, error: "HTTP 403" },
    ]);
    assert.equal(failed.looked, 0);
    assert.match(formatFicPreview(failed), /^! MSI \/subscriptions\/.*\/shop: its federated identity credentials could not be listed: HTTP 403$/m);
  });

  test("property: the preview's creates, changes and revocations are exactly the writes the FIC controller then makes", async () => {
    const teams = ["team-a", "team-b", "team-c"];
    const msis = [shop, shared];
    const accountArb = fc.record({ team: fc.constantFrom(...teams), name: fc.constantFrom("a", "b", "c", "d", "e", "f"), msi: fc.constantFrom(0, 1) });
    const seen = { put: 0, remove: 0, skipped: 0 };
    const ficArb = fc.record({
      team: fc.constantFrom(...teams),
      name: fc.constantFrom("a", "b", "c", "g", "h"),
      msi: fc.constantFrom(0, 1),
      drift: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(accountArb, { selector: (a) => `${a.team}/${a.name}`, maxLength: 12 }),
        fc.uniqueArray(ficArb, { selector: (f) => `${f.msi}/${f.team}/${f.name}`, maxLength: 10 }),
        fc.nat({ max: 19 }),
        fc.subarray(teams, { minLength: 1 }),
        fc.nat({ max: 3 }),
        async (wanted, existing, foreignCount, tagged, cap) => {
          const desired = state(...tagged.flatMap((team) => [identity(team, shop), identity(team, shared)]));
          const accounts = wanted.map((a) => account(a.team, a.name, msis[a.msi]));
          const onAzure = new Map<MsiRef, FederatedCredential[]>(
            msis.map((msi) => [msi, Array.from({ length: msi === shared ? foreignCount : 0 }, (_, i) => foreign(i))]),
          );
          for (const fic of existing) onAzure.get(msis[fic.msi]!)!.push({ ...ourFic(fic.team, fic.name), ...(fic.drift ? { audiences: ["x"] } : {}) });
          const targets = ficTargets(accounts, desired, context, msis);
          const on = new Map([...onAzure].map(([msi, fics]) => [msiKey(msi), fics]));
          const listed = [...targets.targets.values()].map((msi) => ({ msi, fics: on.get(msiKey(msi))!.map((fic) => ({ ...fic })) }));
          const result = previewFics({ targets, listed, serviceAccounts: accounts, context: { ...previewContext, namespaceCap: cap }, complete: true });
          const planned = result.msis
            .flatMap((msi) => msi.changes.map((change) => `${msi.msi.split("/").pop()} ${change.action === "revoke" ? "remove" : "put"} ${change.name}`))
            .sort();

          const api = new MemoryFicApi();
          for (const [msi, fics] of onAzure) api.seed(msi, ...fics);
          const controller = new FicController({
            api,
            context: { ...context, concurrency: 2, namespaceCap: cap },
            serviceAccounts: () => accounts,
            canWrite: () => true,
            signal: new AbortController().signal,
            metrics: new Metrics({ defaultMetrics: false }),
            log: pino({ level: "silent" }),
          });
          try {
            await controller.sync({ desired, complete: true, scan: msis });
          } finally {
            await controller.stop();
          }
          const written = api
            .writes()
            .map((call) => `${call.msi.split("/").pop()} ${call.method} ${call.fic}`)
            .sort();
          assert.deepEqual(planned, written);
          seen.put += written.filter((call) => call.includes(" put ")).length;
          seen.remove += written.filter((call) => call.includes(" remove ")).length;
          seen.skipped += result.msis.reduce((sum, msi) => sum + msi.skipped.length, 0);
        },
      ),
      { numRuns: 60 },
    );
    // The runs covered creates or changes, revocations and skips, not only empty plans.
    assert.ok(seen.put > 0 && seen.remove > 0 && seen.skipped > 0, JSON.stringify(seen));
  });
});
