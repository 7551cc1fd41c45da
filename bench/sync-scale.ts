// Sync at scale: N MSIs over S subscriptions (ARM pages of 100), tagged onto M namespaces (every
// fifth MSI onto two), synced by the operator as a real process (`sync --once`) against the real
// control plane. Reports first-sync time, writes (audit log), the no-change sync, and peak RSS.
//   npm run bench:sync -- --msis=10000 --namespaces=2000 --subscriptions=2 [--compiled] [--node-options="--max-semi-space-size=4"]
// The operator runs from the bundle the image ships (tools/bundle.ts, test/support/operator-bundle.ts);
// --compiled runs tsc's dist/src/main.js instead; --node-options is the operator's NODE_OPTIONS (the
// Dockerfile's, to measure the image).
import { CoreV1Api } from "@kubernetes/client-node";
import { FakeAzure } from "../test/azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "../test/controlplane/controlplane.js";
import { applyOperatorRbac, operatorWrites } from "../test/support/operator.js";
import { OperatorProcess } from "../test/support/process.js";
import { atLeast } from "../src/log.js";
import { flag, machine, mapLimit, rssSampler } from "./common.js";

const msis = flag("msis", 2_000);
const namespaceCount = flag("namespaces", 500);
const subscriptionCount = flag("subscriptions", 1);
const compiled = process.argv.includes("--compiled");
const nodeOptions = process.argv.find((arg) => arg.startsWith("--node-options="))?.slice("--node-options=".length) ?? "";

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
  const run = async (label: string) => {
    const since = Date.now();
    const proc = await OperatorProcess.start(label, {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE, NODE_OPTIONS: nodeOptions },
      flags: ["sync", "--once", "--sync.concurrency=16"],
      compiled,
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
    const writes = operatorWrites(await plane.auditEvents(), since).length;
    return {
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
  const result = {
    machine: machine(),
    entry: compiled ? "dist/src/main.js" : "bundle (tools/bundle.ts)",
    nodeOptions,
    msis,
    namespaces: namespaceCount,
    subscriptions: subscriptionCount,
    expectedObjects: expected,
    first,
    second,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await Promise.all([plane.stop(), fake.close()]);
}
