// The monitors scrape a port the operator's pods (and, for the ServiceMonitor, the metrics Service)
// really name, the one the operator serves /metrics on: in the shipped manifests/monitoring/ and in
// the chart under another release name. A rename on one side fails here instead of leaving
// Prometheus without targets (prometheus-operator drops targets whose port name does not match).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { loadAllYaml, type KubernetesObject, type V1Deployment, type V1Service } from "@kubernetes/client-node";
import { parseConfig } from "../../src/config/config.js";
import { KUSTOMIZE_IMAGE } from "../../tools/manifests.js";
import { Helm } from "../support/helm.js";
import { loadManifest, MANIFESTS_ROOT, podEnv } from "../support/manifests.js";
import { scrapeProblems, selects } from "./scrape-targets.js";

const helm = await Helm.create();
after(() => helm.close());

const plain = (objects: unknown): KubernetesObject[] => JSON.parse(JSON.stringify(objects)) as KubernetesObject[];
const ofKind = <T extends KubernetesObject>(objects: readonly KubernetesObject[], kind: string) =>
  objects.filter((object): object is T => object.kind === kind);
type Monitor = KubernetesObject & {
  spec: { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints?: { port: string }[]; endpoints?: { port: string }[] };
};

async function render(set: string): Promise<KubernetesObject[]> {
  const result = await helm.template({ release: "platform", namespace: "identity", extra: ["--set", `${KUSTOMIZE_IMAGE},${set}`] });
  assert.equal(result.code, 0, result.stderr);
  return plain(loadAllYaml(result.stdout));
}

/** The port the operator serves /metrics on (--server.bind), from the Deployment's env. */
function metricsPort(deployment: V1Deployment): number {
  const parsed = parseConfig(["run"], podEnv(deployment));
  assert.ok(parsed.ok, parsed.ok ? "" : parsed.help ? "help" : parsed.error);
  return parsed.config.server.bind.port;
}

const containerPort = (deployment: V1Deployment, name: string): number | undefined =>
  deployment.spec?.template.spec?.containers.flatMap((container) => container.ports ?? []).find((port) => port.name === name)?.containerPort;

describe("monitors scrape a port the operator has", () => {
  test("manifests/monitoring/ and aks/: the PodMonitor's port is the shipped Deployment's container port that --server.bind serves", async () => {
    const base = plain([...(await loadManifest("deployment.yaml")), ...(await loadManifest("service.yaml"))]);
    const [deployment] = ofKind<V1Deployment>(base, "Deployment");
    assert.ok(deployment);
    for (const dir of ["monitoring/", "monitoring/aks/"]) {
      const monitors = plain(loadAllYaml(await readFile(`${MANIFESTS_ROOT}${dir}podmonitor.yaml`, "utf8")));
      assert.deepEqual(scrapeProblems([...base, ...monitors]), [], dir);
      const [podMonitor] = ofKind<Monitor>(monitors, "PodMonitor");
      const ports: (number | undefined)[] | undefined = podMonitor?.spec.podMetricsEndpoints?.map((endpoint): number | undefined =>
        containerPort(deployment, endpoint.port),
      );
      assert.deepEqual(ports, [metricsPort(deployment)], `${dir}: the scraped port serves /metrics`);
    }
  });

  test("the chart under another release name: the PodMonitor, or the ServiceMonitor through the metrics Service only", async () => {
    const pods = await render("monitoring.podMonitor.enabled=true");
    assert.equal(ofKind(pods, "PodMonitor").length, 1);
    assert.deepEqual(scrapeProblems(pods), []);

    const services = await render("monitoring.serviceMonitor.enabled=true,monitoring.serviceMonitor.apiGroup=azmonitoring.coreos.com");
    const [serviceMonitor] = ofKind<Monitor>(services, "ServiceMonitor");
    assert.ok(serviceMonitor);
    assert.deepEqual(scrapeProblems(services), []);
    assert.deepEqual(
      ofKind<V1Service>(services, "Service")
        .filter((service) => selects(serviceMonitor.spec.selector.matchLabels, service.metadata?.labels))
        .map((service) => service.metadata?.name),
      ["platform-azure-msi-operator-metrics"],
      "the webhook Service is not scraped",
    );
    const [deployment] = ofKind<V1Deployment>(services, "Deployment");
    const service = ofKind<V1Service>(services, "Service").find((candidate) => candidate.metadata?.name === "platform-azure-msi-operator-metrics");
    const targetPort = service?.spec?.ports?.find((port) => port.name === serviceMonitor.spec.endpoints?.[0]?.port)?.targetPort;
    assert.equal(containerPort(deployment!, String(targetPort)), metricsPort(deployment!), "the Service's target serves /metrics");
  });

  test("a renamed container port, Service port or label is reported, naming the monitor and what it misses", async () => {
    const both = [...(await render("monitoring.podMonitor.enabled=true")), ...ofKind(await render("monitoring.serviceMonitor.enabled=true"), "ServiceMonitor")];
    assert.deepEqual(scrapeProblems(both), []);
    const changed = (change: (objects: KubernetesObject[]) => void) => {
      const copy = structuredClone(both);
      change(copy);
      return scrapeProblems(copy);
    };
    const deploymentOf = (objects: KubernetesObject[]) => ofKind<V1Deployment>(objects, "Deployment")[0]!;
    const metricsService = (objects: KubernetesObject[]) =>
      ofKind<V1Service>(objects, "Service").find((service) => service.metadata?.name?.endsWith("-metrics"))!;

    assert.deepEqual(
      changed((objects) => {
        deploymentOf(objects).spec!.template.spec!.containers[0]!.ports!.find((port) => port.name === "metrics")!.name = "http-metrics";
      }),
      [
        "PodMonitor platform-azure-msi-operator scrapes port metrics, which Deployment platform-azure-msi-operator's containers do not name",
        "Service platform-azure-msi-operator-metrics port metrics targets metrics, which Deployment platform-azure-msi-operator's containers do not have",
      ],
    );
    assert.deepEqual(
      changed((objects) => {
        metricsService(objects).spec!.ports![0]!.name = "http";
      }),
      ["ServiceMonitor platform-azure-msi-operator scrapes port metrics, which Service platform-azure-msi-operator-metrics does not name"],
    );
    assert.deepEqual(
      changed((objects) => {
        delete metricsService(objects).metadata!.labels!["app.kubernetes.io/component"];
      }),
      ["ServiceMonitor platform-azure-msi-operator selects no Service"],
    );
    assert.deepEqual(
      changed((objects) => {
        deploymentOf(objects).spec!.template.metadata!.labels = { app: "renamed" };
      }),
      ["PodMonitor platform-azure-msi-operator selects no Deployment's pods", "Service platform-azure-msi-operator-metrics selects no Deployment's pods"],
    );
  });
});
