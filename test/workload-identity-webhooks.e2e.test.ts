// Workload identity mode, the webhooks' side: jane (every verb on ServiceAccounts in her team's
// namespaces) against the operator as a real process with the workload identity overlay's webhook
// configurations and Deployment env, through the real API server. A labelled ServiceAccount gets its
// MSI's client and tenant IDs; another team's client ID is refused and never stored. Then every
// replica goes away: new namespaces and plain ServiceAccounts go on as before (the webhooks are
// scoped so they are never sent), while a client ID is refused (fail closed).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi, type KubernetesObject, type V1Deployment, type V1ServiceAccount } from "@kubernetes/client-node";
import { WI_CLIENT_ID_ANNOTATION, WI_TENANT_ID_ANNOTATION, type AzureIdentity } from "../src/kube/resources.js";
import { MUTATE_SERVICE_ACCOUNT_PATH, VALIDATE_SERVICE_ACCOUNT_PATH } from "../src/webhook/server.js";
import { FakeAzure, type FakeIdentity } from "./azure/fake.js";
import { ControlPlane, type KubectlResult } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { allowServiceAccountWrites, createTeamNamespace } from "./support/developers.js";
import { loadManifest, podEnv, withOverlayPatches, WORKLOAD_IDENTITY_OVERLAY } from "./support/manifests.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { OperatorProcess, stopAll } from "./support/process.js";
import { installWebhooks, kustomize, waitForCaBundles } from "./support/webhooks.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000d4";
const LOOKUP = "msi.azure.k8s.io";
const SHOP_TENANT = "d4d4d4d4-0000-0000-0000-0000000000d4";
const labelsFor = (msi: string) => ({ [`${LOOKUP}/name`]: msi, [`${LOOKUP}/resourcegroup`]: "rg-wi", [`${LOOKUP}/subscription`]: SUB });
const serviceAccount = (name: string, namespace: string, fields: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}) => ({
  apiVersion: "v1",
  kind: "ServiceAccount",
  metadata: { name, namespace, ...fields },
});
const DENIED =
  /denied the request: azure\.workload\.identity\/client-id names only managed identities assigned to the ServiceAccount's namespace: jane may not set it/;
const DOWN = /failed calling webhook/;

describe("workload identity: the ServiceAccount webhooks", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let core: CoreV1Api;
  let shop: FakeIdentity;
  let other: FakeIdentity;
  let rendered: KubernetesObject[];
  let installed: KubernetesObject[];
  let env: Record<string, string>;
  const processes: OperatorProcess[] = [];
  let operator: OperatorProcess;

  const jane = (args: string[], object?: unknown) => plane.kubectl("jane", args, object ? { stdin: JSON.stringify(object) } : {});
  const admin = (args: string[], object?: unknown) => plane.kubectl("admin", args, object ? { stdin: JSON.stringify(object) } : {});
  const read = (namespace: string, name: string) => core.readNamespacedServiceAccount({ namespace, name }).catch(() => undefined);
  const annotationsOf = async (namespace: string, name: string) => (await read(namespace, name))?.metadata?.annotations ?? {};
  const ok = (result: KubectlResult, what: string) => assert.equal(result.code, 0, `${what}: ${result.stderr}`);
  const refused = (result: KubectlResult, pattern: RegExp, what: string) => {
    assert.notEqual(result.code, 0, `${what}: refused (stdout ${result.stdout})`);
    assert.match(result.stderr, pattern, what);
  };
  /** How often each ServiceAccount webhook was called, from the operator's own metrics. */
  const calls = async (proc: OperatorProcess, webhook: "mutate-serviceaccount" | "validate-serviceaccount") => {
    const text = (await proc.get("/metrics")).body;
    const pattern = new RegExp(`^azuremsi_admission_requests_total\\{webhook="${webhook}",[^}]*\\} (\\d+)$`, "gm");
    return [...text.matchAll(pattern)].reduce((sum, match) => sum + Number(match[1]), 0);
  };
  /** A replica whose webhook listens on `port` (0: any; the port it bound is read from its log). */
  const start = async (name: string, port: number, extraEnv: Record<string, string> = {}) => {
    const proc = await OperatorProcess.start(name, {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...env, ...extraEnv },
      flags: [`--webhook.bind=127.0.0.1:${port}`, "--webhook.tls.san=127.0.0.1"],
    });
    processes.push(proc);
    await eventually(() => proc.ready(), 40_000, `${name} ready`);
    return proc;
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start({ controllerManager: true }), FakeAzure.start()]);
    core = plane.api("admin", CoreV1Api);
    rendered = await kustomize(plane, WORKLOAD_IDENTITY_OVERLAY);
    await applyOperatorRbac(plane);
    await plane.kubectlOrThrow("admin", ["apply", "-f", `${WORKLOAD_IDENTITY_OVERLAY}rbac.yaml`]);
    for (const name of ["team-a", "team-b"]) {
      await createTeamNamespace(plane, name);
      await allowServiceAccountWrites(plane, name);
    }
    shop = fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg-wi",
      name: "shop",
      clientId: "d4000001-0000-0000-0000-0000000000d4",
      tenantId: SHOP_TENANT,
      tags: { k8snamespace: "team-a" },
    });
    other = fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg-wi",
      name: "other",
      clientId: "d4000002-0000-0000-0000-0000000000d4",
      tags: { k8snamespace: "team-b" },
    });
    const port = await reservePort();
    installed = await installWebhooks(plane, port, { overlay: WORKLOAD_IDENTITY_OVERLAY });
    // The overlay's Deployment env, as its pod sees it: the mode is on because the overlay says so.
    const deployment = rendered.find((object) => object.kind === "Deployment") as V1Deployment;
    env = { ...podEnv(deployment, "azure-msi-operator-wi"), ...fake.credentialEnv() };
    operator = await start("azure-msi-operator-wi", port);
    await waitForCaBundles(plane, 40_000);
    const custom = plane.api("admin", CustomObjectsApi);
    await eventually(
      async () => {
        const identity = (await custom
          .getNamespacedCustomObject({ group: GROUP, version: "v1", namespace: "team-a", plural: "azureidentities", name: `shop-${shop.clientId}` })
          .catch(() => undefined)) as AzureIdentity | undefined;
        return identity?.metadata?.annotations?.[WI_TENANT_ID_ANNOTATION] === SHOP_TENANT || undefined;
      },
      40_000,
      "shop's identity in team-a, with its tenant",
    );
  });
  after(async () => {
    try {
      await stopAll(processes);
    } finally {
      await Promise.all([plane?.stop(), fake?.close()]);
    }
  });

  test("kubectl kustomize renders the overlay as the manifest unit test reads it: the same webhook configurations, the mode on", async () => {
    const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
    const configurations = (objects: KubernetesObject[]) =>
      plain(objects.filter((object) => /WebhookConfiguration$/.test(object.kind ?? "")).sort((a, b) => a.kind!.localeCompare(b.kind!)));
    assert.deepEqual(configurations(rendered), configurations(await withOverlayPatches(await loadManifest("webhooks.yaml"), WORKLOAD_IDENTITY_OVERLAY)));
    assert.equal(env.WORKLOADIDENTITY_ENABLE, "true");
  });

  test("jane's labelled ServiceAccount gets its MSI's client and tenant IDs; applying it again writes nothing", async () => {
    const manifest = serviceAccount("shop", "team-a", { labels: labelsFor("shop") });
    ok(await jane(["apply", "-f", "-"], manifest), "apply");
    const stored = await read("team-a", "shop");
    assert.equal(stored?.metadata?.annotations?.[WI_CLIENT_ID_ANNOTATION], shop.clientId);
    assert.equal(stored?.metadata?.annotations?.[WI_TENANT_ID_ANNOTATION], SHOP_TENANT);
    const again = await jane(["apply", "-f", "-"], manifest);
    ok(again, "apply again");
    assert.match(again.stdout, /unchanged/);
    assert.equal((await read("team-a", "shop"))?.metadata?.resourceVersion, stored?.metadata?.resourceVersion, "no update, no loop");
    // Labels decide: another team's client ID next to team-a's labels is corrected, not stored.
    ok(
      await jane(
        ["create", "-f", "-"],
        serviceAccount("shop-2", "team-a", { labels: labelsFor("shop"), annotations: { [WI_CLIENT_ID_ANNOTATION]: other.clientId } }),
      ),
      "labelled create with another client ID",
    );
    assert.equal((await annotationsOf("team-a", "shop-2"))[WI_CLIENT_ID_ANNOTATION], shop.clientId);
  });

  test("another team's client ID is refused with what to do (create, dry-run, apply, patch, annotate) and never stored", async () => {
    const grab = serviceAccount("grab", "team-a", { annotations: { [WI_CLIENT_ID_ANNOTATION]: other.clientId } });
    for (const args of [
      ["create", "-f", "-"],
      ["create", "--dry-run=server", "-f", "-"],
      ["apply", "-f", "-"],
      ["apply", "--server-side", "-f", "-"],
    ]) {
      const result = await jane(args, grab);
      refused(result, DENIED, args.join(" "));
      assert.match(result.stderr, new RegExp(`may not set it to "${other.clientId}", which no AzureIdentity in "team-a" has`));
      assert.match(result.stderr, /label the ServiceAccount with msi\.azure\.k8s\.io\/name, .* tagged in Azure with k8snamespace: team-a/);
    }
    assert.equal(await read("team-a", "grab"), undefined, "not stored");
    // In a case Azure would accept too.
    refused(
      await jane(["create", "-f", "-"], serviceAccount("grab", "team-a", { annotations: { [WI_CLIENT_ID_ANNOTATION]: other.clientId.toUpperCase() } })),
      DENIED,
      "upper case",
    );
    const patch = JSON.stringify({ metadata: { annotations: { [WI_CLIENT_ID_ANNOTATION]: other.clientId } } });
    ok(await jane(["create", "serviceaccount", "plain", "-n", "team-a"]), "plain create");
    refused(await jane(["patch", "serviceaccount", "plain", "-n", "team-a", "--type=merge", "-p", patch]), DENIED, "patch onto a plain one");
    refused(
      await jane(["annotate", "serviceaccount", "plain", "-n", "team-a", `${WI_CLIENT_ID_ANNOTATION}=${other.clientId}`]),
      DENIED,
      "annotate a plain one",
    );
    // On a labelled one the labels decide: the mutating webhook puts shop's client ID back (only kubectl's managedFields entry changes).
    ok(await jane(["annotate", "serviceaccount", "shop", "-n", "team-a", "--overwrite", `${WI_CLIENT_ID_ANNOTATION}=${other.clientId}`]), "annotate");
    assert.equal((await annotationsOf("team-a", "shop"))[WI_CLIENT_ID_ANNOTATION], shop.clientId);
    assert.equal((await annotationsOf("team-a", "plain"))[WI_CLIENT_ID_ANNOTATION], undefined);
    // Team-b's own client ID is fine in team-b.
    ok(await jane(["create", "-f", "-"], serviceAccount("own", "team-b", { annotations: { [WI_CLIENT_ID_ANNOTATION]: other.clientId } })), "own client ID");
  });

  test("relabelled to another namespace's MSI: not filled, kubectl shows the warning; a new one labelled so stays without a client ID", async () => {
    const relabel = await jane(["label", "serviceaccount", "shop-2", "-n", "team-a", "--overwrite", `${LOOKUP}/name=other`]);
    ok(relabel, "relabel");
    assert.match(
      relabel.stderr,
      /Warning: no AzureIdentity for managed identity other \(resource group rg-wi, subscription .*\) is assigned to namespace "team-a"/,
    );
    assert.equal((await annotationsOf("team-a", "shop-2"))[WI_CLIENT_ID_ANNOTATION], shop.clientId, "left as it was");
    const created = await jane(["create", "-f", "-"], serviceAccount("other", "team-a", { labels: labelsFor("other") }));
    ok(created, "create");
    assert.match(created.stderr, /Warning: no AzureIdentity for managed identity other/);
    assert.deepEqual(await annotationsOf("team-a", "other"), {});
  });

  test("an unlabelled ServiceAccount is untouched and never sent to either webhook; a labelled one is", async () => {
    const [mutated, validated] = [await calls(operator, "mutate-serviceaccount"), await calls(operator, "validate-serviceaccount")];
    ok(await jane(["create", "-f", "-"], serviceAccount("unlabelled", "team-a", { labels: { app: "x" }, annotations: { note: "mine" } })), "create");
    ok(await jane(["label", "serviceaccount", "unlabelled", "-n", "team-a", "tier=web"]), "update");
    assert.deepEqual(await annotationsOf("team-a", "unlabelled"), { note: "mine" });
    assert.deepEqual([await calls(operator, "mutate-serviceaccount"), await calls(operator, "validate-serviceaccount")], [mutated, validated], "not sent");
    ok(await jane(["create", "-f", "-"], serviceAccount("labelled", "team-a", { labels: labelsFor("shop") })), "labelled create");
    assert.ok((await calls(operator, "mutate-serviceaccount")) > mutated, "the labelled one is sent to the mutating webhook");
    assert.ok((await calls(operator, "validate-serviceaccount")) > validated, "and, carrying the client ID now, to the validating one");
  });

  test("a client ID the operator does not know (an app registration) is stored, with a warning kubectl shows, and counted", async () => {
    const appRegistration = "a9900000-0000-0000-0000-0000000000a9";
    const before = await calls(operator, "validate-serviceaccount");
    const created = await jane(["create", "-f", "-"], serviceAccount("app-reg", "team-a", { annotations: { [WI_CLIENT_ID_ANNOTATION]: appRegistration } }));
    ok(created, "create");
    assert.match(
      created.stderr,
      new RegExp(`Warning: azure\\.workload\\.identity/client-id "${appRegistration}" is no managed identity this operator lists: it grants nothing`),
    );
    assert.equal((await annotationsOf("team-a", "app-reg"))[WI_CLIENT_ID_ANNOTATION], appRegistration);
    assert.ok((await calls(operator, "validate-serviceaccount")) > before);
    assert.match((await operator.get("/metrics")).body, /azuremsi_admission_unknown_client_ids_total\{result="allowed"\} [1-9]/);
  });

  test("an admin may set any client ID; jane may then change the rest, but not set it to another one", async () => {
    ok(
      await admin(["create", "-f", "-"], serviceAccount("platform", "team-a", { annotations: { [WI_CLIENT_ID_ANNOTATION]: other.clientId } })),
      "admin create",
    );
    assert.equal((await annotationsOf("team-a", "platform"))[WI_CLIENT_ID_ANNOTATION], other.clientId);
    ok(await jane(["label", "serviceaccount", "platform", "-n", "team-a", "tier=web"]), "jane labels it, the client ID as stored");
    refused(
      await jane(["annotate", "serviceaccount", "platform", "-n", "team-a", "--overwrite", `${WI_CLIENT_ID_ANNOTATION}=${other.clientId.toUpperCase()}`]),
      DENIED,
      "jane changes it",
    );
    ok(await jane(["annotate", "serviceaccount", "platform", "-n", "team-a", "--overwrite", `${WI_CLIENT_ID_ANNOTATION}=${shop.clientId}`]), "to her own");
  });

  test(
    "with --workloadidentity.strict a labelled ServiceAccount whose MSI is not tagged for its namespace, and an unknown client ID, are denied",
    { timeout: 90_000 },
    async () => {
      // A second replica with strict on (a follower), and both ServiceAccount webhooks pointed at it.
      const strictReplica = await start("azure-msi-operator-wi-strict", 0, { WORKLOADIDENTITY_STRICT: "true" });
      const strictPort = await strictReplica.webhookPort();
      const point = async (port: number, kind: string, path: string) => {
        const configuration = installed.find((object) => object.kind === kind) as { webhooks: { clientConfig: { url: string } }[] };
        const index = configuration.webhooks.findIndex((webhook) => webhook.clientConfig.url.endsWith(path));
        await plane.kubectlOrThrow("admin", [
          "patch",
          kind.toLowerCase(),
          "azure-msi-operator",
          "--type=json",
          "-p",
          JSON.stringify([{ op: "replace", path: `/webhooks/${index}/clientConfig/url`, value: `https://127.0.0.1:${port}${path}` }]),
        ]);
      };
      await point(strictPort, "MutatingWebhookConfiguration", MUTATE_SERVICE_ACCOUNT_PATH);
      await point(strictPort, "ValidatingWebhookConfiguration", VALIDATE_SERVICE_ACCOUNT_PATH);
      const unknown = await jane(
        ["create", "-f", "-"],
        serviceAccount("strict-app-reg", "team-a", { annotations: { [WI_CLIENT_ID_ANNOTATION]: "a9900000-0000-0000-0000-0000000000a9" } }),
      );
      refused(
        unknown,
        /denied the request: azure\.workload\.identity\/client-id "a9900000-.*" is no managed identity this operator lists, and --workloadidentity\.strict admits only/,
        "unknown, strict",
      );
      assert.equal(await read("team-a", "strict-app-reg"), undefined, "not stored");
      const denied = await jane(["create", "-f", "-"], serviceAccount("strict", "team-a", { labels: labelsFor("other") }));
      refused(
        denied,
        /denied the request: no AzureIdentity for managed identity other .* tag the managed identity in Azure with k8snamespace: team-a/,
        "strict",
      );
      assert.equal(await read("team-a", "strict"), undefined, "not stored");
      ok(await jane(["create", "-f", "-"], serviceAccount("strict-ok", "team-a", { labels: labelsFor("shop") })), "a matching one still passes");
      assert.equal((await annotationsOf("team-a", "strict-ok"))[WI_CLIENT_ID_ANNOTATION], shop.clientId);
    },
  );

  test(
    "with every replica down: a new namespace gets its default ServiceAccount, plain and labelled ones are created, a client ID is refused",
    { timeout: 120_000 },
    async (t) => {
      for (const proc of processes) proc.kill("SIGKILL");
      await Promise.all(processes.map((proc) => proc.exited));
      const started = Date.now();
      ok(await admin(["create", "namespace", "fresh"]), "namespace");
      const created = await eventually(() => read("fresh", "default"), 30_000, "default ServiceAccount of the new namespace");
      t.diagnostic(`namespace "fresh" and its default ServiceAccount in ${Date.now() - started} ms with no replica listening`);
      assert.deepEqual(created.metadata?.annotations ?? {}, {});
      ok(await jane(["create", "serviceaccount", "plain-down", "-n", "team-a"]), "plain");
      ok(await jane(["create", "-f", "-"], serviceAccount("labelled-down", "team-a", { labels: labelsFor("shop") })), "labelled (mutating: Ignore)");
      assert.deepEqual(await annotationsOf("team-a", "labelled-down"), {}, "not filled while down");
      // Removing a client ID is never sent, so it works while down; setting one fails closed, admins included.
      ok(await jane(["annotate", "serviceaccount", "shop", "-n", "team-a", `${WI_CLIENT_ID_ANNOTATION}-`]), "remove the client ID");
      assert.equal((await annotationsOf("team-a", "shop"))[WI_CLIENT_ID_ANNOTATION], undefined);
      const withClientId = serviceAccount("annotated-down", "team-a", { annotations: { [WI_CLIENT_ID_ANNOTATION]: shop.clientId } });
      refused(await jane(["create", "-f", "-"], withClientId), DOWN, "jane, even her own client ID");
      refused(await admin(["create", "-f", "-"], withClientId), DOWN, "an admin");
      assert.equal(await read("team-a", "annotated-down"), undefined, "not stored");
      // The control plane's namespace is never sent.
      ok(
        await admin(["create", "-f", "-"], serviceAccount("control-plane", "kube-system", { annotations: { [WI_CLIENT_ID_ANNOTATION]: other.clientId } })),
        "kube-system",
      );
      const stored: V1ServiceAccount | undefined = await read("kube-system", "control-plane");
      assert.equal(stored?.metadata?.annotations?.[WI_CLIENT_ID_ANNOTATION], other.clientId);
    },
  );
});
