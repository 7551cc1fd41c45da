// `azure-msi-operator migrate` as a real process against the real API server: a cluster with
// bindings, the operator's AzureIdentities, pods (plain Pods and a Deployment's, Pending: no kubelet)
// and ServiceAccounts. It prints per namespace the pods still on aad-pod-identity and the commands
// that move them, writing nothing; the printed commands, run by a shell as an admin would, let the
// operator (workload identity mode) federate the ServiceAccounts, and a real TokenRequest token of
// each is exchanged by the real WorkloadIdentityCredential at the fake Entra for its MSI. The
// leader's azuremsi_pod_identity_pods follows the pods, and loses a namespace's series with its last.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type V1PodSpec } from "@kubernetes/client-node";
import type { AzureIdentity } from "../src/kube/resources.js";
import type { MigrationReport } from "../src/workload/migrate.js";
import { clusterNameFor } from "../src/workload/names.js";
import { FakeAzure, type FakeIdentity } from "./azure/fake.js";
import { ADMIN, ControlPlane, OPERATOR_NAMESPACE } from "./controlplane/controlplane.js";
import { createAzureIdentityBinding } from "./support/aad-objects.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "./support/operator.js";
import { runCommand } from "./support/process.js";
import { exchangeForMsiToken } from "./support/workload-token.js";

const ISSUER = "https://kubernetes.default.svc";
const CLUSTER = clusterNameFor(ISSUER);
const SUB = "00000000-0000-0000-0000-0000000000e7";
const WRITES = new Set(["create", "update", "patch", "delete", "deletecollection"]);

describe("migrate: the pods still on aad-pod-identity, the moves, and applying them", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: RunningOperator;
  let core: CoreV1Api;
  let shop: FakeIdentity;
  let other: FakeIdentity;
  let dir: string;

  const migrate = (flags: string[] = []) =>
    runCommand(["migrate", `--kubeconfig=${plane.kubeconfigPath("admin")}`, ...flags], { INSTANCE_NAMESPACE: OPERATOR_NAMESPACE });
  /** A printed command, run by a shell as an admin with kubectl on the PATH would run it. */
  const shell = (command: string) =>
    new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn("sh", ["-c", command], {
        env: { ...process.env, KUBECONFIG: plane.kubeconfigPath("admin"), PATH: `${dirname(plane.assets.kubectl)}${delimiter}${process.env.PATH ?? ""}` },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, output }));
    });
  const exchange = (namespace: string, serviceAccount: string, msi: FakeIdentity) =>
    exchangeForMsiToken(core, fake, dir, { namespace, name: serviceAccount }, msi);
  const spec = (serviceAccountName: string): V1PodSpec => ({ serviceAccountName, containers: [{ name: "app", image: "app:1" }] });
  const podIdentitySeries = async () =>
    (await operator.metrics.registry.getSingleMetricAsString("azuremsi_pod_identity_pods"))
      .split("\n")
      .filter((line) => !line.startsWith("#") && line !== "")
      .sort();
  const identityName = async (namespace: string) => {
    const list = (await plane
      .api("admin", CustomObjectsApi)
      .listNamespacedCustomObject({ group: "aadpodidentity.k8s.io", version: "v1", namespace, plural: "azureidentities" })) as { items: AzureIdentity[] };
    return list.items[0]?.metadata?.name;
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    dir = mkdtempSync(join(tmpdir(), "migrate-"));
    core = plane.api("admin", CoreV1Api);
    await applyOperatorRbac(plane);
    await plane.kubectlOrThrow("admin", ["apply", "-f", "manifests/overlays/workload-identity/rbac.yaml"]);
    for (const name of ["team-a", "team-b"]) await createTeamNamespace(plane, name);
    shop = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-mig", name: "shop", tags: { k8snamespace: "team-a" } });
    other = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-mig", name: "other", tags: { k8snamespace: "team-b" } });
    fake.trustIssuer(ISSUER, async () => JSON.parse((await plane.adminGet("/openid/v1/jwks")).body) as unknown);

    // team-a: a Deployment whose ReplicaSet's two pods run as `api` (made by hand: no controller-manager runs).
    await core.createNamespacedServiceAccount({ namespace: "team-a", body: { metadata: { name: "api" } } });
    const apps = plane.api("admin", AppsV1Api);
    const labels = { app: "web", aadpodidbinding: "shop" };
    const deployment = await apps.createNamespacedDeployment({
      namespace: "team-a",
      body: { metadata: { name: "web" }, spec: { selector: { matchLabels: { app: "web" } }, template: { metadata: { labels }, spec: spec("api") } } },
    });
    const replicaSet = await apps.createNamespacedReplicaSet({
      namespace: "team-a",
      body: {
        metadata: {
          name: "web-5d4f",
          labels,
          ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "web", uid: deployment.metadata!.uid!, controller: true }],
        },
        spec: { selector: { matchLabels: { app: "web" } }, template: { metadata: { labels }, spec: spec("api") } },
      },
    });
    for (const name of ["web-5d4f-aaaaa", "web-5d4f-bbbbb"])
      await core.createNamespacedPod({
        namespace: "team-a",
        body: {
          metadata: {
            name,
            labels,
            ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-5d4f", uid: replicaSet.metadata!.uid!, controller: true }],
          },
          spec: spec("api"),
        },
      });
    // team-b: a bare pod running as a ServiceAccount that does not exist yet, and one whose label matches no binding.
    await core.createNamespacedPod({ namespace: "team-b", body: { metadata: { name: "batch", labels: { aadpodidbinding: "other" } }, spec: spec("worker") } });
    await core.createNamespacedPod({
      namespace: "team-b",
      body: { metadata: { name: "stray", labels: { aadpodidbinding: "nothing" } }, spec: spec("worker") },
    });
    // A pod without the label: never read by the operator's cache, never reported.
    await core.createNamespacedPod({ namespace: "team-b", body: { metadata: { name: "plain" }, spec: spec("worker") } });

    operator = await startOperator(plane, fake.credentialEnv(), [
      "run",
      "--webhook.enable=false",
      "--workloadidentity.enable",
      "--sync.interval=2s",
      "--sync.locktime=0s",
    ]);
    // The bindings name the identities the operator made for the tagged MSIs.
    const [shopIdentity, otherIdentity] = await Promise.all(
      ["team-a", "team-b"].map((namespace) => eventually(() => identityName(namespace), 30_000, `the AzureIdentity in ${namespace}`)),
    );
    const custom = plane.api("admin", CustomObjectsApi);
    await createAzureIdentityBinding(custom, "team-a", { name: "shop-binding" }, { azureIdentity: shopIdentity, selector: "shop" });
    await createAzureIdentityBinding(custom, "team-b", { name: "other-binding" }, { azureIdentity: otherIdentity, selector: "other" });
  });
  after(async () => {
    await operator?.stop();
    await Promise.all([plane?.stop(), fake?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the leader counts the pods still on pod identity, per namespace", { timeout: 60_000 }, async () => {
    await eventually(async () => ((await podIdentitySeries()).length === 2 ? true : undefined), 30_000, "both namespaces counted");
    assert.deepEqual(await podIdentitySeries(), ['azuremsi_pod_identity_pods{namespace="team-a"} 2', 'azuremsi_pod_identity_pods{namespace="team-b"} 2']);
  });

  test(
    "prints the moves (text and JSON), writes nothing; the printed commands move the pods and their ServiceAccounts get tokens",
    { timeout: 180_000 },
    async () => {
      const started = Date.now();
      const text = await migrate();
      const json = await migrate(["--output=json"]);
      assert.equal(text.code, 1, text.stdout + text.stderr);
      assert.equal(json.code, 1, json.stderr);
      const out = text.stdout;
      assert.match(out, /^namespace team-a: 2 pod\(s\) on aad-pod-identity$/m);
      assert.match(
        out,
        new RegExp(
          `^ {2}binding shop-binding \\(selector "shop"\\) -> AzureIdentity shop-${shop.clientId} -> MSI client ID ${shop.clientId}, /subscriptions/${SUB}/resourcegroups/rg-mig/providers/microsoft.managedidentity/userassignedidentities/shop$`,
          "mi",
        ),
      );
      assert.match(out, /^ {4}ServiceAccount api \[todo\]: Deployment web \(2 pod\(s\): web-5d4f-aaaaa, web-5d4f-bbbbb\)$/m, "the ReplicaSet's Deployment");
      assert.match(out, new RegExp(`^ {6}kubectl -n team-a annotate serviceaccount api azure.workload.identity/client-id=${shop.clientId}$`, "m"));
      assert.match(
        out,
        /^ {6}kubectl -n team-a patch deployment web --type=merge -p '\{"spec":\{"template":\{"metadata":\{"labels":\{"azure.workload.identity\/use":"true"\}\}\}\}\}'$/m,
      );
      assert.match(out, /^namespace team-b: 2 pod\(s\) on aad-pod-identity$/m);
      assert.match(out, /^ {4}ServiceAccount worker \(does not exist\) \[todo\]: Pod batch \(1 pod\(s\): batch\)$/m);
      assert.match(out, /^ {6}kubectl -n team-b create serviceaccount worker$/m);
      assert.match(out, /^ {6}# bare Pod batch: add the label azure.workload.identity\/use: "true" to its manifest/m);
      assert.match(out, /^ {2}! pod stray \(Pod stray\): aadpodidbinding="nothing" matches no AzureIdentityBinding in team-b/m);
      assert.doesNotMatch(out, /plain/);
      assert.match(out, /^4 pod\(s\) on aad-pod-identity in 2 namespace\(s\); 2 ServiceAccount change\(s\), 2 pod template\(s\) to label$/m);

      const report = JSON.parse(json.stdout) as MigrationReport;
      assert.equal(report.pods, 4);
      const moves = report.namespaces.flatMap((entry) => entry.moves.map((move) => ({ namespace: entry.namespace, ...move })));
      assert.deepEqual(
        moves.map((move) => [move.namespace, move.binding.name, move.identity?.clientID, move.serviceAccount.name, move.serviceAccount.state]),
        [
          ["team-a", "shop-binding", shop.clientId, "api", "todo"],
          ["team-b", "other-binding", other.clientId, "worker", "todo"],
        ],
      );

      // Read-only: the admin it ran as wrote nothing while it ran.
      const writes = (await plane.auditEventsSettled()).filter(
        (event) => Date.parse(event.requestReceivedTimestamp) >= started && event.user.username === ADMIN.user && WRITES.has(event.verb),
      );
      assert.deepEqual(
        writes.map((event) => `${event.verb} ${event.objectRef?.resource}`),
        [],
      );
      assert.deepEqual(fake.federatedCredentials(shop), [], "no FIC before the moves");

      // Apply the moves exactly as printed (the commands, not the comments).
      const commands = moves.flatMap((move) => move.commands.filter((command) => !command.startsWith("#")));
      assert.equal(commands.length, 4, commands.join("\n"));
      for (const command of commands) {
        const result = await shell(command);
        assert.equal(result.code, 0, `${command}\n${result.output}`);
      }
      const web = await plane.api("admin", AppsV1Api).readNamespacedDeployment({ namespace: "team-a", name: "web" });
      assert.equal(web.spec?.template.metadata?.labels?.["azure.workload.identity/use"], "true");

      // The operator federates both ServiceAccounts; a pod's token is exchanged for each MSI.
      await eventually(
        () => (fake.federatedCredentials(shop).length === 1 && fake.federatedCredentials(other).length === 1) || undefined,
        30_000,
        "both federated",
      );
      assert.deepEqual(
        fake.federatedCredentials(shop).map((fic) => `${fic.name} ${fic.subject}`),
        [`${CLUSTER}_team-a_api system:serviceaccount:team-a:api`],
      );
      assert.ok((await exchange("team-a", "api", shop))?.token, "team-a/api: a token for shop");
      assert.ok((await exchange("team-b", "worker", other))?.token, "team-b/worker: a token for other");
      await assert.rejects(exchange("team-b", "worker", shop), /AADSTS70021|AADSTS700213/, "and none for team-a's MSI");

      // Once moved, the ServiceAccounts are done; the old pods are still there until replaced.
      const again = JSON.parse((await migrate(["--output=json"])).stdout) as MigrationReport;
      assert.deepEqual(
        again.namespaces.flatMap((entry) => entry.moves.map((move) => move.serviceAccount.state)),
        ["done", "done"],
      );
      const webMove = again.namespaces[0]!.moves[0]!;
      assert.deepEqual(webMove.commands, [
        `# once its new pods get tokens through workload identity: kubectl -n team-a patch deployment web --type=json -p '[{"op":"remove","path":"/spec/template/metadata/labels/aadpodidbinding"}]'`,
      ]);

      // The pods replaced (as a rollout would): team-a drops to 0 and loses its series; migrate then reports team-b only.
      for (const name of ["web-5d4f-aaaaa", "web-5d4f-bbbbb"]) await core.deleteNamespacedPod({ namespace: "team-a", name, gracePeriodSeconds: 0 });
      await eventually(async () => ((await podIdentitySeries()).length === 1 ? true : undefined), 30_000, "team-a's series removed");
      assert.deepEqual(await podIdentitySeries(), ['azuremsi_pod_identity_pods{namespace="team-b"} 2']);
      for (const name of ["batch", "stray"]) await core.deleteNamespacedPod({ namespace: "team-b", name, gracePeriodSeconds: 0 });
      const done = await migrate();
      assert.equal(done.code, 0, done.stdout + done.stderr);
      assert.equal(done.stdout, "0 pod(s) on aad-pod-identity in 0 namespace(s); 0 ServiceAccount change(s), 0 pod template(s) to label\n");
      await eventually(async () => ((await podIdentitySeries()).length === 0 ? true : undefined), 30_000, "no series left");
    },
  );
});
