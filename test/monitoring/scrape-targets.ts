// Whether a PodMonitor or ServiceMonitor scrapes anything: prometheus-operator keeps only targets
// whose port name matches the endpoint's, so a renamed container or Service port (or a changed
// label) silently leaves Prometheus with no target, and the alerts' absent() is the only sign.
// Pure: the objects in, what would scrape nothing out.
import type { KubernetesObject, V1Deployment, V1Service } from "@kubernetes/client-node";

interface Monitor extends KubernetesObject {
  spec: {
    selector: { matchLabels?: Record<string, string> };
    podMetricsEndpoints?: { port?: string }[];
    endpoints?: { port?: string }[];
  };
}

const isMonitor = (object: KubernetesObject, kind: string): object is Monitor =>
  object.kind === kind && /^(az)?monitoring\.coreos\.com\/v1$/.test(object.apiVersion ?? "");

/** A matchLabels selector (what the shipped monitors and Services use); an empty one selects everything. */
export const selects = (matchLabels: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  Object.entries(matchLabels ?? {}).every(([key, value]) => labels?.[key] === value);

const sameNamespace = (a: KubernetesObject, b: KubernetesObject) => (a.metadata?.namespace ?? "") === (b.metadata?.namespace ?? "");
const name = (object: KubernetesObject) => `${object.kind} ${object.metadata?.name}`;

function containerPorts(deployment: V1Deployment): { name?: string; containerPort: number }[] {
  return (deployment.spec?.template.spec?.containers ?? []).flatMap((container) => container.ports ?? []);
}

/** The Deployments whose pods a Service or PodMonitor selects (in its namespace). */
function podsOf(objects: readonly KubernetesObject[], by: KubernetesObject, matchLabels: Record<string, string> | undefined): V1Deployment[] {
  return objects.filter(
    (object): object is V1Deployment =>
      object.kind === "Deployment" && sameNamespace(object, by) && selects(matchLabels, (object as V1Deployment).spec?.template.metadata?.labels),
  );
}

/** Every way the monitors among `objects` would end up with no target; empty when each scrapes. */
export function scrapeProblems(objects: readonly KubernetesObject[]): string[] {
  const problems: string[] = [];
  for (const monitor of objects.filter((object) => isMonitor(object, "PodMonitor"))) {
    const deployments = podsOf(objects, monitor, monitor.spec.selector.matchLabels);
    if (deployments.length === 0) problems.push(`${name(monitor)} selects no Deployment's pods`);
    for (const endpoint of monitor.spec.podMetricsEndpoints ?? [])
      for (const deployment of deployments)
        if (!containerPorts(deployment).some((port) => port.name === endpoint.port))
          problems.push(`${name(monitor)} scrapes port ${endpoint.port}, which ${name(deployment)}'s containers do not name`);
  }
  for (const monitor of objects.filter((object) => isMonitor(object, "ServiceMonitor"))) {
    const services = objects.filter(
      (object): object is V1Service =>
        object.kind === "Service" && sameNamespace(object, monitor) && selects(monitor.spec.selector.matchLabels, object.metadata?.labels),
    );
    if (services.length === 0) problems.push(`${name(monitor)} selects no Service`);
    for (const endpoint of monitor.spec.endpoints ?? [])
      for (const service of services) {
        const port = service.spec?.ports?.find((candidate) => candidate.name === endpoint.port);
        if (!port) {
          problems.push(`${name(monitor)} scrapes port ${endpoint.port}, which ${name(service)} does not name`);
          continue;
        }
        const deployments = podsOf(objects, service, service.spec?.selector);
        if (deployments.length === 0) problems.push(`${name(service)} selects no Deployment's pods`);
        const target = port.targetPort ?? port.port;
        for (const deployment of deployments)
          if (!containerPorts(deployment).some((candidate) => (typeof target === "number" ? candidate.containerPort === target : candidate.name === target)))
            problems.push(`${name(service)} port ${port.name} targets ${target}, which ${name(deployment)}'s containers do not have`);
      }
  }
  return problems;
}
