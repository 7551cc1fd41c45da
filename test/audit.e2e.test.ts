// The audit (issue 25) against the real API server and the Azure fake: a cluster seeded with every
// violation kind (written before any webhook was registered; a FIC written straight to the fake)
// shows each in azuremsi_audit_violations, as a Warning Event, in a PolicyReport once the CRD is
// installed, and in `azure-msi-operator audit`; cleaned, it shows none. Then the shipped prune:
// untagging deletes, a subscription that vanishes or answers 403 keeps its identities and says so.
// Last, warn mode: jane's forbidden create goes through with the warning kubectl prints, counted.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi, EventsV1Api } from "@kubernetes/client-node";
import { FakeAzure, faults, type FakeIdentity } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE, OPERATOR_USER } from "./controlplane/controlplane.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "./support/operator.js";
import { runCommand } from "./support/process.js";
import { installWebhooks, waitForCaBundles } from "./support/webhooks.js";

const GROUP = "aadpodidentity.k8s.io";
const ISSUER = "https://kubernetes.default.svc";
const SUB = "00000000-0000-0000-0000-0000000000e1";
/** Never in the listing: the credential cannot see it (a lost role at subscription scope). */
const SUB_GONE = "00000000-0000-0000-0000-0000000000e2";
/** Listed, but its identities answer 403. */
const SUB_LOCKED = "00000000-0000-0000-0000-0000000000e3";
/** Listed at first, then gone from discovery. */
const SUB_VANISH = "00000000-0000-0000-0000-0000000000e4";
const MANAGED = { "app.kubernetes.io/managed-by": "azure-msi-operator" };
const NAMESPACED = { "aadpodidentity.k8s.io/Behavior": "namespaced" };
const WRITES = new Set(["create", "update", "patch", "delete", "deletecollection"]);
const resourceId = (subscription: string, name: string) =>
  `/subscriptions/${subscription}/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/${name}`;
const locked = (subscription: string) => new RegExp(`/subscriptions/${subscription}/providers/Microsoft\\.ManagedIdentity/userAssignedIdentities`, "i");

/** The operator in warn or deny mode, prune and everything as the shipped Deployment has it. */
const SHIPPED = ["--azureidentity.namespaced", "--azureidentity.prune", "--azureidentity.binding.sync", "--sync.watch"];

describe("audit: every violation kind shows everywhere; prune on positive evidence; warn mode", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let custom: CustomObjectsApi;
  let core: CoreV1Api;
  let events: EventsV1Api;
  let pay: FakeIdentity;
  let temp: FakeIdentity;
  let operator: RunningOperator | undefined;
  /** Every operator started, so a failed test leaves none running. */
  const started: RunningOperator[] = [];
  const start = async (flags: string[]) => {
    const op = await startOperator(plane, fake.credentialEnv(), flags, { certCheckIntervalMs: 500 });
    started.push(op);
    operator = op;
    return op;
  };

  const identity = (namespace: string, name: string, resourceID: string, metadata: Record<string, unknown> = {}) =>
    custom.createNamespacedCustomObject({
      group: GROUP,
      version: "v1",
      namespace,
      plural: "azureidentities",
      body: { apiVersion: `${GROUP}/v1`, kind: "AzureIdentity", metadata: { name, namespace, ...metadata }, spec: { type: 0, resourceID, clientID: "c" } },
    });
  const assigned = (name: string, namespace: string, podNamespace: string, manager: string) =>
    custom.createNamespacedCustomObject({
      group: GROUP,
      version: "v1",
      namespace,
      plural: "azureassignedidentities",
      fieldManager: manager,
      body: {
        apiVersion: `${GROUP}/v1`,
        kind: "AzureAssignedIdentity",
        metadata: { name, namespace },
        spec: {
          azureIdentityRef: {
            apiVersion: `${GROUP}/v1`,
            kind: "AzureIdentity",
            metadata: { name: "shop", namespace },
            spec: { type: 0, resourceID: "/x", clientID: "c" },
          },
          azureBindingRef: {
            apiVersion: `${GROUP}/v1`,
            kind: "AzureIdentityBinding",
            metadata: { name: "b", namespace: podNamespace },
            spec: { azureIdentity: "shop", selector: "s" },
          },
          pod: "app",
          podNamespace,
          nodename: "node-1",
        },
      },
    });
  const deleteObject = (plural: string, namespace: string, name: string) =>
    custom.deleteNamespacedCustomObject({ group: GROUP, version: "v1", plural, namespace, name });
  const identityExists = (namespace: string, name: string) =>
    custom.getNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentities", name }).then(
      () => true,
      () => false,
    );

  /** azuremsi_audit_violations as scraped, by "kind namespace". */
  const violations = async (op: RunningOperator) => {
    const found: Record<string, number> = {};
    for (const match of (await op.metrics.scrape()).body.matchAll(/^azuremsi_audit_violations\{kind="([^"]+)",namespace="([^"]*)"\} (\d+)$/gm))
      found[`${match[1]} ${match[2]}`] = Number(match[3]);
    return found;
  };
  const audits = (op: RunningOperator) => op.logs.filter((line) => line.msg === "audit found violations" || line.msg === "audit found no violations").length;
  /** Waits for an audit that starts after now (the one in flight may have read older caches). */
  const nextAudits = async (op: RunningOperator, count = 2) => {
    const seen = audits(op);
    await eventually(() => audits(op) >= seen + count || undefined, 40_000, `${count} more audits`);
  };
  const warningOn = (namespace: string, name: string, reason: string, note?: RegExp) =>
    eventually(
      async () =>
        (await events.listNamespacedEvent({ namespace })).items.find(
          (event) => event.regarding?.name === name && event.reason === reason && event.type === "Warning" && (!note || note.test(event.note ?? "")),
        ),
      30_000,
      `Warning ${reason} on ${namespace}/${name}`,
    );
  const auditCommand = (flags: string[]) =>
    runCommand(["audit", `--kubeconfig=${plane.kubeconfigPath("operator")}`, "--workloadidentity.enable", ...flags], {
      ...fake.credentialEnv(),
      INSTANCE_NAMESPACE: OPERATOR_NAMESPACE,
    });
  const policyReports = async () =>
    (
      (await custom.listClusterCustomObject({ group: "wgpolicyk8s.io", version: "v1alpha2", plural: "policyreports" })) as {
        items: { metadata: { namespace: string; name: string }; results: { rule: string; resources?: { name: string }[] }[] }[];
      }
    ).items;

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    custom = plane.api("admin", CustomObjectsApi);
    core = plane.api("admin", CoreV1Api);
    events = plane.api("admin", EventsV1Api);
    await applyOperatorRbac(plane);
    await plane.kubectlOrThrow("admin", ["apply", "-f", "manifests/overlays/workload-identity/rbac.yaml"]);
    for (const name of ["team-a", "team-b", "team-c"]) await createTeamNamespace(plane, name);
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "shop", tags: { k8snamespace: "team-a" } });
    pay = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "pay", tags: { k8snamespace: "team-b" } });
    temp = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "temp", tags: { k8snamespace: "team-c" } });
    fake.model.addIdentity({ subscriptionId: SUB_LOCKED, resourceGroup: "rg", name: "locked", tags: { k8snamespace: "team-c" } });
    fake.inject({ match: locked(SUB_LOCKED), times: Infinity, fault: faults.status(403) });
    // Seeded before any webhook exists: what years of aad-pod-identity leave behind.
    await identity("team-a", "hand-made", resourceId(SUB, "pay"));
    await identity("team-c", "stale", resourceId(SUB, "pay"), { labels: MANAGED, annotations: NAMESPACED });
    await identity("team-c", "kept-gone", resourceId(SUB_GONE, "far"), { labels: MANAGED, annotations: NAMESPACED });
    await identity("team-c", "kept-locked", resourceId(SUB_LOCKED, "locked"), { labels: MANAGED, annotations: NAMESPACED });
    await assigned("cross", "team-a", "team-b", "aad-pod-identity");
    await assigned("forged", "team-b", "team-b", "kubectl-create");
    await assigned("by-mic", "team-a", "team-a", "aad-pod-identity");
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: "v1",
      namespace: "team-b",
      plural: "azurepodidentityexceptions",
      body: { apiVersion: `${GROUP}/v1`, kind: "AzurePodIdentityException", metadata: { name: "skip-nmi" }, spec: { podLabels: { app: "x" } } },
    });
    await core.createNamespacedServiceAccount({
      namespace: "team-a",
      body: { metadata: { name: "thief", annotations: { "azure.workload.identity/client-id": pay.clientId } } },
    });
    fake.model.putFederatedCredential(pay, {
      name: "by-hand",
      issuer: ISSUER,
      subject: "system:serviceaccount:team-a:app",
      audiences: ["api://AzureADTokenExchange"],
    });
  });
  after(async () => {
    for (const op of started) await op.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  const EXPECTED = {
    "UnownedIdentity team-a": 1,
    "IdentityNotNamespaced team-a": 1,
    "StaleIdentity team-c": 2,
    "SubscriptionUnknown team-c": 2,
    "AssignedIdentityCrossNamespace team-a": 1,
    "AssignedIdentityNotFromMic team-b": 1,
    "PodIdentityException team-b": 1,
    "ServiceAccountUntaggedClientId team-a": 1,
    "FederatedCredentialUntaggedNamespace team-a": 1,
  };

  test("each kind shows in the metric and as a Warning Event; prune off, an untagged MSI's identity stays and is stale", { timeout: 120_000 }, async () => {
    const op = await start([
      "run",
      "--webhook.enable=false",
      "--workloadidentity.enable",
      "--azureidentity.namespaced",
      "--sync.interval=2s",
      "--sync.locktime=0s",
    ]);
    const tempName = `temp-${temp.clientId}`;
    await eventually(() => identityExists("team-c", tempName), 30_000, "temp's identity in team-c");
    fake.model.updateIdentity(temp, { tags: { k8snamespace: "team-a" } });
    await eventually(async () => ((await violations(op))["StaleIdentity team-c"] === 2 ? true : undefined), 30_000, "temp stale in team-c");
    assert.ok(await identityExists("team-c", tempName), "prune off: the untagged MSI's identity stays (and is a violation)");
    await nextAudits(op);
    assert.deepEqual(await violations(op), EXPECTED);
    await warningOn("team-a", "hand-made", "UnownedIdentity", /not managed by azure-msi-operator/);
    await warningOn("team-a", "hand-made", "IdentityNotNamespaced");
    await warningOn("team-c", "stale", "StaleIdentity", /no longer tagged for namespace team-c/);
    await warningOn("team-c", tempName, "StaleIdentity");
    await warningOn("team-c", "kept-gone", "SubscriptionUnknown", /missing from the Azure listing/);
    await warningOn("team-c", "kept-locked", "SubscriptionUnknown", /failed.*403/);
    await warningOn("team-a", "cross", "AssignedIdentityCrossNamespace");
    await warningOn("team-b", "forged", "AssignedIdentityNotFromMic", /written by kubectl-create/);
    await warningOn("team-b", "skip-nmi", "PodIdentityException");
    await warningOn("team-a", "thief", "ServiceAccountUntaggedClientId", /tagged for team-b, not for team-a/);
    await warningOn("team-a", "team-a", "FederatedCredentialUntaggedNamespace", /by-hand on MSI pay/);
    // Identities of a subscription that is unknown are kept, not pruned (prune is off here; the shipped env below).
    assert.ok((await identityExists("team-c", "kept-gone")) && (await identityExists("team-c", "kept-locked")));
    // The MIC-made, same-namespace assigned identity is not a violation.
    assert.equal((await events.listNamespacedEvent({ namespace: "team-a" })).items.filter((event) => event.regarding?.name === "by-mic").length, 0);
  });

  test("without the PolicyReport CRD nothing breaks; once it is installed each namespace gets one report of its violations", { timeout: 90_000 }, async () => {
    const op = operator!;
    assert.equal(op.logs.filter((line) => line.msg === "PolicyReports not written").length, 0, "no CRD: nothing to write, nothing wrong");
    await plane.kubectlOrThrow("admin", ["apply", "-f", "test/fixtures/policyreport-crd.yaml"]);
    const reports = await eventually(
      async () => {
        const found = await policyReports().catch(() => []);
        return found.length === 3 ? found : undefined;
      },
      40_000,
      "three PolicyReports",
    );
    const rules = Object.fromEntries(
      reports.map((report) => [report.metadata.namespace, report.results.map((result) => `${result.rule} ${result.resources?.[0]?.name ?? ""}`).sort()]),
    );
    assert.deepEqual(rules["team-b"], ["AssignedIdentityNotFromMic forged", "PodIdentityException skip-nmi"]);
    assert.deepEqual(rules["team-a"], [
      "AssignedIdentityCrossNamespace cross",
      "FederatedCredentialUntaggedNamespace app",
      "IdentityNotNamespaced hand-made",
      "ServiceAccountUntaggedClientId thief",
      "UnownedIdentity hand-made",
    ]);
    assert.equal(rules["team-c"]?.length, 4);
    // A steady cluster rewrites nothing.
    const since = Date.now();
    await nextAudits(op);
    const reportWrites = (await plane.auditEvents()).filter(
      (event) => Date.parse(event.requestReceivedTimestamp) >= since && event.objectRef?.resource === "policyreports" && WRITES.has(event.verb),
    );
    assert.deepEqual(reportWrites, [], "no PolicyReport write while nothing changes");
  });

  test("`azure-msi-operator audit` prints the same, read-only, exit 1; text and JSON", { timeout: 120_000 }, async () => {
    const since = Date.now();
    const json = await auditCommand(["--azureidentity.namespaced", "--output=json"]);
    assert.equal(json.code, 1, json.stderr);
    const { counts } = JSON.parse(json.stdout) as { counts: Record<string, number> };
    assert.deepEqual(counts, {
      UnownedIdentity: 1,
      StaleIdentity: 2,
      IdentityNotNamespaced: 1,
      AssignedIdentityCrossNamespace: 1,
      AssignedIdentityNotFromMic: 1,
      PodIdentityException: 1,
      ServiceAccountUntaggedClientId: 1,
      FederatedCredentialUntaggedNamespace: 1,
      // Two identities, and the 403 subscription itself would be one more only without identities here.
      SubscriptionUnknown: 2,
    });
    const text = await auditCommand(["--azureidentity.namespaced"]);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^StaleIdentity \(2\):$/m);
    assert.match(text.stdout, /! AzurePodIdentityException team-b\/skip-nmi: /);
    assert.match(text.stdout, /^11 violation\(s\) of 9 kind\(s\)$/m);
    const commandWrites = (await plane.auditEvents()).filter(
      (event) =>
        Date.parse(event.requestReceivedTimestamp) >= since &&
        event.user.username === OPERATOR_USER &&
        WRITES.has(event.verb) &&
        event.objectRef?.resource !== "events" &&
        event.objectRef?.resource !== "policyreports",
    );
    assert.deepEqual(commandWrites, [], "the command (and the steady operator) wrote nothing");
  });

  test("cleaned up, the cluster shows none: series gone, reports deleted, audit exits 0", { timeout: 120_000 }, async () => {
    const op = operator!;
    for (const [namespace, name] of [
      ["team-a", "hand-made"],
      ["team-c", "stale"],
      ["team-c", "kept-gone"],
      ["team-c", "kept-locked"],
      ["team-c", `temp-${temp.clientId}`],
    ] as const)
      await deleteObject("azureidentities", namespace, name);
    await deleteObject("azureassignedidentities", "team-a", "cross");
    await deleteObject("azureassignedidentities", "team-b", "forged");
    await deleteObject("azurepodidentityexceptions", "team-b", "skip-nmi");
    await core.deleteNamespacedServiceAccount({ namespace: "team-a", name: "thief" });
    fake.model.removeFederatedCredential(pay, "by-hand");
    fake.clearFaults();
    fake.model.removeSubscription(SUB_LOCKED);
    await eventually(async () => (Object.keys(await violations(op)).length === 0 ? true : undefined), 40_000, "no series left");
    await eventually(async () => ((await policyReports()).length === 0 ? true : undefined), 30_000, "reports deleted");
    const clean = await auditCommand(["--azureidentity.namespaced"]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.equal(clean.stdout, "no violations\n");
    await op.stop();
    operator = undefined;
  });

  test(
    "shipped prune: untagging deletes after the next complete listing; a subscription that vanishes or answers 403 keeps its identities and says so; deny refuses jane",
    { timeout: 150_000 },
    async () => {
      fake.model.addIdentity({ subscriptionId: SUB_VANISH, resourceGroup: "rg", name: "far", tags: { k8snamespace: "team-c" } });
      fake.model.updateIdentity(temp, { tags: { k8snamespace: "team-c" } });
      const op = await start([
        "run",
        ...SHIPPED,
        "--workloadidentity.enable",
        "--sync.interval=2s",
        "--sync.locktime=0s",
        "--webhook.bind=127.0.0.1:0",
        "--webhook.tls.san=127.0.0.1",
      ]);
      await installWebhooks(plane, op.app.webhookPort ?? 0);
      await waitForCaBundles(plane, 40_000);
      const tempName = `temp-${temp.clientId}`;
      const far = fake.model.identities(SUB_VANISH)[0]!;
      const farName = `far-${far.clientId}`;
      await eventually(async () => (await identityExists("team-c", tempName)) && (await identityExists("team-c", farName)), 30_000, "temp and far created");
      assert.deepEqual(await violations(op), {}, "a clean cluster, prune on: no violation");

      fake.model.updateIdentity(temp, { tags: { k8snamespace: "team-a" } });
      await eventually(async () => !(await identityExists("team-c", tempName)) || undefined, 30_000, "untagged: pruned from team-c");

      fake.model.removeSubscription(SUB_VANISH);
      await eventually(async () => ((await violations(op))["SubscriptionUnknown team-c"] === 1 ? true : undefined), 30_000, "vanished: reported");
      await warningOn("team-c", farName, "SubscriptionUnknown", /missing from the Azure listing/);
      await nextAudits(op);
      assert.ok(await identityExists("team-c", farName), "vanished subscription: identity kept");

      fake.model.addSubscription({ subscriptionId: SUB_VANISH });
      fake.inject({ match: locked(SUB_VANISH), times: Infinity, fault: faults.status(403) });
      await warningOn("team-c", farName, "SubscriptionUnknown", /failed.*403/);
      await nextAudits(op);
      assert.ok(await identityExists("team-c", farName), "403: identity kept");
      assert.equal((await violations(op))["SubscriptionUnknown team-c"], 1);

      const refused = await plane.kubectl("jane", ["create", "-f", "-"], {
        stdin: JSON.stringify({
          apiVersion: `${GROUP}/v1`,
          kind: "AzureIdentity",
          metadata: { name: "janes", namespace: "team-a" },
          spec: { type: 0, resourceID: resourceId(SUB, "pay"), clientID: pay.clientId },
        }),
      });
      assert.notEqual(refused.code, 0, refused.stdout);
      assert.match(refused.stderr, /denied the request/);
      assert.equal(await identityExists("team-a", "janes"), false);
      await op.stop();
      operator = undefined;
    },
  );

  test("warn mode lets jane's forbidden create through with the warning kubectl prints, logs and counts it", { timeout: 90_000 }, async () => {
    const op = await start([
      "run",
      ...SHIPPED,
      "--webhook.enforcement=warn",
      "--sync.interval=1h",
      "--webhook.bind=127.0.0.1:0",
      "--webhook.tls.san=127.0.0.1",
    ]);
    await installWebhooks(plane, op.app.webhookPort ?? 0);
    await waitForCaBundles(plane, 40_000);
    await eventually(() => op.app.notReady() === undefined || undefined, 30_000, "ready");
    const result = await plane.kubectl("jane", ["create", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: `${GROUP}/v1`,
        kind: "AzureIdentity",
        metadata: { name: "janes", namespace: "team-a" },
        spec: { type: 0, resourceID: resourceId(SUB, "pay"), clientID: pay.clientId },
      }),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Warning: azure-msi-operator \(warn mode\) would deny this request: AzureIdentity objects/);
    assert.ok(await identityExists("team-a", "janes"), "let through");
    assert.match(
      (await op.metrics.scrape()).body,
      /^azuremsi_admission_warned_total\{webhook="validate-azureidentity",operation="CREATE",result="denied"\} 1$/m,
    );
    const line = op.logs.find((entry) => entry.msg === "admission would be denied: allowed (warn mode)");
    assert.equal(line?.user, "jane");
  });
});
