// Every path by which aad-pod-identity decides who gets a token, attacked by jane (every verb on
// aadpodidentity.k8s.io and on pods in her namespaces) through the real API server, against the
// operator as a real process with the shipped webhook configurations and the shipped Deployment's
// env. Then every replica goes away: Kubernetes' own namespace cleanup must still finish, and jane
// must still be refused.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import type { AzureIdentity } from "../src/kube/resources.js";
import { FakeAzure } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE, type KubectlResult } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { createTeamNamespace } from "./support/developers.js";
import { shippedEnv } from "./support/manifests.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { OperatorProcess } from "./support/process.js";
import { installWebhooks, waitForCaBundles } from "./support/webhooks.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000a7";
const SHOP = "shop-11111111-0000-0000-0000-0000000000a7";
const OTHER = "other-22222222-0000-0000-0000-0000000000a7";
const MIC_NAMESPACE = "default";
const MIC_SERVICE_ACCOUNT = "aad-pod-id-mic-service-account";
/** kube-controller-manager's namespace deletion of a namespace holding every guarded kind, webhook down. */
const CLEANUP_BOUND_MS = 60_000;

type Plural = "azureidentities" | "azureassignedidentities" | "azurepodidentityexceptions";
type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; [key: string]: unknown };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
};

const identityRef = (name: string, namespace: string, clientID: string) => ({
  apiVersion: `${GROUP}/v1`,
  kind: "AzureIdentity",
  metadata: { name, namespace, annotations: { "aadpodidentity.k8s.io/Behavior": "namespaced" } },
  spec: { type: 0, resourceID: `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/${name}`, clientID },
});
/** What MIC writes for a pod: NMI hands the pod `identity`'s tokens as soon as this exists (with or without status). */
const assigned = (name: string, namespace: string, pod: string, identity: ReturnType<typeof identityRef>, status?: string): Obj => ({
  apiVersion: `${GROUP}/v1`,
  kind: "AzureAssignedIdentity",
  metadata: { name, namespace },
  spec: {
    azureIdentityRef: identity,
    azureBindingRef: {
      apiVersion: `${GROUP}/v1`,
      kind: "AzureIdentityBinding",
      metadata: { name: "b", namespace },
      spec: { azureIdentity: identity.metadata.name, selector: "b" },
    },
    pod,
    podNamespace: namespace,
    nodename: "node-1",
  },
  ...(status ? { status: { status, availableReplicas: 1 } } : {}),
});
const exception = (name: string, namespace: string): Obj => ({
  apiVersion: `${GROUP}/v1`,
  kind: "AzurePodIdentityException",
  metadata: { name, namespace },
  spec: { podLabels: { app: "skip-nmi" } },
});

describe("takeover paths: AzureAssignedIdentity, AzurePodIdentityException, cross-namespace matching; never wedged", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: OperatorProcess | undefined;
  let insecure: OperatorProcess | undefined;
  let admin: CustomObjectsApi;
  let micKubeconfig: string;
  let mic: CustomObjectsApi;

  const list = async (plural: Plural) => ((await admin.listClusterCustomObject({ group: GROUP, version: "v1", plural })) as { items: Obj[] }).items;
  /** Every stored object of a kind, by namespace/name with its resourceVersion: equal means nothing was written. */
  const snapshot = async (plural: Plural) =>
    Object.fromEntries((await list(plural)).map((item) => [`${item.metadata.namespace}/${item.metadata.name}`, item.metadata.resourceVersion]));
  const jane = (args: string[], object?: Obj) => plane.kubectl("jane", args, object ? { stdin: JSON.stringify(object) } : {});
  const refused = (result: KubectlResult, pattern: RegExp, what: string) => {
    assert.notEqual(result.code, 0, `${what}: refused (stdout ${result.stdout})`);
    assert.match(result.stderr, pattern, what);
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start({ controllerManager: true }), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    admin = plane.api("admin", CustomObjectsApi);
    for (const name of ["team-a", "team-b", "doomed", "doomed-live"]) await createTeamNamespace(plane, name);
    // MIC as aad-pod-identity's deploy/infra manifests install it, with its own RBAC on assigned identities.
    await plane.kubectlOrThrow("admin", ["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRole",
            metadata: { name: "aad-pod-id-mic-role" },
            rules: [{ apiGroups: [GROUP], resources: ["*"], verbs: ["*"] }],
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRoleBinding",
            metadata: { name: "aad-pod-id-mic-binding" },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "aad-pod-id-mic-role" },
            subjects: [{ kind: "ServiceAccount", name: MIC_SERVICE_ACCOUNT, namespace: MIC_NAMESPACE }],
          },
        ],
      }),
    });
    micKubeconfig = await plane.serviceAccountKubeconfig(MIC_NAMESPACE, MIC_SERVICE_ACCOUNT);
    const micConfig = new KubeConfig();
    micConfig.loadFromFile(micKubeconfig);
    mic = micConfig.makeApiClient(CustomObjectsApi);
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg",
      name: "shop",
      clientId: "11111111-0000-0000-0000-0000000000a7",
      tags: { k8snamespace: "team-a,doomed,doomed-live" },
    });
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg",
      name: "other",
      clientId: "22222222-0000-0000-0000-0000000000a7",
      tags: { k8snamespace: "team-b" },
    });
    const port = await reservePort();
    await installWebhooks(plane, port);
    operator = await OperatorProcess.start("azure-msi-operator-takeover", {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...(await shippedEnv("azure-msi-operator-takeover")), ...fake.credentialEnv() },
      flags: [`--webhook.bind=127.0.0.1:${port}`, "--webhook.tls.san=127.0.0.1"],
    });
    await waitForCaBundles(plane, 40_000);
    await eventually(() => operator!.ready(), 40_000, "operator ready");
    for (const namespace of ["team-a", "doomed", "doomed-live"])
      await eventually(
        () => admin.getNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentities", name: SHOP }).catch(() => undefined),
        40_000,
        `shop in ${namespace}`,
      );
    await eventually(
      () =>
        admin.getNamespacedCustomObject({ group: GROUP, version: "v1", namespace: "team-b", plural: "azureidentities", name: OTHER }).catch(() => undefined),
      40_000,
      "other in team-b",
    );
  });
  after(async () => {
    await insecure?.stop().catch(() => undefined);
    await operator?.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("with the shipped Deployment's env, the operator's identities are namespaced and it says who may write the guarded kinds", async () => {
    for (const identity of (await list("azureidentities")) as AzureIdentity[]) {
      assert.equal(
        identity.metadata?.annotations?.["aadpodidentity.k8s.io/Behavior"],
        "namespaced",
        `${identity.metadata?.namespace}/${identity.metadata?.name}`,
      );
    }
    assert.match((await operator!.get("/metrics")).body, /^azuremsi_identities_namespaced 1$/m);
    assert.equal(
      operator!.logs.find((line) => /identities are not namespaced/.test(String(line.msg))),
      undefined,
      "no insecure-configuration warning",
    );
    const guard = await operator!.waitForLog((line) => /^guard: only these users and groups/.test(String(line.msg)));
    assert.deepEqual(guard.azurePodIdentityExceptions, ["group:system:masters"]);
    assert.ok((guard.azureAssignedIdentities as string[]).includes(`system:serviceaccount:${MIC_NAMESPACE}:${MIC_SERVICE_ACCOUNT}`));
    assert.ok((guard.azureIdentities as string[]).includes(`system:serviceaccount:${OPERATOR_NAMESPACE}:azure-msi-operator`));
  });

  test(
    "AzureAssignedIdentity: jane's create, dry-run, server-side apply, replace, patches (spec and status only) and deletes are refused; nothing is stored",
    { timeout: 90_000 },
    async () => {
      const shop = identityRef(SHOP, "team-a", "11111111-0000-0000-0000-0000000000a7");
      const other = identityRef(OTHER, "team-b", "22222222-0000-0000-0000-0000000000a7");
      // What MIC made for a pod of team-a, in team-a (namespaced identities' assigned identities live there).
      await mic.createNamespacedCustomObject({
        group: GROUP,
        version: "v1",
        namespace: "team-a",
        plural: "azureassignedidentities",
        body: assigned("app-team-a-shop", "team-a", "app", shop, "Assigned"),
      });
      const before = await snapshot("azureassignedidentities");
      const DENIED = /denied the request: AzureAssignedIdentity objects are written only by aad-pod-identity's MIC: jane may not (create|change|delete) them/;

      // team-b's identity for jane's pod, without a status (NMI takes those too), and with one.
      const stolen = assigned("janes-pod-team-a-other", "team-a", "janes-pod", other);
      refused(await jane(["create", "-f", "-"], stolen), DENIED, "create");
      refused(await jane(["create", "--dry-run=server", "-f", "-"], assigned("dry", "team-a", "janes-pod", other, "Assigned")), DENIED, "dry-run create");
      refused(
        await jane(["apply", "--server-side", "--field-manager=mic", "-f", "-"], assigned("ssa", "team-a", "janes-pod", other, "Assigned")),
        DENIED,
        "server-side apply",
      );
      const made = (await admin.getNamespacedCustomObject({
        group: GROUP,
        version: "v1",
        namespace: "team-a",
        plural: "azureassignedidentities",
        name: "app-team-a-shop",
      })) as Obj;
      refused(await jane(["replace", "-f", "-"], { ...made, spec: { ...made.spec, azureIdentityRef: other } }), DENIED, "replace with another identity");
      const patchMade = (type: "json" | "merge", patch: unknown) =>
        jane(["patch", "azureassignedidentity", "app-team-a-shop", "-n", "team-a", `--type=${type}`, "-p", JSON.stringify(patch)]);
      refused(await patchMade("json", [{ op: "replace", path: "/spec/pod", value: "janes-pod" }]), DENIED, "patch spec.pod");
      refused(await patchMade("merge", { status: { availableReplicas: 2 } }), DENIED, "status-only patch");
      refused(await jane(["delete", "azureassignedidentity", "app-team-a-shop", "-n", "team-a"]), DENIED, "delete");
      refused(await jane(["delete", "azureassignedidentities", "--all", "-n", "team-a"]), DENIED, "delete --all");
      assert.deepEqual(await snapshot("azureassignedidentities"), before, "nothing stored, nothing changed");

      // MIC keeps working: status updates, its own creates and deletes; an admin may too.
      const micStatus = await plane.kubectlWith(micKubeconfig, [
        "patch",
        "azureassignedidentity",
        "app-team-a-shop",
        "-n",
        "team-a",
        "--type=json",
        "-p",
        JSON.stringify([{ op: "replace", path: "/status/status", value: "Created" }]),
      ]);
      assert.equal(micStatus.code, 0, micStatus.stderr);
      const micCreate = await plane.kubectlWith(micKubeconfig, ["create", "-f", "-"], {
        stdin: JSON.stringify(assigned("worker-team-a-shop", "team-a", "worker", shop)),
      });
      assert.equal(micCreate.code, 0, micCreate.stderr);
      const micDelete = await plane.kubectlWith(micKubeconfig, ["delete", "azureassignedidentity", "worker-team-a-shop", "-n", "team-a"]);
      assert.equal(micDelete.code, 0, micDelete.stderr);
      const adminCreate = await plane.kubectl("admin", ["create", "-f", "-"], {
        stdin: JSON.stringify(assigned("admin-made", "team-b", "tool", other, "Assigned")),
      });
      assert.equal(adminCreate.code, 0, adminCreate.stderr);
      assert.deepEqual(Object.keys(await snapshot("azureassignedidentities")).sort(), ["team-a/app-team-a-shop", "team-b/admin-made"]);
    },
  );

  test(
    "AzurePodIdentityException: jane's create, dry-run, server-side apply, replace, patch and delete are refused, and MIC's too; an admin may",
    { timeout: 90_000 },
    async () => {
      await plane.kubectlOrThrow("admin", ["create", "-f", "-"], { stdin: JSON.stringify(exception("admin-made", "team-a")) });
      const before = await snapshot("azurepodidentityexceptions");
      const DENIED = /denied the request: AzurePodIdentityException objects are written only by cluster admins: jane may not (create|change|delete) them/;
      refused(await jane(["create", "-f", "-"], exception("skip-nmi", "team-a")), DENIED, "create");
      refused(await jane(["create", "--dry-run=server", "-f", "-"], exception("skip-nmi", "team-a")), DENIED, "dry-run create");
      refused(await jane(["apply", "--server-side", "-f", "-"], exception("skip-nmi", "team-a")), DENIED, "server-side apply");
      const made = (await admin.getNamespacedCustomObject({
        group: GROUP,
        version: "v1",
        namespace: "team-a",
        plural: "azurepodidentityexceptions",
        name: "admin-made",
      })) as Obj;
      refused(await jane(["replace", "-f", "-"], { ...made, spec: { podLabels: { app: "janes-pod" } } }), DENIED, "replace");
      refused(
        await jane([
          "patch",
          "azurepodidentityexception",
          "admin-made",
          "-n",
          "team-a",
          "--type=merge",
          "-p",
          JSON.stringify({ spec: { podLabels: { app: "janes-pod" } } }),
        ]),
        DENIED,
        "patch",
      );
      refused(await jane(["delete", "azurepodidentityexception", "admin-made", "-n", "team-a"]), DENIED, "delete");
      const byMic = await plane.kubectlWith(micKubeconfig, ["create", "-f", "-"], { stdin: JSON.stringify(exception("mic-made", "team-a")) });
      refused(
        byMic,
        /AzurePodIdentityException objects are written only by cluster admins: system:serviceaccount:default:aad-pod-id-mic-service-account may not create them/,
        "MIC",
      );
      assert.deepEqual(await snapshot("azurepodidentityexceptions"), before, "nothing stored, nothing changed");
    },
  );

  test("with --azureidentity.namespaced off (the flag's drop-in default) a replica warns at start-up and exports 0", { timeout: 60_000 }, async () => {
    const env = { ...(await shippedEnv("azure-msi-operator-insecure")), ...fake.credentialEnv() };
    delete env.AZUREIDENTITY_NAMESPACED;
    // A follower (the other replica holds the Lease): it never syncs, so the identities stay as they are.
    insecure = await OperatorProcess.start("azure-msi-operator-insecure", {
      kubeconfig: plane.kubeconfigPath("operator"),
      env,
      flags: ["--webhook.bind=127.0.0.1:0", "--webhook.tls.san=127.0.0.1"],
    });
    const warning = await insecure.waitForLog((line) => /identities are not namespaced/.test(String(line.msg)), 30_000);
    assert.equal(warning.level, "warn", "a warning, level as zap names it");
    assert.match(String(warning.msg), /AZUREIDENTITY_NAMESPACED=true/);
    await eventually(
      async () => /^azuremsi_identities_namespaced 0$/m.test((await insecure!.get("/metrics").catch(() => ({ body: "" }))).body) || undefined,
      20_000,
      "metric 0",
    );
    await insecure.stop();
    insecure = undefined;
  });

  /** A namespace holding one of each guarded kind, made by their rightful writers. */
  const fill = async (namespace: string) => {
    const shop = identityRef(SHOP, namespace, "11111111-0000-0000-0000-0000000000a7");
    await mic.createNamespacedCustomObject({
      group: GROUP,
      version: "v1",
      namespace,
      plural: "azureassignedidentities",
      body: assigned("app", namespace, "app", shop, "Assigned"),
    });
    await admin.createNamespacedCustomObject({
      group: GROUP,
      version: "v1",
      namespace,
      plural: "azurepodidentityexceptions",
      body: exception("skip", namespace),
    });
    const held = await Promise.all(
      (["azureidentities", "azureassignedidentities", "azurepodidentityexceptions"] as const).map(
        async (plural) => (await list(plural)).filter((item) => item.metadata.namespace === namespace).length,
      ),
    );
    assert.deepEqual(held, [1, 1, 1], `${namespace} holds one of each`);
  };
  const deleteNamespace = async (namespace: string): Promise<number> => {
    const started = Date.now();
    await plane.kubectlOrThrow("admin", ["delete", "namespace", namespace, "--wait=false"]);
    await eventually(
      async () => (await plane.kubectl("admin", ["get", "namespace", namespace])).code !== 0 || undefined,
      CLEANUP_BOUND_MS,
      `namespace ${namespace} deleted`,
    );
    return Date.now() - started;
  };

  test("deleting a namespace that holds every guarded kind completes while the operator runs", { timeout: 90_000 }, async (t) => {
    await fill("doomed-live");
    const ms = await deleteNamespace("doomed-live");
    for (const plural of ["azureidentities", "azureassignedidentities", "azurepodidentityexceptions"] as const)
      assert.equal((await list(plural)).filter((item) => item.metadata.namespace === "doomed-live").length, 0, plural);
    t.diagnostic(`namespace with every guarded kind deleted in ${ms} ms (operator up)`);
  });

  test("with every replica down: jane is still refused, and a namespace holding every guarded kind deletes to completion", { timeout: 120_000 }, async (t) => {
    await fill("doomed");
    operator!.kill("SIGKILL");
    await operator!.exited;
    operator = undefined;
    const before = await Promise.all((["azureidentities", "azureassignedidentities", "azurepodidentityexceptions"] as const).map(snapshot));
    const DOWN = /failed calling webhook/;
    refused(
      await jane(["create", "-f", "-"], {
        apiVersion: `${GROUP}/v1`,
        kind: "AzureIdentity",
        metadata: { name: "stolen", namespace: "team-a" },
        spec: { type: 0, resourceID: "/x", clientID: "22222222-0000-0000-0000-0000000000a7" },
      }),
      DOWN,
      "AzureIdentity",
    );
    refused(
      await jane(["create", "-f", "-"], assigned("stolen", "team-a", "janes-pod", identityRef(OTHER, "team-b", "22222222-0000-0000-0000-0000000000a7"))),
      DOWN,
      "AzureAssignedIdentity",
    );
    refused(await jane(["create", "-f", "-"], exception("stolen", "team-a")), DOWN, "AzurePodIdentityException");
    refused(await jane(["delete", "azureidentity", SHOP, "-n", "team-a"]), DOWN, "delete");
    refused(await jane(["delete", "namespace", "team-a"]), /forbidden/, "jane cannot delete a namespace herself");
    assert.deepEqual(
      await Promise.all((["azureidentities", "azureassignedidentities", "azurepodidentityexceptions"] as const).map(snapshot)),
      before,
      "nothing written while down",
    );

    const ms = await deleteNamespace("doomed");
    for (const plural of ["azureidentities", "azureassignedidentities", "azurepodidentityexceptions"] as const)
      assert.equal((await list(plural)).filter((item) => item.metadata.namespace === "doomed").length, 0, plural);
    t.diagnostic(`namespace with every guarded kind deleted in ${ms} ms with no replica listening`);
  });
});
