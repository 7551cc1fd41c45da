// The operator (syncer and webhooks, in this process) while the API server misbehaves: restarted
// mid-sync, watch connections cut again and again, other clients editing the same objects (409s),
// API Priority and Fairness rejecting its requests (429s). Afterwards the cluster converges (each
// wanted identity exactly once, nothing deleted that should stay) and the webhooks' cache is right
// again: a binding jane applies after the fault is filled at admission, a fresh identity is guarded.
// `npm run test:soak` (SOAK=1) restarts more often and cuts longer.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api, setHeaderOptions } from "@kubernetes/client-node";
import type { AzureIdentity } from "../src/kube/resources.js";
import { OWNED_SELECTOR } from "../src/kube/resources.js";
import { FakeAzure, type FakeIdentity } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { applyOperatorRbac, eventually, operatorWrites, startOperator, type RunningOperator } from "./support/operator.js";
import { TcpProxy } from "./support/tcp-proxy.js";
import { installWebhooks, waitForCaBundles } from "./support/webhooks.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000d4";
const RG = "rg-api";
const LOOKUP = "msi.azure.k8s.io";
const SOAK = process.env.SOAK === "1";
const MERGE_PATCH = setHeaderOptions("Content-Type", "application/merge-patch+json");
/** How long the cluster may take to converge, and the webhook cache to be right, after a fault. */
const CONVERGE_MS = 60_000;
const WEBHOOK_FRESH_MS = 10_000;
const TINY = "azure-msi-operator-tiny";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("API server faults: restart, cut watches, 409 conflicts, APF 429s", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let env: Record<string, string>;
  let custom: CustomObjectsApi;
  let core: CoreV1Api;
  let webhookPort: number;
  /** Namespaces that exist: the identities wanted are those of MSIs tagged for one of them. */
  const live = new Set<string>();

  const createNamespace = async (name: string) => {
    await core.createNamespace({ body: { metadata: { name } } });
    live.add(name);
  };
  const addMsis = (
    prefix: string,
    count: number,
    namespaceOf: (index: number) => string,
    clientIdOf: (index: number) => string = () => randomUUID(),
  ): FakeIdentity[] =>
    Array.from({ length: count }, (_, index) =>
      fake.model.addIdentity({
        subscriptionId: SUB,
        resourceGroup: RG,
        name: `${prefix}-${String(index).padStart(3, "0")}`,
        clientId: clientIdOf(index),
        tags: { k8snamespace: namespaceOf(index) },
      }),
    );
  const nameOf = (msi: FakeIdentity) => `${msi.name}-${msi.clientId}`;

  /** "namespace/name clientID" of every identity wanted now. */
  const wanted = (): string[] =>
    fake.model
      .identities()
      .flatMap((msi) => (msi.tags.k8snamespace ?? "").split(",").map((namespace) => `${namespace.trim()}/${nameOf(msi)} ${msi.clientId}`))
      .filter((key) => live.has(key.split("/")[0]!))
      .sort();
  const owned = async (): Promise<AzureIdentity[]> =>
    (
      (await custom.listClusterCustomObject({ group: GROUP, version: "v1", plural: "azureidentities", labelSelector: OWNED_SELECTOR })) as {
        items: AzureIdentity[];
      }
    ).items;
  const ownedIn = async (namespace: string): Promise<AzureIdentity[]> =>
    (
      (await custom.listNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentities", labelSelector: OWNED_SELECTOR })) as {
        items: AzureIdentity[];
      }
    ).items;

  /** Resolves once the owned identities are exactly the wanted ones, each once, with the right spec. */
  const converged = (what: string) =>
    eventually(
      async () => {
        const identities = await owned().catch(() => undefined);
        if (!identities) return undefined;
        const actual = identities.map((identity) => `${identity.metadata?.namespace}/${identity.metadata?.name} ${identity.spec?.clientID}`).sort();
        const perMsi = identities.map((identity) => `${identity.metadata?.namespace}${identity.spec?.resourceID}`);
        return JSON.stringify(actual) === JSON.stringify(wanted()) && new Set(perMsi).size === perMsi.length ? identities.length : undefined;
      },
      CONVERGE_MS,
      `${what}: every wanted identity exactly once`,
    );

  const startRunning = async (flags: string[], options: { kubeconfig?: string } = {}): Promise<RunningOperator> => {
    const op = await startOperator(
      plane,
      env,
      [`--webhook.bind=127.0.0.1:${webhookPort}`, "--webhook.tls.san=127.0.0.1", "--azureidentity.prune", ...flags],
      options,
    );
    await waitForCaBundles(plane);
    await eventually(() => op.app.notReady() === undefined || undefined, 30_000, "operator ready");
    return op;
  };

  /**
   * After a fault: a namespace created now gets its identity, jane's labelled binding is filled by the
   * mutating webhook from its cache, and the validating webhook guards the new identity. Returns how
   * long after the identity existed the webhook filled the binding.
   */
  const webhooksServeFresh = async (msi: FakeIdentity): Promise<number> => {
    const namespace = msi.tags.k8snamespace!;
    const name = nameOf(msi);
    await createNamespace(namespace);
    await eventually(
      async () => (await ownedIn(namespace).catch(() => [])).some((identity) => identity.metadata?.name === name) || undefined,
      CONVERGE_MS,
      `${name} synced into ${namespace}`,
    );
    const synced = Date.now();
    const binding = JSON.stringify({
      apiVersion: `${GROUP}/v1`,
      kind: "AzureIdentityBinding",
      metadata: { name: "app", namespace, labels: { [`${LOOKUP}/name`]: msi.name, [`${LOOKUP}/resourcegroup`]: RG, [`${LOOKUP}/subscription`]: SUB } },
      spec: { selector: "app" },
    });
    const apply = (extra: string[]) => plane.kubectl("jane", ["apply", ...extra, "-o", "jsonpath={.spec.azureIdentity}", "-f", "-"], { stdin: binding });
    await eventually(async () => (await apply(["--dry-run=server"])).stdout === name || undefined, WEBHOOK_FRESH_MS, "the mutating webhook fills the binding");
    const filledAfterMs = Date.now() - synced;
    const applied = await apply([]);
    assert.equal(applied.stdout, name, applied.stderr);
    const stolen = await plane.kubectl("jane", ["patch", "azureidentity", name, "-n", namespace, "--type=merge", "-p", '{"spec":{"clientID":"stolen"}}']);
    assert.match(stolen.stderr, /denied the request: AzureIdentity objects are managed by azure-msi-operator/);
    return filledAfterMs;
  };

  const operatorDeletesSince = async (since: number) =>
    operatorWrites(await plane.auditEvents(), since).filter((event) => event.verb === "delete" && (event.responseStatus?.code ?? 0) < 300);
  const restartsOf = async (op: RunningOperator) =>
    Number(/azuremsi_cache_restarts_total\{resource="azureidentities"\} (\d+)/.exec(await op.metrics.registry.metrics())?.[1] ?? 0);

  before(async () => {
    // Fewer seats overall, so that the APF test's priority level gets exactly one.
    [plane, fake] = await Promise.all([
      ControlPlane.start({ apiserverFlags: ["--max-requests-inflight=20", "--max-mutating-requests-inflight=10"] }),
      FakeAzure.start(),
    ]);
    env = fake.credentialEnv();
    await applyOperatorRbac(plane);
    custom = plane.api("admin", CustomObjectsApi);
    core = plane.api("admin", CoreV1Api);
    const rbac = plane.api("admin", RbacAuthorizationV1Api);
    await rbac.createClusterRole({ body: { metadata: { name: "aad-everything" }, rules: [{ apiGroups: [GROUP], resources: ["*"], verbs: ["*"] }] } });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: "dev-team-aad" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "aad-everything" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "dev-team" }],
      },
    });
    await createNamespace("steady");
    addMsis("steady", 10, () => "steady");
    webhookPort = await reservePort();
    await installWebhooks(plane, webhookPort);
  });
  after(async () => {
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("kube-apiserver killed and restarted in the middle of a sync", { timeout: 600_000 }, async (t) => {
    const rounds = SOAK ? 5 : 1;
    const bulk = Array.from({ length: rounds }, (_, round) => addMsis(`bulk-${round}`, 200, () => `restart-${round}`));
    const [fresh] = addMsis("fresh", 1, () => "fresh-restart");
    const started = Date.now();
    const op = await startRunning(["--sync.watch", "--sync.interval=1h"]);
    try {
      await converged("before the restart");
      for (let round = 0; round < rounds; round++) {
        // A new namespace makes the syncer create 200 identities there, one after the other.
        await createNamespace(`restart-${round}`);
        // Later rounds kill it later in the sync.
        const createdBeforeKill = await eventually(
          async () => {
            const written = (await ownedIn(`restart-${round}`)).length;
            return written > round * 40 ? written : undefined;
          },
          30_000,
          "the sync is writing",
        );
        const signal = round % 2 === 0 ? "SIGKILL" : "SIGTERM";
        await plane.restartApiServer({ signal, downMs: 4_000 });
        const readyAt = Date.now();
        assert.ok(
          createdBeforeKill < bulk[round]!.length,
          `the restart came in the middle of the sync (${createdBeforeKill} of ${bulk[round]!.length} written)`,
        );
        const total = await converged(`after restart ${round + 1}`);
        t.diagnostic(
          `restart ${round + 1} (${signal}, 4 s down) after ${createdBeforeKill}/${bulk[round]!.length} creates: ${total} identities converged ${Date.now() - readyAt} ms after the API server was ready`,
        );
      }
      assert.ok(
        op.logs.some((line) => line.msg === "AzureIdentity write failed"),
        "writes failed while the API server was down",
      );
      assert.ok((await restartsOf(op)) > 0, "the identity cache noticed and re-listed");
      t.diagnostic(`webhook filled a binding ${await webhooksServeFresh(fresh!)} ms after its identity was synced`);
      assert.deepEqual(await operatorDeletesSince(started), [], "nothing deleted");
    } finally {
      await op.stop();
    }
  });

  test("watch connections cut again and again while the cluster changes", { timeout: 600_000 }, async (t) => {
    const cycles = SOAK ? 40 : 6;
    addMsis("cut", cycles, (index) => `cut-${index}`);
    const [fresh] = addMsis("fresh-cut", 1, () => "fresh-cut");
    const apiPort = Number(new URL(plane.server).port);
    const proxy = await TcpProxy.start(() => apiPort);
    const kubeconfig = await plane.serviceAccountKubeconfig(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, `https://127.0.0.1:${proxy.port}`);
    const started = Date.now();
    const op = await startRunning(["--sync.watch", "--sync.interval=1h"], { kubeconfig });
    try {
      await converged("before the cuts");
      const restartsBefore = await restartsOf(op);
      const steady = await ownedIn("steady");
      for (let cycle = 0; cycle < cycles; cycle++) {
        proxy.partition(); // every connection of the operator dropped, watches included
        proxy.heal();
        await createNamespace(`cut-${cycle}`);
        const victim = steady[cycle % steady.length]!;
        if (cycle % 2 === 0) {
          await custom
            .deleteNamespacedCustomObject({ group: GROUP, version: "v1", namespace: "steady", plural: "azureidentities", name: victim.metadata!.name! })
            .catch(() => undefined);
        } else {
          await custom
            .patchNamespacedCustomObject(
              {
                group: GROUP,
                version: "v1",
                namespace: "steady",
                plural: "azureidentities",
                name: victim.metadata!.name!,
                body: { spec: { clientID: "tampered" } },
              },
              MERGE_PATCH,
            )
            .catch(() => undefined);
        }
        await sleep(300);
      }
      const cutsDone = Date.now();
      const total = await converged("after the cuts");
      const restarts = (await restartsOf(op)) - restartsBefore;
      assert.ok(restarts > 0, "the cuts ended watches and the cache re-listed");
      t.diagnostic(`${cycles} cuts: ${restarts} identity-cache re-lists, ${total} identities converged ${Date.now() - cutsDone} ms after the last cut`);
      t.diagnostic(`webhook filled a binding ${await webhooksServeFresh(fresh!)} ms after its identity was synced`);
      assert.deepEqual(await operatorDeletesSince(started), [], "nothing deleted");
    } finally {
      await op.stop();
      await proxy.close();
    }
  });

  test("another client edits the operator's objects while it writes: 409s on create and delete, then convergence", { timeout: 600_000 }, async (t) => {
    await createNamespace("conflict");
    await createNamespace("adopt");
    const doomed = addMsis("doomed", 20, () => "conflict");
    const op = await startRunning(["--sync.watch", "--sync.interval=1s", "--sync.locktime=0s"]);
    const loops: Promise<void>[] = [];
    let editing = true;
    try {
      await converged("before the edits");
      const started = Date.now();
      // Objects with the names the operator is about to create, made by someone else: its creates get 409 AlreadyExists.
      const adoptIds = Array.from({ length: 10 }, () => randomUUID());
      for (const [index, clientId] of adoptIds.entries()) {
        await custom.createNamespacedCustomObject({
          group: GROUP,
          version: "v1",
          namespace: "adopt",
          plural: "azureidentities",
          body: {
            apiVersion: `${GROUP}/v1`,
            kind: "AzureIdentity",
            metadata: { name: `adopt-${String(index).padStart(3, "0")}-${clientId}`, labels: { "team.example/owner": "admin" } },
            spec: { type: 0, resourceID: "/made/by/hand", clientID: "wrong" },
          },
        });
      }
      // The admin keeps relabelling what the operator is about to delete (its deletes carry the
      // resourceVersion it saw: 409), and tampers with identities that stay.
      const patchLoop = (namespace: string, name: string, body: (count: number) => object) =>
        (async () => {
          for (let count = 0; editing; count++) {
            const gone = await custom
              .patchNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentities", name, body: body(count) }, MERGE_PATCH)
              .then(
                () => false,
                (error: { code?: number }) => error.code === 404,
              );
            if (gone) return;
          }
        })();
      for (const msi of doomed)
        loops.push(patchLoop("conflict", nameOf(msi), (count) => ({ metadata: { labels: { "team.example/touched": String(count) } } })));
      const steady = (await ownedIn("steady")).slice(0, 3);
      for (const identity of steady)
        loops.push(
          patchLoop("steady", identity.metadata!.name!, (count) => ({
            metadata: { labels: { "team.example/tamper": String(count) } },
            spec: { clientID: `tampered-${count}` },
          })),
        );
      for (const msi of doomed) fake.model.removeIdentity(msi);
      addMsis(
        "adopt",
        adoptIds.length,
        () => "adopt",
        (index) => adoptIds[index]!,
      );

      const conflicts = await eventually(
        async () => {
          const events = operatorWrites(await plane.auditEvents(), started).filter((event) => event.responseStatus?.code === 409);
          const byVerb = { create: events.filter((event) => event.verb === "create").length, delete: events.filter((event) => event.verb === "delete").length };
          return byVerb.create > 0 && byVerb.delete > 0 ? byVerb : undefined;
        },
        30_000,
        "409 on the operator's creates and deletes",
      );
      editing = false;
      await Promise.all(loops);
      const editsDone = Date.now();
      const count = await converged("after the edits");
      t.diagnostic(
        `409s on the operator's writes: ${JSON.stringify(conflicts)}; ${count} identities converged ${Date.now() - editsDone} ms after the edits stopped`,
      );
      assert.equal(count, wanted().length);
      for (const identity of await ownedIn("adopt")) assert.equal(identity.metadata?.labels?.["team.example/owner"], "admin", "adopted, foreign label kept");
      for (const identity of steady) {
        const now = (await ownedIn("steady")).find((candidate) => candidate.metadata?.name === identity.metadata?.name);
        assert.ok(now?.metadata?.labels?.["team.example/tamper"], "the other client's label survives the repair");
      }
      const deleted = (await operatorDeletesSince(started)).map((event) => event.objectRef?.name).sort();
      assert.deepEqual(deleted, doomed.map(nameOf).sort(), `only the MSIs removed from Azure are pruned (409s: ${JSON.stringify(conflicts)})`);
    } finally {
      editing = false;
      await Promise.all(loops);
      await op.stop();
    }
  });

  test("API Priority and Fairness rejects the operator's requests (429): it still converges", { timeout: 600_000 }, async (t) => {
    const namespaces = Array.from({ length: 20 }, (_, index) => `apf-${index}`);
    for (const namespace of namespaces) await createNamespace(namespace);
    const [fresh] = addMsis("fresh-apf", 1, () => "fresh-apf");
    const op = await startRunning(["--sync.watch", "--sync.interval=2s", "--sync.locktime=0s"]);
    const rejected = async () =>
      Number(
        new RegExp(`apiserver_flowcontrol_rejected_requests_total\\{[^}]*priority_level="${TINY}"[^}]*\\} (\\d+)`).exec(
          (await plane.adminGet("/metrics")).body,
        )?.[1] ?? 0,
      );
    try {
      await converged("before throttling");
      // One seat, no borrowing, no queue: whatever the operator sends beyond one request at a time is rejected.
      const objects = [
        {
          apiVersion: "flowcontrol.apiserver.k8s.io/v1",
          kind: "PriorityLevelConfiguration",
          metadata: { name: TINY },
          spec: { type: "Limited", limited: { nominalConcurrencyShares: 1, lendablePercent: 0, borrowingLimitPercent: 0, limitResponse: { type: "Reject" } } },
        },
        {
          apiVersion: "flowcontrol.apiserver.k8s.io/v1",
          kind: "FlowSchema",
          metadata: { name: TINY },
          spec: {
            priorityLevelConfiguration: { name: TINY },
            matchingPrecedence: 50,
            distinguisherMethod: { type: "ByUser" },
            rules: [
              {
                subjects: [{ kind: "ServiceAccount", serviceAccount: { name: OPERATOR_SERVICE_ACCOUNT, namespace: OPERATOR_NAMESPACE } }],
                resourceRules: [{ verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true }],
                nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }],
              },
            ],
          },
        },
      ];
      await plane.kubectlOrThrow("admin", ["apply", "-f", "-"], { stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }) });
      try {
        const seats = await eventually(
          async () =>
            /apiserver_flowcontrol_nominal_limit_seats\{priority_level="azure-msi-operator-tiny"\} (\d+)/.exec((await plane.adminGet("/metrics")).body)?.[1],
          20_000,
          "the priority level is in force",
        );
        const started = Date.now();
        // Three MSIs for each of 20 namespaces: the next full sync writes them 8 namespaces at a time.
        addMsis("apf", namespaces.length * 3, (index) => namespaces[index % namespaces.length]!);
        const total = await converged("under throttling");
        t.diagnostic(`${total} identities converged under throttling in ${Date.now() - started} ms`);
        const rejections = await rejected();
        assert.ok(rejections > 0, `APF rejected some of the operator's requests (seats: ${seats})`);
        const throttledWrites = operatorWrites(await plane.auditEvents(), started).filter((event) => event.responseStatus?.code === 429).length;
        t.diagnostic(`APF (${seats} seat): ${rejections} operator requests rejected, ${throttledWrites} of them identity writes`);
        t.diagnostic(`webhook filled a binding ${await webhooksServeFresh(fresh!)} ms after its identity was synced`);
        assert.deepEqual(
          await operatorDeletesSince(started),
          [],
          `nothing deleted (${rejections} requests rejected, ${throttledWrites} of them identity writes)`,
        );
      } finally {
        await plane.kubectlOrThrow("admin", ["delete", "-f", "-"], { stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }) });
      }
    } finally {
      await op.stop();
    }
  });
});
