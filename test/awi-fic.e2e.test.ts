// Workload identity the way Azure Workload Identity users work (issue 24), the leader's side: a
// ServiceAccount with only the `azure.workload.identity/client-id` annotation gets its FIC when the
// MSI is tagged for its namespace; three namespaces asking one MSI for 30 FICs end with fair shares
// and are told so; renaming the cluster keeps the FICs it made (no outage). The proof is a pod's: a
// TokenRequest token exchanged by the real WorkloadIdentityCredential at the fake Entra.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, EventsV1Api } from "@kubernetes/client-node";
import { clusterNameFor } from "../src/workload/names.js";
import { FakeAzure, type FakeIdentity } from "./azure/fake.js";
import { ControlPlane } from "./controlplane/controlplane.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "./support/operator.js";
import { exchangeForMsiToken } from "./support/workload-token.js";

const ISSUER = "https://kubernetes.default.svc";
const CLUSTER = clusterNameFor(ISSUER);
const SUB = "00000000-0000-0000-0000-0000000000c4";
const CLIENT_ID = "azure.workload.identity/client-id";
const TEAMS = ["team-a", "team-b", "team-c"];

describe("workload identity, AWI style: the client-id annotation alone, fair shares, a renamed cluster", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: RunningOperator | undefined;
  let core: CoreV1Api;
  let shop: FakeIdentity;
  let other: FakeIdentity;
  let shared: FakeIdentity;
  let dir: string;

  const ficsOn = (msi: FakeIdentity) =>
    fake.model
      .federatedCredentials(msi)
      .map((fic) => `${fic.name} ${fic.subject}`)
      .sort();
  const exchange = (namespace: string, serviceAccount: string, msi: FakeIdentity) =>
    exchangeForMsiToken(core, fake, dir, { namespace, name: serviceAccount }, msi);
  const annotated = (namespace: string, name: string, clientId: string) =>
    core.createNamespacedServiceAccount({ namespace, body: { metadata: { name, annotations: { [CLIENT_ID]: clientId } } } });
  const start = (flags: string[] = []) =>
    startOperator(plane, fake.credentialEnv(), [
      "run",
      "--webhook.enable=false",
      "--workloadidentity.enable",
      "--sync.interval=2s",
      "--sync.locktime=0s",
      ...flags,
    ]);
  const syncs = () => operator!.logs.filter((line) => line.msg === "sync finished" || line.msg === "sync finished with errors").length;
  const twoMoreSyncs = async () => {
    const seen = syncs();
    await eventually(() => syncs() >= seen + 2 || undefined, 30_000, "two more full syncs");
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    dir = mkdtempSync(join(tmpdir(), "awi-fic-"));
    core = plane.api("admin", CoreV1Api);
    await applyOperatorRbac(plane);
    await plane.kubectlOrThrow("admin", ["apply", "-f", "manifests/overlays/workload-identity/rbac.yaml"]);
    for (const name of TEAMS) await createTeamNamespace(plane, name);
    shop = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-awi", name: "shop", tags: { k8snamespace: "team-a" } });
    other = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-awi", name: "other", tags: { k8snamespace: "team-b" } });
    shared = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-awi", name: "shared", tags: { k8snamespace: TEAMS.join(",") } });
    fake.trustIssuer(ISSUER, async () => JSON.parse((await plane.adminGet("/openid/v1/jwks")).body) as unknown);
    await annotated("team-a", "api", shop.clientId.toUpperCase());
    await annotated("team-a", "thief", other.clientId); // team-b's MSI, named from team-a
    await annotated("team-a", "app-registration", "a9900000-0000-0000-0000-0000000000a9");
    for (const team of TEAMS) for (let i = 0; i < 10; i++) await annotated(team, `sa-${String(i).padStart(2, "0")}`, shared.clientId);
    operator = await start();
  });
  after(async () => {
    await operator?.stop();
    await Promise.all([plane?.stop(), fake?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("an annotation-only ServiceAccount gets a token for the MSI tagged for its namespace, none for another namespace's", { timeout: 90_000 }, async () => {
    await eventually(() => ficsOn(shop).length === 1 || undefined, 30_000, "api federated");
    assert.deepEqual(ficsOn(shop), [`${CLUSTER}_team-a_api system:serviceaccount:team-a:api`]);
    assert.ok((await exchange("team-a", "api", shop))?.token, "team-a/api: a token for shop");
    assert.deepEqual(ficsOn(other), [], "team-b's MSI named from team-a: no FIC");
    await assert.rejects(exchange("team-a", "thief", other), /AADSTS70021|AADSTS700213/);
  });

  test(
    "three namespaces asking one MSI for 30 FICs end with 7, 7 and 6; each namespace is told its share; no FIC deleted to make room",
    { timeout: 90_000 },
    async () => {
      await eventually(() => ficsOn(shared).length === 20 || undefined, 40_000, "20 FICs on shared");
      await twoMoreSyncs();
      const perTeam = TEAMS.map((team) => ficsOn(shared).filter((fic) => fic.includes(`_${team}_`)).length);
      assert.deepEqual(perTeam, [7, 7, 6]);
      assert.equal(fake.federatedCredentialRequests(["DELETE"]).length, 0, "nothing deleted to make room");
      const events = plane.api("admin", EventsV1Api);
      for (const [i, team] of TEAMS.entries()) {
        const event = await eventually(
          async () =>
            (await events.listNamespacedEvent({ namespace: team })).items.find(
              (item) => item.reason === "FederatedCredentialShareExceeded" && item.regarding?.kind === "Namespace",
            ),
          30_000,
          `the share Event in ${team}`,
        );
        assert.equal(event.type, "Warning");
        assert.match(
          event.note ?? "",
          new RegExp(
            `ask managed identity shared .* for 10 federated identity credentials; the namespace has ${perTeam[i]} slots: 3 namespaces ask .* fair share is ${perTeam[i]}\\. ${10 - perTeam[i]!} wait`,
          ),
        );
      }
      // A ServiceAccount that got a slot exchanges; one that waits does not.
      assert.ok((await exchange("team-c", "sa-00", shared))?.token);
      await assert.rejects(exchange("team-c", "sa-09", shared), /AADSTS70021|AADSTS700213/);
      assert.match(await operator!.metrics.registry.getSingleMetricAsString("azuremsi_fic_skipped_total"), /reason="share"\} [1-9]/);
    },
  );

  test(
    "renamed (--workloadidentity.cluster): the FICs it made under its old name are adopted, no token outage; one no longer wanted is revoked",
    { timeout: 120_000 },
    async () => {
      const before = fake.federatedCredentialRequests(["PUT", "DELETE"]).length;
      await operator!.stop();
      operator = await start(["--workloadidentity.cluster=renamed"]);
      await twoMoreSyncs();
      assert.equal(fake.federatedCredentialRequests(["PUT", "DELETE"]).length, before, "nothing re-created or revoked for the kept subjects");
      assert.deepEqual(ficsOn(shop), [`${CLUSTER}_team-a_api system:serviceaccount:team-a:api`]);
      assert.ok((await exchange("team-a", "api", shop))?.token, "still a token");
      // A new ServiceAccount gets the new name; a deleted one's FIC under the old name is revoked (the old name is the issuer's default).
      await annotated("team-a", "worker", shop.clientId);
      await core.deleteNamespacedServiceAccount({ namespace: "team-a", name: "api" });
      await eventually(
        () => (ficsOn(shop).join() === "renamed_team-a_worker system:serviceaccount:team-a:worker" ? true : undefined),
        30_000,
        "worker federated under the new name, api revoked",
      );
      assert.ok((await exchange("team-a", "worker", shop))?.token);
      assert.equal(ficsOn(shared).length, 20, "the shared MSI's FICs (old name) all kept");
    },
  );
});
