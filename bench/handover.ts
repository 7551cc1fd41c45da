// Leader handover between two real operator processes with the default Lease timings
// (15 s / 10 s / 2 s): time from the signal to the other replica's "became leader" log line.
//   npm run bench:handover -- --runs=10
import { FakeAzure } from "../test/azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "../test/controlplane/controlplane.js";
import { applyOperatorRbac } from "../test/support/operator.js";
import { OperatorProcess } from "../test/support/process.js";
import { flag, machine, percentile } from "./common.js";

const runs = flag("runs", 5);
const [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
const alive: OperatorProcess[] = [];
let counter = 0;
const start = async () => {
  const proc = await OperatorProcess.start(`replica-${counter++}`, {
    kubeconfig: plane.kubeconfigPath("operator"),
    env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE },
    flags: ["run", "--lease.enable", "--shutdown.delay=1s", "--webhook.bind=127.0.0.1:0", "--webhook.tls.san=127.0.0.1"],
  });
  alive.push(proc);
  return proc;
};
const isLeader = (line: Record<string, unknown>) => line.msg === "became leader";
try {
  await applyOperatorRbac(plane);
  fake.model.addIdentity({ subscriptionId: "00000000-0000-0000-0000-00000000000f", resourceGroup: "rg", name: "bench", tags: { k8snamespace: "default" } });
  let leader = await start();
  await leader.waitForLog(isLeader, 60_000);
  let follower = await start();
  await follower.waitForLog((line) => line.msg === "AzureIdentity cache synced", 60_000);
  const results: Record<"SIGTERM" | "SIGKILL", number[]> = { SIGTERM: [], SIGKILL: [] };
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    for (let run = 0; run < runs; run++) {
      const killedAt = Date.now();
      leader.kill(signal);
      const line = await follower.waitForLog((entry) => isLeader(entry) && Number(entry.receivedAt) >= killedAt, 60_000);
      results[signal].push(Number(line.receivedAt) - killedAt);
      await leader.exited;
      alive.splice(alive.indexOf(leader), 1);
      [leader, follower] = [follower, await start()];
      await follower.waitForLog((entry) => entry.msg === "AzureIdentity cache synced", 60_000);
      console.error(`${signal} run ${run + 1}: ${results[signal].at(-1)} ms`);
    }
  }
  const summary = (values: number[]) => ({
    runs: values.length,
    minMs: Math.min(...values),
    p50Ms: percentile(values, 50),
    maxMs: Math.max(...values),
    all: values,
  });
  console.log(JSON.stringify({ machine: machine(), lease: "15s/10s/2s", SIGTERM: summary(results.SIGTERM), SIGKILL: summary(results.SIGKILL) }, null, 2));
} finally {
  await Promise.all(alive.map((proc) => proc.stop()));
  await Promise.all([plane.stop(), fake.close()]);
}
