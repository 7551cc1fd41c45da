// Events (events.k8s.io/v1) as people see them, read back from the real API server: on a team's
// namespace (MSIs skipped and why, identities created and removed), on its bindings (labels that match
// nothing, spec.azureIdentity filled), on the operator's pod (leadership, certificate rotation, a failed
// sync); repeats are one Event with a series count; and 10,000 skipped MSIs stay within the rate limit.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi, EventsV1Api, type EventsV1Event } from "@kubernetes/client-node";
import { FakeAzure } from "./azure/fake.js";
import { faults } from "./azure/faults.js";
import { ControlPlane, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, OPERATOR_USER } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "./support/operator.js";
import { installWebhooks } from "./support/webhooks.js";
import { createAzureIdentityBinding, lookupLabels } from "./support/aad-objects.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000e5";
const POD = "azure-msi-operator-5f7c9-x2x4q";
const SHOP = { name: "shop", clientId: "77777777-0000-0000-0000-000000000001" };
const LATER = { name: "later", clientId: "77777777-0000-0000-0000-000000000002" };
const identityName = (msi: { name: string; clientId: string }) => `${msi.name}-${msi.clientId}`;

describe("Events: what a developer and an admin read in kubectl describe", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: RunningOperator | undefined;
  let events: EventsV1Api;
  let core: CoreV1Api;
  let podUid = "";
  let namespaceUid = "";

  const eventsIn = async (namespace: string) => (await events.listNamespacedEvent({ namespace })).items;
  const waitForEvent = (namespace: string, what: string, match: (event: EventsV1Event) => boolean, timeoutMs = 60_000) =>
    eventually(async () => (await eventsIn(namespace)).find(match), timeoutMs, what).catch((error: Error) => {
      const problems = (operator?.logs ?? []).filter((line) => Number(line.level) >= 40).slice(-5);
      throw new Error(`${error.message}; the operator's last warnings: ${JSON.stringify(problems)}`);
    });
  const describeOutput = (args: string[]) => plane.kubectlOrThrow("admin", ["describe", ...args]);

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    events = plane.api("admin", EventsV1Api);
    core = plane.api("admin", CoreV1Api);
    await applyOperatorRbac(plane);
    await createTeamNamespace(plane, "team-a");
    namespaceUid = (await core.readNamespace({ name: "team-a" })).metadata?.uid ?? "";
    // The pod the operator would run in (never scheduled: there are no nodes); the downward API gives it its name and uid.
    const pod = await core.createNamespacedPod({
      namespace: OPERATOR_NAMESPACE,
      body: {
        metadata: { name: POD },
        spec: {
          serviceAccountName: OPERATOR_SERVICE_ACCOUNT,
          automountServiceAccountToken: false,
          containers: [{ name: "operator", image: "azure-msi-operator" }],
        },
      },
    });
    podUid = pod.metadata?.uid ?? "";
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", ...SHOP, tags: { k8snamespace: "team-a" } });
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg",
      name: "Not_Valid",
      clientId: "77777777-0000-0000-0000-000000000003",
      tags: { k8snamespace: "team-a" },
    });
    const port = await reservePort();
    await installWebhooks(plane, port);
    operator = await startOperator(
      plane,
      fake.credentialEnv(),
      [
        "run",
        "--lease.enable",
        "--lease.duration=4s",
        "--lease.renewdeadline=3s",
        "--lease.retryperiod=500ms",
        "--sync.interval=2s",
        "--sync.locktime=0s",
        "--sync.watch",
        "--azureidentity.binding.sync",
        "--azureidentity.prune",
        `--webhook.bind=127.0.0.1:${port}`,
        "--webhook.tls.san=127.0.0.1",
        // Rotated 60 s after issue, a minute before it expires: margin for a loaded machine.
        "--webhook.cert.validity=120s",
        "--webhook.ca.validity=240s",
        "--webhook.cert.rotate=1/2",
        "--shutdown.delay=0s",
        "--events.refresh=0s",
        `--instance.pod=${POD}`,
        `--instance.poduid=${podUid}`,
      ],
      { certCheckIntervalMs: 500 },
    );
  });
  after(async () => {
    await operator?.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("the namespace: an MSI skipped and why, once with a growing count; an identity created, then removed", { timeout: 180_000 }, async () => {
    const skipped = await waitForEvent("team-a", "MSISkipped", (event) => event.reason === "MSISkipped");
    assert.deepEqual(
      { kind: skipped.regarding?.kind, name: skipped.regarding?.name, uid: skipped.regarding?.uid, type: skipped.type },
      { kind: "Namespace", name: "team-a", uid: namespaceUid, type: "Warning" },
    );
    assert.match(
      skipped.note ?? "",
      /managed identity \/subscriptions\/.*\/Not_Valid is tagged for this namespace but got no AzureIdentity: .*not a valid Kubernetes name/,
    );
    assert.equal(skipped.reportingController, "azure-msi-operator");
    assert.equal(skipped.reportingInstance, POD);
    const created = await waitForEvent("team-a", "IdentityCreated", (event) => event.reason === "IdentityCreated");
    assert.match(
      created.note ?? "",
      new RegExp(`^created AzureIdentity ${identityName(SHOP)} for managed identity /subscriptions/${SUB}/resourceGroups/rg/.*/shop$`, "i"),
    );
    // Every sync (2 s) skips it again: the same Event, its series count patched, not a new Event each time.
    const repeated = await waitForEvent("team-a", "a series count", (event) => event.reason === "MSISkipped" && (event.series?.count ?? 0) >= 3);
    assert.equal(repeated.metadata?.name, skipped.metadata?.name);
    assert.equal((await eventsIn("team-a")).filter((event) => event.reason === "MSISkipped").length, 1, "one Event for one skipped MSI");
    // `kubectl describe namespace` lists no Events: `kubectl events` does.
    const listed = await plane.kubectlOrThrow("admin", ["events", "-n", "team-a", "--for", "namespace/team-a"]);
    assert.match(listed, /Warning\s+MSISkipped\s+Namespace\/team-a\s+managed identity .*Not_Valid/);
    assert.match(listed, /Normal\s+IdentityCreated\s+Namespace\/team-a/);

    fake.model.removeIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: SHOP.name });
    const deleted = await waitForEvent("team-a", "IdentityDeleted", (event) => event.reason === "IdentityDeleted");
    assert.match(deleted.note ?? "", new RegExp(`deleted AzureIdentity ${identityName(SHOP)}: its managed identity is no longer tagged`));
  });

  test("a binding: its lookup labels match no identity (Warning), then the syncer fills it (Normal)", { timeout: 180_000 }, async () => {
    const custom = plane.api("admin", CustomObjectsApi);
    const binding = await createAzureIdentityBinding(custom, "team-a", { name: "app", labels: lookupLabels(LATER.name, "rg", SUB) }, { selector: "app" });
    assert.ok(binding.metadata?.uid, "the API server gave the binding a uid");
    const onBinding = (reason: string) => (event: EventsV1Event) => event.regarding?.name === "app" && event.reason === reason;
    const unmatched = await waitForEvent("team-a", "NoMatchingIdentity", onBinding("NoMatchingIdentity"));
    assert.deepEqual(
      { apiVersion: unmatched.regarding?.apiVersion, kind: unmatched.regarding?.kind, uid: unmatched.regarding?.uid, type: unmatched.type },
      { apiVersion: `${GROUP}/v1`, kind: "AzureIdentityBinding", uid: binding.metadata?.uid, type: "Warning" },
    );
    assert.match(
      unmatched.note ?? "",
      /managed identity later \(resource group rg, subscription .*\), but no AzureIdentity for it is assigned to namespace "team-a"/,
    );
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", ...LATER, tags: { k8snamespace: "team-a" } });
    const synced = await waitForEvent("team-a", "BindingSynced", onBinding("BindingSynced"));
    assert.equal(synced.type, "Normal");
    assert.equal(synced.note, `spec.azureIdentity set to ${identityName(LATER)} (was empty) from its lookup labels`);
    const described = await describeOutput(["azureidentitybinding", "app", "-n", "team-a"]);
    assert.match(described, /Warning\s+NoMatchingIdentity/);
    assert.match(described, /Normal\s+BindingSynced/);
  });

  test("the operator's pod: leadership gained, certificate rotated, a sync failed and why; leadership lost at shutdown", { timeout: 240_000 }, async () => {
    const onPod = (reason: string) => (event: EventsV1Event) => event.regarding?.name === POD && event.reason === reason;
    const leader = await waitForEvent(OPERATOR_NAMESPACE, "LeaderElected", onPod("LeaderElected"));
    assert.deepEqual({ kind: leader.regarding?.kind, uid: leader.regarding?.uid }, { kind: "Pod", uid: podUid });
    const rotated = await waitForEvent(OPERATOR_NAMESPACE, "CertificateRotated", onPod("CertificateRotated"), 120_000);
    assert.match(rotated.note ?? "", /^webhook certificates updated: (rotate-leaf|stage-next-ca|promote-next-ca|trim-bundle)/);
    const failing = fake.inject({ match: new RegExp(`${SUB}/providers`, "i"), times: Infinity, fault: faults.status(500) });
    try {
      const failed = await waitForEvent(
        OPERATOR_NAMESPACE,
        "SyncFailed for the listing",
        (event) => onPod("SyncFailed")(event) && /listing failed/.test(event.note ?? ""),
      );
      assert.equal(failed.type, "Warning");
      assert.equal(failed.note, `sync failed: listing failed for subscription(s) ${SUB}`);
    } finally {
      failing.cancel();
    }
    const described = await describeOutput(["pod", POD, "-n", OPERATOR_NAMESPACE]);
    for (const reason of ["LeaderElected", "CertificateRotated", "SyncFailed"]) assert.match(described, new RegExp(`\\s${reason}\\s`));
    await operator?.stop();
    operator = undefined;
    const lost = await waitForEvent(OPERATOR_NAMESPACE, "LeadershipLost", onPod("LeadershipLost"), 15_000);
    assert.match(lost.note ?? "", /^stopped leading \(Lease azure-msi-operator\/azure-msi-operator-leader\)$/);
  });

  test("10,000 MSIs skipped at every sync: Event writes stay within the rate limit, similar ones combined", { timeout: 400_000 }, async (t) => {
    await operator?.stop();
    operator = undefined;
    const namespaces = Array.from({ length: 20 }, (_, i) => `flood-${i}`);
    for (const name of namespaces) await core.createNamespace({ body: { metadata: { name } } });
    // 9,000 for flood-0 (named to come first in a sync, which goes by MSI ID), 1,000 over the other 19.
    for (let i = 0; i < 10_000; i++)
      fake.model.addIdentity({
        subscriptionId: SUB,
        resourceGroup: "rg",
        name: i < 9_000 ? `A_${i}` : `B_${i}`,
        clientId: `88888888-0000-0000-0000-${i.toString().padStart(12, "0")}`,
        tags: { k8snamespace: i < 9_000 ? "flood-0" : namespaces[1 + (i % 19)]! },
      });
    const started = Date.now();
    // The shipped defaults: 50 at once, 60 a minute, counts refreshed every 30 minutes.
    const flood = await startOperator(plane, fake.credentialEnv(), ["run", "--webhook.enable=false", "--sync.interval=3s", "--sync.locktime=0s"]);
    operator = flood;
    const syncs = () => flood.logs.filter((line) => String(line.msg).startsWith("sync finished"));
    await eventually(() => syncs().length >= 3 || undefined, 300_000, "three full syncs");
    await flood.stop();
    operator = undefined;
    const elapsedSeconds = (Date.now() - started) / 1000;
    const writes = (await plane.auditEvents()).filter(
      (event) =>
        // From this operator's start only: the previous one's LeadershipLost, written as it stopped just
        // before, is not this process's budget (same machine, same clock).
        event.user.username === OPERATOR_USER && event.objectRef?.resource === "events" && Date.parse(event.requestReceivedTimestamp) >= started,
    );
    const skippedReports = syncs().reduce((sum, line) => sum + Number(line.skipped), 0);
    const budget = 50 + Math.ceil(elapsedSeconds);
    t.diagnostic(
      `${skippedReports} skips reported over ${syncs().length} syncs in ${elapsedSeconds.toFixed(1)} s -> ${writes.length} Event writes (budget ${budget})`,
    );
    assert.ok(skippedReports >= 30_000, "every sync skipped the 10,000");
    assert.ok(writes.length <= budget, `${writes.length} Event writes within 50 + 1/s x ${elapsedSeconds.toFixed(1)} s`);
    assert.ok(writes.length >= 50, "the burst was used: Events were written");
    const metrics = await flood.metrics.registry.getSingleMetricAsString("azuremsi_events_total");
    assert.match(metrics, /outcome="dropped"\} [1-9]\d*/, "the rest were dropped, and counted");
    for (const namespace of namespaces) {
      const skipped = (await eventsIn(namespace)).filter((event) => event.reason === "MSISkipped");
      assert.ok(skipped.length <= 11, `${namespace}: ${skipped.length} Events: at most 10 notes and one combined`);
    }
    const flooded = (await eventsIn("flood-0")).filter((event) => event.reason === "MSISkipped");
    assert.equal(flooded.length, 11, "flood-0: 10 notes and one combined Event for 9,000 skips");
    assert.equal(flooded.filter((event) => event.note?.startsWith("(combined from similar events): managed identity ")).length, 1);
  });
});
