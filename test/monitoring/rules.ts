// The shipped PrometheusRule, read the way kubectl would apply it (manifests/monitoring/, rendered
// from the chart and held to it by test/chart.test.ts), for the tests that check it.
import { readFile } from "node:fs/promises";
import { loadYaml } from "@kubernetes/client-node";
import { CHART_DIR } from "../support/helm.js";
import { MANIFESTS_ROOT } from "../support/manifests.js";

export const PROMETHEUS_RULE_FILE = `${MANIFESTS_ROOT}monitoring/prometheusrule.yaml`;
/** The dashboard's one copy: the chart's ConfigMap (and so manifests/monitoring/dashboard.yaml) carries it. */
export const DASHBOARD_FILE = `${CHART_DIR}files/grafana-dashboard.json`;

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
/** A Prometheus rules file: what `promtool check rules` reads, and a PrometheusRule's spec. */
export interface RuleGroups {
  groups: { name: string; rules: Rule[] }[];
}

export async function loadPrometheusRule(): Promise<{ apiVersion: string; kind: string; spec: RuleGroups }> {
  const object = loadYaml<{ apiVersion: string; kind: string; spec: RuleGroups }>(await readFile(PROMETHEUS_RULE_FILE, "utf8"));
  if (object.kind !== "PrometheusRule" || object.apiVersion !== "monitoring.coreos.com/v1")
    throw new Error(`${PROMETHEUS_RULE_FILE}: expected a monitoring.coreos.com/v1 PrometheusRule, got ${object.apiVersion} ${object.kind}`);
  return object;
}

/** The alerting rules of every group (recording rules left out). */
export function alertRules(spec: RuleGroups): (Rule & { alert: string })[] {
  return spec.groups.flatMap((group) => group.rules).filter((rule): rule is Rule & { alert: string } => rule.alert !== undefined);
}
