// The admission webhooks called by the real API server; kubectl as the developer is the user's path.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CustomObjectsApi } from "@kubernetes/client-node";
import type { AzureIdentity, AzureIdentityBinding } from "../src/kube/resources.js";
import { FakeAzure } from "./azure/fake.js";
import { ControlPlane } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "./support/operator.js";
import { installWebhooks, repointMutating, waitForCaBundles } from "./support/webhooks.js";
import { ACCEPTED_FINDINGS, promtoolCheck } from "./support/promtool.js";
import { createTeamNamespace } from "./support/developers.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000c3";
const LOOKUP = "msi.azure.k8s.io";
const SHOP = "shop-44444444-0000-0000-0000-000000000004";

const binding = (name: string, namespace: string, msi: string | undefined) => ({
  apiVersion: `${GROUP}/v1`,
  kind: "AzureIdentityBinding",
  metadata: {
    name,
    namespace,
    ...(msi ? { labels: { [`${LOOKUP}/name`]: msi, [`${LOOKUP}/resourcegroup`]: "rg-web", [`${LOOKUP}/subscription`]: SUB } } : {}),
  },
  spec: { selector: name },
});

describe("admission webhooks through the real API server", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: RunningOperator;
  let second: RunningOperator | undefined;
  let custom: CustomObjectsApi;
  let port: number;

  const getBinding = async (namespace: string, name: string) =>
    (await custom.getNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentitybindings", name })) as AzureIdentityBinding;

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start({ controllerManager: true }), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    custom = plane.api("admin", CustomObjectsApi);
    for (const name of ["team-a", "team-b", "doomed"]) await createTeamNamespace(plane, name);
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg-web",
      name: "shop",
      clientId: "44444444-0000-0000-0000-000000000004",
      tags: { k8snamespace: "team-a,doomed" },
    });
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg-web",
      name: "other",
      clientId: "55555555-0000-0000-0000-000000000005",
      tags: { k8snamespace: "team-b" },
    });
    port = await reservePort();
    await installWebhooks(plane, port);
    operator = await startOperator(plane, fake.credentialEnv(), [`--webhook.bind=127.0.0.1:${port}`, "--webhook.tls.san=127.0.0.1", "--sync.watch"]);
    await waitForCaBundles(plane);
    await eventually(() => operator.app.notReady() === undefined || undefined, 20_000, "operator ready");
    await eventually(
      async () =>
        (await custom
          .getNamespacedCustomObject({ group: GROUP, version: "v1", namespace: "team-a", plural: "azureidentities", name: SHOP })
          .catch(() => undefined)) as AzureIdentity | undefined,
      20_000,
      "identity synced",
    );
  });
  after(async () => {
    await second?.stop().catch(() => undefined);
    await operator?.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("jane's kubectl apply of an AzureIdentity is denied with the webhook's message, dry-run too", async () => {
    const stolen = {
      apiVersion: `${GROUP}/v1`,
      kind: "AzureIdentity",
      metadata: { name: "stolen", namespace: "team-a" },
      spec: {
        type: 0,
        resourceID: `/subscriptions/${SUB}/resourcegroups/rg-web/providers/microsoft.managedidentity/userassignedidentities/other`,
        clientID: "55555555-0000-0000-0000-000000000005",
      },
    };
    for (const extra of [[], ["--dry-run=server"]]) {
      const result = await plane.kubectl("jane", ["apply", "-f", "-", ...extra], { stdin: JSON.stringify(stolen) });
      assert.notEqual(result.code, 0);
      assert.match(
        result.stderr,
        /admission webhook "azureidentities\.azure-msi-operator\.aadpodidentity\.k8s\.io" denied the request: AzureIdentity objects are managed by azure-msi-operator: jane may not create them/,
      );
      assert.match(result.stderr, /k8snamespace: team-a/);
    }
  });

  test("jane may not patch, relabel or delete an operator-owned identity", async () => {
    const attempts = [
      ["patch", "azureidentity", SHOP, "-n", "team-a", "--type=merge", "-p", '{"spec":{"clientID":"55555555-0000-0000-0000-000000000005"}}'],
      ["label", "azureidentity", SHOP, "-n", "team-a", "app.kubernetes.io/managed-by-", "--overwrite"],
      ["label", "azureidentity", SHOP, "-n", "team-a", "extra=1", "--dry-run=server"],
      ["delete", "azureidentity", SHOP, "-n", "team-a"],
    ];
    for (const args of attempts) {
      const result = await plane.kubectl("jane", args);
      assert.notEqual(result.code, 0, args.join(" "));
      assert.match(result.stderr, /denied the request: AzureIdentity objects are managed by azure-msi-operator/, args.join(" "));
    }
    const stored = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: "v1",
      namespace: "team-a",
      plural: "azureidentities",
      name: SHOP,
    })) as AzureIdentity;
    assert.equal(stored.spec?.clientID, "44444444-0000-0000-0000-000000000004");
  });

  test("a system:masters user is allowed (and the operator itself keeps writing)", async () => {
    const result = await plane.kubectl("admin", ["label", "azureidentity", SHOP, "-n", "team-a", "audited=yes"]);
    assert.equal(result.code, 0, result.stderr);
    await plane.kubectlOrThrow("admin", ["patch", "azureidentity", SHOP, "-n", "team-a", "--type=merge", "-p", '{"spec":{"clientID":"x"}}']);
    await eventually(
      async () =>
        ((await custom.getNamespacedCustomObject({ group: GROUP, version: "v1", namespace: "team-a", plural: "azureidentities", name: SHOP })) as AzureIdentity)
          .spec?.clientID === "44444444-0000-0000-0000-000000000004" || undefined,
      5_000,
      "operator repaired it through the webhook",
    );
  });

  test("jane's labelled binding gets spec.azureIdentity; re-applying changes nothing", async () => {
    const manifest = JSON.stringify(binding("shop", "team-a", "shop"));
    const first = await plane.kubectl("jane", ["apply", "-f", "-"], { stdin: manifest });
    assert.equal(first.code, 0, first.stderr);
    assert.equal((await getBinding("team-a", "shop")).spec?.azureIdentity, SHOP);
    const version = (await getBinding("team-a", "shop")).metadata?.resourceVersion;
    const again = await plane.kubectl("jane", ["apply", "-f", "-"], { stdin: manifest });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /unchanged/);
    assert.equal((await getBinding("team-a", "shop")).metadata?.resourceVersion, version, "no update, no loop");
  });

  test("labels naming another namespace's MSI: not filled, kubectl shows the warning", async () => {
    const result = await plane.kubectl("jane", ["apply", "-f", "-"], { stdin: JSON.stringify(binding("grab", "team-a", "other")) });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Warning: no AzureIdentity for managed identity other .* namespace "team-a"/);
    assert.equal((await getBinding("team-a", "grab")).spec?.azureIdentity, undefined);
  });

  test("a binding without labels is stored untouched", async () => {
    const result = await plane.kubectl("jane", ["apply", "-f", "-"], { stdin: JSON.stringify(binding("plain", "team-b", undefined)) });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual((await getBinding("team-b", "plain")).spec, { selector: "plain" });
  });

  test("a second replica sharing the Secret serves requests the API server accepts; strict denies", async () => {
    second = await startOperator(plane, fake.credentialEnv(), [
      "--webhook.bind=127.0.0.1:0",
      "--webhook.tls.san=127.0.0.1",
      "--webhook.binding.strict",
      "--lease.enable",
    ]);
    await eventually(() => second!.app.notReady() === undefined || undefined, 20_000, "second replica ready");
    const secondPort = second.app.webhookPort;
    assert.ok(secondPort, "the second replica's webhook listens");
    await repointMutating(plane, secondPort);
    await eventually(
      async () => {
        const result = await plane.kubectl("jane", ["apply", "--dry-run=server", "-f", "-"], { stdin: JSON.stringify(binding("grab2", "team-a", "other")) });
        return result.code !== 0 && /denied the request: no AzureIdentity for managed identity other/.test(result.stderr) ? result : undefined;
      },
      10_000,
      "strict replica answering",
    );
    const filled = await plane.kubectl("jane", ["apply", "-f", "-"], { stdin: JSON.stringify(binding("shop2", "team-a", "shop")) });
    assert.equal(filled.code, 0, filled.stderr);
    assert.equal((await getBinding("team-a", "shop2")).spec?.azureIdentity, SHOP);
    await repointMutating(plane, port);
  });

  test("deleting a namespace that holds operator-owned identities completes", async () => {
    await eventually(
      async () =>
        ((await custom.listNamespacedCustomObject({ group: GROUP, version: "v1", namespace: "doomed", plural: "azureidentities" })) as { items: unknown[] })
          .items.length > 0 || undefined,
      10_000,
      "identity in doomed",
    );
    const result = await plane.kubectl("admin", ["delete", "namespace", "doomed", "--wait=true", "--timeout=90s"]);
    assert.equal(result.code, 0, result.stderr);
    const events = await plane.auditEvents();
    assert.ok(
      events.some(
        (event) =>
          event.verb === "deletecollection" &&
          event.objectRef?.resource === "azureidentities" &&
          event.objectRef.namespace === "doomed" &&
          event.responseStatus?.code === 200,
      ),
    );
  });

  test("admission metrics count what the webhook decided", async () => {
    const text = await operator.metrics.registry.metrics();
    assert.match(text, /azuremsi_admission_requests_total\{webhook="validate-azureidentity",operation="CREATE",result="denied"\} [1-9]/);
    assert.match(text, /azuremsi_admission_requests_total\{webhook="mutate-azureidentitybinding",operation="CREATE",result="patched"\} [1-9]/);
    assert.match(text, /azuremsi_webhook_certificate_expiry_timestamp_seconds\{certificate="serving"\} \d/);
  });

  test("ops server: /healthz and /readyz answer, /metrics passes promtool check metrics", async () => {
    const base = `http://127.0.0.1:${operator.app.opsPort}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const exposition = await (await fetch(`${base}/metrics`)).text();
    for (const name of [
      "azuremsi_sync_time",
      "azuremsi_sync_duration",
      "azuremsi_sync_resources_success",
      "azurerm_api_request_bucket",
      "azurerm_api_ratelimit",
      "azuremsi_admission_duration_seconds_bucket",
      "azuremsi_leader",
      "azuremsi_sync_writes",
      "process_resident_memory_bytes",
    ]) {
      assert.match(exposition, new RegExp(`^${name}[{ ]`, "m"), name);
    }
    const { code, findings } = await promtoolCheck(exposition);
    assert.notEqual(code, 1, `promtool could not parse the exposition: ${findings.join("; ")}`);
    const unexpected = findings.filter((finding) => !ACCEPTED_FINDINGS.some((accepted) => accepted.test(finding)));
    assert.deepEqual(unexpected, []);
  });
});
