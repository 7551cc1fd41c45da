// The migration report off aad-pod-identity (pure): which pods NMI still serves, through which
// binding and MSI, and the exact commands that move them; and the per-namespace count behind
// azuremsi_pod_identity_pods, whose series go away with the last pod.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { AzureIdentity, AzureIdentityBinding } from "../kube/resources.js";
import { Metrics } from "../metrics/metrics.js";
import { formatMigration, migrationExitCode, migrationReport, podIdentityCounts, type MigrationInput, type PodView } from "./migrate.js";
import type { LabelledServiceAccount } from "./plan.js";

const keys = lookupLabelKeys("msi.azure.k8s.io/%s")!;
const SUB = "00000000-0000-0000-0000-0000000000e1";
const SHOP = "11111111-0000-0000-0000-000000000001";
const CART = "22222222-0000-0000-0000-000000000002";
const resourceId = (name: string) => `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/${name}`;

const identity = (namespace: string, name: string, msi: string, clientID: string, managed = true): AzureIdentity => ({
  metadata: {
    namespace,
    name,
    labels: managed ? { "app.kubernetes.io/managed-by": "azure-msi-operator", [keys.name]: msi, [keys.resourcegroup]: "rg", [keys.subscription]: SUB } : {},
  },
  spec: { type: 0, clientID, resourceID: resourceId(msi) },
});
const binding = (namespace: string, name: string, selector: string, azureIdentity: string): AzureIdentityBinding => ({
  metadata: { namespace, name },
  spec: { selector, azureIdentity },
});
const pod = (namespace: string, name: string, selector: string, serviceAccount: string, owner: PodView["owner"], fields: Partial<PodView> = {}): PodView => ({
  namespace,
  name,
  selector,
  serviceAccount,
  usesWorkloadIdentity: false,
  phase: "Running",
  owner,
  ...fields,
});
const account = (namespace: string, name: string, fields: Partial<LabelledServiceAccount> = {}): LabelledServiceAccount => ({
  namespace,
  name,
  labels: {},
  ...fields,
});

function input(fields: Partial<MigrationInput>): MigrationInput {
  return { pods: [], bindings: [], identities: [], serviceAccounts: [], lookupKeys: keys, ...fields };
}

describe("the migration report", () => {
  test("pods of a Deployment and a CronJob on one binding: annotate their ServiceAccount, label both templates, then drop the old label", () => {
    const report = migrationReport(
      input({
        pods: [
          pod("team-a", "web-1", "shop", "api", { kind: "Deployment", name: "web" }),
          pod("team-a", "web-2", "shop", "api", { kind: "Deployment", name: "web" }),
          pod("team-a", "nightly-123-x", "shop", "api", { kind: "CronJob", name: "nightly" }),
          pod("team-a", "done-1", "shop", "api", { kind: "Job", name: "done" }, { phase: "Succeeded" }),
          pod("team-a", "stray", "old", "default", { kind: "Pod", name: "stray" }),
        ],
        bindings: [binding("team-a", "shop-binding", "shop", "shop-id"), binding("team-b", "elsewhere", "old", "x")],
        identities: [identity("team-a", "shop-id", "shop", SHOP)],
        serviceAccounts: [account("team-a", "api")],
      }),
    );
    assert.equal(report.pods, 4, "a finished pod is not counted");
    assert.equal(migrationExitCode(report), 1);
    const [ns] = report.namespaces;
    assert.equal(ns!.namespace, "team-a");
    assert.deepEqual(
      ns!.unmatched,
      [{ pod: "stray", selector: "old", owner: { kind: "Pod", name: "stray" }, elsewhere: ["team-b/elsewhere"] }],
      "a binding of another namespace is no move here, but it is named",
    );
    assert.equal(ns!.moves.length, 1);
    const [move] = ns!.moves;
    assert.deepEqual(move!.identity, { name: "shop-id", clientID: SHOP, resourceID: resourceId("shop"), type: 0, managed: true });
    assert.deepEqual(move!.serviceAccount, {
      name: "api",
      exists: true,
      state: "todo",
      clientId: null,
      annotations: { "azure.workload.identity/client-id": SHOP },
      labels: { [keys.name]: "shop", [keys.resourcegroup]: "rg", [keys.subscription]: SUB },
    });
    assert.deepEqual(
      move!.workloads.map((workload) => [workload.kind, workload.name, workload.pods]),
      [
        ["CronJob", "nightly", ["nightly-123-x"]],
        ["Deployment", "web", ["web-1", "web-2"]],
      ],
    );
    assert.deepEqual(move!.commands, [
      `kubectl -n team-a annotate serviceaccount api azure.workload.identity/client-id=${SHOP}`,
      `#   or the lookup labels instead: kubectl -n team-a label serviceaccount api msi.azure.k8s.io/name=shop msi.azure.k8s.io/resourcegroup=rg msi.azure.k8s.io/subscription=${SUB}`,
      `kubectl -n team-a patch cronjob nightly --type=merge -p '{"spec":{"jobTemplate":{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}}}'`,
      `kubectl -n team-a patch deployment web --type=merge -p '{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}'`,
      `# once its new pods get tokens through workload identity: kubectl -n team-a patch cronjob nightly --type=json -p '[{"op":"remove","path":"/spec/jobTemplate/spec/template/metadata/labels/aadpodidbinding"}]'`,
      `# once its new pods get tokens through workload identity: kubectl -n team-a patch deployment web --type=json -p '[{"op":"remove","path":"/spec/template/metadata/labels/aadpodidbinding"}]'`,
    ]);
    assert.deepEqual(move!.warnings, []);

    const text = formatMigration(report);
    assert.match(text, /^namespace team-a: 4 pod\(s\) on aad-pod-identity$/m);
    assert.match(
      text,
      new RegExp(`^ {2}binding shop-binding \\(selector "shop"\\) -> AzureIdentity shop-id -> MSI client ID ${SHOP}, ${resourceId("shop")}$`, "m"),
    );
    assert.match(text, /^ {4}ServiceAccount api \[todo\]: CronJob nightly \(1 pod\(s\): nightly-123-x\); Deployment web \(2 pod\(s\): web-1, web-2\)$/m);
    assert.match(text, new RegExp(`^ {6}kubectl -n team-a annotate serviceaccount api azure.workload.identity/client-id=${SHOP}$`, "m"));
    assert.match(
      text,
      /^ {2}! pod stray \(Pod stray\): aadpodidbinding="old" matches no AzureIdentityBinding in team-a, but team-b\/elsewhere has that selector: without forceNamespaced .* before removing the label$/m,
    );
    assert.match(text, /^4 pod\(s\) on aad-pod-identity in 1 namespace\(s\); 1 ServiceAccount change\(s\), 2 pod template\(s\) to label$/m);
  });

  test("done, conflicting and missing: a ServiceAccount already right, one naming another client ID, a binding whose identity is gone", () => {
    const report = migrationReport(
      input({
        pods: [
          pod("team-a", "ready", "shop", "ready", { kind: "Deployment", name: "ready" }, { usesWorkloadIdentity: true }),
          pod("team-a", "taken", "shop", "taken", { kind: "StatefulSet", name: "taken" }),
          pod("team-a", "ghost", "ghost", "ghost", { kind: "Deployment", name: "ghost" }),
          pod("team-a", "once", "shop", "labelled", { kind: "Job", name: "once" }),
        ],
        bindings: [binding("team-a", "shop", "shop", "shop-id"), binding("team-a", "ghost", "ghost", "gone-id")],
        identities: [identity("team-a", "shop-id", "shop", SHOP)],
        serviceAccounts: [
          account("team-a", "ready", { clientId: SHOP.toUpperCase() }),
          account("team-a", "taken", { clientId: CART }),
          account("team-a", "labelled", { labels: { [keys.name]: "SHOP", [keys.resourcegroup]: "rg", [keys.subscription]: SUB }, clientId: "stale" }),
        ],
      }),
    );
    const moves = Object.fromEntries(report.namespaces[0]!.moves.map((move) => [move.serviceAccount.name, move]));
    assert.equal(moves.ready!.serviceAccount.state, "done");
    assert.deepEqual(moves.ready!.commands, [
      `# once its new pods get tokens through workload identity: kubectl -n team-a patch deployment ready --type=json -p '[{"op":"remove","path":"/spec/template/metadata/labels/aadpodidbinding"}]'`,
    ]);
    assert.equal(moves.labelled!.serviceAccount.state, "done", "the lookup labels decide, whatever the annotation says");
    assert.deepEqual(moves.labelled!.commands, [
      `# Job once: its pod template cannot be changed; add the label azure.workload.identity/use: "true" to its manifest and run it again`,
    ]);
    assert.equal(moves.taken!.serviceAccount.state, "conflict");
    assert.equal(moves.taken!.commands[0], `kubectl -n team-a annotate serviceaccount taken azure.workload.identity/client-id=${SHOP} --overwrite`);
    assert.match(
      moves.taken!.warnings.join("\n"),
      new RegExp(`ServiceAccount taken names client ID ${CART} now: overwriting it moves every pod that runs as taken`),
    );
    assert.equal(moves.ghost!.serviceAccount.state, "blocked");
    assert.equal(moves.ghost!.identity, null);
    assert.deepEqual(moves.ghost!.commands, []);
    assert.deepEqual(moves.ghost!.warnings, ["AzureIdentity gone-id (the binding's spec.azureIdentity) does not exist in team-a: no MSI to move to"]);
    assert.match(formatMigration(report), /^ {2}binding ghost \(selector "ghost"\) -> AzureIdentity gone-id \(missing\)$/m);
  });

  test("the default ServiceAccount shared by two bindings' pods, a bare pod, an identity made by hand, a missing ServiceAccount", () => {
    const report = migrationReport(
      input({
        pods: [
          pod("team-c", "a", "shop", "default", { kind: "Pod", name: "a" }),
          pod("team-c", "b", "cart", "default", { kind: "Deployment", name: "b" }),
          pod("team-c", "c", "cart", "new-sa", { kind: "Deployment", name: "c" }),
        ],
        bindings: [binding("team-c", "shop", "shop", "shop-id"), binding("team-c", "cart", "cart", "cart-id")],
        identities: [identity("team-c", "shop-id", "shop", SHOP), identity("team-c", "cart-id", "cart", CART, false)],
        serviceAccounts: [account("team-c", "default")],
      }),
    );
    const moves = report.namespaces[0]!.moves;
    const shop = moves.find((move) => move.binding.name === "shop")!;
    assert.match(shop.commands.join("\n"), /# bare Pod a: add the label azure.workload.identity\/use: "true" to its manifest and create it again/);
    assert.ok(shop.warnings.some((warning) => warning.startsWith("the pods run as the namespace's default ServiceAccount")));
    assert.ok(
      shop.warnings.some((warning) =>
        warning.startsWith(`ServiceAccount default also runs pods of binding cart (client ID ${CART}): one ServiceAccount names one client ID`),
      ),
      shop.warnings.join("\n"),
    );
    const cartDefault = moves.find((move) => move.binding.name === "cart" && move.serviceAccount.name === "default")!;
    assert.ok(cartDefault.warnings.some((warning) => warning.includes("also runs pods of binding shop")));
    assert.ok(
      cartDefault.warnings.some(
        (warning) =>
          warning === "AzureIdentity cart-id is not managed by azure-msi-operator: the operator makes the FIC only if the MSI is tagged for namespace team-c",
      ),
    );
    assert.deepEqual(cartDefault.serviceAccount.labels, null, "a hand-made identity has no lookup labels to offer");
    const fresh = moves.find((move) => move.serviceAccount.name === "new-sa")!;
    assert.equal(fresh.serviceAccount.exists, false);
    assert.deepEqual(fresh.commands.slice(0, 2), [
      "kubectl -n team-c create serviceaccount new-sa",
      `kubectl -n team-c annotate serviceaccount new-sa azure.workload.identity/client-id=${CART}`,
    ]);
    assert.match(formatMigration(report), /^ {4}ServiceAccount new-sa \(does not exist\) \[todo\]: Deployment c \(1 pod\(s\): c\)$/m);
  });

  test("a template labelled already (its old pods not yet replaced) is not patched again; one without aadpodidbinding needs no removal", () => {
    const rolling = { kind: "Deployment", name: "rolling", templateLabels: { "azure.workload.identity/use": "true", aadpodidbinding: "shop" } };
    const cleaned = { kind: "StatefulSet", name: "cleaned", templateLabels: { "azure.workload.identity/use": "true" } };
    const pending = { kind: "DaemonSet", name: "pending", templateLabels: { aadpodidbinding: "shop" } };
    const report = migrationReport(
      input({
        pods: [
          pod("team-a", "rolling-1", "shop", "api", rolling),
          pod("team-a", "rolling-2", "shop", "api", rolling, { usesWorkloadIdentity: true }),
          pod("team-a", "cleaned-0", "shop", "api", cleaned),
          pod("team-a", "pending-x", "shop", "api", pending, { usesWorkloadIdentity: true }),
        ],
        bindings: [binding("team-a", "shop", "shop", "shop-id")],
        identities: [identity("team-a", "shop-id", "shop", SHOP)],
        serviceAccounts: [account("team-a", "api", { clientId: SHOP })],
      }),
    );
    const [move] = report.namespaces[0]!.moves;
    assert.deepEqual(
      move!.workloads.map((workload) => [workload.name, workload.labelled, workload.unlabelledPods]),
      [
        ["pending", false, 0],
        ["rolling", true, 1],
        ["cleaned", true, 1],
      ],
      "by kind, then name",
    );
    assert.deepEqual(move!.commands, [
      `kubectl -n team-a patch daemonset pending --type=merge -p '{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}'`,
      `# once its new pods get tokens through workload identity: kubectl -n team-a patch daemonset pending --type=json -p '[{"op":"remove","path":"/spec/template/metadata/labels/aadpodidbinding"}]'`,
      `# once its new pods get tokens through workload identity: kubectl -n team-a patch deployment rolling --type=json -p '[{"op":"remove","path":"/spec/template/metadata/labels/aadpodidbinding"}]'`,
    ]);
    assert.match(formatMigration(report), /Deployment rolling \(2 pod\(s\): rolling-1, rolling-2\) \[template labelled; 1 pod\(s\) made before it\]/);
  });

  test("nothing on pod identity: exit 0 and an empty report", () => {
    const report = migrationReport(input({ pods: [pod("team-a", "old", "shop", "api", { kind: "Pod", name: "old" }, { phase: "Failed" })] }));
    assert.deepEqual(report, { pods: 0, namespaces: [] });
    assert.equal(migrationExitCode(report), 0);
    assert.equal(formatMigration(report), "0 pod(s) on aad-pod-identity in 0 namespace(s); 0 ServiceAccount change(s), 0 pod template(s) to label\n");
  });
});

describe("azuremsi_pod_identity_pods", () => {
  test("counted per namespace; a namespace that drops to 0 loses its series", async () => {
    const counts = podIdentityCounts([
      { namespace: "team-a", selector: "shop", phase: "Running" },
      { namespace: "team-a", selector: "shop", phase: "Pending" },
      { namespace: "team-b", selector: "cart", phase: undefined },
      { namespace: "team-b", selector: "cart", phase: "Succeeded" },
      { namespace: "team-c", selector: "", phase: "Running" },
    ]);
    assert.deepEqual(
      [...counts],
      [
        ["team-a", 2],
        ["team-b", 1],
      ],
    );
    const metrics = new Metrics({ defaultMetrics: false });
    const series = async () =>
      (await metrics.registry.getSingleMetricAsString("azuremsi_pod_identity_pods")).split("\n").filter((line) => !line.startsWith("#"));
    metrics.recordPodIdentityPods(counts);
    assert.deepEqual(await series(), ['azuremsi_pod_identity_pods{namespace="team-a"} 2', 'azuremsi_pod_identity_pods{namespace="team-b"} 1']);
    metrics.recordPodIdentityPods(new Map([["team-b", 3]]));
    assert.deepEqual(await series(), ['azuremsi_pod_identity_pods{namespace="team-b"} 3']);
    metrics.recordPodIdentityPods(new Map());
    assert.deepEqual(await series(), []);
  });
});
