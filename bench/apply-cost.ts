// What the webhooks cost a user: AzureIdentityBinding creates through the real API server with the
// webhooks registered (the mutating one fills spec.azureIdentity) and with them removed.
//   npm run bench:apply -- --bindings=2000 --concurrency=16 --kubectl=30
import { CustomObjectsApi } from "@kubernetes/client-node";
import { FakeAzure } from "../test/azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "../test/controlplane/controlplane.js";
import { reservePort } from "../test/controlplane/ports.js";
import { applyOperatorRbac } from "../test/support/operator.js";
import { OperatorProcess } from "../test/support/process.js";
import { installWebhooks, waitForCaBundles } from "../test/support/webhooks.js";
import { flag, machine, mapLimit, percentile } from "./common.js";
import { createTeamNamespace } from "../test/support/developers.js";

const bindings = flag("bindings", 500);
const concurrency = flag("concurrency", 16);
const kubectlRuns = flag("kubectl", 20);
const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000ab";

const [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
let operator: OperatorProcess | undefined;
try {
  await applyOperatorRbac(plane);
  for (const name of ["warm-up", "with-webhooks", "without-webhooks"]) await createTeamNamespace(plane, name);
  fake.model.addIdentity({
    subscriptionId: SUB,
    resourceGroup: "rg",
    name: "app",
    clientId: "88888888-0000-0000-0000-000000000008",
    tags: { k8snamespace: "warm-up,with-webhooks,without-webhooks" },
  });
  const port = await reservePort();
  await installWebhooks(plane, port);
  // Its own process (the bundle, as deployed): the load generator must not share the webhook's event loop.
  operator = await OperatorProcess.start("bench", {
    kubeconfig: plane.kubeconfigPath("operator"),
    env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE },
    flags: ["run", `--webhook.bind=127.0.0.1:${port}`, "--webhook.tls.san=127.0.0.1"],
  });
  await waitForCaBundles(plane);
  await operator.waitForLog((line) => line.msg === "sync finished", 60_000);
  const jane = plane.api("jane", CustomObjectsApi);
  const body = (namespace: string, name: string) => ({
    apiVersion: `${GROUP}/v1`,
    kind: "AzureIdentityBinding",
    metadata: { name, namespace, labels: { "msi.azure.k8s.io/name": "app", "msi.azure.k8s.io/resourcegroup": "rg", "msi.azure.k8s.io/subscription": SUB } },
    spec: { selector: name },
  });
  const measure = async (namespace: string) => {
    const started = performance.now();
    const latencies = await mapLimit(
      Array.from({ length: bindings }, (_, i) => `b-${i}`),
      concurrency,
      async (name) => {
        const t0 = performance.now();
        await jane.createNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentitybindings", body: body(namespace, name) });
        return performance.now() - t0;
      },
    );
    const kubectl: number[] = [];
    for (let i = 0; i < kubectlRuns; i++) {
      const t0 = performance.now();
      await plane.kubectlOrThrow("jane", ["apply", "-f", "-"], { stdin: JSON.stringify(body(namespace, `k-${i}`)) });
      kubectl.push(performance.now() - t0);
    }
    return {
      totalMs: Math.round(performance.now() - started - kubectl.reduce((a, b) => a + b, 0)),
      p50Ms: +percentile(latencies, 50).toFixed(1),
      p99Ms: +percentile(latencies, 99).toFixed(1),
      kubectlP50Ms: Math.round(percentile(kubectl, 50)),
      kubectlP99Ms: Math.round(percentile(kubectl, 99)),
    };
  };
  // Warm the API server, etcd and both processes' JIT first, so the first measured run is not penalised.
  await measure("warm-up");
  const withWebhooks = await measure("with-webhooks");
  const filled = (await plane.kubectlOrThrow("admin", ["get", "azureidentitybindings", "-n", "with-webhooks", "-o", "jsonpath={.items[*].spec.azureIdentity}"]))
    .split(" ")
    .filter((value) => value === "app-88888888-0000-0000-0000-000000000008").length;
  await plane.kubectlOrThrow("admin", ["delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "azure-msi-operator"]);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const withoutWebhooks = await measure("without-webhooks");
  console.log(
    JSON.stringify(
      {
        machine: machine(),
        bindings,
        concurrency,
        kubectlRuns,
        filledByWebhook: filled,
        withWebhooks,
        withoutWebhooks,
        ratioP99: +(withWebhooks.p99Ms / withoutWebhooks.p99Ms).toFixed(3),
        ratioTotal: +(withWebhooks.totalMs / withoutWebhooks.totalMs).toFixed(3),
      },
      null,
      2,
    ),
  );
} finally {
  await operator?.stop();
  await Promise.all([plane.stop(), fake.close()]);
}
