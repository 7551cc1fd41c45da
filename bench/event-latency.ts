// Event latency: MSIs tagged for namespaces that do not exist yet; after the operator's first sync
// (a real process, `run --sync.watch`), the namespaces are created one by one and each is timed from
// its create request to the watch event of its AzureIdentity, seen by an admin watch.
//   npm run bench:events -- --namespaces=100
import { CoreV1Api, Watch } from "@kubernetes/client-node";
import { FakeAzure } from "../test/azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "../test/controlplane/controlplane.js";
import { applyOperatorRbac } from "../test/support/operator.js";
import { OperatorProcess } from "../test/support/process.js";
import { AAD_GROUP, AAD_VERSION, AZURE_IDENTITIES } from "../src/kube/resources.js";
import { flag, machine, percentile } from "./common.js";

const namespaceCount = flag("namespaces", 100);
const SUBSCRIPTION = "00000000-0000-0000-0000-0000000000ee";
const IDENTITY_TIMEOUT_MS = 30_000;

const [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start({ pageSize: 100 })]);
let operator: OperatorProcess | undefined;
let stopWatch: (() => void) | undefined;
let stopWatching: (() => void) | undefined;
try {
  await applyOperatorRbac(plane);
  const namespaces = Array.from({ length: namespaceCount }, (_, i) => `late-${i}`);
  fake.model.addIdentities(SUBSCRIPTION, namespaceCount, (i) => ({ tags: { k8snamespace: namespaces[i]! } }), { prefix: "event" });

  // First seen time of an AzureIdentity per namespace, and whoever waits for one.
  const seenAt = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  const onEvent = (type: string, object: { metadata?: { namespace?: string } }) => {
    const namespace = object.metadata?.namespace;
    if (type !== "ADDED" || !namespace || seenAt.has(namespace)) return;
    seenAt.set(namespace, performance.now());
    waiters.get(namespace)?.();
  };
  // The admin watch, re-opened whenever it ends (a busy API server may answer 429 at first).
  const watch = new Watch(plane.kubeConfig("admin"));
  let watchRestarts = 0;
  let stopped = false;
  let established: () => void = () => undefined;
  const watching = new Promise<void>((resolve) => (established = resolve));
  const watchLoop = async () => {
    while (!stopped) {
      const ended = await new Promise<unknown>((resolve) => {
        watch.watch(`/apis/${AAD_GROUP}/${AAD_VERSION}/${AZURE_IDENTITIES}`, {}, onEvent, resolve).then((controller) => {
          stopWatch = () => controller.abort();
          established();
        }, resolve);
      });
      if (stopped) return;
      watchRestarts++;
      console.error(`identity watch ended (${String(ended)}); re-opening`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  void watchLoop();
  stopWatching = () => {
    stopped = true;
    stopWatch?.();
  };

  operator = await OperatorProcess.start("events", {
    kubeconfig: plane.kubeconfigPath("operator"),
    env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE },
    flags: ["run", "--sync.watch", "--webhook.bind=127.0.0.1:0", "--webhook.tls.san=127.0.0.1"],
  });
  const firstSync = await operator.waitForLog((line) => line.msg === "sync finished", 120_000);
  await watching;
  if (seenAt.size > 0) throw new Error(`identities exist before their namespaces: ${[...seenAt.keys()].join(", ")}`);

  const core = plane.api("admin", CoreV1Api);
  const latencies: number[] = [];
  for (const namespace of namespaces) {
    const seen = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no AzureIdentity in ${namespace} within ${IDENTITY_TIMEOUT_MS} ms`)), IDENTITY_TIMEOUT_MS);
      waiters.set(namespace, () => (clearTimeout(timer), resolve()));
    });
    const created = performance.now();
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await seen;
    latencies.push(seenAt.get(namespace)! - created);
  }
  const ms = (value: number) => +value.toFixed(1);
  console.log(
    JSON.stringify(
      {
        machine: machine(),
        namespaces: namespaceCount,
        watchRestarts,
        firstSync: { created: firstSync.created, durationMs: firstSync.durationMs },
        createToIdentityMs: {
          p50: ms(percentile(latencies, 50)),
          p99: ms(percentile(latencies, 99)),
          max: ms(Math.max(...latencies)),
          min: ms(Math.min(...latencies)),
        },
        goal: { p99AtMost1s: percentile(latencies, 99) <= 1_000 },
        all: latencies.map(ms),
      },
      null,
      2,
    ),
  );
} finally {
  stopWatching?.();
  await operator?.stop();
  await Promise.all([plane.stop(), fake.close()]);
}
