// Workload identity mode, the leader's side: labelled ServiceAccounts get a federated identity
// credential on the MSI Azure tagged for their namespace, and lose it when the ServiceAccount, its
// labels or the tag go away. The proof is what a pod does: a TokenRequest token for the
// ServiceAccount, exchanged by the real WorkloadIdentityCredential at the fake Entra, which checks it
// against the real API server's keys and the MSI's FICs. Azure writes are counted from the fake's log.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, EventsV1Api } from "@kubernetes/client-node";
import { clusterNameFor } from "../src/workload/names.js";
import { FakeAzure, faults, type FakeIdentity } from "./azure/fake.js";
import { ControlPlane } from "./controlplane/controlplane.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "./support/operator.js";
import { exchangeForMsiToken } from "./support/workload-token.js";

const ISSUER = "https://kubernetes.default.svc";
const CLUSTER = clusterNameFor(ISSUER);
const SUB = "00000000-0000-0000-0000-0000000000b8";
const LOOKUP = "msi.azure.k8s.io";
const labelsFor = (msi: string) => ({ [`${LOOKUP}/name`]: msi, [`${LOOKUP}/resourcegroup`]: "rg-wi", [`${LOOKUP}/subscription`]: SUB });

describe("workload identity: FICs follow labelled ServiceAccounts and the tags", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: RunningOperator;
  let core: CoreV1Api;
  let shop: FakeIdentity;
  let other: FakeIdentity;
  let dir: string;

  const syncs = () => operator.logs.filter((line) => line.msg === "sync finished" || line.msg === "sync finished with errors").length;
  const aSyncAfterNow = async () => {
    const seen = syncs();
    await eventually(() => syncs() >= seen + 2 || undefined, 30_000, "two more full syncs");
  };
  const ficsOn = (msi: FakeIdentity) =>
    fake.model
      .federatedCredentials(msi)
      .map((fic) => `${fic.name} ${fic.subject}`)
      .sort();
  const writes = () => fake.federatedCredentialRequests(["PUT", "DELETE"]).length;
  /** What a pod does: a projected token for the ServiceAccount, exchanged for an Azure token. */
  const exchange = (namespace: string, serviceAccount: string, msi: FakeIdentity) =>
    exchangeForMsiToken(core, fake, dir, { namespace, name: serviceAccount }, msi);
  const serviceAccount = (namespace: string, name: string, labels: Record<string, string> = {}) =>
    core.createNamespacedServiceAccount({ namespace, body: { metadata: { name, labels } } });

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    dir = mkdtempSync(join(tmpdir(), "fic-sync-"));
    core = plane.api("admin", CoreV1Api);
    await applyOperatorRbac(plane);
    await plane.kubectlOrThrow("admin", ["apply", "-f", "manifests/overlays/workload-identity/rbac.yaml"]);
    for (const name of ["team-a", "team-b"]) await createTeamNamespace(plane, name);
    shop = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-wi", name: "shop", tags: { k8snamespace: "team-a" } });
    other = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-wi", name: "other", tags: { k8snamespace: "team-b" } });
    // Someone else's FICs on shop: another cluster's, and one by hand. Never touched.
    fake.model.putFederatedCredential(shop, {
      name: "other-cluster_team-a_api",
      issuer: "https://oidc.other.example/",
      subject: "system:serviceaccount:team-a:api",
      audiences: ["api://AzureADTokenExchange"],
    });
    fake.model.putFederatedCredential(shop, {
      name: "by-hand",
      issuer: "https://ci.example/",
      subject: "repo:shop:ref:main",
      audiences: ["api://AzureADTokenExchange"],
    });
    fake.trustIssuer(ISSUER, async () => JSON.parse((await plane.adminGet("/openid/v1/jwks")).body) as unknown);
    await serviceAccount("team-a", "api", labelsFor("shop"));
    await serviceAccount("team-a", "plain");
    await serviceAccount("team-b", "thief", labelsFor("shop")); // team-a's MSI, asked for from team-b
    await serviceAccount("team-b", "worker", labelsFor("other"));
    operator = await startOperator(plane, fake.credentialEnv(), [
      "run",
      "--webhook.enable=false",
      "--workloadidentity.enable",
      "--sync.interval=2s",
      "--sync.locktime=0s",
    ]);
  });
  after(async () => {
    await operator?.stop();
    await Promise.all([plane?.stop(), fake?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the first sync creates exactly the wanted FICs; the next ones write nothing", { timeout: 60_000 }, async () => {
    await eventually(() => ficsOn(other).length === 1 || undefined, 30_000, "FICs created");
    assert.deepEqual(
      ficsOn(shop),
      [
        "by-hand repo:shop:ref:main",
        `${CLUSTER}_team-a_api system:serviceaccount:team-a:api`,
        "other-cluster_team-a_api system:serviceaccount:team-a:api",
      ].sort(),
    );
    assert.deepEqual(ficsOn(other), [`${CLUSTER}_team-b_worker system:serviceaccount:team-b:worker`]);
    const afterFirst = writes();
    assert.equal(afterFirst, 2, "two PUTs, nothing else");
    await aSyncAfterNow();
    assert.equal(writes(), afterFirst, "no-change syncs make no Azure writes");
    const identities = operator.logs.find((line) => line.msg === "workload identity mode: keeping federated identity credentials for labelled ServiceAccounts");
    assert.deepEqual([identities?.issuer, identities?.cluster], [ISSUER, CLUSTER], "issuer discovered from the API server");
  });

  test("only the labelled ServiceAccount of the tagged namespace gets a token; Events tell the others why", { timeout: 90_000 }, async () => {
    assert.ok((await exchange("team-a", "api", shop))?.token, "team-a/api: a token for shop");
    assert.ok((await exchange("team-b", "worker", other))?.token, "team-b/worker: a token for other");
    await assert.rejects(exchange("team-b", "thief", shop), /AADSTS70021|AADSTS700213/, "team-b asking for team-a's MSI");
    await assert.rejects(exchange("team-a", "plain", shop), /AADSTS70021|AADSTS700213/, "an unlabelled ServiceAccount");
    // What their owners read in `kubectl describe serviceaccount`.
    const events = plane.api("admin", EventsV1Api);
    const eventOn = (namespace: string, name: string, reason: string) =>
      eventually(
        async () => (await events.listNamespacedEvent({ namespace })).items.find((item) => item.regarding?.name === name && item.reason === reason),
        30_000,
        `${reason} on ${namespace}/${name}`,
      );
    const created = await eventOn("team-a", "api", "FederatedCredentialCreated");
    assert.equal(created.type, "Normal");
    assert.equal(
      created.note,
      `federated identity credential ${CLUSTER}_team-a_api created for this ServiceAccount (subject system:serviceaccount:team-a:api)`,
    );
    const thief = await eventOn("team-b", "thief", "NoMatchingIdentity");
    assert.equal(thief.type, "Warning");
    assert.equal(thief.regarding?.uid, (await core.readNamespacedServiceAccount({ namespace: "team-b", name: "thief" })).metadata?.uid);
    assert.match(thief.note ?? "", /managed identity shop .* but no AzureIdentity for it is assigned to namespace "team-b"; no federated identity credential/);
    assert.match(await plane.kubectlOrThrow("admin", ["describe", "serviceaccount", "thief", "-n", "team-b"]), /Warning\s+NoMatchingIdentity/);
  });

  test("a failed listing revokes nothing; once Azure answers again the removed tag revokes the FIC", { timeout: 60_000 }, async () => {
    fake.model.updateIdentity(other, { tags: {} });
    const rule = fake.inject({ match: /userAssignedIdentities(\?|$)/, times: Infinity, fault: faults.status(500) });
    await aSyncAfterNow();
    assert.ok(rule.served > 0, "the listing failed");
    assert.equal(ficsOn(other).length, 1, "not revoked on a failed listing");
    fake.clearFaults();
    await eventually(() => ficsOn(other).length === 0 || undefined, 30_000, "revoked after a complete listing");
    await assert.rejects(exchange("team-b", "worker", other), /AADSTS70021/);
  });

  test("deleting or relabelling the ServiceAccount revokes its FIC at once; other FICs stay", { timeout: 60_000 }, async () => {
    await serviceAccount("team-a", "batch", labelsFor("shop"));
    await eventually(() => ficsOn(shop).some((fic) => fic.startsWith(`${CLUSTER}_team-a_batch `)) || undefined, 20_000, "batch federated");
    assert.ok((await exchange("team-a", "batch", shop))?.token);
    await core.deleteNamespacedServiceAccount({ namespace: "team-a", name: "batch" });
    await plane.kubectlOrThrow("admin", ["label", "serviceaccount", "api", "-n", "team-a", `${LOOKUP}/name-`]);
    await eventually(() => !ficsOn(shop).some((fic) => fic.startsWith(`${CLUSTER}_`)) || undefined, 20_000, "both revoked");
    assert.deepEqual(
      ficsOn(shop),
      ["by-hand repo:shop:ref:main", "other-cluster_team-a_api system:serviceaccount:team-a:api"],
      "someone else's FICs untouched",
    );
    await assert.rejects(exchange("team-a", "api", shop), /AADSTS700211|AADSTS70021/, "the other cluster's FIC does not match this issuer");
  });

  test("Azure's 20 per MSI: the ServiceAccount gets a Warning Event saying why, and nobody's FIC is deleted", { timeout: 60_000 }, async () => {
    const full = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-wi", name: "full", tags: { k8snamespace: "team-a" } });
    for (let i = 0; i < 20; i++)
      fake.model.putFederatedCredential(full, {
        name: `ci-${i}`,
        issuer: "https://ci.example/",
        subject: `repo:${i}`,
        audiences: ["api://AzureADTokenExchange"],
      });
    const crowded = await serviceAccount("team-a", "crowded", labelsFor("full"));
    const events = plane.api("admin", EventsV1Api);
    const event = await eventually(
      async () =>
        (await events.listNamespacedEvent({ namespace: "team-a" })).items.find(
          (item) => item.regarding?.name === "crowded" && item.reason === "FederatedCredentialSkipped",
        ),
      30_000,
      "an Event on the ServiceAccount",
    );
    assert.equal(event.type, "Warning");
    assert.equal(event.regarding?.kind, "ServiceAccount");
    assert.equal(event.regarding?.uid, crowded.metadata?.uid, "the uid `kubectl describe serviceaccount` finds it by");
    assert.match(event.note ?? "", /already has 20 federated identity credentials/);
    assert.equal(event.reportingController, "azure-msi-operator");
    assert.equal(ficsOn(full).length, 20);
    assert.ok(
      ficsOn(full).every((fic) => fic.startsWith("ci-")),
      "nobody's FIC deleted to make room",
    );
    assert.match(await operator.metrics.registry.getSingleMetricAsString("azuremsi_fic_skipped_total"), /reason="limit"\} [1-9]/);
    await core.deleteNamespacedServiceAccount({ namespace: "team-a", name: "crowded" });
  });

  test("the overlay's RBAC is exactly what the mode needs: without any one of its verbs it breaks, visibly", { timeout: 150_000 }, async () => {
    await operator.stop();
    const granted = { serviceaccounts: ["list", "watch"] };
    const role = (missing: string) =>
      JSON.stringify({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: "azure-msi-operator-workload-identity" },
        rules: [
          { apiGroups: [""], resources: ["serviceaccounts"], verbs: granted.serviceaccounts.filter((verb) => `serviceaccounts ${verb}` !== missing) },
        ].filter((rule) => rule.verbs.length > 0),
      });
    // A forbidden list names the verb in the API server's message; a forbidden watch is refused with HTTP 403.
    // (Its Events use the base RBAC's events.k8s.io rule, proven by test/manifests.e2e.test.ts.)
    const deniedBy: Record<string, (line: Record<string, unknown>) => boolean> = {
      "serviceaccounts list": (line) => JSON.stringify(line).replace(/\\+"/g, '"').includes('cannot list resource "serviceaccounts"'),
      "serviceaccounts watch": (line) => line.resource === "serviceaccounts" && String(line.context).startsWith("watch") && /HTTP 403\b/.test(String(line.err)),
    };
    try {
      for (const [missing, denied] of Object.entries(deniedBy)) {
        await plane.kubectlOrThrow("admin", ["apply", "-f", "-"], { stdin: role(missing) });
        // Not awaited: without list or watch the leader's caches never sync, so start() does not resolve.
        const trimmed = await startOperator(plane, fake.credentialEnv(), ["run", "--webhook.enable=false", "--workloadidentity.enable", "--sync.interval=2s"], {
          start: false,
        });
        const starting = trimmed.app.start().catch(() => undefined);
        try {
          await eventually(() => trimmed.logs.filter(denied).length >= 2 || undefined, 20_000, `denied: ${missing}`);
          if (missing === "serviceaccounts list") {
            assert.equal(
              trimmed.logs.some((line) => line.msg === "sync finished"),
              false,
              "without list the leader never syncs",
            );
          }
        } finally {
          await trimmed.stop();
          await starting;
        }
      }
    } finally {
      await plane.kubectlOrThrow("admin", ["apply", "-f", "manifests/overlays/workload-identity/rbac.yaml"]);
    }
  });
});
