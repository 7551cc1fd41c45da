// manifests/monitoring/ against a live operator (real API server, real Azure SDK against the fake):
// every metric its dashboard queries and alert expressions name is one the operator's /metrics
// exports; the sync timestamps the alerts read move as syncs succeed and fail; and both kustomize
// directories render and apply.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { CustomObjectsApi, type KubernetesObject } from "@kubernetes/client-node";
import { FakeAzure, faults } from "../azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "../controlplane/controlplane.js";
import { reservePort } from "../controlplane/ports.js";
import { createTeamNamespace } from "../support/developers.js";
import { MANIFESTS_ROOT } from "../support/manifests.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "../support/operator.js";
import { installWebhooks, kustomize, waitForCaBundles } from "../support/webhooks.js";
import { installMonitoringCrds } from "./crds.js";
import { exportedSeriesNames, metricNames, variableMetricNames } from "./promql-names.js";
import { alertRules, DASHBOARD_FILE, loadPrometheusRule } from "./rules.js";

const SUB = "00000000-0000-0000-0000-0000000000d5";
const MONITORING = `${MANIFESTS_ROOT}monitoring/`;
const AKS = `${MONITORING}aks/`;
// Short, so the leader's own sync loop runs a failing and then a succeeding sync within the test.
const INTERVAL_SECONDS = 3;

interface Dashboard {
  panels: { title: string; type: string; targets?: { expr: string }[] }[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}

/** Every query of the dashboard with where it is, variables included. */
function dashboardQueries(dashboard: Dashboard): { where: string; names: string[] }[] {
  const panels = dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target, index) => ({ where: `panel "${panel.title}" query ${index}`, names: metricNames(target.expr) })),
  );
  const variables = dashboard.templating.list
    .filter((variable) => variable.type === "query")
    .map((variable) => ({
      where: `variable ${variable.name}`,
      names: variableMetricNames(typeof variable.query === "string" ? variable.query : variable.query.query),
    }));
  return [...panels, ...variables];
}

describe("monitoring manifests against a live operator", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: RunningOperator;
  let exposition: string;
  let startedAt: number;

  const scrape = async () => (await fetch(`http://127.0.0.1:${operator.app.opsPort}/metrics`)).text();
  const sample = (text: string, name: string): number | undefined => {
    const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    return match ? Number(match[1]) : undefined;
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    await createTeamNamespace(plane, "team-a");
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg",
      name: "shop",
      clientId: "66666666-0000-0000-0000-000000000006",
      tags: { k8snamespace: "team-a" },
    });
    const port = await reservePort();
    await installWebhooks(plane, port);
    startedAt = Date.now() / 1000;
    operator = await startOperator(plane, fake.credentialEnv(), [
      `--webhook.bind=127.0.0.1:${port}`,
      "--webhook.tls.san=127.0.0.1",
      `--sync.interval=${INTERVAL_SECONDS}s`,
      "--sync.locktime=0s",
      `--azure.subscription=${SUB}`,
    ]);
    await waitForCaBundles(plane);
    await eventually(
      async () => (sample(await scrape(), "azuremsi_sync_last_success_timestamp_seconds") ?? 0) > 0 || undefined,
      30_000,
      "first sync succeeded",
    );
    // One admission decision (whichever), so the admission series carry samples too.
    const binding = {
      apiVersion: "aadpodidentity.k8s.io/v1",
      kind: "AzureIdentityBinding",
      metadata: { name: "probe", namespace: "team-a" },
      spec: { azureIdentity: "probe", selector: "probe" },
    };
    await plane.kubectl("admin", ["apply", "-f", "-"], { stdin: JSON.stringify(binding) });
    exposition = await scrape();
  });
  after(async () => {
    await operator?.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("the sync timestamps and interval the alerts read: a success, then a failure newer than it, then a success again", async () => {
    const first = sample(exposition, "azuremsi_sync_last_success_timestamp_seconds") ?? 0;
    assert.ok(first >= startedAt && first <= Date.now() / 1000, `last success ${first}, operator started ${startedAt}`);
    assert.equal(sample(exposition, "azuremsi_sync_interval_seconds"), INTERVAL_SECONDS);

    // The leader's own sync loop: Azure's listing fails until the fault is cancelled. (A sync may
    // also have failed at start-up, e.g. a write before the caBundle was in: only newer ones count.)
    const injected = fake.inject({ match: /\/providers\/Microsoft\.ManagedIdentity\//i, times: Infinity, fault: faults.status(500) });
    let failed: string;
    let successBefore: number;
    try {
      successBefore = sample(await scrape(), "azuremsi_sync_last_success_timestamp_seconds") ?? 0;
      failed = await eventually(
        async () => {
          const text = await scrape();
          return (sample(text, "azuremsi_sync_last_failure_timestamp_seconds") ?? 0) > successBefore ? text : undefined;
        },
        30_000,
        "a failed sync",
      );
    } finally {
      injected.cancel();
    }
    const failure = sample(failed, "azuremsi_sync_last_failure_timestamp_seconds") ?? 0;
    assert.ok(successBefore >= first);
    // AzureMsiSyncFailing's condition, until the next success.
    assert.ok((sample(failed, "azuremsi_sync_last_success_timestamp_seconds") ?? 0) < failure, "the failure is newer than the last success");
    assert.match(failed, /^azuremsi_sync_runs_total\{result="failed"\} [1-9]/m);
    const recovered = await eventually(
      async () => {
        const value = sample(await scrape(), "azuremsi_sync_last_success_timestamp_seconds") ?? 0;
        return value > failure ? value : undefined;
      },
      30_000,
      "a successful sync after the fault",
    );
    assert.ok(recovered <= Date.now() / 1000);
  });

  test("every metric in the dashboard's queries and the alerts' expressions is in the live /metrics", async () => {
    const exported = exportedSeriesNames(exposition);
    const dashboard = JSON.parse(await readFile(DASHBOARD_FILE, "utf8")) as Dashboard;
    const queries = [
      ...dashboardQueries(dashboard),
      ...alertRules((await loadPrometheusRule()).spec).map((rule) => ({ where: `alert ${rule.alert}`, names: metricNames(rule.expr) })),
    ];
    assert.ok(queries.length > 30, `${queries.length} queries`);
    const unknown: string[] = [];
    for (const { where, names } of queries) {
      assert.ok(names.length > 0, `${where}: names no metric`);
      for (const name of names) if (!exported.has(name)) unknown.push(`${where}: ${name}`);
    }
    assert.deepEqual(unknown, []);
    // The runbook descriptions name metrics too: families (a histogram by its name) or series.
    const families = new Set([...exposition.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]));
    const described = alertRules((await loadPrometheusRule()).spec).flatMap((rule) =>
      [...(rule.annotations?.description ?? "").matchAll(/\b(?:azuremsi|azurerm|process|nodejs)_[a-z_]+/g)].map((match) => ({
        alert: rule.alert,
        name: match[0],
      })),
    );
    assert.ok(described.length > 10, `${described.length} metric names in descriptions`);
    assert.deepEqual(
      described.filter(({ name }) => !families.has(name) && !exported.has(name)).map(({ alert, name }) => `${alert} description: ${name}`),
      [],
    );
    // The test drove these, so they are live samples, not only declared families.
    for (const name of [
      "azuremsi_leader",
      "azuremsi_sync_runs_total",
      "azuremsi_sync_objects",
      "azuremsi_admission_requests_total",
      "azuremsi_admission_duration_seconds_bucket",
      "azuremsi_webhook_certificate_expiry_timestamp_seconds",
      "azurerm_api_request_count",
      "process_start_time_seconds",
    ])
      assert.match(exposition, new RegExp(`^${name}[{ ]`, "m"), `${name} has samples`);
  });

  test("kustomize: manifests/monitoring/ ships the PodMonitor, the rule and the dashboard ConfigMap; aks/ only the azmonitoring PodMonitor", async () => {
    const objects = await kustomize(plane, MONITORING);
    assert.deepEqual(objects.map((object) => `${object.apiVersion} ${object.kind}`).sort(), [
      "monitoring.coreos.com/v1 PodMonitor",
      "monitoring.coreos.com/v1 PrometheusRule",
      "v1 ConfigMap",
    ]);
    for (const object of objects) assert.equal(object.metadata?.namespace, OPERATOR_NAMESPACE, `${object.kind} namespace`);
    const podMonitor = objects.find((object) => object.kind === "PodMonitor") as KubernetesObject & {
      spec: { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string; path: string }[] };
    };
    assert.deepEqual(podMonitor.spec.selector.matchLabels, {
      "app.kubernetes.io/name": "azure-msi-operator",
      "app.kubernetes.io/instance": "azure-msi-operator",
    });
    assert.deepEqual(
      podMonitor.spec.podMetricsEndpoints.map((endpoint) => [endpoint.port, endpoint.path]),
      [["metrics", "/metrics"]],
    );
    const configMap = objects.find((object) => object.kind === "ConfigMap") as KubernetesObject & { data: Record<string, string> };
    assert.equal(configMap.metadata?.name, "azure-msi-operator-dashboard");
    assert.equal(configMap.metadata?.labels?.grafana_dashboard, "1");
    assert.equal(configMap.data["grafana-dashboard.json"], await readFile(DASHBOARD_FILE, "utf8"));

    const aks = await kustomize(plane, AKS);
    assert.deepEqual(
      aks.map((object) => `${object.apiVersion} ${object.kind}`),
      ["azmonitoring.coreos.com/v1 PodMonitor"],
    );
    const { labelLimit, labelNameLengthLimit, labelValueLengthLimit, ...rest } = (aks[0] as typeof podMonitor & { spec: Record<string, unknown> }).spec;
    assert.deepEqual({ labelLimit, labelNameLengthLimit, labelValueLengthLimit }, { labelLimit: 63, labelNameLengthLimit: 511, labelValueLengthLimit: 1023 });
    assert.deepEqual(rest, podMonitor.spec, "the same PodMonitor otherwise");
  });

  test("kubectl apply -k creates them (with stand-in CRDs for prometheus-operator's and AKS' kinds)", async () => {
    await installMonitoringCrds(plane);
    await plane.kubectlOrThrow("admin", ["apply", "-k", MONITORING]);
    await plane.kubectlOrThrow("admin", ["apply", "-k", AKS]);
    const custom = plane.api("admin", CustomObjectsApi);
    for (const [group, plural] of [
      ["monitoring.coreos.com", "podmonitors"],
      ["monitoring.coreos.com", "prometheusrules"],
      ["azmonitoring.coreos.com", "podmonitors"],
    ] as const) {
      const object = (await custom.getNamespacedCustomObject({
        group,
        version: "v1",
        namespace: OPERATOR_NAMESPACE,
        plural,
        name: "azure-msi-operator",
      })) as KubernetesObject;
      assert.equal(object.metadata?.name, "azure-msi-operator", `${plural}.${group}`);
    }
    const dashboard = await plane.kubectlOrThrow("admin", [
      "-n",
      OPERATOR_NAMESPACE,
      "get",
      "configmap",
      "azure-msi-operator-dashboard",
      "-o",
      "jsonpath={.metadata.labels}",
    ]);
    assert.match(dashboard, /"grafana_dashboard":"1"/);
  });
});
