// Stand-in CRDs for the kinds of the monitoring objects (the real ones come with prometheus-operator
// and AKS): schemaless, so the API server stores, applies and diffs them as given.
import type { ControlPlane } from "../controlplane/controlplane.js";

const crd = (group: string, kind: string, plural: string) => ({
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `${plural}.${group}` },
  spec: {
    group,
    scope: "Namespaced",
    names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
    versions: [{ name: "v1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } } }],
  },
});

export const MONITORING_CRDS = [
  crd("monitoring.coreos.com", "PodMonitor", "podmonitors"),
  crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
  crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
  crd("azmonitoring.coreos.com", "PodMonitor", "podmonitors"),
  crd("azmonitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
];

/** Creates the stand-in CRDs and waits until the API server serves them. */
export async function installMonitoringCrds(plane: ControlPlane): Promise<void> {
  const stdin = MONITORING_CRDS.map((object) => JSON.stringify(object)).join("\n");
  await plane.kubectlOrThrow("admin", ["apply", "-f", "-"], { stdin });
  await plane.kubectlOrThrow("admin", ["wait", "--for=condition=Established", "--timeout=60s", "-f", "-"], { stdin });
}
