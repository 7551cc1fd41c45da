// Two (and three) real operator processes against the real control plane and the Azure fake:
// one syncs, the others serve admission; handovers on SIGTERM, SIGKILL and a network partition.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { FakeAzure } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE, type AuditEvent } from "./controlplane/controlplane.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { leaseRenewals } from "./support/lease.js";
import { OperatorProcess, stopAll } from "./support/process.js";
import { TcpProxy } from "./support/tcp-proxy.js";
import { installWebhooks, waitForCaBundles } from "./support/webhooks.js";
import { createTeamNamespace } from "./support/developers.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000e5";
const USER_A = `system:serviceaccount:${OPERATOR_NAMESPACE}:azure-msi-operator`;
const USER_B = `system:serviceaccount:${OPERATOR_NAMESPACE}:azure-msi-operator-b`;
const LEASE = ["--lease.enable", "--lease.duration=4s", "--lease.renewdeadline=3s", "--lease.retryperiod=500ms"];

const isLeaderLine = (line: Record<string, unknown>) => line.msg === "became leader";

describe("one process per replica: Lease leadership, handover, partition", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let apiProxy: TcpProxy;
  let balancer: TcpProxy;
  const processes: OperatorProcess[] = [];
  const ready = new Map<OperatorProcess, number>();
  let polling = true;
  let env: Record<string, string>;
  let kubeconfigA: string;
  let kubeconfigB: string;

  const start = async (name: string, kubeconfig: string, allow: string) => {
    const proc = await OperatorProcess.start(name, {
      kubeconfig,
      env,
      flags: [
        "run",
        ...LEASE,
        "--sync.watch",
        "--shutdown.delay=2s",
        "--webhook.bind=127.0.0.1:0",
        "--webhook.tls.san=127.0.0.1",
        `--webhook.allow.users=${allow}`,
      ],
    });
    processes.push(proc);
    ready.set(proc, 0);
    return proc;
  };
  const leaderOf = (candidates: OperatorProcess[]) =>
    candidates.find(
      (proc) =>
        proc.logs.some(isLeaderLine) &&
        !proc.logs.some((line) => line.msg === "stopped leading" && Number(line.receivedAt) > Number(proc.logs.find(isLeaderLine)?.receivedAt)),
    );

  const operatorWrites = (events: AuditEvent[]) =>
    events.filter(
      (event) =>
        [USER_A, USER_B].includes(event.user.username) &&
        ["create", "update", "patch", "delete"].includes(event.verb) &&
        event.objectRef?.resource === "azureidentities",
    );

  /** Admission requests through the balancer until stopped; every failure is kept. */
  const admissionLoop = () => {
    let running = true;
    const failures: string[] = [];
    let count = 0;
    const binding = JSON.stringify({
      apiVersion: `${GROUP}/v1`,
      kind: "AzureIdentityBinding",
      metadata: {
        name: "loop",
        namespace: "team-h",
        labels: { "msi.azure.k8s.io/name": "handover", "msi.azure.k8s.io/resourcegroup": "rg", "msi.azure.k8s.io/subscription": SUB },
      },
      spec: { selector: "loop" },
    });
    const forged = JSON.stringify({
      apiVersion: `${GROUP}/v1`,
      kind: "AzureIdentity",
      metadata: { name: "forged", namespace: "team-h" },
      spec: { type: 0, resourceID: "/x", clientID: "y" },
    });
    const done = (async () => {
      while (running) {
        const mutated = await plane.kubectl("jane", ["apply", "--dry-run=server", "-o", "jsonpath={.spec.azureIdentity}", "-f", "-"], { stdin: binding });
        count++;
        if (mutated.code !== 0 || mutated.stdout !== "handover-77777777-0000-0000-0000-000000000007")
          failures.push(`mutate ${mutated.code}: ${mutated.stdout} ${mutated.stderr.trim()}`);
        const denied = await plane.kubectl("jane", ["apply", "--dry-run=server", "-f", "-"], { stdin: forged });
        count++;
        if (!/denied the request: AzureIdentity objects are managed by azure-msi-operator/.test(denied.stderr))
          failures.push(`validate ${denied.code}: ${denied.stderr.trim()}`);
      }
    })();
    return { stop: async () => ((running = false), await done, { failures, count }) };
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    const rbac = plane.api("admin", RbacAuthorizationV1Api);
    const binding = (name: string) => ({
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "", name: "" },
      subjects: [{ kind: "ServiceAccount", name: "azure-msi-operator-b", namespace: OPERATOR_NAMESPACE }],
    });
    await rbac.createClusterRoleBinding({
      body: { ...binding("azure-msi-operator-b"), roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "azure-msi-operator" } },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: OPERATOR_NAMESPACE,
      body: { ...binding("azure-msi-operator-b"), roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "azure-msi-operator" } },
    });
    await createTeamNamespace(plane, "team-h");
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg",
      name: "handover",
      clientId: "77777777-0000-0000-0000-000000000007",
      tags: { k8snamespace: "team-h,team-p,team-k" },
    });
    env = { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE };
    const apiPort = Number(new URL(plane.server).port);
    apiProxy = await TcpProxy.start(() => apiPort);
    kubeconfigA = await plane.serviceAccountKubeconfig(OPERATOR_NAMESPACE, "azure-msi-operator", `https://127.0.0.1:${apiProxy.port}`);
    kubeconfigB = await plane.serviceAccountKubeconfig(OPERATOR_NAMESPACE, "azure-msi-operator-b");
    // What a Service does: new connections go to a ready replica, round robin.
    let turn = 0;
    balancer = await TcpProxy.start(() => {
      const candidates = [...ready.entries()].filter(([, port]) => port > 0).map(([, port]) => port);
      return candidates.length > 0 ? candidates[turn++ % candidates.length] : undefined;
    });
    void (async () => {
      while (polling) {
        for (const proc of ready.keys()) ready.set(proc, (await proc.ready()) ? await proc.webhookPort() : 0);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    await installWebhooks(plane, balancer.port);
  });
  after(async () => {
    polling = false;
    try {
      await stopAll(processes);
    } finally {
      await Promise.all([apiProxy?.close(), balancer?.close()]);
      await Promise.all([plane?.stop(), fake?.close()]);
    }
  });

  test("two replicas: exactly one leads and syncs, both serve admission", async () => {
    const a = await start("replica-a", kubeconfigA, USER_B);
    await a.waitForLog(isLeaderLine, 30_000);
    const b = await start("replica-b", kubeconfigB, USER_A);
    await waitForCaBundles(plane);
    await eventually(async () => ((await a.ready()) && (await b.ready())) || undefined, 30_000, "both ready");
    await a.waitForLog((line) => line.msg === "sync finished");
    // b is ready (its caches synced, so it campaigns); four renewals of a are four of b's retry periods.
    await leaseRenewals(plane, "replica-a", 4);
    assert.equal(b.logs.some(isLeaderLine), false, "b does not lead");
    assert.equal(
      b.logs.some((line) => line.msg === "sync finished"),
      false,
      "b does not sync",
    );
    assert.match(
      (await a.get("/metrics")).body,
      /^azuremsi_leader 1$/m,
      JSON.stringify(a.logs.filter((line) => /lead|lease|error|fail/i.test(String(line.msg))).slice(0, 20)),
    );
    assert.match((await b.get("/metrics")).body, /^azuremsi_leader 0$/m);
    const writers = new Set(operatorWrites(await plane.auditEvents()).map((event) => event.user.username));
    assert.deepEqual([...writers], [USER_A]);
    const loop = admissionLoop();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const { failures, count } = await loop.stop();
    assert.deepEqual(failures, [], `${failures.length}/${count} failed`);
  });

  test("a partitioned leader stops writing within the renew deadline; never two writers", async () => {
    const [a, b] = processes as [OperatorProcess, OperatorProcess];
    const partitionedAt = Date.now();
    apiProxy.partition();
    const stopped = await a.waitForLog((line) => line.msg === "stopped leading", 10_000);
    const stoppedAfter = Number(stopped.receivedAt) - partitionedAt;
    assert.ok(stoppedAfter <= 3_000 + 1_000, `a stopped leading ${stoppedAfter} ms after the partition (renew deadline 3 s)`);
    await b.waitForLog(isLeaderLine, 15_000);
    await plane.api("admin", CoreV1Api).createNamespace({ body: { metadata: { name: "team-p" } } });
    await eventually(
      async () => (await plane.kubectl("admin", ["get", "azureidentity", "-n", "team-p", "-o", "name"])).stdout.trim() || undefined,
      10_000,
      "b syncs the new namespace",
    );
    apiProxy.heal();
    // Six renewals of b: six of a's retry periods with its connection back, time for a stale write to show.
    await leaseRenewals(plane, "replica-b", 6);
    const writes = operatorWrites(await plane.auditEventsSettled());
    const lastA = Math.max(...writes.filter((event) => event.user.username === USER_A).map((event) => Date.parse(event.stageTimestamp)));
    const firstBAfter = Math.min(...writes.filter((event) => event.user.username === USER_B).map((event) => Date.parse(event.requestReceivedTimestamp)));
    assert.ok(lastA < firstBAfter, "every write of a came before the first write of b");
    assert.equal(
      writes.filter((event) => event.user.username === USER_A && Date.parse(event.requestReceivedTimestamp) > partitionedAt).length,
      0,
      "a wrote nothing after the partition, also once healed",
    );
    assert.equal(leaderOf([a]), undefined, "a stays a follower after healing");
  });

  test("SIGTERM the leader: the other leads within 3 s and no admission fails during the handover", async () => {
    const [a, b] = processes as [OperatorProcess, OperatorProcess];
    await eventually(async () => ((await a.ready()) && (await b.ready())) || undefined, 20_000, "both ready");
    const loop = admissionLoop();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const killedAt = Date.now();
    const leadsBefore = a.logs.filter(isLeaderLine).length;
    b.kill("SIGTERM");
    await a.waitForLog((line) => isLeaderLine(line) && Number(line.receivedAt) > killedAt, 10_000);
    const handoverMs = Date.now() - killedAt;
    const exit = await b.exited;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const { failures, count } = await loop.stop();
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}: ${b.stderr.join("").slice(-1000)}`);
    assert.ok(a.logs.filter(isLeaderLine).length > leadsBefore);
    assert.ok(handoverMs < 3_000, `handover took ${handoverMs} ms`);
    assert.deepEqual(failures, [], `${failures.length}/${count} admissions failed`);
    assert.ok(b.logs.some((line) => line.msg === "lease released"));
  });

  test("SIGKILL the leader: another replica leads and syncs within lease duration + 2 s", async () => {
    const a = processes[0]!;
    const c = await start("replica-c", kubeconfigB, USER_A);
    await eventually(async () => (await c.ready()) || undefined, 20_000, "c ready");
    const killedAt = Date.now();
    a.kill("SIGKILL");
    await c.waitForLog((line) => isLeaderLine(line) && Number(line.receivedAt) > killedAt, 10_000);
    await plane.api("admin", CoreV1Api).createNamespace({ body: { metadata: { name: "team-k" } } });
    await eventually(
      async () => (await plane.kubectl("admin", ["get", "azureidentity", "-n", "team-k", "-o", "name"])).stdout.trim() || undefined,
      10_000,
      "c syncs",
    );
    const leadMs = Number(c.logs.find((line) => isLeaderLine(line) && Number(line.receivedAt) > killedAt)?.receivedAt) - killedAt;
    assert.ok(leadMs <= 4_000 + 2_000, `c led ${leadMs} ms after SIGKILL`);
  });
});
