// The installable manifests against the real API server: what `kubectl apply -k` renders and
// installs, that the Deployment runs the configuration it means to, and that the RBAC is least
// privilege: every verb it grants was used, and taking out any one rule breaks the operator.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  loadAllYaml,
  setHeaderOptions,
  type KubernetesObject,
  type V1Deployment,
  type V1MutatingWebhookConfiguration,
  type V1PodDisruptionBudget,
  type V1Service,
  type V1ValidatingWebhookConfiguration,
} from "@kubernetes/client-node";
import { parseConfig, type Config } from "../src/config/config.js";
import { FLAGS } from "../src/config/flags.js";
import type { AzureIdentity, AzureIdentityBinding } from "../src/kube/resources.js";
import { FakeAzure } from "./azure/fake.js";
import { AAD_POD_IDENTITY_CRDS, ControlPlane, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, OPERATOR_USER } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { loadManifest, MANIFESTS_ROOT, podEnv } from "./support/manifests.js";
import { OperatorProcess, stopAll } from "./support/process.js";
import {
  describeRequest,
  describeRule,
  grantsOf,
  requestsOf,
  requestUses,
  ruleGrants,
  rulesOf,
  withoutRule,
  type AuditedRequest,
  type LocatedRule,
  type ResourceRequest,
} from "./support/rbac.js";
import { installWebhooks, waitForCaBundles } from "./support/webhooks.js";
import { createAzureIdentity, createAzureIdentityBinding, lookupLabels } from "./support/aad-objects.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OVERLAY = `${MANIFESTS_ROOT}overlays/with-crds`;
const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000f6";
const SHOP = { name: "shop", clientId: "66666666-0000-0000-0000-000000000006" };
const GONE = { name: "gone", clientId: "66666666-0000-0000-0000-000000000007" };
const identityName = (msi: { name: string; clientId: string }) => `${msi.name}-${msi.clientId}`;
const SA_GROUPS = ["system:serviceaccounts", `system:serviceaccounts:${OPERATOR_NAMESPACE}`, "system:authenticated"];
const BASE_KINDS = [
  "ClusterRole",
  "ClusterRoleBinding",
  "Deployment",
  "MutatingWebhookConfiguration",
  "Namespace",
  "PodDisruptionBudget",
  "Role",
  "RoleBinding",
  "Service",
  "ServiceAccount",
  "ValidatingWebhookConfiguration",
];

// Everything but the reads is logged as usual; the operator's reads too, so the test sees every
// request it made (the control plane's own policy drops reads to keep the log small).
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["${OPERATOR_USER}"]
  - level: None
    verbs: ["get", "list", "watch"]
  - level: Metadata
`;

type Line = Record<string, unknown>;

/** (verb, resource) pairs of the API server's "forbidden" messages anywhere in a log line. */
function forbiddenIn(line: Line): { verb: string; resource: string }[] {
  const text = JSON.stringify(line).replace(/\\+"/g, '"');
  return [...text.matchAll(/cannot (\w+) resource "([\w.-]+)"/g)].map((match) => ({ verb: match[1]!, resource: match[2]! }));
}

describe("manifests: kustomize, install, least-privilege RBAC", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let auditDir: string;
  let rendered: KubernetesObject[];
  let rbac: KubernetesObject[];
  let webhookPort: number;
  let env: Record<string, string>;
  const processes: OperatorProcess[] = [];
  /** Every distinct request the operator made with the full RBAC. */
  let fullRunRequests: AuditedRequest[] = [];

  const ofKind = <T>(kind: string) => rendered.find((object) => object.kind === kind) as T;
  const kustomize = async (dir: string) => loadAllYaml(await plane.kubectlOrThrow("admin", ["kustomize", dir])) as KubernetesObject[];
  const applyObjects = (objects: KubernetesObject[]) =>
    plane.kubectlOrThrow("admin", ["apply", "-f", "-"], { stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }) });
  const isLeaderLine = (line: Line) => line.msg === "became leader";

  const start = async (name: string) => {
    const proc = await OperatorProcess.start(name, {
      kubeconfig: plane.kubeconfigPath("operator"),
      env,
      flags: [
        "run",
        "--log.debug",
        "--lease.enable",
        "--lease.duration=4s",
        "--lease.renewdeadline=3s",
        "--lease.retryperiod=500ms",
        "--sync.watch",
        "--sync.interval=3s",
        "--sync.locktime=0s",
        "--azureidentity.binding.sync",
        "--azureidentity.prune",
        `--webhook.bind=127.0.0.1:${webhookPort}`,
        "--webhook.tls.san=127.0.0.1",
        "--shutdown.delay=0s",
        // A repeated Event's count is patched at once, so the run uses the patch the RBAC grants.
        "--events.refresh=0s",
      ],
    });
    processes.push(proc);
    return proc;
  };

  before(async () => {
    auditDir = join(tmpdir(), `amo-manifests-audit-${randomBytes(3).toString("hex")}`);
    await mkdir(auditDir, { recursive: true });
    await writeFile(join(auditDir, "policy.yaml"), AUDIT_POLICY);
    // No CRDs: the overlay is tried on a cluster without aad-pod-identity first.
    [plane, fake] = await Promise.all([
      ControlPlane.start({ crds: false, apiserverFlags: [`--audit-policy-file=${join(auditDir, "policy.yaml")}`] }),
      FakeAzure.start(),
    ]);
    rendered = await kustomize(MANIFESTS_ROOT);
    rbac = await loadManifest("rbac.yaml");
    env = { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE };
    webhookPort = await reservePort();
  });
  after(async () => {
    try {
      await stopAll(processes);
    } finally {
      await Promise.all([plane?.stop(), fake?.close()]);
      await rm(auditDir, { recursive: true, force: true });
    }
  });

  test("kubectl kustomize renders every object, and `images:` overrides the placeholder image", async () => {
    assert.deepEqual([...new Set(rendered.map((object) => object.kind))].sort(), BASE_KINDS);
    // One of each kind, but two Services: the webhook's and the metrics one.
    assert.equal(rendered.length, BASE_KINDS.length + 1, "one of each, two Services");
    for (const object of rendered) {
      if (!["Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"].includes(object.kind!))
        assert.equal(object.metadata?.namespace, OPERATOR_NAMESPACE, `${object.kind} in ${OPERATOR_NAMESPACE}`);
    }
    const overlay = await kustomize(OVERLAY);
    const crds = overlay
      .filter((object) => object.kind === "CustomResourceDefinition")
      .map((object) => object.metadata?.name)
      .sort();
    assert.deepEqual(
      crds,
      ["azureassignedidentities", "azureidentities", "azureidentitybindings", "azurepodidentityexceptions"].map((plural) => `${plural}.${GROUP}`),
    );
    assert.equal(overlay.length, rendered.length + crds.length, "the overlay is the base plus the CRDs");
    // What the README tells users to do: their own kustomization with `images:` on top of manifests/.
    const userDir = join(ROOT, ".cache", `kustomize-user-${randomBytes(3).toString("hex")}`);
    await mkdir(userDir, { recursive: true });
    try {
      await writeFile(
        join(userDir, "kustomization.yaml"),
        `resources:\n  - ../../manifests\nimages:\n  - name: azure-msi-operator\n    newName: example.azurecr.io/azure-msi-operator\n    newTag: 9.9.9\n`,
      );
      const images = (await kustomize(userDir))
        .filter((object) => object.kind === "Deployment")
        .map((object) => (object as V1Deployment).spec?.template.spec?.containers[0]?.image);
      assert.deepEqual(images, ["example.azurecr.io/azure-msi-operator:9.9.9"]);
    } finally {
      await rm(userDir, { recursive: true, force: true });
    }
  });

  test("the vendored CRDs are a byte copy of the upstream fixture", async () => {
    assert.ok((await readFile(`${MANIFESTS_ROOT}crds/aad-pod-identity.yaml`)).equals(await readFile(AAD_POD_IDENTITY_CRDS)));
  });

  test("the Deployment: 2 spread replicas, cluster-critical on Linux nodes, locked down, probed, resourced, downward API, scrape annotations", () => {
    const deployment = ofKind<V1Deployment>("Deployment");
    const pod = deployment.spec!.template;
    const container = pod.spec!.containers[0]!;
    const labels = pod.metadata?.labels ?? {};
    assert.equal(deployment.spec?.replicas, 2);
    assert.deepEqual(deployment.spec?.selector.matchLabels, {
      "app.kubernetes.io/name": "azure-msi-operator",
      "app.kubernetes.io/instance": "azure-msi-operator",
    });
    assert.equal(labels["app.kubernetes.io/name"], "azure-msi-operator");
    assert.equal(container.image, "azure-msi-operator:0.1.0");
    // Zones where there are any (ScheduleAnyway: clusters without zone labels still schedule), nodes required.
    const spread = (pod.spec?.topologySpreadConstraints ?? []).map((constraint) => ({
      key: constraint.topologyKey,
      when: constraint.whenUnsatisfiable,
      maxSkew: constraint.maxSkew,
      ownPods: Object.entries(constraint.labelSelector?.matchLabels ?? {}).every(([key, value]) => labels[key] === value),
    }));
    assert.deepEqual(spread, [
      { key: "topology.kubernetes.io/zone", when: "ScheduleAnyway", maxSkew: 1, ownPods: true },
      { key: "kubernetes.io/hostname", when: "DoNotSchedule", maxSkew: 1, ownPods: true },
    ]);
    assert.equal(pod.spec?.priorityClassName, "system-cluster-critical");
    assert.deepEqual(pod.spec?.nodeSelector, { "kubernetes.io/os": "linux" });
    assert.equal(pod.spec?.serviceAccountName, OPERATOR_SERVICE_ACCOUNT);
    assert.equal(pod.spec?.automountServiceAccountToken, true);
    assert.equal(pod.spec?.securityContext?.runAsNonRoot, true);
    assert.ok((pod.spec?.securityContext?.runAsUser ?? 0) > 0, "a non-root uid");
    assert.equal(pod.spec?.securityContext?.seccompProfile?.type, "RuntimeDefault");
    assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
    assert.deepEqual(container.securityContext?.capabilities?.drop, ["ALL"]);
    assert.ok(container.resources?.limits?.memory, "memory limit");
    assert.ok(container.resources?.requests?.memory && container.resources.requests.cpu, "memory and cpu requests");
    const fieldOf = (name: string) => container.env?.find((variable) => variable.name === name)?.valueFrom?.fieldRef?.fieldPath;
    assert.deepEqual(
      [fieldOf("INSTANCE_NODENAME"), fieldOf("INSTANCE_NAMESPACE"), fieldOf("INSTANCE_POD"), fieldOf("INSTANCE_POD_UID")],
      ["spec.nodeName", "metadata.namespace", "metadata.name", "metadata.uid"],
    );
    assert.deepEqual(
      container.envFrom?.map((source) => ({ name: source.secretRef?.name, optional: source.secretRef?.optional })),
      [{ name: "azure-msi-operator-azure", optional: true }],
      "credentials from an optional Secret",
    );
    const ports = Object.fromEntries((container.ports ?? []).map((port): [string, number] => [port.name ?? "", port.containerPort]));
    assert.deepEqual(ports, { webhook: 9443, metrics: 8080 });
    assert.deepEqual([container.livenessProbe?.httpGet?.path, container.livenessProbe?.httpGet?.port], ["/healthz", 8080]);
    assert.deepEqual([container.readinessProbe?.httpGet?.path, container.readinessProbe?.httpGet?.port], ["/readyz", 8080]);
    assert.deepEqual(
      {
        scrape: pod.metadata?.annotations?.["prometheus.io/scrape"],
        port: pod.metadata?.annotations?.["prometheus.io/port"],
        path: pod.metadata?.annotations?.["prometheus.io/path"],
      },
      { scrape: "true", port: "8080", path: "/metrics" },
    );
  });

  test("the Deployment's env is real configuration: known names, values that parse, ports and names that fit the other objects", async () => {
    const deployment = ofKind<V1Deployment>("Deployment");
    const container = deployment.spec!.template.spec!.containers[0]!;
    const known = new Set(FLAGS.flatMap((flag) => flag.env ?? []));
    const names = (container.env ?? []).map((variable) => variable.name);
    assert.deepEqual(
      names.filter((name) => !known.has(name)),
      [],
      "every env var is a flag's env var",
    );
    // Every setting a platform team changes is spelled out (the chart's values), e.g. the subscriptions (empty: all).
    assert.ok(names.includes("AZURE_SUBSCRIPTION_ID"), "the subscriptions are set explicitly");
    assert.equal(new Set(names).size, names.length, "no env var twice");
    const parsed = parseConfig(["run"], podEnv(deployment));
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.help ? "help" : parsed.error);
    const config: Config = parsed.config;
    assert.deepEqual(
      {
        json: config.log.json,
        lease: config.lease.enable,
        watch: config.sync.watch,
        bindingSync: config.azureIdentity.bindingSync,
        namespaced: config.azureIdentity.namespaced,
        namespace: config.instance.namespace,
        pod: config.instance.pod,
      },
      { json: true, lease: true, watch: true, bindingSync: true, namespaced: true, namespace: OPERATOR_NAMESPACE, pod: "azure-msi-operator-abc12" },
    );
    assert.ok(config.kubernetes.namespaceIgnore.includes("kube-system"), "kube-system stays ignored");
    // SIGTERM: admission is served for the shutdown delay, then the Lease is released and servers close.
    const grace = (deployment.spec?.template.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
    assert.ok(
      grace >= config.shutdown.delayMs + 10_000,
      `terminationGracePeriodSeconds ${grace / 1000}s leaves room after --shutdown.delay ${config.shutdown.delayMs / 1000}s`,
    );
    const ports = Object.fromEntries((container.ports ?? []).map((port): [string, number] => [port.name ?? "", port.containerPort]));
    assert.deepEqual([ports.webhook, ports.metrics], [config.webhook.bind.port, config.server.bind.port], "container ports are the configured ones");
    // The Service the webhooks call, and the certificate's SANs, are one name.
    const service = rendered.find((object) => object.kind === "Service" && object.metadata?.name === config.webhook.serviceName) as V1Service;
    assert.ok(service, `a Service named ${config.webhook.serviceName}`);
    assert.equal(service.metadata?.name, config.webhook.serviceName);
    assert.deepEqual(
      service.spec?.ports?.map((port) => [port.name, port.port, port.targetPort]),
      [["https", 443, ports.webhook]],
    );
    assert.deepEqual(service.spec?.selector, deployment.spec?.selector.matchLabels);
    // What a ServiceMonitor selects: the name label and the port named metrics, onto the container's metrics port.
    const metrics = rendered.find((object) => object.kind === "Service" && object.metadata?.name === "azure-msi-operator-metrics") as V1Service;
    assert.equal(metrics?.metadata?.labels?.["app.kubernetes.io/name"], "azure-msi-operator");
    assert.deepEqual(
      metrics.spec?.ports?.map((port) => [port.name, port.port, port.targetPort]),
      [["metrics", config.server.bind.port, "metrics"]],
    );
    assert.deepEqual(metrics.spec?.selector, deployment.spec?.selector.matchLabels);
    const clientConfigs = [
      ofKind<V1ValidatingWebhookConfiguration>("ValidatingWebhookConfiguration"),
      ofKind<V1MutatingWebhookConfiguration>("MutatingWebhookConfiguration"),
    ].flatMap((configuration) =>
      (configuration.webhooks ?? []).map((webhook) => ({
        name: webhook.clientConfig.service?.name,
        namespace: webhook.clientConfig.service?.namespace,
        port: webhook.clientConfig.service?.port,
      })),
    );
    assert.deepEqual(
      clientConfigs,
      [0, 1, 2, 3].map(() => ({ name: service.metadata?.name, namespace: service.metadata?.namespace, port: 443 })),
    );
    assert.deepEqual(
      [
        ofKind<V1ValidatingWebhookConfiguration>("ValidatingWebhookConfiguration").metadata?.name,
        ofKind<V1MutatingWebhookConfiguration>("MutatingWebhookConfiguration").metadata?.name,
      ],
      [config.webhook.validatingConfigName, config.webhook.mutatingConfigName],
    );
    const pdb = ofKind<V1PodDisruptionBudget>("PodDisruptionBudget");
    assert.equal(pdb.spec?.minAvailable, 1);
    assert.deepEqual(pdb.spec?.selector?.matchLabels, deployment.spec?.selector.matchLabels);
    // The names RBAC limits itself to are the ones the operator uses by default.
    const named = rulesOf(rbac).flatMap((located) => located.rule.resourceNames ?? []);
    for (const name of [config.lease.name, config.webhook.tls.secretName, config.webhook.validatingConfigName])
      assert.ok(named.includes(name), `RBAC names ${name}`);
  });

  test(
    "kubectl apply -k --dry-run=server: the base and the overlay on a cluster without the CRDs; then the vendored CRDs install",
    { timeout: 120_000 },
    async () => {
      for (const dir of [MANIFESTS_ROOT, OVERLAY]) {
        const result = await plane.kubectl("admin", ["apply", "-k", dir, "--dry-run=server"]);
        assert.equal(result.code, 0, `${dir}: ${result.stderr}`);
        assert.match(result.stdout, /deployment\.apps\/azure-msi-operator (created|configured|unchanged) \(server dry run\)/);
        if (dir === OVERLAY)
          assert.match(result.stdout, /customresourcedefinition\.apiextensions\.k8s\.io\/azureidentities\.aadpodidentity\.k8s\.io created \(server dry run\)/);
      }
      const crds = await plane.kubectl("admin", ["get", "crd", "-o", "name"]);
      assert.equal(crds.stdout.trim(), "", "a dry run installed nothing");
      await plane.kubectlOrThrow("admin", ["apply", "-k", `${MANIFESTS_ROOT}crds`]);
      await plane.kubectlOrThrow("admin", ["wait", "--for=condition=Established", "--timeout=60s", "-f", `${MANIFESTS_ROOT}crds/aad-pod-identity.yaml`]);
    },
  );

  test("full RBAC: every feature works, no request is forbidden, and every verb the RBAC grants is used", { timeout: 180_000 }, async () => {
    const core = plane.api("admin", CoreV1Api);
    const custom = plane.api("admin", CustomObjectsApi);
    for (const name of ["team-a", "team-b", "team-c"]) await core.createNamespace({ body: { metadata: { name } } });
    // The audit's PolicyReports: created for each namespace with violations (its identities lack the
    // namespaced annotation here), replaced when team-a's change (GONE pruned), and team-c's deleted
    // once its only violation, an exception, is gone.
    await plane.kubectlOrThrow("admin", ["apply", "-f", "test/fixtures/policyreport-crd.yaml"]);
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: "v1",
      namespace: "team-c",
      plural: "azurepodidentityexceptions",
      body: { apiVersion: `${GROUP}/v1`, kind: "AzurePodIdentityException", metadata: { name: "skip-nmi" }, spec: { podLabels: { app: "x" } } },
    });
    const reportIn = (namespace: string) =>
      custom
        .getNamespacedCustomObject({ group: "wgpolicyk8s.io", version: "v1alpha2", namespace, plural: "policyreports", name: "azure-msi-operator-audit" })
        .then(
          (report) => report as { results: unknown[] },
          () => undefined,
        );
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", ...SHOP, tags: { k8snamespace: "team-a,team-b" } });
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", ...GONE, tags: { k8snamespace: "team-a" } });
    // Skipped at every sync (its name is no valid label value): an Event created, then its count patched.
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg",
      name: "Not_A_Label",
      clientId: "66666666-0000-0000-0000-000000000008",
      tags: { k8snamespace: "team-a" },
    });
    // Before the webhooks exist: an identity made by hand (adopted: create 409, get, patch) and a
    // binding with the lookup labels pointing nowhere (binding sync patches it).
    await createAzureIdentity(custom, "team-b", { name: identityName(SHOP) }, { type: 0, resourceID: "/old", clientID: "old" });
    await createAzureIdentityBinding(
      custom,
      "team-a",
      { name: "app", labels: lookupLabels(SHOP.name, "rg", SUB) },
      { azureIdentity: "nowhere", selector: "app" },
    );
    // A pod still on aad-pod-identity (no kubelet: it stays Pending), counted by the leader.
    await core.createNamespacedPod({
      namespace: "team-a",
      body: { metadata: { name: "legacy", labels: { aadpodidbinding: "app" } }, spec: { containers: [{ name: "app", image: "app" }] } },
    });
    await applyOperatorRbac(plane);
    await installWebhooks(plane, webhookPort);
    const identity = (namespace: string, name: string) =>
      custom.getNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentities", name }).then(
        (object) => object as AzureIdentity,
        () => undefined,
      );
    const owned = async (namespace: string, name: string) =>
      (await identity(namespace, name))?.metadata?.labels?.["app.kubernetes.io/managed-by"] === "azure-msi-operator" || undefined;
    const secret = () => core.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: "azure-msi-operator-webhook-tls" }).catch(() => undefined);

    const a = await start("full-a");
    await a.waitForLog(isLeaderLine, 30_000);
    await waitForCaBundles(plane, 30_000);
    await eventually(() => owned("team-a", identityName(SHOP)), 30_000, "identity created");
    await eventually(() => owned("team-b", identityName(SHOP)), 30_000, "hand-made identity adopted");
    await eventually(() => owned("team-a", identityName(GONE)), 30_000, "second identity created");
    const binding = () =>
      custom.getNamespacedCustomObject({
        group: GROUP,
        version: "v1",
        namespace: "team-a",
        plural: "azureidentitybindings",
        name: "app",
      }) as Promise<AzureIdentityBinding>;
    await eventually(async () => (await binding()).spec?.azureIdentity === identityName(SHOP) || undefined, 30_000, "binding synced");
    assert.ok(await secret(), "certificate Secret created");
    const lease = await plane.api("admin", CoordinationV1Api).readNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: "azure-msi-operator-leader" });
    assert.equal(lease.spec?.holderIdentity, "full-a");
    await eventually(async () => (await reportIn("team-a"))?.results.length === 2 || undefined, 30_000, "team-a's PolicyReport");
    await eventually(() => reportIn("team-c"), 30_000, "team-c's PolicyReport");
    await eventually(
      async () => /^azuremsi_pod_identity_pods\{namespace="team-a"\} 1$/m.test((await a.get("/metrics")).body) || undefined,
      30_000,
      "the pod on pod identity counted",
    );
    fake.model.removeIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: GONE.name });
    await eventually(async () => (await identity("team-a", identityName(GONE))) === undefined || undefined, 30_000, "identity of the removed MSI pruned");
    await eventually(async () => (await reportIn("team-a"))?.results.length === 1 || undefined, 30_000, "team-a's PolicyReport replaced");
    await custom.deleteNamespacedCustomObject({ group: GROUP, version: "v1", namespace: "team-c", plural: "azurepodidentityexceptions", name: "skip-nmi" });
    await eventually(async () => (await reportIn("team-c")) === undefined || undefined, 30_000, "team-c's PolicyReport deleted");
    await a.stop();

    // The next leader finds the certificate Secret broken and replaces it (update).
    await core.patchNamespacedSecret(
      { namespace: OPERATOR_NAMESPACE, name: "azure-msi-operator-webhook-tls", body: [{ op: "remove", path: "/data/tls.key" }] },
      setHeaderOptions("Content-Type", "application/json-patch+json"),
    );
    const b = await start("full-b");
    await b.waitForLog(isLeaderLine, 30_000);
    await eventually(async () => (await secret())?.data?.["tls.key"], 30_000, "Secret repaired");
    await eventually(() => b.ready().then((ready) => ready || undefined), 30_000, "b ready");
    await b.stop();

    fullRunRequests = requestsOf(await plane.auditEvents(), OPERATOR_USER);
    assert.deepEqual(fullRunRequests.filter((request) => !request.authorized).map(describeRequest), [], "nothing the operator asked for was forbidden");
    const unused = rulesOf(rbac).flatMap((located) =>
      grantsOf(located)
        .filter((grant) => !fullRunRequests.some((request) => request.authorized && requestUses(request, grant)))
        .map((grant) => `${describeRule(located)}: ${describeRequest(grant)}`),
    );
    assert.deepEqual(unused, [], "every verb (and name) the RBAC grants was used");
  });

  /** How taking out a rule shows, beyond the API server's 403: prepared state and the consequence. */
  interface Breakage {
    applies: (located: LocatedRule) => boolean;
    prepare?: () => Promise<void>;
    consequence: (proc: OperatorProcess, removed: LocatedRule) => Promise<string>;
    restore?: () => Promise<void>;
  }

  const grantsVerb = (located: LocatedRule, resource: string, verb: string) =>
    (located.rule.resources ?? []).includes(resource) && located.rule.verbs.includes(verb);
  const readiness = async (proc: OperatorProcess) => JSON.parse((await proc.get("/readyz")).body) as { status: string; reason?: string };
  const deniedByRule = (removed: LocatedRule) => (line: Line) =>
    forbiddenIn(line).some(({ verb, resource }) => (removed.rule.resources ?? []).includes(resource) && removed.rule.verbs.includes(verb));
  /** A retrying loop has been denied `times` times: the failure is lasting, not a start-up race. */
  const deniedRepeatedly = (proc: OperatorProcess, removed: LocatedRule, times: number) =>
    eventually(() => proc.logs.filter(deniedByRule(removed)).length >= times || undefined, 20_000, `${times} denials in the log`);
  const notLeading = async (proc: OperatorProcess, removed: LocatedRule) => {
    await deniedRepeatedly(proc, removed, 3);
    assert.equal(proc.logs.some(isLeaderLine), false, "never became leader");
    assert.match((await proc.get("/metrics")).body, /^azuremsi_leader 0$/m);
    return "never leader";
  };
  const notReadyBecause = async (proc: OperatorProcess, reason: string) => {
    const state = await eventually(
      async () => {
        const current = await readiness(proc);
        return current.reason === reason ? current : undefined;
      },
      10_000,
      `not ready: ${reason}`,
    );
    return `/readyz: ${state.reason}`;
  };
  const noSync = async (proc: OperatorProcess, removed: LocatedRule) => {
    await deniedRepeatedly(proc, removed, 2);
    assert.ok(proc.logs.some(isLeaderLine), "it leads");
    assert.equal(
      proc.logs.some((line) => line.msg === "Azure listing done" || line.msg === "sync finished"),
      false,
      "yet never syncs",
    );
    return "leader, but the syncer never starts";
  };
  const deleteIgnoringMissing = (request: Promise<unknown>) =>
    request.then(
      () => undefined,
      (error: { code?: number }) => {
        if (error.code !== 404) throw error;
      },
    );
  let savedCaBundle = "";
  /** 0..n-1 for the n webhooks of a configuration. */
  const webhookIndexes = async (kind: string) => {
    const names = await plane.kubectlOrThrow("admin", ["get", kind, "azure-msi-operator", "-o", "jsonpath={.webhooks[*].name}"]);
    return names
      .trim()
      .split(/\s+/)
      .map((_, index) => index);
  };

  const BREAKAGES: Breakage[] = [
    { applies: (r) => grantsVerb(r, "azureidentities", "list"), consequence: (proc) => notReadyBecause(proc, "AzureIdentity cache not synced") },
    { applies: (r) => grantsVerb(r, "azureidentitybindings", "list"), consequence: noSync },
    { applies: (r) => grantsVerb(r, "namespaces", "list"), consequence: noSync },
    {
      // The pod cache only feeds a gauge, so the sync goes on without it; the count is what is lost.
      applies: (r) => grantsVerb(r, "pods", "list"),
      consequence: async (proc, removed) => {
        await deniedRepeatedly(proc, removed, 2);
        const denied = proc.logs.findIndex(deniedByRule(removed));
        await eventually(
          () => proc.logs.slice(denied).some((line) => line.msg === "sync finished" || line.msg === "sync finished with errors") || undefined,
          20_000,
          "a full sync after the denial",
        );
        assert.doesNotMatch((await proc.get("/metrics")).body, /^azuremsi_pod_identity_pods\{/m, "no pod count exported");
        return "it syncs, but azuremsi_pod_identity_pods is never exported";
      },
    },
    {
      applies: (r) => grantsVerb(r, "validatingwebhookconfigurations", "patch"),
      prepare: async () => {
        savedCaBundle = await waitForCaBundles(plane);
        for (const kind of ["validatingwebhookconfiguration", "mutatingwebhookconfiguration"]) {
          const ops = (await webhookIndexes(kind)).map((index) => ({ op: "remove", path: `/webhooks/${index}/clientConfig/caBundle` }));
          await plane.kubectlOrThrow("admin", ["patch", kind, "azure-msi-operator", "--type=json", "-p", JSON.stringify(ops)]);
        }
      },
      consequence: async (proc) => {
        await proc.waitForLog((line) => line.msg === "caBundle injection failed", 20_000);
        const bundles = await plane.kubectlOrThrow("admin", [
          "get",
          "validatingwebhookconfiguration,mutatingwebhookconfiguration",
          "azure-msi-operator",
          "-o",
          "jsonpath={.items[*].webhooks[*].clientConfig.caBundle}",
        ]);
        assert.equal(bundles.trim(), "", "caBundles stay empty");
        return "caBundle not injected";
      },
      restore: async () => {
        for (const kind of ["validatingwebhookconfiguration", "mutatingwebhookconfiguration"]) {
          const ops = (await webhookIndexes(kind)).map((index) => ({ op: "add", path: `/webhooks/${index}/clientConfig/caBundle`, value: savedCaBundle }));
          await plane.kubectlOrThrow("admin", ["patch", kind, "azure-msi-operator", "--type=json", "-p", JSON.stringify(ops)]);
        }
      },
    },
    {
      applies: (r) => grantsVerb(r, "leases", "create"),
      prepare: () =>
        deleteIgnoringMissing(
          plane.api("admin", CoordinationV1Api).deleteNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: "azure-msi-operator-leader" }),
        ),
      consequence: notLeading,
    },
    { applies: (r) => grantsVerb(r, "leases", "get"), consequence: notLeading },
    {
      applies: (r) => grantsVerb(r, "secrets", "create"),
      prepare: () =>
        deleteIgnoringMissing(plane.api("admin", CoreV1Api).deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: "azure-msi-operator-webhook-tls" })),
      consequence: async (proc) => {
        await proc.waitForLog((line) => line.msg === "certificate reconcile failed", 20_000);
        return notReadyBecause(proc, "webhook certificate not loaded");
      },
    },
    { applies: (r) => grantsVerb(r, "secrets", "get"), consequence: (proc) => notReadyBecause(proc, "webhook certificate not loaded") },
    {
      // The audit waits for its caches; the sync does not.
      applies: (r) => grantsVerb(r, "azureassignedidentities", "list"),
      consequence: async (proc, removed) => {
        await deniedRepeatedly(proc, removed, 2);
        await proc.waitForLog((line) => String(line.msg).startsWith("audit deferred"), 20_000);
        assert.ok(
          proc.logs.some((line) => line.msg === "Azure listing done"),
          "the sync runs",
        );
        return "no audit (deferred), the sync goes on";
      },
    },
    {
      applies: (r) => grantsVerb(r, "policyreports", "list"),
      consequence: async (proc) => {
        await proc.waitForLog((line) => line.msg === "PolicyReports not written" && /policyreports/.test(String(line.err)), 30_000);
        return "PolicyReports not written (logged); the audit's metric and Events go on";
      },
    },
    {
      applies: (r) => grantsVerb(r, "events", "create"),
      consequence: async (proc) => {
        // The MSI skipped at every sync is still there: its Event is tried, and fails, at each one.
        await eventually(
          async () => /^azuremsi_events_total\{outcome="failed"\} [1-9]/m.test((await proc.get("/metrics")).body) || undefined,
          20_000,
          "failed Events",
        );
        assert.doesNotMatch((await proc.get("/metrics")).body, /^azuremsi_events_total\{outcome="(created|patched)"\}/m, "no Event written");
        return "no Events: logged as could not record an Event, azuremsi_events_total{outcome=failed}";
      },
    },
  ];

  test("taking out any one rule breaks the operator: the API server denies what it needs, and it shows", { timeout: 300_000 }, async (t) => {
    assert.ok(fullRunRequests.length > 0, "the full-RBAC run recorded the operator's requests");
    const authorization = plane.api("admin", AuthorizationV1Api);
    const allowed = async (request: ResourceRequest) =>
      (
        await authorization.createSubjectAccessReview({
          body: {
            spec: {
              user: OPERATOR_USER,
              groups: SA_GROUPS,
              resourceAttributes: {
                verb: request.verb,
                group: request.apiGroup,
                resource: request.resource,
                ...(request.subresource ? { subresource: request.subresource } : {}),
                ...(request.namespace ? { namespace: request.namespace } : {}),
                ...(request.name ? { name: request.name } : {}),
              },
            },
          },
        })
      ).status?.allowed === true;
    const rules = rulesOf(rbac);
    const granted = fullRunRequests.filter((request) => request.authorized && rules.some((located) => ruleGrants(located, request)));
    try {
      for (const removed of rules) {
        const label = describeRule(removed);
        const breakage = BREAKAGES.find((candidate) => candidate.applies(removed));
        assert.ok(breakage, `${label}: no expectation of what breaks without it; add one (or remove the rule if nothing does)`);
        const needed = granted.filter((request) => ruleGrants(removed, request));
        assert.ok(needed.length > 0, `${label}: the operator made no request this rule grants`);
        await applyObjects(withoutRule(rbac, removed));
        // The authorizer's cache follows the change; then exactly the requests this rule granted are denied.
        await eventually(
          async () => {
            for (const request of granted) if ((await allowed(request)) === needed.includes(request)) return undefined;
            return true;
          },
          15_000,
          `${label}: SubjectAccessReviews reflect the trimmed RBAC`,
        );
        await breakage.prepare?.();
        const proc = await start(`without-${removed.kind.toLowerCase()}-${removed.index}`);
        try {
          const forbidden = await proc.waitForLog(deniedByRule(removed), 30_000);
          const consequence = await breakage.consequence(proc, removed);
          t.diagnostic(`${label} -> denied: ${needed.map(describeRequest).join("; ")} | log: ${String(forbidden.msg)} | ${consequence}`);
        } finally {
          await proc.stop();
        }
        await breakage.restore?.();
      }
    } finally {
      await applyOperatorRbac(plane);
    }
  });
});
