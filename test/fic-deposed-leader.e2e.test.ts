// Issue 22, defect 2, as it was measured: two replicas in workload identity mode; the leader's link
// to the API server is black-holed (established connections go silent, new ones are never answered)
// while Azure stays reachable. The other replica takes the Lease and federates a new ServiceAccount.
// The cut-off one keeps syncing from its frozen ServiceAccount cache, in which that ServiceAccount
// does not exist, so it plans to revoke the new FIC; at f48d249 it did (7 deletions in 20 s). Now its
// Azure writes ask canWrite() first. Who sent each Azure request is read from the fake's log: the
// operator names its instance in its User-Agent.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { CoreV1Api } from "@kubernetes/client-node";
import { clusterNameFor, ficName } from "../src/workload/names.js";
import { FakeAzure, type FakeIdentity } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "./controlplane/controlplane.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "./support/operator.js";
import { TcpProxy } from "./support/tcp-proxy.js";

const ISSUER = "https://kubernetes.default.svc";
const CLUSTER = clusterNameFor(ISSUER);
const SUB = "00000000-0000-0000-0000-0000000000d2";
const LOOKUP = "msi.azure.k8s.io";
const labelsFor = (msi: string) => ({ [`${LOOKUP}/name`]: msi, [`${LOOKUP}/resourcegroup`]: "rg-wi", [`${LOOKUP}/subscription`]: SUB });
const FLAGS = [
  "run",
  "--webhook.enable=false",
  "--workloadidentity.enable",
  "--sync.interval=2s",
  "--sync.locktime=0s",
  "--lease.enable",
  "--lease.duration=4s",
  "--lease.renewdeadline=3s",
  "--lease.retryperiod=500ms",
];

/** A TCP server that accepts and never answers: where a black-holed link's new connections end up. */
async function blackHole(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("workload identity: a deposed leader cut off from the API server writes nothing to Azure", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let proxy: TcpProxy;
  let hole: Awaited<ReturnType<typeof blackHole>>;
  let blackHoled = false;
  let shop: FakeIdentity;
  const operators: RunningOperator[] = [];

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    await plane.kubectlOrThrow("admin", ["apply", "-f", "manifests/overlays/workload-identity/rbac.yaml"]);
    await createTeamNamespace(plane, "team-a");
    shop = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-wi", name: "shop", tags: { k8snamespace: "team-a" } });
    await plane.api("admin", CoreV1Api).createNamespacedServiceAccount({ namespace: "team-a", body: { metadata: { name: "api", labels: labelsFor("shop") } } });
    hole = await blackHole();
    const apiPort = Number(new URL(plane.server).port);
    proxy = await TcpProxy.start(() => (blackHoled ? hole.port : apiPort));
  });
  after(async () => {
    // Hung requests end (reset), new connections reach the API server again: both replicas can stop.
    proxy?.partition();
    await hole?.close();
    proxy?.heal();
    await Promise.all(operators.map((operator) => operator.stop()));
    await proxy?.close();
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("the new leader federates a new ServiceAccount; the cut-off one tries to revoke it and is refused", { timeout: 120_000 }, async (t) => {
    const viaProxy = await plane.serviceAccountKubeconfig(OPERATOR_NAMESPACE, "azure-msi-operator", `https://127.0.0.1:${proxy.port}`);
    const a = await startOperator(plane, fake.credentialEnv(), [...FLAGS, "--instance.pod=replica-a"], { kubeconfig: viaProxy });
    operators.push(a);
    const fromA = (userAgent: string | undefined) => userAgent?.startsWith("azure-msi-operator (replica-a)") ?? false;
    const fromB = (userAgent: string | undefined) => userAgent?.startsWith("azure-msi-operator (replica-b)") ?? false;
    await eventually(() => a.logs.some((line) => line.msg === "sync finished") || undefined, 30_000, "a leads and syncs");
    assert.ok(
      fake.model.federatedCredentials(shop).some((fic) => fic.name === ficName(CLUSTER, "team-a", "api")),
      "a federated team-a/api",
    );
    assert.ok(
      fake.federatedCredentialRequests(["PUT"]).some((request) => fromA(request.userAgent)),
      "a's requests carry its name",
    );
    const b = await startOperator(plane, fake.credentialEnv(), [...FLAGS, "--instance.pod=replica-b"]);
    operators.push(b);

    blackHoled = true;
    proxy.freeze();
    const cutAt = Date.now();
    await eventually(() => b.logs.some((line) => line.msg === "became leader") || undefined, 30_000, "b takes the Lease");
    await plane
      .api("admin", CoreV1Api)
      .createNamespacedServiceAccount({ namespace: "team-a", body: { metadata: { name: "late", labels: labelsFor("shop") } } });
    const late = ficName(CLUSTER, "team-a", "late");
    await eventually(() => fake.model.federatedCredentials(shop).some((fic) => fic.name === late) || undefined, 20_000, "b federates team-a/late");
    assert.ok(
      fake.federatedCredentialRequests(["PUT"]).some((request) => fromB(request.userAgent) && request.path.endsWith(`/${late}`)),
      "b made it",
    );

    // The event that gives the negative check its meaning: a's syncer, still running on its frozen
    // cache, planned the revocation and the gate refused it. (Once Kubernetes requests have deadlines,
    // a may instead notice the loss and end its term first: then nothing of it runs any more.)
    const refusedLate = (line: Record<string, unknown>) => line.msg === "federated identity credential write refused: not the leader" && line.fic === late;
    const aWrites = () => fake.federatedCredentialRequests(["PUT", "DELETE"]).filter((request) => request.at >= cutAt && fromA(request.userAgent));
    const seen = await eventually(
      () =>
        aWrites().length > 0
          ? "wrote" // at f48d249: a DELETE of team-a/late from the deposed leader, every sync
          : a.logs.some(refusedLate)
            ? "refused"
            : a.logs.some((line) => line.msg === "stopped leading")
              ? "term over"
              : undefined,
      30_000,
      "a refused to revoke team-a/late (or its term ended)",
    );
    t.diagnostic(`the deposed leader: ${seen}`);
    if (seen === "refused") {
      assert.equal(a.logs.find(refusedLate)?.action, "delete");
      assert.match(await a.metrics.registry.getSingleMetricAsString("azuremsi_fic_writes_total"), /verb="delete",result="not_leader"\} [1-9]/);
    }
    assert.deepEqual(aWrites(), [], "no Azure write from the deposed leader");
    assert.deepEqual(
      fake.federatedCredentialRequests(["DELETE"]).filter((request) => request.path.endsWith(`/${late}`)),
      [],
      "team-a/late's FIC was never deleted",
    );
    assert.ok(fake.model.federatedCredentials(shop).some((fic) => fic.name === late));
  });
});
