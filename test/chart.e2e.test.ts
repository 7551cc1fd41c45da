// The Helm chart against the real API server: with workloadIdentity.enabled it renders what the
// kustomize overlay renders, `helm install --dry-run=server` passes, and install, upgrade and
// uninstall do what they say. What it installs is manifests/base/ (kubectl diff finds nothing), so
// the RBAC and webhook configurations are the ones test/manifests.e2e.test.ts and
// test/webhooks-manifest.test.ts prove; with the monitoring values, manifests/monitoring/ too.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { CoreV1Api, loadAllYaml, type KubernetesObject, type V1Deployment } from "@kubernetes/client-node";
import { ControlPlane, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT } from "./controlplane/controlplane.js";
import { CHART_DIR, Helm, RELEASE } from "./support/helm.js";
import { loadManifest, MANIFESTS_DIR, WORKLOAD_IDENTITY_OVERLAY } from "./support/manifests.js";
import { GENERATED, KUSTOMIZE_IMAGE, MANIFESTS, OUTPUTS } from "../tools/manifests.js";
import { installMonitoringCrds } from "./monitoring/crds.js";

const MONITORING = OUTPUTS.find((output) => output.dir === "monitoring")!;

const plain = (objects: unknown): KubernetesObject[] => JSON.parse(JSON.stringify(objects)) as KubernetesObject[];
const key = (object: KubernetesObject) => `${object.kind}/${object.metadata?.namespace ?? ""}/${object.metadata?.name}`;
const byKey = (objects: readonly KubernetesObject[]) => new Map(objects.map((object) => [key(object), object]));

describe("the Helm chart on a real API server", () => {
  let plane: ControlPlane;
  let helm: Helm;
  const namespaced = ["--namespace", OPERATOR_NAMESPACE];
  // The chart has no default image; manifests/ are rendered with the one kustomize rewrites (the upgrade's MONITORING.set names it too).
  const image = ["--set", KUSTOMIZE_IMAGE];

  /** The objects as the API server has them; undefined when it has none of that name. */
  const installed = async (object: KubernetesObject) => {
    const scope = object.metadata?.namespace ? ["-n", object.metadata.namespace] : [];
    // kind.group: with prometheus-operator's and AKS' CRDs, "podmonitor" alone names two resources.
    const group = object.apiVersion?.includes("/") ? `.${object.apiVersion.split("/")[0]}` : "";
    const resource = `${object.kind!.toLowerCase()}${group}`;
    const result = await plane.kubectl("admin", ["get", resource, object.metadata!.name!, ...scope, "-o", "json", "--ignore-not-found"]);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim() ? (JSON.parse(result.stdout) as KubernetesObject) : undefined;
  };
  const baseObjects = async () => (await Promise.all(GENERATED.map((file) => loadManifest(file)))).flat();
  const monitoringObjects = async () =>
    (
      await Promise.all(MONITORING.templates.map(async (file) => loadAllYaml(await readFile(`${MANIFESTS}monitoring/${file}`, "utf8")) as KubernetesObject[]))
    ).flat();

  before(async () => {
    plane = await ControlPlane.start();
    helm = await Helm.create(plane.kubeconfigPath("admin"));
    // The control plane makes the operator's ServiceAccount for the tests that run the operator by
    // hand; the chart makes its own, and helm refuses to adopt one it did not create.
    await plane.api("admin", CoreV1Api).deleteNamespacedServiceAccount({ namespace: OPERATOR_NAMESPACE, name: OPERATOR_SERVICE_ACCOUNT });
  });
  after(async () => {
    await Promise.all([plane?.stop(), helm?.close()]);
  });

  test("workloadIdentity.enabled renders the objects of manifests/overlays/workload-identity/ (kubectl kustomize), object by object", async () => {
    const kustomized = plain(loadAllYaml(await plane.kubectlOrThrow("admin", ["kustomize", WORKLOAD_IDENTITY_OVERLAY]))).filter(
      (object) => object.kind !== "Namespace",
    );
    const rendered = await helm.template({ values: "workloadIdentity:\n  enabled: true\n", extra: ["--set", KUSTOMIZE_IMAGE] });
    assert.equal(rendered.code, 0, rendered.stderr);
    const chart = byKey(plain(loadAllYaml(rendered.stdout)));
    const overlay = byKey(kustomized);
    assert.deepEqual([...chart.keys()].sort(), [...overlay.keys()].sort(), "the same objects");
    assert.ok(chart.has(`ClusterRole//${RELEASE}-workload-identity`), "the mode's RBAC is among them");
    for (const [name, object] of overlay) assert.deepEqual(chart.get(name), object, name);
  });

  test("helm install --dry-run=server passes, installs nothing, and its NOTES name the image", async () => {
    const result = await helm.run(["install", RELEASE, CHART_DIR, ...namespaced, ...image, "--dry-run=server"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /STATUS: pending-install/);
    for (const object of await baseObjects()) assert.equal(await installed(object), undefined, `${key(object)} was not created`);
    // NOTES: the image to check, who still writes while no replica runs, and a warning for an image without registry or tag.
    const notes = result.stdout.slice(result.stdout.indexOf("NOTES:"));
    assert.match(notes, /Image: azure-msi-operator:0\.1\.0\./);
    assert.match(notes, /kubectl -n azure-msi-operator rollout status deployment\/azure-msi-operator/);
    assert.match(
      notes,
      /the operator, the admins \(webhook\.allowUsers, webhook\.allowGroups\), MIC\s+\(webhook\.allowMic\) and Kubernetes' namespace cleanup/,
    );
    assert.match(notes, /WARNING: the image names no registry/);
    assert.match(notes, /The tag is the chart's appVersion \(0\.1\.0\)/);
    const pinned = await helm.run([
      "install",
      RELEASE,
      CHART_DIR,
      ...namespaced,
      "--dry-run=server",
      "--set",
      "image.registry=example.azurecr.io,image.repository=azure-msi-operator,image.tag=1.2.3",
    ]);
    assert.equal(pinned.code, 0, pinned.stderr);
    assert.match(pinned.stdout, /Image: example\.azurecr\.io\/azure-msi-operator:1\.2\.3\./);
    assert.doesNotMatch(pinned.stdout, /WARNING|appVersion/);
  });

  test("helm install: every object is installed, and they are manifests/base/'s (kubectl diff finds no difference)", async () => {
    await helm.runOrThrow(["install", RELEASE, CHART_DIR, ...namespaced, ...image]);
    for (const object of await baseObjects()) {
      const live = await installed(object);
      assert.ok(live, `${key(object)} installed`);
      assert.equal(live.metadata?.annotations?.["meta.helm.sh/release-name"], RELEASE, `${key(object)} belongs to the release`);
    }
    // Server-side: the API server's defaults on both sides; helm's own labels and annotations are no difference.
    const files = GENERATED.flatMap((file) => ["-f", `${MANIFESTS_DIR}${file}`]);
    const diff = await plane.kubectl("admin", ["diff", "--server-side", "--force-conflicts", ...files]);
    assert.equal(diff.code, 0, `kubectl diff -f manifests/base/ against the release:\n${diff.stdout}${diff.stderr}`);
    // And it would see one: the shipped Deployment with another replica count differs from the release.
    const changed = (await loadManifest("deployment.yaml")).map((object) => ({ ...object, spec: { ...(object as V1Deployment).spec, replicas: 5 } }));
    const control = await plane.kubectl("admin", ["diff", "--server-side", "--force-conflicts", "-f", "-"], {
      stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: changed }),
    });
    assert.equal(control.code, 1, control.stderr);
    assert.match(control.stdout, /^\+\s+replicas: 5$/m);
  });

  test("helm upgrade with changed values: the changes land, including the workload identity mode's, the monitoring objects and the NetworkPolicy", async () => {
    await installMonitoringCrds(plane);
    await helm.runOrThrow([
      "upgrade",
      RELEASE,
      CHART_DIR,
      ...namespaced,
      "--set",
      "replicas=3",
      "--set",
      "sync.interval=30m",
      "--set",
      "workloadIdentity.enabled=true",
      "--set",
      MONITORING.set.join(","),
      "--set",
      "networkPolicy.enabled=true,networkPolicy.webhook.cidrs={10.224.0.0/16},networkPolicy.metrics.namespaces={monitoring}",
    ]);
    const deployment = (await installed({ kind: "Deployment", metadata: { name: RELEASE, namespace: OPERATOR_NAMESPACE } })) as V1Deployment;
    assert.equal(deployment.spec?.replicas, 3);
    const env = deployment.spec?.template.spec?.containers[0]?.env ?? [];
    assert.equal(env.find((variable) => variable.name === "SYNC_INTERVAL")?.value, "30m");
    assert.equal(env.find((variable) => variable.name === "WORKLOADIDENTITY_ENABLE")?.value, "true");
    assert.ok(await installed({ kind: "ClusterRole", metadata: { name: `${RELEASE}-workload-identity` } }), "the mode's ClusterRole");
    const networkPolicy = (await installed({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: RELEASE, namespace: OPERATOR_NAMESPACE },
    })) as (KubernetesObject & { spec: { ingress: Array<{ from?: unknown[] }> } }) | undefined;
    assert.deepEqual(
      networkPolicy?.spec.ingress.map((rule) => rule.from),
      [
        [{ ipBlock: { cidr: "10.224.0.0/16" } }],
        [{ namespaceSelector: { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["monitoring"] }] } }],
      ],
      "the NetworkPolicy, as the API server stored it",
    );
    const validating = (await installed({ kind: "ValidatingWebhookConfiguration", metadata: { name: RELEASE } })) as KubernetesObject & {
      webhooks: { name: string }[];
    };
    assert.equal(validating.webhooks.at(-1)?.name, "serviceaccounts.azure-msi-operator.azure.workload.identity");
    assert.match(await helm.runOrThrow(["history", RELEASE, ...namespaced]), /^2\s.*deployed\s.*Upgrade complete/m);
    // What `helm install` makes with the monitoring values is what `kubectl apply -k manifests/monitoring/` would.
    for (const object of await monitoringObjects()) assert.ok(await installed(object), `${key(object)} installed`);
    const diff = await plane.kubectl("admin", [
      "diff",
      "--server-side",
      "--force-conflicts",
      ...MONITORING.templates.flatMap((file) => ["-f", `${MANIFESTS}monitoring/${file}`]),
    ]);
    assert.equal(diff.code, 0, `kubectl diff -f manifests/monitoring/ against the release:\n${diff.stdout}${diff.stderr}`);
  });

  test("helm uninstall: every object of the release is gone", async () => {
    await helm.runOrThrow(["uninstall", RELEASE, ...namespaced, "--wait"]);
    const objects = [
      ...(await baseObjects()),
      ...(await monitoringObjects()),
      { kind: "ClusterRole", metadata: { name: `${RELEASE}-workload-identity` } },
      { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: RELEASE, namespace: OPERATOR_NAMESPACE } },
    ];
    for (const object of objects) assert.equal(await installed(object), undefined, `${key(object)} deleted`);
    const releases = await helm.runOrThrow(["list", ...namespaced, "--all", "--short"]);
    assert.equal(releases.trim(), "", "no release left");
  });
});
