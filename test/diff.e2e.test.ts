// `azure-msi-operator diff` as a real process, as the operator's service account, against a cluster
// that already holds identities (the operator's own, drifted ones, and one the Go original made):
// it prints what a sync would write, exits like kubectl diff, and the audit log shows it wrote nothing.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { FakeAzure } from "./azure/fake.js";
import { faults } from "./azure/faults.js";
import { ControlPlane, OPERATOR_NAMESPACE, OPERATOR_USER } from "./controlplane/controlplane.js";
import { applyOperatorRbac, operatorWrites, startOperator, type RunningOperator } from "./support/operator.js";
import { runCommand } from "./support/process.js";
import type { Preview } from "../src/syncer/preview.js";
import { createAzureIdentity, createAzureIdentityBinding, lookupLabels } from "./support/aad-objects.js";

const SUB = "00000000-0000-0000-0000-0000000000d1";
const FLAGS = ["--azureidentity.namespaced", "--azureidentity.prune", "--azureidentity.binding.sync"];
const WRITES = new Set(["create", "update", "patch", "delete", "deletecollection"]);
const resourceId = (name: string) => `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/${name}`;

describe("diff end to end", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let custom: CustomObjectsApi;
  const running: RunningOperator[] = [];

  const diff = (flags: string[] = []) =>
    runCommand(["diff", `--kubeconfig=${plane.kubeconfigPath("operator")}`, ...FLAGS, ...flags], {
      ...fake.credentialEnv(),
      INSTANCE_NAMESPACE: OPERATOR_NAMESPACE,
    });
  const syncOnce = async () => {
    const op = await startOperator(plane, fake.credentialEnv(), ["sync", "--once", ...FLAGS], { start: false });
    running.push(op);
    return op.app.syncOnce();
  };
  /** Every write by the operator's user, on any resource, since `since` (the audit policy records all writes), up to those just answered. */
  const operatorWritesSince = async (since: number) =>
    (await plane.auditEventsSettled()).filter(
      (event) => Date.parse(event.requestReceivedTimestamp) >= since && event.user.username === OPERATOR_USER && WRITES.has(event.verb),
    );

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start({ pageSize: 100 })]);
    await applyOperatorRbac(plane);
    custom = plane.api("admin", CustomObjectsApi);
    const core = plane.api("admin", CoreV1Api);
    for (const name of ["team-a", "team-b"]) await core.createNamespace({ body: { metadata: { name } } });
    fake.model.addSubscription({ subscriptionId: SUB });
  });
  after(async () => {
    for (const op of running) await op.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test(
    "against existing objects: creates, field-by-field changes, an adoption, a prune delete and a binding; nothing written",
    { timeout: 120_000 },
    async () => {
      const shop = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "shop", tags: { k8snamespace: "team-a" } });
      const cart = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "cart", tags: { k8snamespace: "team-a" } });
      const gone = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "gone", tags: { k8snamespace: "team-b" } });
      const summary = await syncOnce();
      assert.equal(summary.created, 3, JSON.stringify(summary));

      // What the cluster holds now: a drifted identity, one the Go original made (no ownership label),
      // a binding waiting for its identity, an MSI gone from Azure, a new one tagged.
      const cartName = `cart-${cart.clientId}`;
      await plane.kubectlOrThrow("admin", ["patch", "azureidentity", cartName, "-n", "team-a", "--type=merge", "-p", '{"spec":{"clientID":"stale"}}']);
      const legacy = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "legacy", tags: { k8snamespace: "team-b" } });
      const legacyName = `legacy-${legacy.clientId}`;
      await createAzureIdentity(
        custom,
        "team-b",
        { name: legacyName, labels: lookupLabels("legacy", "rg", SUB) },
        { type: 0, resourceID: resourceId("legacy"), clientID: legacy.clientId },
      );
      await createAzureIdentityBinding(custom, "team-a", { name: "shop", labels: lookupLabels("shop", "rg", SUB) }, { azureIdentity: "", selector: "shop" });
      fake.model.removeIdentity(gone);
      const fresh = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "fresh", tags: { k8snamespace: "team-a" } });
      fake.clearRequests();

      const started = Date.now();
      const text = await diff();
      const json = await diff(["--output=json"]);
      assert.equal(text.code, 1, text.stderr);
      assert.equal(json.code, 1, json.stderr);
      assert.match(
        text.stdout,
        new RegExp(
          `^\\+ create AzureIdentity team-a/fresh-${fresh.clientId} \\(MSI /subscriptions/${SUB}/resourcegroups/rg/providers/Microsoft\\.ManagedIdentity/userAssignedIdentities/fresh\\)$`,
          "mi",
        ),
      );
      assert.match(text.stdout, new RegExp(`^~ change AzureIdentity team-a/${cartName} .*\\n {4}spec\\.clientID: "stale" -> "${cart.clientId}"$`, "m"));
      assert.match(text.stdout, new RegExp(`^~ change AzureIdentity team-b/${legacyName} \\(adopt: not yet owned by azure-msi-operator`, "m"));
      assert.match(text.stdout, /^ {4}metadata\.labels\[app\.kubernetes\.io\/managed-by\]: \(absent\) -> "azure-msi-operator"$/m);
      assert.match(text.stdout, new RegExp(`^- delete AzureIdentity team-b/gone-${gone.clientId} `, "m"));
      assert.match(text.stdout, new RegExp(`^~ change AzureIdentityBinding team-a/shop\\n {4}spec\\.azureIdentity: "" -> "shop-${shop.clientId}"$`, "m"));
      assert.match(text.stdout, /^4 MSIs listed;/m);
      assert.match(text.stdout, /1 to create, 3 to change, 1 to delete, 1 unchanged, 0 skipped/);

      const preview = JSON.parse(json.stdout) as Preview;
      assert.deepEqual(
        preview.changes.map((change) => `${change.action} ${change.kind} ${change.namespace}/${change.name}`).sort(),
        [
          `change AzureIdentity team-a/${cartName}`,
          `change AzureIdentity team-b/${legacyName}`,
          `change AzureIdentityBinding team-a/shop`,
          `create AzureIdentity team-a/fresh-${fresh.clientId}`,
          `delete AzureIdentity team-b/gone-${gone.clientId}`,
        ].sort(),
      );
      assert.ok(!/"level"/.test(json.stdout), "stdout holds only the JSON preview; logs go to stderr");

      // Nothing written: not to the API server (its audit log records every write) and not to Azure.
      assert.deepEqual(await operatorWritesSince(started), [], "the API server saw no write from the diff");
      assert.deepEqual(
        fake.armRequests().filter((request) => request.method !== "GET"),
        [],
        "Azure saw only reads",
      );
      assert.equal(fake.armRequests().filter((request) => /userAssignedIdentities/.test(request.url)).length, 2, "one listing per diff run");

      // The audit log does see the operator's writes: the sync that follows is recorded.
      const syncStarted = Date.now();
      const applied = await syncOnce();
      // The adoption is a create answered 409, then a patch: what the diff called one change.
      assert.deepEqual(applied.writes, { create: 2, patch: 3, delete: 1 }, JSON.stringify(applied));
      // (the sync's summary counts an adoption among the created)
      assert.deepEqual([applied.created, applied.updated, applied.deleted, applied.bindingsUpdated], [2, 1, 1, 1]);
      assert.equal(operatorWrites(await plane.auditEventsSettled(), syncStarted).length, 6, "the audit log records the operator's identity and binding writes");

      const clean = await diff();
      assert.equal(clean.code, 0, clean.stdout + clean.stderr);
      assert.match(clean.stdout, /0 to create, 0 to change, 0 to delete, 4 unchanged/);
    },
  );

  test("an Azure listing that fails exits 2 and prints the reason; a bad flag exits 2", { timeout: 60_000 }, async () => {
    const rule = fake.inject({ match: /userAssignedIdentities(\?|$)/, times: Infinity, fault: faults.status(500) });
    try {
      const failed = await diff();
      assert.equal(failed.code, 2, failed.stdout + failed.stderr);
      assert.match(failed.stderr, /incomplete/i);
    } finally {
      rule.cancel();
    }
    const bad = await diff(["--output=yaml"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--output.*must be text or json/);
  });
});
