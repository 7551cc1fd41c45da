// `azure-msi-operator diff --workloadidentity.enable` as a real process, as the operator's service
// account, against the real API server and the Azure fake holding FICs: it prints the FIC
// controller's plan per MSI (a create, a revocation that costs tokens, ServiceAccounts skipped for
// their fair share), writes nothing (the API server's audit log and the fake's log), and the sync
// that follows makes exactly the writes it printed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api } from "@kubernetes/client-node";
import type { DiffReport } from "../src/commands/diff.js";
import { clusterNameFor } from "../src/workload/names.js";
import { FakeAzure, type FakeIdentity } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE, OPERATOR_USER } from "./controlplane/controlplane.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, startOperator, type RunningOperator } from "./support/operator.js";
import { runCommand } from "./support/process.js";

const ISSUER = "https://kubernetes.default.svc";
const CLUSTER = clusterNameFor(ISSUER);
const SUB = "00000000-0000-0000-0000-0000000000d7";
const CLIENT_ID = "azure.workload.identity/client-id";
const WRITES = new Set(["create", "update", "patch", "delete", "deletecollection"]);
const FLAGS = ["--workloadidentity.enable", `--azure.subscription=${SUB}`];

describe("diff with workload identity: the FIC plan, nothing written", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let core: CoreV1Api;
  let shop: FakeIdentity;
  let shared: FakeIdentity;
  const running: RunningOperator[] = [];

  const diff = (flags: string[] = []) =>
    runCommand(["diff", `--kubeconfig=${plane.kubeconfigPath("operator")}`, ...FLAGS, ...flags], {
      ...fake.credentialEnv(),
      INSTANCE_NAMESPACE: OPERATOR_NAMESPACE,
    });
  const ficsOn = (msi: FakeIdentity) =>
    fake.model
      .federatedCredentials(msi)
      .map((fic) => fic.name)
      .sort();
  const annotated = (namespace: string, name: string, clientId: string) =>
    core.createNamespacedServiceAccount({ namespace, body: { metadata: { name, annotations: { [CLIENT_ID]: clientId } } } });

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    core = plane.api("admin", CoreV1Api);
    await applyOperatorRbac(plane);
    await plane.kubectlOrThrow("admin", ["apply", "-f", "manifests/overlays/workload-identity/rbac.yaml"]);
    for (const name of ["team-a", "team-b"]) await createTeamNamespace(plane, name);
    shop = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-diff", name: "shop", tags: { k8snamespace: "team-a" } });
    shared = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-diff", name: "shared", tags: { k8snamespace: "team-a,team-b" } });
    // shop: this cluster's FIC for a ServiceAccount deleted since (revoked), and one by hand (never touched).
    fake.model.putFederatedCredential(shop, {
      name: `${CLUSTER}_team-a_gone`,
      issuer: ISSUER,
      subject: "system:serviceaccount:team-a:gone",
      audiences: ["api://AzureADTokenExchange"],
    });
    fake.model.putFederatedCredential(shop, {
      name: "by-hand",
      issuer: "https://ci.example/",
      subject: "repo:shop",
      audiences: ["api://AzureADTokenExchange"],
    });
    // shared: 18 slots taken by another cluster, so two namespaces asking for two each get one each.
    for (let i = 0; i < 18; i++)
      fake.model.putFederatedCredential(shared, {
        name: `elsewhere-${i}`,
        issuer: "https://oidc.elsewhere.example/",
        subject: `system:serviceaccount:x:y${i}`,
        audiences: ["api://AzureADTokenExchange"],
      });
    await annotated("team-a", "api", shop.clientId);
    for (const [namespace, name] of [
      ["team-a", "one"],
      ["team-a", "two"],
      ["team-b", "three"],
      ["team-b", "four"],
    ] as const)
      await annotated(namespace, name, shared.clientId);
  });
  after(async () => {
    for (const op of running) await op.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("text and JSON: a create, a revocation that stands out, skips for the fair share; GETs only, no API write", { timeout: 120_000 }, async () => {
    const beforeShop = ficsOn(shop);
    const beforeShared = ficsOn(shared);
    fake.clearRequests();
    const started = Date.now();
    const text = await diff();
    const json = await diff(["--output=json"]);
    assert.equal(text.code, 1, text.stdout + text.stderr);
    assert.equal(json.code, 1, json.stderr);

    const out = text.stdout;
    // The revocation first, framed, before any MSI's block.
    assert.match(
      out,
      /^!{100}\n!!! REVOKE: 1 federated identity credential\(s\) would be deleted; .*\n!!! {3}system:serviceaccount:team-a:gone on \/subscriptions\/.*\/userAssignedIdentities\/shop: ServiceAccount team-a\/gone no longer exists\n!{100}$/m,
    );
    assert.ok(out.indexOf("!!! REVOKE") < out.indexOf("\nMSI /subscriptions/"), out);
    assert.match(out, new RegExp(`^  - REVOKE FIC ${CLUSTER}_team-a_gone \\(subject system:serviceaccount:team-a:gone\\): `, "m"));
    assert.match(out, new RegExp(`^  \\+ create FIC ${CLUSTER}_team-a_api for ServiceAccount team-a/api `, "m"));
    assert.match(out, new RegExp(`^  \\+ create FIC ${CLUSTER}_team-a_one for ServiceAccount team-a/one `, "m"));
    assert.match(out, new RegExp(`^  \\+ create FIC ${CLUSTER}_team-b_four for ServiceAccount team-b/four `, "m"));
    assert.match(out, /^ {2}! skip ServiceAccount team-a\/two \(share\): namespace "team-a" has 1 of the MSI's 20 .* fair share is 1$/m);
    assert.match(out, /^ {2}! skip ServiceAccount team-b\/three \(share\): /m);
    assert.match(out, /^MSI \/subscriptions\/.*\/shared \(18 of 20 FICs now, 20 after\)$/m);
    assert.match(out, /^FICs: 2 MSIs looked at; 3 to create, 0 to change, 1 to revoke \(1 losing tokens\), 0 unchanged, 2 skipped$/m);
    // The AzureIdentity part is there too: a sync would create the two identities.
    assert.match(out, /^2 MSIs listed; 3 to create, 0 to change, 0 to delete/m);

    const report = JSON.parse(json.stdout) as DiffReport;
    assert.equal(report.fics?.issuer, ISSUER);
    assert.deepEqual(
      report.fics?.msis.map((msi) => [
        msi.msi.split("/").pop(),
        msi.changes.map((change) => `${change.action} ${change.name}`),
        msi.skipped.map((skip) => skip.why),
      ]),
      [
        ["shared", [`create ${CLUSTER}_team-a_one`, `create ${CLUSTER}_team-b_four`], ["share", "share"]],
        ["shop", [`revoke ${CLUSTER}_team-a_gone`, `create ${CLUSTER}_team-a_api`], []],
      ],
    );

    // Nothing written: Azure saw GETs only (the FIC lists among them), the API server no write.
    const requests = fake.armRequests();
    assert.deepEqual(
      requests.filter((request) => request.method !== "GET").map((request) => `${request.method} ${request.path}`),
      [],
    );
    assert.equal(fake.federatedCredentialRequests(["GET"]).length, 4, "each MSI's FICs listed once per run");
    assert.deepEqual(ficsOn(shop), beforeShop);
    assert.deepEqual(ficsOn(shared), beforeShared);
    const writes = (await plane.auditEventsSettled()).filter(
      (event) => Date.parse(event.requestReceivedTimestamp) >= started && event.user.username === OPERATOR_USER && WRITES.has(event.verb),
    );
    assert.deepEqual(writes, [], "the API server saw no write from the diff");

    // A sync then makes exactly what the diff printed; after it, only the skips remain (exit 0).
    const op = await startOperator(plane, fake.credentialEnv(), ["sync", "--once", ...FLAGS], { start: false });
    running.push(op);
    const summary = await op.app.syncOnce();
    assert.deepEqual([summary.fics?.created, summary.fics?.deleted, summary.fics?.skipped], [3, 1, 2], JSON.stringify(summary));
    assert.deepEqual(ficsOn(shop), ["by-hand", `${CLUSTER}_team-a_api`].sort());
    assert.deepEqual(
      ficsOn(shared).filter((name) => name.startsWith(CLUSTER)),
      [`${CLUSTER}_team-a_one`, `${CLUSTER}_team-b_four`],
    );
    const clean = await diff();
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.doesNotMatch(clean.stdout, /REVOKE|\+ create/);
    assert.match(clean.stdout, /^ {2}! skip ServiceAccount team-a\/two \(share\): namespace "team-a" has 1 of /m);
    assert.match(clean.stdout, /^FICs: 2 MSIs looked at; 0 to create, 0 to change, 0 to revoke \(0 losing tokens\), 3 unchanged, 2 skipped$/m);
  });
});
