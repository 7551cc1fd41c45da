// The syncer against the real API server (as its service account, with the RBAC in manifests/)
// and the real Azure SDK against the Azure fake.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { FakeAzure } from "./azure/fake.js";
import { faults } from "./azure/faults.js";
import { ControlPlane } from "./controlplane/controlplane.js";
import { applyOperatorRbac, eventually, operatorWrites, startOperator, type RunningOperator } from "./support/operator.js";
import type { AzureIdentity, AzureIdentityBinding } from "../src/kube/resources.js";
import { OperatorProcess } from "./support/process.js";
import { OPERATOR_NAMESPACE } from "./controlplane/controlplane.js";
import { createAzureIdentityBinding, lookupLabels } from "./support/aad-objects.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000a1";
const SUB_2 = "00000000-0000-0000-0000-0000000000b2";
const LOOKUP = "msi.azure.k8s.io";

describe("syncer end to end", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let azureEnv: Record<string, string>;
  let custom: CustomObjectsApi;
  let core: CoreV1Api;
  const running: RunningOperator[] = [];

  const identity = async (namespace: string, name: string) =>
    (await custom.getNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentities", name }).catch(() => undefined)) as
      AzureIdentity | undefined;
  const identitiesIn = async (namespace: string) =>
    ((await custom.listNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentities" })) as { items: AzureIdentity[] }).items;
  const operator = async (flags: string[], options: { start?: boolean } = {}) => {
    const op = await startOperator(plane, azureEnv, ["sync", ...flags], options);
    running.push(op);
    return op;
  };
  const syncOnce = async (flags: string[] = []) => {
    const op = await operator(["--once", ...flags], { start: false });
    return { op, summary: await op.app.syncOnce() };
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start({ pageSize: 100 })]);
    azureEnv = fake.credentialEnv();
    await applyOperatorRbac(plane);
    custom = plane.api("admin", CustomObjectsApi);
    core = plane.api("admin", CoreV1Api);
    for (const name of ["team-a", "team-b", "team-d"]) await core.createNamespace({ body: { metadata: { name } } });
  });
  after(async () => {
    for (const op of running) await op.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });
  beforeEach(() => fake.clearFaults());

  test("first sync creates exactly the documented objects; a second sync writes nothing", async () => {
    fake.model.addSubscription({ subscriptionId: SUB });
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "RG-Apps",
      name: "shop",
      clientId: "11111111-0000-0000-0000-000000000001",
      tags: { k8snamespace: "team-a, TEAM-B, kube-system, team-c" },
    });
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "RG-Apps", name: "Bad_Name", tags: { k8snamespace: "team-a" } });
    const { op, summary } = await syncOnce(["--azureidentity.namespaced", "--azureidentity.expiry", "--azureidentity.expiry.duration=48h"]);
    assert.equal(summary.created, 2, JSON.stringify(summary));
    assert.equal(summary.skipped, 1);
    const expiry = new Date(Date.now() + 48 * 3_600_000).toISOString().slice(0, 10);
    const created = await identity("team-a", "shop-11111111-0000-0000-0000-000000000001");
    assert.ok(created, "identity in team-a");
    assert.deepEqual(
      {
        apiVersion: created.apiVersion,
        kind: created.kind,
        name: created.metadata?.name,
        namespace: created.metadata?.namespace,
        labels: created.metadata?.labels,
        annotations: created.metadata?.annotations,
        spec: created.spec,
      },
      {
        apiVersion: "aadpodidentity.k8s.io/v1",
        kind: "AzureIdentity",
        name: "shop-11111111-0000-0000-0000-000000000001",
        namespace: "team-a",
        labels: {
          [`${LOOKUP}/name`]: "shop",
          [`${LOOKUP}/resourcegroup`]: "rg-apps",
          [`${LOOKUP}/subscription`]: SUB,
          "app.kubernetes.io/managed-by": "azure-msi-operator",
        },
        annotations: { "aadpodidentity.k8s.io/Behavior": "namespaced", "janitor/expires": expiry },
        spec: {
          type: 0,
          resourceID: `/subscriptions/${SUB}/resourcegroups/rg-apps/providers/microsoft.managedidentity/userassignedidentities/shop`,
          clientID: "11111111-0000-0000-0000-000000000001",
        },
      },
    );
    assert.equal(typeof created.spec?.type, "number");
    assert.ok(await identity("team-b", "shop-11111111-0000-0000-0000-000000000001"), "identity in team-b");
    assert.deepEqual(await identitiesIn("kube-system"), [], "ignored namespace untouched");
    const skippedLog = op.logs.find((line) => line.msg === "MSI skipped");
    assert.match(String(skippedLog?.reason), /Bad_Name.*not a valid Kubernetes name/);
    const scrape = await op.metrics.registry.metrics();
    assert.match(scrape, new RegExp(`azuremsi_msi_skipped_total\\{subscription="${SUB}"\\} 1`));

    const secondStarted = Date.now();
    const second = await syncOnce(["--azureidentity.namespaced", "--azureidentity.expiry", "--azureidentity.expiry.duration=48h"]);
    assert.deepEqual(second.summary.writes, { create: 0, patch: 0, delete: 0 });
    assert.equal(second.summary.unchanged, 2);
    assert.deepEqual(operatorWrites(await plane.auditEventsSettled(), secondStarted), [], "the API server saw no write from the operator");
    const summaryLine = second.op.logs.find((line) => line.msg === "sync finished");
    assert.ok(
      summaryLine && ["created", "updated", "unchanged", "deleted", "skipped", "errors", "durationMs"].every((key) => key in summaryLine),
      "one summary line",
    );
  });

  test("drift on owned fields is repaired; foreign labels and annotations survive", async () => {
    const name = "shop-11111111-0000-0000-0000-000000000001";
    const tamper = {
      metadata: { labels: { "team.example/owner": "a", [`${LOOKUP}/name`]: "evil" }, annotations: { "note.example/why": "kept" } },
      spec: { clientID: "tampered" },
    };
    await plane.kubectlOrThrow("admin", ["patch", "azureidentity", name, "-n", "team-a", "--type=merge", "-p", JSON.stringify(tamper)]);
    const { summary } = await syncOnce(["--azureidentity.namespaced", "--azureidentity.expiry", "--azureidentity.expiry.duration=48h"]);
    assert.equal(summary.updated, 1);
    const repaired = await identity("team-a", name);
    assert.equal(repaired?.spec?.clientID, "11111111-0000-0000-0000-000000000001");
    assert.equal(repaired?.metadata?.labels?.[`${LOOKUP}/name`], "shop");
    assert.equal(repaired?.metadata?.labels?.["team.example/owner"], "a");
    assert.equal(repaired?.metadata?.annotations?.["note.example/why"], "kept");
  });

  test("binding sync points labelled bindings at the current identity after the MSI is recreated", async () => {
    await createAzureIdentityBinding(
      custom,
      "team-a",
      { name: "shop", labels: lookupLabels("shop", "rg-apps", SUB) },
      { selector: "shop", azureIdentity: "shop-11111111-0000-0000-0000-000000000001" },
    );
    fake.model.updateIdentity({ subscriptionId: SUB, resourceGroup: "RG-Apps", name: "shop" }, { clientId: "22222222-0000-0000-0000-000000000002" });
    const { summary } = await syncOnce(["--azureidentity.binding.sync"]);
    assert.equal(summary.bindingsUpdated, 1, JSON.stringify(summary));
    const binding = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: "v1",
      namespace: "team-a",
      plural: "azureidentitybindings",
      name: "shop",
    })) as AzureIdentityBinding;
    assert.equal(binding.spec?.azureIdentity, "shop-22222222-0000-0000-0000-000000000002");
    assert.equal(binding.spec?.selector, "shop");
    assert.ok(await identity("team-a", "shop-11111111-0000-0000-0000-000000000001"), "without prune the old identity is kept");
  });

  test("prune deletes identities no longer in Azure, only after a complete listing", async () => {
    const old = "shop-11111111-0000-0000-0000-000000000001";
    // A listing that fails on a page: nothing is deleted.
    fake.model.addIdentities(SUB, 150, () => ({ tags: { k8snamespace: "team-d" } }), { prefix: "bulk" });
    fake.inject({ match: /\$skiptoken/i, times: Infinity, fault: faults.status(500) });
    const failed = await syncOnce(["--azureidentity.prune"]);
    assert.equal(failed.summary.result, "failed");
    assert.equal(failed.summary.deleted, 0);
    assert.ok(await identity("team-a", old), "kept after an incomplete listing");
    fake.clearFaults();
    // Complete listing: the stale identity goes.
    const pruned = await syncOnce(["--azureidentity.prune"]);
    assert.equal(pruned.summary.result, "success", JSON.stringify(pruned.summary));
    assert.equal(await identity("team-a", old), undefined);
    assert.equal((await identitiesIn("team-d")).length, 150);
    // An empty listing while the cluster holds identities: refused.
    const saved = fake.model.identities(SUB).map((msi) => ({ ...msi }));
    fake.model.removeSubscription(SUB);
    fake.model.addSubscription({ subscriptionId: SUB });
    const empty = await syncOnce(["--azureidentity.prune"]);
    assert.equal(empty.summary.deleted, 0);
    assert.equal((await identitiesIn("team-d")).length, 150);
    assert.ok(empty.op.logs.some((line) => String(line.msg).includes("refusing to delete everything")));
    for (const msi of saved) fake.model.addIdentity(msi);
  });

  test("Azure throttling, 5xx and malformed JSON: the sync fails, nothing wrong is written, the next converges", async () => {
    fake.model.addSubscription({ subscriptionId: SUB_2 });
    fake.model.addIdentity({
      subscriptionId: SUB_2,
      resourceGroup: "rg",
      name: "late",
      clientId: "33333333-0000-0000-0000-000000000003",
      tags: { k8snamespace: "team-b" },
    });
    fake.inject({ match: new RegExp(`${SUB_2}/providers`, "i"), times: Infinity, fault: faults.malformed() });
    const broken = await syncOnce(["--azureidentity.prune", `--azure.subscription=${SUB}`, `--azure.subscription=${SUB_2}`]);
    assert.equal(broken.summary.result, "failed");
    assert.deepEqual(broken.summary.failedSubscriptions, [SUB_2]);
    assert.equal(broken.summary.deleted, 0);
    fake.clearFaults();
    fake.inject({ match: new RegExp(`${SUB_2}/providers`, "i"), times: 1, fault: faults.throttle(1) });
    fake.inject({ match: new RegExp(`${SUB}/providers`, "i"), times: 1, fault: faults.status(503) });
    const healed = await syncOnce(["--azureidentity.prune", `--azure.subscription=${SUB}`, `--azure.subscription=${SUB_2}`]);
    assert.equal(healed.summary.result, "success", JSON.stringify(healed.summary));
    assert.ok(await identity("team-b", "late-33333333-0000-0000-0000-000000000003"));
    const scrape = await healed.op.metrics.registry.metrics();
    assert.match(scrape, /azurerm_api_request_count\{[^}]*statusCode="429"[^}]*\} 1/);
    assert.match(scrape, /azurerm_api_request_count\{[^}]*statusCode="200"[^}]*\} \d+/);
    assert.match(scrape, new RegExp(`azuremsi_sync_duration\\{subscription="${SUB_2}"\\} \\d`));
    assert.match(scrape, /azuremsi_sync_resources_success\{[^}]*resource="AzureIdentity"\} [1-9]/);
  });

  test("with --sync.watch: new namespaces, edits and deletes are handled from the last listing at once", async () => {
    const op = await operator(["--sync.watch", "--azureidentity.binding.sync", "--sync.interval=1h"]);
    await eventually(() => op.logs.find((line) => line.msg === "sync finished"), 20_000, "first sync");
    const listingsBefore = fake.requestsTo(/^\/subscriptions/i, "arm").length;
    // A namespace created later gets its identities within a second, without a new listing.
    const started = Date.now();
    await core.createNamespace({ body: { metadata: { name: "team-c" } } });
    const shopName = "shop-22222222-0000-0000-0000-000000000002";
    await eventually(() => identity("team-c", shopName), 5_000, "identity in new namespace");
    const latency = Date.now() - started;
    assert.ok(latency < 1_000, `took ${latency} ms`);
    assert.equal(fake.requestsTo(/^\/subscriptions/i, "arm").length, listingsBefore, "no new Azure listing");
    // Someone deletes or edits an operator-owned identity: repaired at once.
    await custom.deleteNamespacedCustomObject({ group: GROUP, version: "v1", namespace: "team-c", plural: "azureidentities", name: shopName });
    await eventually(async () => (await identity("team-c", shopName))?.metadata?.uid, 5_000, "recreated");
    await plane.kubectlOrThrow("admin", ["patch", "azureidentity", shopName, "-n", "team-c", "--type=merge", "-p", '{"spec":{"resourceID":"/elsewhere"}}']);
    await eventually(async () => ((await identity("team-c", shopName))?.spec?.resourceID?.includes("/shop") ? true : undefined), 5_000, "repaired");
    // A labelled binding created later is filled by the syncer.
    await createAzureIdentityBinding(custom, "team-c", { name: "shop", labels: lookupLabels("shop", "rg-apps", SUB) }, { selector: "shop" });
    await eventually(
      async () =>
        (
          (await custom.getNamespacedCustomObject({
            group: GROUP,
            version: "v1",
            namespace: "team-c",
            plural: "azureidentitybindings",
            name: "shop",
          })) as AzureIdentityBinding
        ).spec?.azureIdentity === shopName || undefined,
      5_000,
      "binding filled",
    );
  });

  test("--sync.locktime is the minimum gap between two Azure listings", async () => {
    const op = await operator(["--sync.interval=300ms", "--sync.locktime=1h"]);
    await eventually(() => (op.logs.filter((line) => line.msg === "sync finished").length >= 3 ? true : undefined), 20_000, "three syncs");
    assert.equal(op.logs.filter((line) => line.msg === "Azure listing done").length, 1, "one listing");
    assert.ok(
      op.logs
        .filter((line) => line.msg === "sync finished")
        .slice(1)
        .every((line) => line.listingReused === true),
    );
    await op.stop();
  });

  test("`azure-msi-operator sync --once` as a process: one sync, exit 0", async () => {
    const proc = await OperatorProcess.start("once", {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...azureEnv, INSTANCE_NAMESPACE: OPERATOR_NAMESPACE },
      flags: ["sync", "--once"],
    });
    const exit = await proc.exited;
    assert.equal(exit.code, 0, proc.stderr.join(""));
    const summary = proc.logs.find((line) => line.msg === "sync finished");
    assert.equal(summary?.result, "success");
    assert.equal(summary?.writes, 0);
  });
});
