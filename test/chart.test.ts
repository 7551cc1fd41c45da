// The Helm chart on its own (helm, no API server): it lints strictly, manifests/base/ is its default
// render and manifests/monitoring/ its monitoring render, its defaults are the operator's own except
// the choices it makes on purpose, every value of a values file that sets everything lands where it
// should, and the schema refuses typos.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  loadAllYaml,
  loadYaml,
  type KubernetesObject,
  type V1ClusterRole,
  type V1ConfigMap,
  type V1Deployment,
  type V1MutatingWebhookConfiguration,
  type V1Role,
  type V1Service,
  type V1ServiceAccount,
  type V1ValidatingWebhookConfiguration,
} from "@kubernetes/client-node";
import { parseConfig, type Config } from "../src/config/config.js";
import { FLAGS } from "../src/config/flags.js";
import { GENERATOR, header, HEADER, HELM_ONLY_LABELS, KUSTOMIZE_IMAGE, MANIFESTS, OUTPUTS, renderManifests, splitBySource } from "../tools/manifests.js";
import { generateCa } from "../certs/pki.js";
import { startOpsServer } from "../src/ops/server.js";
import { AAD_POD_IDENTITY_CRDS } from "./controlplane/controlplane.js";
import { selects as selectsLabels } from "./monitoring/scrape-targets.js";
import { startTestWebhook, type TestWebhook } from "./support/webhook-server.js";
import { CHART_DIR, Helm, RELEASE } from "./support/helm.js";
import { podEnv } from "./support/manifests.js";
import { policyOf, skipTable } from "./support/match-conditions.js";

const helm = await Helm.create();
after(() => helm.close());
const EVERYTHING = `${CHART_DIR}ci/everything-values.yaml`;
const everything = await readFile(EVERYTHING, "utf8");
// The fixture enables the PodMonitor; its ServiceMonitor values are rendered with this instead (one of the two scrapes).
const SERVICE_MONITOR_INSTEAD = "monitoring.podMonitor.enabled=false,monitoring.serviceMonitor.enabled=true";

/** --set of the image the chart requires (none by default); the fixture that sets everything names its own. */
const IMAGE = ["--set", KUSTOMIZE_IMAGE];

async function render(values?: string, options: { release?: string; namespace?: string; extra?: readonly string[] } = {}): Promise<KubernetesObject[]> {
  const extra = [...(values === everything ? [] : IMAGE), ...(options.extra ?? [])];
  const result = await helm.template({ ...options, extra, ...(values !== undefined ? { values } : {}) });
  assert.equal(result.code, 0, result.stderr);
  // Plain data, as a values file and the API server see it (the client's classes compare unequal to literals).
  return JSON.parse(JSON.stringify(loadAllYaml(result.stdout))) as KubernetesObject[];
}

const key = (object: KubernetesObject) => `${object.kind}/${object.metadata?.namespace ?? ""}/${object.metadata?.name}`;
const pick = (labels: Record<string, string> | undefined, keys: readonly string[]) =>
  Object.fromEntries(keys.filter((name) => labels?.[name] !== undefined).map((name) => [name, labels![name]!]));

const CHART_VERSION = loadYaml<{ version: string; appVersion: string }>(await readFile(`${CHART_DIR}Chart.yaml`, "utf8"));
/** The labels of every object of a release (Helm's recommended ones), for `release` of the chart named `name`. */
const standardLabels = (release: string, name = "azure-msi-operator") => ({
  "helm.sh/chart": `azure-msi-operator-${CHART_VERSION.version}`,
  "app.kubernetes.io/name": name,
  "app.kubernetes.io/instance": release,
  "app.kubernetes.io/version": CHART_VERSION.appVersion,
  "app.kubernetes.io/managed-by": "Helm",
});
/** The fixture's: nameOverride identity-operator, release x, its commonLabels. */
const EVERYTHING_LABELS = { ...standardLabels("x", "identity-operator"), "example.com/team": "platform" };
const AAD_CRD_NAMES = [
  "azureassignedidentities.aadpodidentity.k8s.io",
  "azureidentities.aadpodidentity.k8s.io",
  "azureidentitybindings.aadpodidentity.k8s.io",
  "azurepodidentityexceptions.aadpodidentity.k8s.io",
];

const find = <T extends KubernetesObject>(objects: readonly KubernetesObject[], kind: string, name?: string): T => {
  const found = objects.filter((object) => object.kind === kind && (name === undefined || object.metadata?.name === name));
  assert.equal(found.length, 1, `one ${kind}${name ? ` ${name}` : ""} (found ${found.length})`);
  return found[0] as T;
};

type Monitor = KubernetesObject & {
  spec: Record<string, unknown> & {
    podMetricsEndpoints?: unknown[];
    endpoints?: unknown[];
    labelLimit?: number;
    labelNameLengthLimit?: number;
    labelValueLengthLimit?: number;
  };
};

const configOf = (deployment: V1Deployment): Config => {
  const parsed = parseConfig(["run"], podEnv(deployment));
  assert.ok(parsed.ok, parsed.ok ? "" : parsed.help ? "help" : parsed.error);
  return parsed.config;
};

/** Error text of a `helm template` that must fail. */
async function refused(values: string, extra: readonly string[] = IMAGE): Promise<string> {
  const result = await helm.template({ values, extra });
  assert.notEqual(result.code, 0, `helm template accepted:\n${values}`);
  return result.stderr;
}

test("helm lint --strict passes with the defaults and with the values file that sets everything (either scrape)", async () => {
  for (const extra of [IMAGE, ["--values", EVERYTHING], ["--values", EVERYTHING, "--set", SERVICE_MONITOR_INSTEAD]]) {
    const result = await helm.run(["lint", "--strict", CHART_DIR, ...extra]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test(`manifests/base/ is the chart rendered with its defaults (and the image kustomize rewrites), manifests/monitoring/ with its monitoring values (run \`${GENERATOR}\` when this fails)`, async () => {
  const files = await renderManifests(helm);
  assert.deepEqual(
    [...files.keys()],
    OUTPUTS.flatMap((output) => output.templates.map((name) => `${output.dir}/${name}`)),
  );
  assert.ok(files.has("monitoring/aks/podmonitor.yaml") && files.has("monitoring/dashboard.yaml"));
  for (const [name, content] of files) assert.equal(await readFile(`${MANIFESTS}${name}`, "utf8"), content, `manifests/${name}`);
  // Each kustomization lists exactly its generated files (and base/ its hand-written namespace.yaml).
  for (const output of OUTPUTS) {
    const kustomization = loadYaml<{ resources: string[] }>(await readFile(`${MANIFESTS}${output.dir}/kustomization.yaml`, "utf8"));
    const files = kustomization.resources.filter((resource) => resource.endsWith(".yaml") && resource !== "namespace.yaml");
    assert.deepEqual(files.sort(), [...output.templates].sort(), `manifests/${output.dir}/kustomization.yaml`);
  }
});

test("splitBySource: one file per template with the header, documents in helm's order; a template without a file is an error", () => {
  const doc = (template: string, body: string) => `---\n# Source: azure-msi-operator/templates/${template}\n${body}\n`;
  const base = { dir: "base", set: [], templates: ["service.yaml", "pdb.yaml"] };
  const files = splitBySource(
    doc("service.yaml", "kind: Service\nmetadata: {name: a}") +
      doc("pdb.yaml", "kind: PodDisruptionBudget") +
      doc("service.yaml", "kind: Service\nmetadata: {name: b}"),
    base,
  );
  assert.deepEqual(Object.fromEntries(files), {
    "service.yaml": `${HEADER}kind: Service\nmetadata: {name: a}\n---\nkind: Service\nmetadata: {name: b}\n`,
    "pdb.yaml": `${HEADER}kind: PodDisruptionBudget\n`,
  });
  assert.throws(
    () => splitBySource(doc("monitor.yaml", "kind: ServiceMonitor"), base),
    /templates monitor\.yaml render but have no file in manifests\/base\/: add them to its output in tools\/manifests\.ts/,
  );
  assert.throws(() => splitBySource("---\nkind: Service\n", base), /without a "# Source:" line/);
  // With values, the header names them, so the file can be rendered again by hand.
  const set = ["monitoring.podMonitor.enabled=true"];
  assert.deepEqual(Object.fromEntries(splitBySource(doc("pdb.yaml", "kind: PodDisruptionBudget"), { ...base, set })), {
    "pdb.yaml": `${header(set)}kind: PodDisruptionBudget\n`,
  });
  assert.match(header(set), /^# {3}--set monitoring\.podMonitor\.enabled=true$/m);
});

// What the chart sets differently from the operator's own defaults, on purpose.
const CHART_CHOICES: Record<string, string> = {
  LOG_JSON: "true",
  LEASE_ENABLE: "true",
  SYNC_WATCH: "true",
  AZUREIDENTITY_NAMESPACED: "true",
  AZUREIDENTITY_BINDING_SYNC: "true",
  // Untagging revokes in the shipped install, on positive evidence only (issue 25); the flag stays off for drop-in users.
  AZUREIDENTITY_PRUNE: "true",
  KUBERNETES_NAMESPACE_IGNORE: "kube-system kube-public kube-node-lease default gatekeeper-system istio-system",
};

test("every setting the chart spells out defaults to the operator's own default, but for the chart's deliberate choices", async () => {
  const deployment = find<V1Deployment>(await render(), "Deployment");
  const byEnv = new Map(FLAGS.flatMap((flag) => (flag.env ?? []).map((env): [string, (typeof FLAGS)[number]] => [env, flag])));
  const differing: string[] = [];
  for (const variable of deployment.spec?.template.spec?.containers[0]?.env ?? []) {
    const flag = byEnv.get(variable.name);
    assert.ok(flag, `${variable.name} is a flag's env var`);
    if (variable.valueFrom) continue;
    const operatorDefault = Array.isArray(flag.default) ? flag.default.join(" ") : (flag.default ?? "");
    const expected = CHART_CHOICES[variable.name] ?? operatorDefault;
    assert.equal(variable.value, expected, `${variable.name}`);
    if (variable.value !== operatorDefault) differing.push(variable.name);
  }
  assert.deepEqual(differing.sort(), Object.keys(CHART_CHOICES).sort(), "the chart's choices differ from the operator's defaults");
});

/** Leaves of a values document, by dotted path; lists and maps of free-form Kubernetes fields count as one value. */
function leaves(value: unknown, path = ""): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const opaque = [
    ...[
      "resources",
      "nodeSelector",
      "tolerations",
      "affinity",
      "topologySpreadConstraints",
      "podAnnotations",
      "podLabels",
      "commonLabels",
      "serviceAccount.annotations",
      "podSecurityContext",
      "securityContext",
      "extraEnv",
      "networkPolicy.webhook.peers",
    ],
    ...["podMonitor.labels", "serviceMonitor.labels", "prometheusRule.labels", "dashboard.labels", "dashboard.annotations"].map((map) => `monitoring.${map}`),
  ];
  if (value !== null && typeof value === "object" && !Array.isArray(value) && !opaque.includes(path)) {
    for (const [key, child] of Object.entries(value)) for (const [p, v] of leaves(child, path ? `${path}.${key}` : key)) out.set(p, v);
  } else out.set(path, value);
  return out;
}

test("the values file that sets everything sets every value in values.yaml to something else", async () => {
  const defaults = leaves(loadYaml(await readFile(`${CHART_DIR}values.yaml`, "utf8")));
  const given = leaves(loadYaml(everything));
  // existingSecret and caBundle are the other way to bring a certificate (one or the other): the next tests set them.
  // The ServiceMonitor is the other way to scrape (the test after next enables it instead of the PodMonitor).
  // A ServiceAccount the chart does not make has a test of its own.
  const alternatives = ["tls.existingSecret", "tls.caBundle", "tls.certManager.issuerRef.group", "monitoring.serviceMonitor.enabled", "serviceAccount.create"];
  const same = [...defaults].filter(([path, value]) => !alternatives.includes(path) && JSON.stringify(given.get(path)) === JSON.stringify(value));
  assert.deepEqual(
    same.map(([path]) => path),
    [],
    "values the fixture leaves at their default",
  );
  assert.deepEqual(
    [...given.keys()].filter((path) => !defaults.has(path)),
    [],
    "the fixture sets only known values",
  );
});

test("helm template with the values file that sets everything: each value lands in the objects and the operator's configuration", async () => {
  const objects = await render(everything, { release: "x", namespace: "platform" });
  const deployment = find<V1Deployment>(objects, "Deployment", "msi");
  const pod = deployment.spec!.template;
  const container = pod.spec!.containers[0]!;
  assert.equal(container.image, "example.azurecr.io/platform/ops/azure-msi-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  assert.equal(container.imagePullPolicy, "Always");
  assert.deepEqual(pod.spec?.imagePullSecrets, [{ name: "acr-pull" }]);
  assert.equal(deployment.spec?.replicas, 3);
  assert.deepEqual(container.resources, { requests: { cpu: "100m", memory: "256Mi" }, limits: { memory: "384Mi" } });
  assert.equal(pod.metadata?.annotations?.["example.com/team"], "platform");
  assert.equal(pod.metadata?.labels?.["example.com/cost-centre"], "42");
  assert.equal(pod.metadata?.labels?.["azure.workload.identity/use"], "true");
  assert.deepEqual(pod.metadata?.labels, { ...EVERYTHING_LABELS, "example.com/cost-centre": "42", "azure.workload.identity/use": "true" });
  assert.deepEqual(deployment.spec?.selector.matchLabels, { "app.kubernetes.io/name": "identity-operator", "app.kubernetes.io/instance": "x" });
  // The helm test pod has no name label (the test after next says why).
  for (const object of objects.filter((object) => object.kind !== "Pod"))
    assert.deepEqual(pick(object.metadata?.labels, Object.keys(EVERYTHING_LABELS)), EVERYTHING_LABELS, key(object));
  // Merged into the chart's secure defaults: what the fixture leaves unset stays.
  assert.deepEqual(pod.spec?.securityContext, {
    runAsNonRoot: true,
    runAsUser: 2000,
    runAsGroup: 2000,
    fsGroup: 2000,
    seccompProfile: { type: "RuntimeDefault" },
  });
  assert.deepEqual(container.securityContext, {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: false,
    capabilities: { drop: ["ALL"] },
  });
  assert.deepEqual(
    objects.filter((object) => object.kind === "CustomResourceDefinition").map((object) => object.metadata?.name),
    AAD_CRD_NAMES,
    "crds.install",
  );
  assert.equal(pod.spec?.priorityClassName, "platform-critical");
  assert.deepEqual(pod.spec?.nodeSelector, { "kubernetes.io/os": "linux", agentpool: "system" });
  assert.deepEqual(
    pod.spec?.tolerations?.map((toleration) => toleration.key),
    ["CriticalAddonsOnly"],
  );
  assert.ok(pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution, "affinity");
  assert.deepEqual(
    pod.spec?.topologySpreadConstraints?.map((constraint) => [constraint.topologyKey, constraint.whenUnsatisfiable]),
    [["kubernetes.io/hostname", "ScheduleAnyway"]],
  );
  assert.equal(find<KubernetesObject & { spec: { minAvailable: number } }>(objects, "PodDisruptionBudget").spec.minAvailable, 2);
  assert.deepEqual(
    container.envFrom?.map((source) => source.secretRef?.name),
    ["platform-azure"],
  );
  const serviceAccount = find<V1ServiceAccount>(objects, "ServiceAccount", "msi-operator");
  assert.equal(pod.spec?.serviceAccountName, "msi-operator");
  assert.deepEqual(serviceAccount.metadata?.annotations, {
    "example.com/owner": "platform",
    "azure.workload.identity/client-id": "11111111-0000-0000-0000-000000000001",
    "azure.workload.identity/tenant-id": "22222222-0000-0000-0000-000000000002",
  });

  const config = configOf(deployment);
  assert.deepEqual(
    {
      json: config.log.json,
      debug: config.log.debug,
      subscriptions: config.azure.subscriptions,
      environment: config.azure.environment,
      ignore: config.kubernetes.namespaceIgnore,
      labelFormat: config.kubernetes.labelFormat,
      namespaced: config.azureIdentity.namespaced,
      bindingSync: config.azureIdentity.bindingSync,
      prune: config.azureIdentity.prune,
      expiry: config.azureIdentity.expiry.enable,
      expiryAnnotation: config.azureIdentity.expiry.annotation,
      interval: config.sync.intervalMs,
      watch: config.sync.watch,
      lockTime: config.sync.lockTimeMs,
      concurrency: config.sync.concurrency,
      lease: [config.lease.durationMs, config.lease.renewDeadlineMs, config.lease.retryPeriodMs, config.lease.name],
      shutdown: config.shutdown.delayMs,
      users: config.webhook.allowUsers,
      groups: config.webhook.allowGroups,
      mic: config.webhook.allowMic,
      strict: config.webhook.bindingStrict,
      enforcement: config.webhook.enforcement,
      audit: config.audit,
      service: config.webhook.serviceName,
      configurations: [config.webhook.validatingConfigName, config.webhook.mutatingConfigName],
      tls: config.webhook.tls.files,
      workloadIdentity: [config.workloadIdentity.enable, config.workloadIdentity.issuer, config.workloadIdentity.cluster, config.workloadIdentity.strict],
      readTimeout: config.server.readTimeoutMs,
    },
    {
      json: false,
      debug: true,
      subscriptions: ["00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"],
      environment: "AZUREUSGOVERNMENTCLOUD",
      ignore: ["kube-system", "platform"],
      labelFormat: "identity.example.com/%s",
      namespaced: false,
      bindingSync: false,
      prune: false,
      expiry: true,
      expiryAnnotation: "example.com/expires",
      interval: 30 * 60_000,
      watch: false,
      lockTime: 60_000,
      concurrency: 16,
      lease: [30_000, 20_000, 4_000, "msi-leader"],
      shutdown: 10_000,
      users: ["break-glass@example.com"],
      groups: ["00000000-0000-0000-0000-0000000000aa"],
      mic: ["system:serviceaccount:aad-pod-identity:mic"],
      strict: true,
      enforcement: "warn",
      audit: { enable: false, micForceNamespaced: true, micManagers: ["aad-pod-identity", "mic"] },
      service: "msi-webhook",
      configurations: ["msi", "msi"],
      tls: { certFile: "/etc/azure-msi-operator/tls/tls.crt", keyFile: "/etc/azure-msi-operator/tls/tls.key" },
      workloadIdentity: [true, "https://oidc.example.com/00000000/", "prod-westeurope", true],
      readTimeout: 10_000,
    },
  );

  // cert-manager: a Certificate for the Service's names, its Secret mounted, its CA injected into both configurations.
  const certificate = find<KubernetesObject & { spec: Record<string, unknown> }>(objects, "Certificate", "msi-webhook");
  assert.equal(certificate.metadata?.namespace, "platform");
  assert.deepEqual(certificate.spec.dnsNames, ["msi-webhook", "msi-webhook.platform", "msi-webhook.platform.svc", "msi-webhook.platform.svc.cluster.local"]);
  assert.deepEqual(certificate.spec.issuerRef, { name: "platform-ca", kind: "ClusterIssuer", group: "cert-manager.io" });
  assert.deepEqual([certificate.spec.duration, certificate.spec.renewBefore], ["2160h", "720h"]);
  assert.equal(pod.spec?.volumes?.[0]?.secret?.secretName, certificate.spec.secretName);
  assert.equal(container.volumeMounts?.[0]?.mountPath, "/etc/azure-msi-operator/tls");
  for (const kind of ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"])
    assert.equal(find(objects, kind, "msi").metadata?.annotations?.["cert-manager.io/inject-ca-from"], "platform/msi-webhook", kind);
  // The workload identity mode: its RBAC and a ServiceAccount webhook in each configuration.
  find<V1ClusterRole>(objects, "ClusterRole", "msi-workload-identity");
  const mutating = find<V1MutatingWebhookConfiguration>(objects, "MutatingWebhookConfiguration");
  assert.equal(
    mutating.webhooks?.at(-1)?.matchConditions?.[0]?.expression,
    "has(object.metadata.labels) && 'identity.example.com/name' in object.metadata.labels",
    "the mutating ServiceAccount webhook follows the label format",
  );

  // Monitoring: the PodMonitor in the AKS group, the alerts and the dashboard where Grafana's sidecar looks.
  const podMonitor = find<Monitor>(objects, "PodMonitor", "msi");
  assert.deepEqual([podMonitor.apiVersion, podMonitor.metadata?.namespace], ["azmonitoring.coreos.com/v1", "platform"]);
  assert.deepEqual(podMonitor.metadata?.labels, { release: "kube-prometheus-stack", ...EVERYTHING_LABELS });
  assert.deepEqual(podMonitor.spec.podMetricsEndpoints, [{ port: "metrics", path: "/metrics", interval: "1m" }]);
  assert.deepEqual([podMonitor.spec.labelLimit, podMonitor.spec.labelNameLengthLimit, podMonitor.spec.labelValueLengthLimit], [63, 511, 1023]);
  assert.equal(objects.filter((object) => object.kind === "ServiceMonitor").length, 0, "one of the two scrapes");
  const rule = find<KubernetesObject & { spec: unknown }>(objects, "PrometheusRule", "msi");
  assert.deepEqual(rule.metadata?.labels, { release: "kube-prometheus-stack", role: "alert-rules", ...EVERYTHING_LABELS });
  assert.deepEqual(rule.spec, loadYaml(await readFile(`${CHART_DIR}files/prometheus-rules.yaml`, "utf8")), "the rules file as it is");
  const dashboard = find<V1ConfigMap>(objects, "ConfigMap", "msi-dashboard");
  assert.equal(dashboard.metadata?.namespace, "grafana");
  assert.deepEqual(dashboard.metadata?.labels, { grafana_dashboard: "true", ...EVERYTHING_LABELS });
  assert.deepEqual(dashboard.metadata?.annotations, { grafana_folder: "Platform" });
  assert.equal(dashboard.data?.["grafana-dashboard.json"], await readFile(`${CHART_DIR}files/grafana-dashboard.json`, "utf8"));

  // The fixture's ServiceMonitor values, with it instead of the PodMonitor.
  const instead = await render(everything, { release: "x", namespace: "platform", extra: ["--set", SERVICE_MONITOR_INSTEAD] });
  const serviceMonitor = find<Monitor>(instead, "ServiceMonitor", "msi");
  assert.deepEqual([serviceMonitor.apiVersion, serviceMonitor.metadata?.namespace], ["azmonitoring.coreos.com/v1", "platform"]);
  assert.equal(serviceMonitor.metadata?.labels?.release, "prometheus-platform");
  assert.deepEqual(serviceMonitor.spec.endpoints, [{ port: "metrics", path: "/metrics", interval: "15s" }]);
  assert.equal(serviceMonitor.spec.labelLimit, 63);
  assert.equal(instead.filter((object) => object.kind === "PodMonitor").length, 0);
});

test("values -> the Deployment's WEBHOOK_ALLOW_* and the matchConditions: with the fixture's admins and MIC, others, and none, the webhook is skipped exactly where the guard allows", async () => {
  const cases: Array<[values: string, release: string, namespace: string]> = [
    [everything, "x", "platform"],
    [
      "webhook:\n  allowUsers: [alice, bob@example.com]\n  allowGroups: [g1, 'oid:0000']\n  allowMic: [system:serviceaccount:mic:a, system:serviceaccount:mic:b]\n",
      "platform",
      "identity",
    ],
    ["webhook:\n  allowUsers: []\n  allowGroups: []\n  allowMic: []\n", RELEASE, RELEASE],
  ];
  for (const [values, release, namespace] of cases) {
    const objects = await render(values, { release, namespace });
    const policy = policyOf(find<V1Deployment>(objects, "Deployment"));
    const cells = skipTable(find<V1ValidatingWebhookConfiguration>(objects, "ValidatingWebhookConfiguration"), policy);
    const what = `${release}/${namespace}: ${values === everything ? "the fixture" : values}`;
    assert.deepEqual(
      cells.filter((cell) => cell.admission === "error" || (cell.admission === "skip") !== cell.guardAllows),
      [],
      what,
    );
    assert.ok(cells.some((cell) => cell.admission === "skip") && cells.some((cell) => cell.admission === "call"), what);
  }
  // The operator is the ServiceAccount the Deployment runs as, in the release namespace.
  const objects = await render(everything, { release: "x", namespace: "platform" });
  const operator = find<V1ValidatingWebhookConfiguration>(objects, "ValidatingWebhookConfiguration").webhooks?.[0]?.matchConditions?.at(-1);
  assert.deepEqual(operator, { name: "skip-operator", expression: "!(request.userInfo.username in ['system:serviceaccount:platform:msi-operator'])" });
});

test("no image by default: helm template refuses until image.repository is set, naming it", async () => {
  assert.match(await refused("", []), /at '\/image\/repository'/);
  assert.match(await refused("image:\n  registry: example.azurecr.io\n", []), /at '\/image\/repository'/);
});

test("a name that would break the CEL (quote, backslash, whitespace) is refused by the schema, naming where", async () => {
  assert.match(await refused(`webhook:\n  allowUsers: ["o'brien"]\n`), /at '\/webhook\/allowUsers\/0': .*does not match pattern/);
  assert.match(await refused(`webhook:\n  allowGroups: ['a\\b']\n`), /at '\/webhook\/allowGroups\/0': .*does not match pattern/);
  assert.match(await refused(`webhook:\n  allowMic: ["a b"]\n`), /at '\/webhook\/allowMic\/0': .*does not match pattern/);
});

test("networkPolicy: none by default; enabled, the webhook port from anywhere unless sources are given, the metrics port only from the named namespaces", async () => {
  assert.equal((await render()).filter((object) => object.kind === "NetworkPolicy").length, 0);
  type Policy = KubernetesObject & {
    spec: { podSelector: unknown; policyTypes: string[]; ingress: Array<{ ports: Array<{ port: string }>; from?: unknown[] }> };
  };
  const open = find<Policy>(await render("networkPolicy:\n  enabled: true\n"), "NetworkPolicy");
  assert.deepEqual(open.spec.policyTypes, ["Ingress"]);
  assert.deepEqual(open.spec.podSelector, { matchLabels: { "app.kubernetes.io/name": "azure-msi-operator", "app.kubernetes.io/instance": RELEASE } });
  assert.deepEqual(open.spec.ingress, [{ ports: [{ port: "webhook", protocol: "TCP" }] }], "webhook from anywhere, metrics from nowhere");
  const objects = await render(everything, { release: "x", namespace: "platform" });
  const policy = find<Policy>(objects, "NetworkPolicy", "msi");
  assert.equal(policy.metadata?.namespace, "platform");
  assert.deepEqual(policy.spec.ingress, [
    {
      ports: [{ port: "webhook", protocol: "TCP" }],
      _from: [
        { ipBlock: { cidr: "10.224.0.0/16" } },
        { ipBlock: { cidr: "fd00:1::/64" } },
        { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } }, podSelector: { matchLabels: { app: "konnectivity-agent" } } },
      ],
    },
    {
      ports: [{ port: "metrics", protocol: "TCP" }],
      _from: [{ namespaceSelector: { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["monitoring", "kube-system"] }] } }],
    },
  ]);
  // The named ports are the container's, which serve the webhook (--webhook.bind) and /metrics (--server.bind).
  const container = find<V1Deployment>(objects, "Deployment").spec!.template.spec!.containers[0]!;
  const config = configOf(find<V1Deployment>(objects, "Deployment"));
  assert.deepEqual(
    container.ports?.map((port) => [port.name, port.containerPort]),
    [
      ["webhook", config.webhook.bind.port],
      ["metrics", config.server.bind.port],
    ],
  );
  assert.match(await refused("networkPolicy:\n  webhook:\n    cidrs: [10.0.0.0]\n"), /at '\/networkPolicy\/webhook\/cidrs\/0'/);
});

test("another release name and namespace: every name the operator is told is the name of the object the chart made", async () => {
  const objects = await render("", { release: "platform", namespace: "identity" });
  const deployment = find<V1Deployment>(objects, "Deployment", "platform-azure-msi-operator");
  const config = configOf(deployment);
  assert.equal(find<V1Service>(objects, "Service", config.webhook.serviceName).metadata?.namespace, "identity");
  find<V1Service>(objects, "Service", "platform-azure-msi-operator-metrics");
  const validating = find<V1ValidatingWebhookConfiguration>(objects, "ValidatingWebhookConfiguration", config.webhook.validatingConfigName);
  const mutating = find<V1MutatingWebhookConfiguration>(objects, "MutatingWebhookConfiguration", config.webhook.mutatingConfigName);
  for (const webhook of [...(validating.webhooks ?? []), ...(mutating.webhooks ?? [])])
    assert.deepEqual([webhook.clientConfig.service?.name, webhook.clientConfig.service?.namespace], [config.webhook.serviceName, "identity"], webhook.name);
  const roleNames = (find<V1Role>(objects, "Role").rules ?? []).flatMap((rule) => rule.resourceNames ?? []);
  assert.deepEqual(roleNames.sort(), [config.lease.name, config.webhook.tls.secretName].sort());
  const clusterNames = find<V1ClusterRole>(objects, "ClusterRole").rules?.flatMap((rule) => rule.resourceNames ?? []);
  assert.deepEqual(clusterNames, [config.webhook.validatingConfigName]);
  assert.equal(deployment.spec?.template.spec?.serviceAccountName, find<V1ServiceAccount>(objects, "ServiceAccount").metadata?.name);
});

test("an existing certificate Secret: mounted and served, its CA on every webhook, and no Secret or webhook-configuration RBAC", async () => {
  const caBundle = Buffer.from("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").toString("base64");
  const objects = await render(`tls:\n  existingSecret: my-webhook-tls\n  caBundle: ${caBundle}\n`);
  const deployment = find<V1Deployment>(objects, "Deployment");
  assert.equal(deployment.spec?.template.spec?.volumes?.[0]?.secret?.secretName, "my-webhook-tls");
  assert.ok(configOf(deployment).webhook.tls.files, "the operator serves the files");
  for (const kind of ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"]) {
    const configuration = find<V1ValidatingWebhookConfiguration>(objects, kind);
    assert.ok((configuration.webhooks ?? []).length > 0);
    for (const webhook of configuration.webhooks ?? []) assert.equal(webhook.clientConfig.caBundle, caBundle, `${kind} ${webhook.name}`);
    assert.equal(configuration.metadata?.annotations, undefined, "no cert-manager injection");
  }
  const resources = [...(find<V1Role>(objects, "Role").rules ?? []), ...(find<V1ClusterRole>(objects, "ClusterRole").rules ?? [])].flatMap(
    (rule) => rule.resources ?? [],
  );
  assert.deepEqual(
    resources.filter((resource) => ["secrets", "validatingwebhookconfigurations", "mutatingwebhookconfigurations"].includes(resource)),
    [],
  );
  assert.equal(objects.filter((object) => object.kind === "Certificate").length, 0);
});

test("a brought certificate without its CA, both ways at once, cert-manager without an issuer, or both scrapes at once: refused with what to set", async () => {
  assert.match(await refused("tls:\n  existingSecret: my-webhook-tls\n"), /tls\.existingSecret needs tls\.caBundle/);
  assert.match(
    await refused("tls:\n  existingSecret: my-webhook-tls\n  caBundle: Zm9v\n  certManager:\n    enabled: true\n    issuerRef: { name: ca }\n"),
    /tls\.existingSecret and tls\.certManager\.enabled: choose one/,
  );
  assert.match(await refused("tls:\n  certManager:\n    enabled: true\n"), /tls\.certManager\.issuerRef\.name is required/);
  assert.match(
    await refused("monitoring:\n  podMonitor: { enabled: true }\n  serviceMonitor: { enabled: true }\n"),
    /monitoring\.podMonitor\.enabled and monitoring\.serviceMonitor\.enabled: choose one/,
  );
});

test("values.schema.json refuses a wrong type and an unknown key, naming where", async () => {
  assert.match(await refused("replicas: two\n"), /at '\/replicas': got string, want integer/);
  assert.match(await refused("sync:\n  watch: yes please\n"), /at '\/sync\/watch': got string, want boolean/);
  assert.match(await refused("replica: 3\n"), /additional properties 'replica' not allowed/);
  assert.match(await refused("sync:\n  intervall: 30m\n"), /at '\/sync': additional properties 'intervall' not allowed/);
  assert.match(await refused("sync:\n  interval: 1 hour\n"), /at '\/sync\/interval': '1 hour' does not match pattern/);
  assert.match(await refused("image:\n  pullPolicy: Sometimes\n"), /at '\/image\/pullPolicy': value must be one of/);
  // A PodMonitor in a group no Prometheus reads would scrape nothing, silently.
  assert.match(
    await refused("monitoring:\n  podMonitor:\n    apiGroup: monitoring.coreos.com/v1\n"),
    /at '\/monitoring\/podMonitor\/apiGroup': value must be one of 'monitoring\.coreos\.com', 'azmonitoring\.coreos\.com'/,
  );
  assert.match(
    await refused("monitoring:\n  serviceMonitor:\n    apiGroup: azmonitoring\n"),
    /at '\/monitoring\/serviceMonitor\/apiGroup': value must be one of/,
  );
  assert.match(
    await refused("monitoring:\n  podMonitor:\n    interval: 30 seconds\n"),
    /at '\/monitoring\/podMonitor\/interval': '30 seconds' does not match pattern/,
  );
  assert.match(
    await refused("monitoring:\n  dashboard:\n    labels: { grafana_dashboard: 1 }\n"),
    /at '\/monitoring\/dashboard\/labels\/grafana_dashboard': got number, want string/,
  );
  assert.match(
    await refused("monitoring:\n  prometheusRule:\n    enable: true\n"),
    /at '\/monitoring\/prometheusRule': additional properties 'enable' not allowed/,
  );
});

test("the operator's own workload identity: the client ID on the ServiceAccount and the pod label; none by default", async () => {
  const plain = await render();
  assert.equal(find<V1ServiceAccount>(plain, "ServiceAccount").metadata?.annotations, undefined);
  assert.equal(find<V1Deployment>(plain, "Deployment").spec?.template.metadata?.labels?.["azure.workload.identity/use"], undefined);
  const objects = await render("azure:\n  credential:\n    secretName: ''\n    workloadIdentity:\n      clientId: 33333333-0000-0000-0000-000000000003\n");
  assert.deepEqual(find<V1ServiceAccount>(objects, "ServiceAccount").metadata?.annotations, {
    "azure.workload.identity/client-id": "33333333-0000-0000-0000-000000000003",
  });
  const deployment = find<V1Deployment>(objects, "Deployment");
  assert.equal(deployment.spec?.template.metadata?.labels?.["azure.workload.identity/use"], "true");
  assert.equal(deployment.spec?.template.spec?.containers[0]?.envFrom, undefined, "no credential Secret");
});

/** Every label selector of a release's objects, by where it is, and what it selects: pods, or (a ServiceMonitor's) Services. */
function selectorsOf(objects: readonly KubernetesObject[]): Array<{ where: string; selects: "pods" | "services"; matchLabels: Record<string, string> }> {
  const out: Array<{ where: string; selects: "pods" | "services"; matchLabels: Record<string, string> }> = [];
  type Selecting = KubernetesObject & {
    spec: {
      selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
      podSelector?: { matchLabels?: Record<string, string> };
      template?: { spec?: { topologySpreadConstraints?: Array<{ topologyKey: string; labelSelector?: { matchLabels?: Record<string, string> } }> } };
    };
  };
  for (const object of objects as Selecting[]) {
    const where = key(object);
    if (object.kind === "Deployment") {
      out.push({ where, selects: "pods", matchLabels: object.spec.selector!.matchLabels! });
      for (const constraint of object.spec.template?.spec?.topologySpreadConstraints ?? [])
        out.push({ where: `${where} spread ${constraint.topologyKey}`, selects: "pods", matchLabels: constraint.labelSelector!.matchLabels! });
    }
    if (object.kind === "Service") out.push({ where, selects: "pods", matchLabels: object.spec.selector as Record<string, string> });
    if (object.kind === "PodDisruptionBudget" || object.kind === "PodMonitor")
      out.push({ where, selects: "pods", matchLabels: object.spec.selector!.matchLabels! });
    if (object.kind === "NetworkPolicy") out.push({ where, selects: "pods", matchLabels: object.spec.podSelector!.matchLabels! });
    if (object.kind === "ServiceMonitor") out.push({ where, selects: "services", matchLabels: object.spec.selector!.matchLabels! });
  }
  return out;
}

test("two releases in one namespace: every object has Helm's labels, every selector names its release and selects its own pods, never the other's or the test pod", async () => {
  const values = "networkPolicy:\n  enabled: true\nmonitoring:\n  podMonitor:\n    enabled: true\n";
  const serviceMonitor = ["--set", "monitoring.serviceMonitor.enabled=true"];
  const releases = await Promise.all(
    ["one", "two"].map(async (release) => {
      // The ServiceMonitor is the other way to scrape: rendered on its own, added.
      const instead = (await render("", { release, namespace: "shared", extra: serviceMonitor })).filter((object) => object.kind === "ServiceMonitor");
      const objects = [...(await render(values, { release, namespace: "shared" })), ...instead];
      return { release, objects, name: `${release}-azure-msi-operator` };
    }),
  );
  const podLabels = (objects: readonly KubernetesObject[]) => find<V1Deployment>(objects, "Deployment").spec!.template.metadata!.labels!;
  const serviceLabels = (objects: readonly KubernetesObject[]) =>
    objects.filter((object) => object.kind === "Service").map((object) => object.metadata!.labels!);
  for (const [index, { release, objects }] of releases.entries()) {
    const other = releases[1 - index]!.objects;
    for (const object of objects.filter((object) => object.kind !== "Pod"))
      assert.deepEqual(pick(object.metadata?.labels, Object.keys(standardLabels(release))), standardLabels(release), key(object));
    const testPod = find<KubernetesObject & { metadata: { labels: Record<string, string> } }>(objects, "Pod");
    const selectors = selectorsOf(objects);
    assert.deepEqual(
      new Set(selectors.map((selector) => selector.where.split("/")[0])),
      new Set(["Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "PodMonitor", "ServiceMonitor"]),
    );
    for (const { where, selects, matchLabels } of selectors) {
      assert.equal(matchLabels["app.kubernetes.io/instance"], release, `${where} names the release`);
      if (selects === "pods") {
        assert.ok(selectsLabels(matchLabels, podLabels(objects)), `${where} selects its release's pods`);
        assert.ok(!selectsLabels(matchLabels, podLabels(other)), `${where} does not select the other release's pods`);
        assert.ok(!selectsLabels(matchLabels, testPod.metadata.labels), `${where} does not select the helm test pod`);
      } else {
        assert.equal(serviceLabels(objects).filter((labels) => selectsLabels(matchLabels, labels)).length, 1, `${where}: the metrics Service`);
        assert.equal(serviceLabels(other).filter((labels) => selectsLabels(matchLabels, labels)).length, 0, `${where}: not the other release's`);
      }
    }
  }
});

test("kubectl applies manifests/: none of Helm's own labels, nor the helm test pod, is in them", async () => {
  const files = await renderManifests(helm);
  for (const [name, content] of files) {
    assert.doesNotMatch(content, /helm\.sh\/|managed-by: Helm|kind: Pod\n/, `manifests/${name}`);
    assert.match(content, /app\.kubernetes\.io\/instance: azure-msi-operator/, `manifests/${name}`);
  }
  assert.equal(HELM_ONLY_LABELS.flags, "gm");
});

test("serviceAccount.create=false: no ServiceAccount, the RBAC and the skip-operator matchCondition name serviceAccount.name; without a name, refused", async () => {
  const objects = await render("serviceAccount:\n  create: false\n  name: platform-operator\n", { release: "platform", namespace: "identity" });
  assert.equal(objects.filter((object) => object.kind === "ServiceAccount").length, 0);
  const deployment = find<V1Deployment>(objects, "Deployment");
  assert.equal(deployment.spec?.template.spec?.serviceAccountName, "platform-operator");
  const subjects = objects
    .filter((object) => object.kind?.endsWith("Binding"))
    .flatMap((object) => (object as KubernetesObject & { subjects: Array<{ name: string; namespace: string }> }).subjects);
  assert.ok(subjects.length >= 2);
  for (const subject of subjects) assert.deepEqual([subject.name, subject.namespace], ["platform-operator", "identity"]);
  // The matchConditions skip the webhook for that user exactly where the guard allows it.
  const policy = policyOf(deployment);
  assert.equal(policy.operatorUser, "system:serviceaccount:identity:platform-operator");
  const cells = skipTable(find<V1ValidatingWebhookConfiguration>(objects, "ValidatingWebhookConfiguration"), policy);
  assert.deepEqual(
    cells.filter((cell) => cell.admission === "error" || (cell.admission === "skip") !== cell.guardAllows),
    [],
  );
  assert.ok(cells.some((cell) => cell.who === "the operator" && cell.admission === "skip"));
  // Named, but made by the chart: the same name everywhere.
  const named = await render("serviceAccount:\n  name: platform-operator\n");
  assert.equal(find<V1ServiceAccount>(named, "ServiceAccount").metadata?.name, "platform-operator");
  assert.match(await refused("serviceAccount:\n  create: false\n"), /serviceAccount\.name is required with serviceAccount\.create=false/);
});

test("security contexts: today's secure defaults; a value set merges into them, null drops a key", async () => {
  const defaults = find<V1Deployment>(await render(), "Deployment").spec!.template.spec!;
  assert.deepEqual(defaults.securityContext, { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: "RuntimeDefault" } });
  assert.deepEqual(defaults.containers[0]?.securityContext, {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  });
  const changed = find<V1Deployment>(await render("podSecurityContext:\n  runAsUser: null\n  runAsGroup: null\n"), "Deployment").spec!.template.spec!;
  assert.deepEqual(changed.securityContext, { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
  assert.match(await refused("securityContext: privileged\n"), /at '\/securityContext': got string, want object/);
});

test("crds.install: none by default; the upstream CRDs with this release's labels, kept on uninstall", async () => {
  assert.equal((await render()).filter((object) => object.kind === "CustomResourceDefinition").length, 0);
  const crds = (await render("crds:\n  install: true\n")).filter((object) => object.kind === "CustomResourceDefinition") as Array<
    KubernetesObject & { spec: unknown }
  >;
  const upstream = JSON.parse(JSON.stringify(loadAllYaml(await readFile(AAD_POD_IDENTITY_CRDS, "utf8")))) as Array<KubernetesObject & { spec: unknown }>;
  assert.deepEqual(
    crds.map((crd) => crd.metadata?.name),
    upstream.map((crd) => crd.metadata?.name),
  );
  assert.deepEqual(
    crds.map((crd) => crd.metadata?.name),
    AAD_CRD_NAMES,
  );
  for (const [index, crd] of crds.entries()) {
    assert.deepEqual(crd.spec, upstream[index]!.spec, `${crd.metadata?.name}: the upstream spec`);
    assert.equal(crd.metadata?.annotations?.["helm.sh/resource-policy"], "keep");
    assert.equal(crd.metadata?.annotations?.["api-approved.kubernetes.io"], "unapproved", "upstream's annotations stay");
    assert.deepEqual(crd.metadata?.labels, standardLabels(RELEASE));
  }
  // The chart's copy is the fixture, byte for byte (as manifests/crds/ is).
  assert.ok((await readFile(`${CHART_DIR}files/aad-pod-identity-crds.yaml`)).equals(await readFile(AAD_POD_IDENTITY_CRDS)));
});

test("Chart.yaml: home, sources, maintainers and Artifact Hub's annotations", async () => {
  type Chart = { home?: string; sources?: string[]; maintainers?: Array<{ name: string; url?: string }>; annotations?: Record<string, string> };
  const chart = loadYaml<Chart>(await readFile(`${CHART_DIR}Chart.yaml`, "utf8"));
  const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as { license: string; repository: { url: string } };
  const repository = pkg.repository.url.replace(/^git\+/, "").replace(/\.git$/, "");
  assert.equal(chart.home, repository);
  assert.deepEqual(chart.sources, [repository]);
  assert.ok((chart.maintainers ?? []).length > 0 && chart.maintainers!.every((maintainer) => maintainer.name));
  assert.equal(chart.annotations?.["artifacthub.io/license"], pkg.license);
  // Artifact Hub reads these two as YAML lists inside the string.
  const links = loadYaml<Array<{ name: string; url: string }>>(chart.annotations?.["artifacthub.io/links"] ?? "");
  assert.ok(Array.isArray(links) && links.every((link) => link.name && link.url.startsWith(repository)), "artifacthub.io/links");
  const changes = loadYaml<Array<{ kind: string; description: string }>>(chart.annotations?.["artifacthub.io/changes"] ?? "");
  assert.ok(Array.isArray(changes) && changes.length > 0, "artifacthub.io/changes");
  for (const change of changes) assert.ok(["added", "changed", "deprecated", "removed", "fixed", "security"].includes(change.kind), change.kind);
});

describe("helm test: the pod's script against the real webhook server and /metrics", () => {
  type TestPod = KubernetesObject & {
    metadata: { annotations: Record<string, string> };
    spec: { containers: Array<{ image: string; command: string[]; args: string[]; env: Array<{ name: string; value: string }> }> };
  };
  let webhook: TestWebhook;
  let ops: { port: number; close: () => Promise<void> };
  let dir: string;
  before(async () => {
    webhook = await startTestWebhook();
    ops = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      readTimeoutMs: 5_000,
      writeTimeoutMs: 5_000,
      metrics: webhook.metrics,
      notReady: () => undefined,
    });
    dir = await mkdtemp(join(tmpdir(), "amo-helm-test-"));
  });
  after(async () => {
    await Promise.all([webhook?.close(), ops?.close(), dir && rm(dir, { recursive: true, force: true })]);
  });

  /** Runs the pod's container command with its env, the Services' URLs swapped for the local servers'. */
  async function runTestPod(pod: TestPod, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
    const container = pod.spec.containers[0]!;
    assert.equal(container.command[0], "node");
    const podEnv = Object.fromEntries(container.env.map((variable) => [variable.name, variable.value]));
    return new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        [...container.command.slice(1), ...container.args],
        { env: { PATH: process.env.PATH, ...podEnv, ...env } },
        (error, stdout, stderr) => {
          if (error && typeof error.code !== "number") reject(new Error(`cannot run node: ${error.message}`, { cause: error }));
          else resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
        },
      );
    });
  }

  test("the hook pod: the operator's image, a test hook, the webhook's CA only (never the CA key), both Services' in-cluster URLs", async () => {
    const pod = find<TestPod>(await render(), "Pod");
    assert.equal(pod.metadata.annotations["helm.sh/hook"], "test");
    assert.equal(pod.spec.containers[0]!.image, "azure-msi-operator:0.1.0");
    const env = Object.fromEntries(pod.spec.containers[0]!.env.map((variable) => [variable.name, variable.value]));
    assert.deepEqual(env, {
      WEBHOOK_URL: `https://${RELEASE}-webhook.${RELEASE}.svc:443/validate/azurepodidentityexception`,
      METRICS_URL: `http://${RELEASE}-metrics.${RELEASE}.svc:8080/metrics`,
      WEBHOOK_CA_FILE: "/etc/helm-test/ca.crt",
    });
    const spec = pod.spec as TestPod["spec"] & {
      volumes: Array<{ secret: { secretName: string; items: Array<{ key: string }> } }>;
      automountServiceAccountToken: boolean;
    };
    assert.deepEqual(spec.volumes[0]!.secret, { secretName: `${RELEASE}-webhook-tls`, items: [{ key: "ca-bundle.crt", path: "ca.crt" }] });
    assert.equal(spec.automountServiceAccountToken, false);
    const certManager = find<typeof pod & { spec: typeof spec }>(await render("tls:\n  certManager:\n    enabled: true\n    issuerRef: { name: ca }\n"), "Pod");
    assert.deepEqual(certManager.spec.volumes[0]!.secret, { secretName: `${RELEASE}-webhook-cert`, items: [{ key: "ca.crt", path: "ca.crt" }] });
    const brought = find<TestPod>(await render("tls:\n  existingSecret: mine\n  caBundle: Zm9v\n"), "Pod");
    assert.equal(brought.spec.containers[0]!.env.find((variable) => variable.name === "WEBHOOK_CA_BASE64")?.value, "Zm9v");
  });

  test("passes against a webhook serving with the CA it is given and a /metrics with azuremsi_build_info; fails, naming what, otherwise", async () => {
    const pod = find<TestPod>(await render(), "Pod");
    const caFile = join(dir, "ca.crt");
    await writeFile(caFile, webhook.ca);
    const local = {
      WEBHOOK_URL: `https://127.0.0.1:${webhook.server.port}/validate/azurepodidentityexception`,
      METRICS_URL: `http://127.0.0.1:${ops.port}/metrics`,
      WEBHOOK_CA_FILE: caFile,
    };
    const passed = await runTestPod(pod, local);
    assert.equal(passed.code, 0, passed.stderr);
    assert.match(passed.stdout, /answered over verified TLS \(allowed: false/);
    assert.match(passed.stdout, /azuremsi_build_info\{version=/);

    const otherCa = await generateCa("another CA", 3_600_000);
    await writeFile(join(dir, "other.crt"), otherCa.cert);
    const untrusted = await runTestPod(pod, { ...local, WEBHOOK_CA_FILE: join(dir, "other.crt") });
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /FAIL webhook .*: .*(certificate|issuer)/i);
    const noMetrics = await runTestPod(pod, { ...local, METRICS_URL: `http://127.0.0.1:${ops.port}/healthz` });
    assert.equal(noMetrics.code, 1);
    assert.match(noMetrics.stderr, /FAIL metrics .*: no azuremsi_build_info series/);
    assert.doesNotMatch(noMetrics.stderr, /FAIL webhook/);
  });
});
