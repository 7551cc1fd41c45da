// Sync at scale: N MSIs over S subscriptions (ARM pages of 100), tagged onto M namespaces (every
// fifth MSI onto two), synced by the operator as a real process (`sync --once`) against the real
// control plane. Reports first-sync time, writes (audit log), the no-change sync, and peak RSS.
// Then the two replicas of a Deployment (`run --lease.enable`, webhooks on): the identities are
// deleted, a leader syncs them again while a follower keeps its cache of them; peak RSS of each.
//   npm run bench:sync -- --msis=10000 --namespaces=2000 --subscriptions=2 [--compiled] [--node-options="--max-semi-space-size=4"]
// The operator runs from the bundle the image ships (tools/bundle.ts, test/support/operator-bundle.ts);
// --compiled runs tsc's dist/src/main.js instead; --main=path another entry point (e.g. a bundle built
// with other options); --node-options is the operator's NODE_OPTIONS (the Dockerfile's, to measure the image);
// --node-flags are V8 flags NODE_OPTIONS refuses (e.g. --single-threaded-gc), put on the operator's
// node command line as an ENTRYPOINT would. Environment variables (MALLOC_ARENA_MAX) pass through.
// The audit (issue 25): --audit-runs=N no-change syncs with the audit off and on, alternately (a
// clean cluster: --audit.mic.forcenamespaced), compared by median sync time and counted writes of
// any resource; --skip-replicas leaves out the leader/follower part.
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { FakeAzure } from "../test/azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE, OPERATOR_USER } from "../test/controlplane/controlplane.js";
import { AAD_GROUP, AAD_VERSION, AZURE_IDENTITIES, OWNED_SELECTOR } from "../src/kube/resources.js";
import { applyOperatorRbac, eventually, operatorWrites } from "../test/support/operator.js";
import { OperatorProcess } from "../test/support/process.js";
import { atLeast } from "../src/log.js";
import { flag, machine, mapLimit, memoryBreakdown, rssSampler, useNodeFlags } from "./common.js";
import { readFile } from "node:fs/promises";

const msis = flag("msis", 2_000);
const namespaceCount = flag("namespaces", 500);
const subscriptionCount = flag("subscriptions", 1);
const compiled = process.argv.includes("--compiled");
const nodeOptions = process.argv.find((arg) => arg.startsWith("--node-options="))?.slice("--node-options=".length) ?? "";
const nodeFlags = process.argv.find((arg) => arg.startsWith("--node-flags="))?.slice("--node-flags=".length) ?? "";
if (nodeFlags) useNodeFlags(nodeFlags);
const main = process.argv.find((arg) => arg.startsWith("--main="))?.slice("--main=".length);
const auditRuns = flag("audit-runs", 3);
const skipReplicas = process.argv.includes("--skip-replicas");
const WRITE_VERBS = new Set(["create", "update", "patch", "delete", "deletecollection"]);

const [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start({ pageSize: 100 })]);
try {
  await applyOperatorRbac(plane);
  const core = plane.api("admin", CoreV1Api);
  const namespaces = Array.from({ length: namespaceCount }, (_, i) => `bench-${i}`);
  await mapLimit(namespaces, 16, (name) => core.createNamespace({ body: { metadata: { name } } }));
  let expected = 0;
  for (let s = 0; s < subscriptionCount; s++) {
    const subscriptionId = `00000000-0000-0000-0000-${String(s).padStart(12, "0")}`;
    const share = Math.ceil(msis / subscriptionCount);
    fake.model.addIdentities(
      subscriptionId,
      Math.min(share, msis - s * share),
      (i) => {
        const index = s * share + i;
        const tagged =
          index % 5 === 0 ? [namespaces[index % namespaceCount]!, namespaces[(index + 1) % namespaceCount]!] : [namespaces[index % namespaceCount]!];
        expected += tagged.length;
        return { tags: { k8snamespace: tagged.join(",") } };
      },
      { prefix: `msi${s}` },
    );
  }
  const run = async (label: string, extra: string[] = []) => {
    const since = Date.now();
    const proc = await OperatorProcess.start(label, {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE, NODE_OPTIONS: nodeOptions },
      flags: ["sync", "--once", "--sync.concurrency=16", ...extra],
      compiled,
      ...(main ? { main } : {}),
    });
    const rss = rssSampler(proc.child.pid!);
    const exit = await proc.exited;
    const peakMiB = rss.stop();
    if (exit.code !== 0)
      throw new Error(
        `${label} exited ${exit.code}: ${proc.stderr.join("").slice(-2000)} ${JSON.stringify(proc.logs.filter((line) => atLeast(line, "warn")).slice(-5))}`,
      );
    const summary = proc.logs.find((line) => line.msg === "sync finished")!;
    const listing = proc.logs.find((line) => line.msg === "Azure listing done")!;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const events = await plane.auditEvents();
    const writes = operatorWrites(events, since).length;
    const audit = proc.logs.find((line) => line.msg === "audit found violations" || line.msg === "audit found no violations");
    return {
      /** Every write of the operator's user, any resource (Events, PolicyReports included). */
      allWrites: events.filter(
        (event) => Date.parse(event.requestReceivedTimestamp) >= since && event.user.username === OPERATOR_USER && WRITE_VERBS.has(event.verb),
      ).length,
      auditMs: audit ? Number(audit.durationMs) : undefined,
      auditCheckMs: audit ? Number(audit.checkedMs) : undefined,
      violations: audit ? Number(audit.violations ?? 0) : undefined,
      label,
      syncMs: Number(summary.durationMs),
      listingMs: Number(listing.durationMs),
      created: summary.created,
      unchanged: summary.unchanged,
      writes,
      peakRssMiB: Math.round(peakMiB),
    };
  };
  const first = await run("first");
  const second = await run("no-change");
  const withAudit: Awaited<ReturnType<typeof run>>[] = [];
  const withoutAudit: Awaited<ReturnType<typeof run>>[] = [];
  for (let i = 0; i < auditRuns; i++) {
    withoutAudit.push(await run(`no-change, audit off ${i}`, ["--audit.enable=false"]));
    withAudit.push(await run(`no-change, audit on ${i}`, ["--audit.mic.forcenamespaced"]));
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
  const offMs = median(withoutAudit.map((r) => r.syncMs));
  const onMs = median(withAudit.map((r) => r.syncMs));
  const audit = {
    runs: auditRuns,
    medianSyncMsAuditOff: offMs,
    medianSyncMsAuditOn: onMs,
    addedPercent: offMs > 0 ? Math.round(((onMs - offMs) / offMs) * 1000) / 10 : 0,
    medianAuditMs: median(withAudit.map((r) => r.auditMs ?? 0)),
    /** Of which the check itself (caches + listing -> violations, metric, Events); the rest is the PolicyReport list. */
    medianAuditCheckMs: median(withAudit.map((r) => r.auditCheckMs ?? 0)),
    syncMsAuditOff: withoutAudit.map((r) => r.syncMs),
    syncMsAuditOn: withAudit.map((r) => r.syncMs),
    violations: withAudit.map((r) => r.violations),
    writesAuditOn: withAudit.map((r) => r.allWrites),
    writesAuditOff: withoutAudit.map((r) => r.allWrites),
  };
  if (skipReplicas) {
    console.log(JSON.stringify({ machine: machine(), msis, namespaces: namespaceCount, expectedObjects: expected, first, second, audit }, null, 2));
    process.exit(0);
  }

  // Leader and follower, as the Deployment runs them: the leader re-creates every identity (a first
  // sync, with the webhook server and its certificate duties running too); the follower's cache
  // sees all of them arrive. Sampled from each process's start until the follower holds them all.
  const custom = plane.api("admin", CustomObjectsApi);
  await mapLimit(namespaces, 16, (namespace) =>
    custom.deleteCollectionNamespacedCustomObject({
      group: AAD_GROUP,
      version: AAD_VERSION,
      plural: AZURE_IDENTITIES,
      namespace,
      labelSelector: OWNED_SELECTOR,
    }),
  );
  const replica = async (name: string) => {
    const proc = await OperatorProcess.start(name, {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE, NODE_OPTIONS: nodeOptions },
      flags: ["run", "--lease.enable", "--sync.concurrency=16", "--shutdown.delay=0s", "--webhook.bind=127.0.0.1:0", "--webhook.tls.san=127.0.0.1"],
      compiled,
      ...(main ? { main } : {}),
    });
    return { proc, rss: rssSampler(proc.child.pid!) };
  };
  const cachedIdentities = async (proc: OperatorProcess) => {
    const metrics = (await proc.get("/metrics").catch(() => ({ body: "" }))).body;
    return Number(/^azuremsi_cache_objects\{resource="azureidentities"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
  };
  const leader = await replica("bench-leader");
  let replicas: Record<string, unknown>;
  try {
    await leader.proc.waitForLog((line) => line.msg === "became leader", 60_000);
    const follower = await replica("bench-follower");
    try {
      const synced = await leader.proc.waitForLog((line) => line.msg === "sync finished", 300_000);
      await eventually(async () => (await cachedIdentities(follower.proc)) === expected || undefined, 120_000, `the follower caching ${expected} identities`);
      if (follower.proc.logs.some((line) => line.msg === "became leader")) throw new Error("the follower became leader");
      // A few seconds of steady state after the burst, then each process's current and peak figure.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const settled = async (proc: OperatorProcess) =>
        Math.round(Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${proc.child.pid}/status`, "utf8"))?.[1]) / 1024);
      const breakdown = async (proc: OperatorProcess) => memoryBreakdown(proc.child.pid!, (await proc.get("/metrics")).body);
      replicas = {
        leader: {
          syncMs: Number(synced.durationMs),
          created: synced.created,
          peakRssMiB: Math.round(leader.rss.stop()),
          settledRssMiB: await settled(leader.proc),
          settled: await breakdown(leader.proc),
        },
        follower: {
          cachedIdentities: await cachedIdentities(follower.proc),
          peakRssMiB: Math.round(follower.rss.stop()),
          settledRssMiB: await settled(follower.proc),
          settled: await breakdown(follower.proc),
        },
      };
    } finally {
      follower.rss.stop();
      await follower.proc.stop();
    }
  } finally {
    leader.rss.stop();
    await leader.proc.stop();
  }
  const result = {
    machine: machine(),
    entry: main ?? (compiled ? "dist/src/main.js" : "bundle (tools/bundle.ts)"),
    nodeOptions,
    nodeFlags,
    msis,
    namespaces: namespaceCount,
    subscriptions: subscriptionCount,
    expectedObjects: expected,
    first,
    second,
    audit,
    replicas,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await Promise.all([plane.stop(), fake.close()]);
}
