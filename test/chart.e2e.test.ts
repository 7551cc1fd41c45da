// The Helm chart against the real API server: with workloadIdentity.enabled it renders what the
// kustomize overlay renders, `helm install --dry-run=server` passes, and install, upgrade and
// uninstall do what they say. What it installs is manifests/base/ (kubectl diff finds nothing), so
// the RBAC and webhook configurations are the ones test/manifests.e2e.test.ts and
// test/webhooks-manifest.test.ts prove; with the monitoring values, manifests/monitoring/ too. Helm's
// own parts: `helm test`'s pod (validated; no kubelet runs it here), selectors of releases side by
// side, and crds.install.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { CoreV1Api, loadAllYaml, type KubernetesObject, type V1Deployment } from "@kubernetes/client-node";
import { AAD_POD_IDENTITY_CRDS, ControlPlane, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT } from "./controlplane/controlplane.js";
import { CHART_DIR, Helm, RELEASE } from "./support/helm.js";
import { loadManifest, MANIFESTS_DIR, WORKLOAD_IDENTITY_OVERLAY } from "./support/manifests.js";
import { GENERATED, HELM_ONLY_LABELS, KUSTOMIZE_IMAGE, MANIFESTS, OUTPUTS } from "../tools/manifests.js";
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
    const rendered = await helm.template({ values: "workloadIdentity:\n  enabled: true\n", extra: ["--set", KUSTOMIZE_IMAGE, "--skip-tests"] });
    assert.equal(rendered.code, 0, rendered.stderr);
    // As tools/manifests.ts renders manifests/: kubectl, not Helm, manages what kustomize builds.
    const chart = byKey(plain(loadAllYaml(rendered.stdout.replace(HELM_ONLY_LABELS, ""))));
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

  test("helm test: its pod passes the API server's validation, and `helm test` creates it (no kubelet runs it here)", async () => {
    const hooks = await helm.runOrThrow(["get", "hooks", RELEASE, ...namespaced]);
    const pods = plain(loadAllYaml(hooks)).filter((object) => object.kind === "Pod");
    assert.deepEqual(
      pods.map((pod) => [pod.metadata?.name, pod.metadata?.annotations?.["helm.sh/hook"]]),
      [[`${RELEASE}-test`, "test"]],
    );
    const dryRun = await plane.kubectl("admin", ["apply", "--dry-run=server", "-f", "-"], { stdin: JSON.stringify(pods[0]) });
    assert.equal(dryRun.code, 0, dryRun.stderr);
    assert.match(dryRun.stdout, /pod\/azure-msi-operator-test created \(server dry run\)/);
    // helm creates the pod, then waits for it to finish, which needs a kubelet: its timeout is the end.
    const run = await helm.run(["test", RELEASE, ...namespaced, "--timeout", "3s"]);
    assert.notEqual(run.code, 0);
    const pod = await installed({ kind: "Pod", metadata: { name: `${RELEASE}-test`, namespace: OPERATOR_NAMESPACE } });
    assert.ok(pod, "helm test created the pod");
    assert.equal(pod.metadata?.labels?.["app.kubernetes.io/instance"], RELEASE);
    await plane.kubectlOrThrow("admin", ["delete", "pod", `${RELEASE}-test`, ...namespaced, "--wait=false"]);
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

  test("three releases, two in one namespace: every selector the API server stores selects its own release's pods only", async () => {
    const others = [
      { release: "second", namespace: OPERATOR_NAMESPACE },
      { release: "third", namespace: "identity-third" },
    ];
    await plane.kubectlOrThrow("admin", ["create", "namespace", "identity-third"]);
    const set = ["--set", "networkPolicy.enabled=true,monitoring.podMonitor.enabled=true"];
    for (const { release, namespace } of others) await helm.runOrThrow(["install", release, CHART_DIR, "--namespace", namespace, ...image, ...set]);
    const releases = [{ release: RELEASE, namespace: OPERATOR_NAMESPACE }, ...others].map((entry) => ({
      ...entry,
      name: entry.release === RELEASE ? RELEASE : `${entry.release}-azure-msi-operator`,
    }));
    // Each release's pods, as its Deployment's template makes them (nothing schedules them here: the API server's label index is what is checked).
    for (const { namespace, name } of releases) {
      const deployment = (await installed({ kind: "Deployment", metadata: { name, namespace } })) as V1Deployment;
      const pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: `${name}-pod`, namespace, labels: deployment.spec!.template.metadata!.labels },
        spec: { containers: [{ name: "operator", image: "azure-msi-operator:0.1.0" }] },
      };
      await plane.kubectl("admin", ["create", "-f", "-"], { stdin: JSON.stringify(pod) }).then((result) => assert.equal(result.code, 0, result.stderr));
    }
    type Selecting = KubernetesObject & {
      spec: { selector?: Record<string, unknown> & { matchLabels?: Record<string, string> }; podSelector?: { matchLabels: Record<string, string> } };
    };
    const selectorOf = (object: Selecting) =>
      object.kind === "Service" ? (object.spec.selector as Record<string, string>) : (object.spec.podSelector ?? object.spec.selector)!.matchLabels!;
    for (const { namespace, name } of releases) {
      const objects = [
        { apiVersion: "apps/v1", kind: "Deployment", metadata: { name, namespace } },
        { kind: "Service", metadata: { name: `${name}-webhook`, namespace } },
        { kind: "Service", metadata: { name: `${name}-metrics`, namespace } },
        { apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: { name, namespace } },
        // The first release has them since its upgrade.
        { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace } },
        { apiVersion: "monitoring.coreos.com/v1", kind: "PodMonitor", metadata: { name, namespace } },
      ];
      for (const object of objects) {
        const live = (await installed(object)) as Selecting | undefined;
        assert.ok(live, key(object));
        const selector = Object.entries(selectorOf(live))
          .map(([label, value]) => `${label}=${value}`)
          .join(",");
        const selected = await plane.kubectlOrThrow("admin", ["get", "pods", "-n", namespace, "-l", selector, "-o", "name"]);
        assert.deepEqual(selected.trim().split("\n"), [`pod/${name}-pod`], `${key(object)} (${selector})`);
      }
    }
    for (const { release, namespace } of others) await helm.runOrThrow(["uninstall", release, "--namespace", namespace, "--wait"]);
    for (const { namespace, name } of releases) await plane.kubectlOrThrow("admin", ["delete", "pod", `${name}-pod`, "-n", namespace, "--wait=false"]);
  });

  test("crds.install: the release installs the aad-pod-identity CRDs, and uninstalling it keeps them", async () => {
    const crds = plain(loadAllYaml(await readFile(AAD_POD_IDENTITY_CRDS, "utf8")));
    const names = crds.map((crd) => `crd/${crd.metadata!.name!}`);
    // The control plane installed them as aad-pod-identity's chart would; here nothing has.
    await plane.kubectlOrThrow("admin", ["delete", ...names, "--wait"]);
    await plane.kubectlOrThrow("admin", ["create", "namespace", "identity-crds"]);
    await helm.runOrThrow(["install", "crds", CHART_DIR, "--namespace", "identity-crds", ...image, "--set", "crds.install=true"]);
    await plane.kubectlOrThrow("admin", ["wait", "--for=condition=Established", "--timeout=60s", ...names]);
    for (const crd of crds) {
      const live = await installed({ kind: "CustomResourceDefinition", metadata: { name: crd.metadata!.name! } });
      assert.equal(live?.metadata?.annotations?.["meta.helm.sh/release-name"], "crds", `${crd.metadata?.name} belongs to the release`);
      assert.equal(live?.metadata?.annotations?.["helm.sh/resource-policy"], "keep");
      assert.equal(live?.metadata?.labels?.["app.kubernetes.io/instance"], "crds");
    }
    const uninstalled = await helm.runOrThrow(["uninstall", "crds", "--namespace", "identity-crds", "--wait"]);
    assert.match(uninstalled, /These resources were kept due to the resource policy:[\s\S]*CustomResourceDefinition/);
    for (const crd of crds)
      assert.ok(await installed({ kind: "CustomResourceDefinition", metadata: { name: crd.metadata!.name! } }), `${crd.metadata?.name} kept`);
    // The operator's kinds are served again: the CRDs work, not only exist.
    await plane.kubectlOrThrow("admin", ["get", "azureidentities", "-A"]);
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
