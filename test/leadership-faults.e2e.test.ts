// Three real operator processes, each with its own service account (told apart in the API server's
// audit log) and its own Azure application (told apart in the Azure fake's log by its token's appid),
// in workload identity mode, while the Lease flaps under every fault a leader meets: its link to the
// API server partitioned or silently frozen, the Lease deleted and re-created, the leader stopped
// (SIGSTOP) past its lease and resumed, the leader restarted. ServiceAccounts are created, relabelled
// and deleted throughout. The judges are the logs of the two servers, not the operator's own word:
// every Kubernetes and Azure write must come from the replica that held the Lease at that moment
// (within the renew deadline), no FIC may be deleted while it was wanted, and at the end the FICs
// equal the wanted set exactly.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api, setHeaderOptions } from "@kubernetes/client-node";
import { clusterNameFor, ficName, serviceAccountSubject } from "../src/workload/names.js";
import { FakeAzure, type FakeIdentity, type RecordedRequest } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE, type AuditEvent } from "./controlplane/controlplane.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { OperatorProcess } from "./support/process.js";
import { TcpProxy } from "./support/tcp-proxy.js";

const ISSUER = "https://kubernetes.default.svc";
const CLUSTER = clusterNameFor(ISSUER);
const SUB = "00000000-0000-0000-0000-0000000000f1";
const RG = "rg-churn";
const LEASE = "azure-msi-operator-leader";
const DURATION_MS = 3_000;
const RENEW_DEADLINE_MS = 2_000;
const RETRY_PERIOD_MS = 250;
/** How long the Lease flaps (CHURN_MS to soak longer). */
const CHURN_MS = Number(process.env.CHURN_MS ?? 180_000);
const NAMESPACES = ["team-1", "team-2", "team-3"];
const ACCOUNTS_PER_NAMESPACE = 6;
/** MSI name -> the namespaces its tag names (fixed: the churn is in Kubernetes and in leadership). */
const TAGS: Record<string, string[]> = {
  alpha: ["team-1"],
  beta: ["team-1", "team-2"],
  gamma: ["team-2", "team-3"],
  delta: ["team-3"],
  omega: ["team-9"],
};
const LOOKUP = "msi.azure.k8s.io";
const labelsFor = (msi: string) => ({ [`${LOOKUP}/name`]: msi, [`${LOOKUP}/resourcegroup`]: RG, [`${LOOKUP}/subscription`]: SUB });
const MERGE_PATCH = setHeaderOptions("Content-Type", "application/merge-patch+json");
const WRITE_VERBS = new Set(["create", "update", "patch", "delete", "deletecollection"]);

interface Replica {
  name: string;
  user: string;
  appId: string;
  proxy: TcpProxy;
  kubeconfig: string;
  env: Record<string, string>;
  process: OperatorProcess | undefined;
}

/** When (msi, subject) was wanted: added once the create/relabel returned, removed from when the change was sent. */
class WantedTimeline {
  private readonly spans = new Map<string, { from: number; to: number }[]>();
  private readonly current = new Map<string, string>();

  static key(msi: string, namespace: string, name: string): string {
    return `${msi}|${serviceAccountSubject(namespace, name)}`;
  }

  /** The ServiceAccount now names `msi` (undefined: none, or gone), as of `sentAt`..`doneAt`. */
  set(namespace: string, name: string, msi: string | undefined, sentAt: number, doneAt: number): void {
    const account = `${namespace}/${name}`;
    const before = this.current.get(account);
    if (before === msi) return;
    if (before && TAGS[before]?.includes(namespace)) {
      const open = this.spans.get(WantedTimeline.key(before, namespace, name))?.at(-1);
      if (open && open.to === Infinity) open.to = sentAt;
    }
    if (msi) this.current.set(account, msi);
    else this.current.delete(account);
    if (msi && TAGS[msi]?.includes(namespace)) {
      const key = WantedTimeline.key(msi, namespace, name);
      this.spans.set(key, [...(this.spans.get(key) ?? []), { from: doneAt, to: Infinity }]);
    }
  }

  wantedAt(key: string, at: number): boolean {
    return (this.spans.get(key) ?? []).some((span) => span.from <= at && at < span.to);
  }

  /** The wanted FICs now, as `msi|fic name|subject`. */
  wantedNow(): string[] {
    return [...this.current]
      .filter(([account, msi]) => TAGS[msi]?.includes(account.split("/")[0]!))
      .map(([account, msi]) => {
        const [namespace, name] = account.split("/") as [string, string];
        return `${msi}|${ficName(CLUSTER, namespace, name)}|${serviceAccountSubject(namespace, name)}`;
      })
      .sort();
  }
}

interface LeaseChange {
  at: number;
  /** Holder written; undefined for a delete. */
  holder: string | undefined;
  user: string;
}

/** The Lease's history from the audit log: every successful create, update and delete, in order. */
function leaseHistory(events: AuditEvent[]): LeaseChange[] {
  return events
    .filter(
      (event) =>
        event.objectRef?.resource === "leases" &&
        event.objectRef.name === LEASE &&
        WRITE_VERBS.has(event.verb) &&
        (event.responseStatus?.code ?? 500) < 300 &&
        event.stage === "ResponseComplete",
    )
    .map((event) => ({
      at: Date.parse(event.stageTimestamp),
      holder: event.verb === "delete" ? undefined : (event.requestObject?.spec?.holderIdentity ?? ""),
      user: event.user.username,
    }))
    .sort((a, b) => a.at - b.at);
}

/**
 * Whether `replica` may write at `at`: the last change of the Lease before it was this replica's own
 * acquire or renew, no more than the renew deadline earlier. One allowance: a Lease an admin deletes is
 * a revocation no lease-based elector can learn of before its next read, so the holder before the
 * delete may finish writes for one retry period (plus a round trip) after it.
 */
function judge(history: LeaseChange[], replica: string, at: number): string | undefined {
  const before = history.filter((change) => change.at <= at);
  const last = before.at(-1);
  if (last?.holder === replica && at - last.at <= RENEW_DEADLINE_MS) return undefined;
  const deleted = before.findLast((change) => change.holder === undefined);
  if (deleted && at - deleted.at <= RETRY_PERIOD_MS + 1_000) {
    const holderBefore = before.filter((change) => change.at < deleted.at).at(-1);
    if (holderBefore?.holder === replica && deleted.at - holderBefore.at <= RENEW_DEADLINE_MS) return undefined;
  }
  return last ? `last Lease change ${at - last.at} ms earlier wrote holder ${JSON.stringify(last.holder)} (by ${last.user})` : "before any Lease existed";
}

describe("leadership under faults: one writer at a time, in Kubernetes and in Azure, and no wanted FIC lost", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let core: CoreV1Api;
  let leases: CoordinationV1Api;
  const replicas: Replica[] = [];
  const msis = new Map<string, FakeIdentity>();
  const wanted = new WantedTimeline();
  const perturbations: Record<string, number> = {};

  const startReplica = async (replica: Replica) => {
    replica.process = await OperatorProcess.start(replica.name, {
      kubeconfig: replica.kubeconfig,
      env: replica.env,
      flags: [
        "run",
        "--lease.enable",
        `--lease.duration=${DURATION_MS}ms`,
        `--lease.renewdeadline=${RENEW_DEADLINE_MS}ms`,
        `--lease.retryperiod=${RETRY_PERIOD_MS}ms`,
        "--webhook.enable=false",
        "--workloadidentity.enable",
        "--sync.watch",
        "--sync.interval=4s",
        "--sync.locktime=0s",
        "--azureidentity.prune",
        "--shutdown.delay=0s",
      ],
    });
  };
  const holder = async () => (await leases.readNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: LEASE }).catch(() => undefined))?.spec?.holderIdentity;
  const leaderReplica = async () => {
    const name = await holder();
    return replicas.find((replica) => replica.name === name);
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    core = plane.api("admin", CoreV1Api);
    leases = plane.api("admin", CoordinationV1Api);
    await applyOperatorRbac(plane);
    await plane.kubectlOrThrow("admin", ["apply", "-f", "manifests/overlays/workload-identity/rbac.yaml"]);
    for (const namespace of NAMESPACES) await createTeamNamespace(plane, namespace);
    for (const [name, namespaces] of Object.entries(TAGS))
      msis.set(name, fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: RG, name, tags: { k8snamespace: namespaces.join(",") } }));
    fake.trustIssuer(ISSUER, async () => JSON.parse((await plane.adminGet("/openid/v1/jwks")).body) as unknown);
    const rbac = plane.api("admin", RbacAuthorizationV1Api);
    const apiPort = Number(new URL(plane.server).port);
    for (const name of ["replica-a", "replica-b", "replica-c"]) {
      const account = name === "replica-a" ? "azure-msi-operator" : `azure-msi-operator-${name.slice(-1)}`;
      const subjects = [{ kind: "ServiceAccount", name: account, namespace: OPERATOR_NAMESPACE }];
      if (account !== "azure-msi-operator") {
        for (const role of ["azure-msi-operator", "azure-msi-operator-workload-identity"])
          await rbac.createClusterRoleBinding({
            body: { metadata: { name: `${account}-${role}` }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role }, subjects },
          });
        await rbac.createNamespacedRoleBinding({
          namespace: OPERATOR_NAMESPACE,
          body: { metadata: { name: account }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "azure-msi-operator" }, subjects },
        });
      }
      const proxy = await TcpProxy.start(() => apiPort);
      const app = fake.entra.addApp({ tenantId: fake.app.tenantId });
      replicas.push({
        name,
        user: `system:serviceaccount:${OPERATOR_NAMESPACE}:${account}`,
        appId: app.clientId,
        proxy,
        kubeconfig: await plane.serviceAccountKubeconfig(OPERATOR_NAMESPACE, account, `https://127.0.0.1:${proxy.port}`),
        env: { ...fake.credentialEnv(app), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE },
        process: undefined,
      });
    }
    for (const replica of replicas) await startReplica(replica);
  });
  after(async () => {
    for (const replica of replicas) replica.process?.kill("SIGCONT");
    await Promise.all(replicas.map((replica) => replica.process?.stop() ?? Promise.resolve()));
    await Promise.all(replicas.map((replica) => replica.proxy.close()));
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  /** ServiceAccounts created, relabelled and deleted at random until `until`; the timeline records what was wanted when. */
  const churnAccounts = async (until: number, random: () => number) => {
    const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
    const existing = new Map<string, string | undefined>();
    const msiNames = Object.keys(TAGS);
    let changes = 0;
    while (Date.now() < until) {
      const namespace = pick(NAMESPACES);
      const name = `sa-${Math.floor(random() * ACCOUNTS_PER_NAMESPACE)}`;
      const account = `${namespace}/${name}`;
      const sentAt = Date.now();
      if (!existing.has(account)) {
        const msi = random() < 0.15 ? undefined : pick(msiNames);
        await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name, labels: msi ? labelsFor(msi) : {} } } });
        existing.set(account, msi);
        wanted.set(namespace, name, msi, sentAt, Date.now());
      } else if (random() < 0.6) {
        const msi = random() < 0.15 ? undefined : pick(msiNames);
        const labels = msi ? labelsFor(msi) : { [`${LOOKUP}/name`]: null, [`${LOOKUP}/resourcegroup`]: null, [`${LOOKUP}/subscription`]: null };
        await core.patchNamespacedServiceAccount({ namespace, name, body: { metadata: { labels } } }, MERGE_PATCH);
        existing.set(account, msi);
        wanted.set(namespace, name, msi, sentAt, Date.now());
      } else {
        await core.deleteNamespacedServiceAccount({ namespace, name });
        existing.delete(account);
        wanted.set(namespace, name, undefined, sentAt, Date.now());
      }
      changes++;
      await new Promise((resolve) => setTimeout(resolve, 150 + random() * 300));
    }
    return changes;
  };

  /** One fault at a time on whoever holds the Lease, each undone before the next. */
  const flapLease = async (until: number, random: () => number) => {
    const faults = ["partition", "freeze", "leaseDeleted", "sigstop", "restart"] as const;
    let index = 0;
    while (Date.now() < until) {
      const leader = await leaderReplica();
      const fault = faults[index++ % faults.length]!;
      if (!leader?.process) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      perturbations[fault] = (perturbations[fault] ?? 0) + 1;
      const downMs = DURATION_MS + 1_000 + random() * 2_000;
      switch (fault) {
        case "partition":
          leader.proxy.partition();
          await new Promise((resolve) => setTimeout(resolve, downMs));
          leader.proxy.heal();
          break;
        case "freeze":
          leader.proxy.freeze();
          await new Promise((resolve) => setTimeout(resolve, downMs));
          break;
        case "leaseDeleted":
          await leases.deleteNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: LEASE }).catch(() => undefined);
          break;
        case "sigstop":
          leader.process.kill("SIGSTOP");
          await new Promise((resolve) => setTimeout(resolve, downMs));
          leader.process.kill("SIGCONT");
          break;
        case "restart":
          await leader.process.stop();
          await startReplica(leader);
          break;
      }
      // A new term settles (someone holds the Lease) before the next fault.
      await eventually(async () => (await holder()) || undefined, 20_000, `a leader after ${fault}`);
      await new Promise((resolve) => setTimeout(resolve, 1_000 + random() * 2_000));
    }
  };

  test(
    `${CHURN_MS / 1000} s of Lease faults and ServiceAccount churn: writes only by the holder, no wanted FIC deleted, FICs exact at the end`,
    { timeout: CHURN_MS + 240_000 },
    async (t) => {
      await eventually(async () => (await holder()) || undefined, 30_000, "a first leader");
      let seed = 0x2f6e2b1;
      const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
      const until = Date.now() + CHURN_MS;
      const [changes] = await Promise.all([churnAccounts(until, random), flapLease(until, random)]);

      // Settled: every replica up and connected; the FICs converge on what is wanted now.
      for (const replica of replicas) replica.proxy.heal();
      const wantedNow = wanted.wantedNow();
      const ours = () =>
        [...msis.entries()]
          .flatMap(([name, msi]) => fake.model.federatedCredentials(msi).map((fic) => `${name}|${fic.name}|${fic.subject}`))
          .filter((line) => line.split("|")[1]!.startsWith(`${CLUSTER}_`))
          .sort();
      await eventually(() => JSON.stringify(ours()) === JSON.stringify(wantedNow) || undefined, 60_000, "FICs equal the wanted set").catch(() => undefined);
      const finalFics = ours();

      const audit = await plane.auditEvents();
      const history = leaseHistory(audit);
      const byUser = new Map(replicas.map((replica) => [replica.user, replica.name]));
      const byApp = new Map(replicas.map((replica) => [replica.appId.toLowerCase(), replica.name]));
      const kubeWrites = audit.filter(
        (event) =>
          byUser.has(event.user.username) &&
          WRITE_VERBS.has(event.verb) &&
          event.objectRef?.resource !== "leases" &&
          event.objectRef?.resource !== "events" &&
          event.objectRef?.resource !== "selfsubjectreviews" &&
          event.objectRef?.resource !== "tokenreviews",
      );
      const azureWrites = fake.armRequests().filter((request) => request.method === "PUT" || request.method === "DELETE" || request.method === "PATCH");
      const violations: string[] = [];
      for (const event of kubeWrites) {
        const replica = byUser.get(event.user.username)!;
        const why = judge(history, replica, Date.parse(event.requestReceivedTimestamp));
        if (why) violations.push(`kube ${event.verb} ${event.objectRef?.resource}/${event.objectRef?.name} by ${replica}: ${why}`);
      }
      for (const request of azureWrites) {
        const replica = byApp.get((request.caller ?? "").toLowerCase()) ?? `unknown caller ${request.caller}`;
        const why = judge(history, replica, request.at);
        if (why) violations.push(`azure ${request.method} ${request.path} by ${replica}: ${why}`);
      }
      const wantedDeleted = azureWrites.filter((request) => request.method === "DELETE" && request.status < 300 && ficDeleteWasWanted(request, wanted));
      const terms = history.filter((change, index) => change.holder && change.holder !== history[index - 1]?.holder).length;
      t.diagnostic(
        `churn ${CHURN_MS / 1000} s: ${changes} ServiceAccount changes; faults ${JSON.stringify(perturbations)}; ${terms} terms; ` +
          `${kubeWrites.length} Kubernetes and ${azureWrites.length} Azure writes; writes by non-leaders: ${violations.length}; ` +
          `FIC deletes ${azureWrites.filter((request) => request.method === "DELETE").length}, of wanted FICs: ${wantedDeleted.length}; ` +
          `FICs at the end ${wantedNow.length}`,
      );
      assert.deepEqual(finalFics, wantedNow, "FICs at the end are exactly the wanted ones");
      assert.ok(terms >= 5, `the Lease changed hands ${terms} times`);
      assert.ok(azureWrites.length > 0 && kubeWrites.length > 0, "the churn made writes on both sides");
      assert.deepEqual(violations, [], "every write came from the Lease holder");
      assert.deepEqual(
        wantedDeleted.map((request) => `${request.path} at ${new Date(request.at).toISOString()}`),
        [],
        "no FIC deleted while it was wanted",
      );
    },
  );
});

/** A DELETE of one of our FICs whose ServiceAccount wanted it on that MSI at the moment it arrived. */
function ficDeleteWasWanted(request: RecordedRequest, wanted: WantedTimeline): boolean {
  const match = /\/userAssignedIdentities\/([^/]+)\/federatedIdentityCredentials\/([^/?]+)/i.exec(request.path);
  if (!match) return false;
  const [, msi, name] = match as unknown as [string, string, string];
  const parts = decodeURIComponent(name).split("_");
  if (parts.length !== 3 || parts[0] !== CLUSTER) return false;
  return wanted.wantedAt(WantedTimeline.key(msi, parts[1]!, parts[2]!), request.at);
}
