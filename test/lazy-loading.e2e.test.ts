// What a replica loads: a follower serves admission from its cache and never loads the Azure SDK,
// the syncer or the certificate generator (issue 17: memory). Two real operator processes, each
// with a module load hook (test/support/module-trace.ts) that records every file it loads.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAzure } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "./controlplane/controlplane.js";
import { AZURE_SDK, filesOf, loadedFiles, SELFSIGNED, SYNCER, tracingNodeOptions } from "./support/module-trace.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { OperatorProcess } from "./support/process.js";

const LEASE = ["--lease.enable", "--lease.duration=4s", "--lease.renewdeadline=3s", "--lease.retryperiod=500ms"];

let plane: ControlPlane;
let fake: FakeAzure;
let dir: string;
const processes: OperatorProcess[] = [];

before(async () => {
  [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
  await applyOperatorRbac(plane);
  fake.model.addIdentity({ subscriptionId: "00000000-0000-0000-0000-0000000000f7", resourceGroup: "rg", name: "lazy", tags: { k8snamespace: "default" } });
  dir = await mkdtemp(join(tmpdir(), "module-trace-"));
});

after(async () => {
  await Promise.all(processes.map((proc) => proc.stop()));
  await Promise.all([plane?.stop(), fake?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function replica(name: string): Promise<{ proc: OperatorProcess; files: () => Promise<string[]> }> {
  const trace = join(dir, `${name}.modules`);
  const proc = await OperatorProcess.start(name, {
    kubeconfig: plane.kubeconfigPath("operator"),
    env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE, NODE_OPTIONS: tracingNodeOptions(trace) },
    flags: ["run", ...LEASE, "--shutdown.delay=0s", "--webhook.bind=127.0.0.1:0", "--webhook.tls.san=127.0.0.1"],
  });
  processes.push(proc);
  return { proc, files: () => loadedFiles(trace) };
}

const loaded = async (probe: typeof AZURE_SDK, files: string[]) => (await filesOf(probe, files)).length > 0;

test("a follower loads neither the Azure SDK, the syncer nor selfsigned; it loads the first two when it gains the Lease", async () => {
  const leader = await replica("lazy-a");
  await leader.proc.waitForLog((line) => line.msg === "sync finished", 60_000);
  const follower = await replica("lazy-b");
  await eventually(async () => (await follower.proc.ready()) || undefined, 60_000, "the follower ready (cache synced, certificate loaded)");

  const leaderFiles = await leader.files();
  // The probes see what they look for: else the follower's "nothing" would prove nothing.
  const entry = (files: string[]) => files.some((file) => /\/main\.[jt]s$/.test(file));
  assert.ok(entry(leaderFiles), `the trace recorded the leader's modules, its entry point among them: ${leaderFiles.join(", ")}`);
  assert.ok(await loaded(AZURE_SDK, leaderFiles), "the leader loaded the Azure SDK");
  assert.ok(await loaded(SYNCER, leaderFiles), "the leader loaded the syncer");
  assert.ok(await loaded(SELFSIGNED, leaderFiles), "the leader that created the webhook CA loaded selfsigned");

  const followerFiles = await follower.files();
  assert.ok(entry(followerFiles), `the trace recorded the follower's modules: ${followerFiles.join(", ")}`);
  assert.equal(
    follower.proc.logs.some((line) => line.msg === "became leader"),
    false,
    "b is a follower",
  );
  assert.deepEqual(await filesOf(AZURE_SDK, followerFiles), [], "a follower never loads the Azure SDK");
  assert.deepEqual(await filesOf(SYNCER, followerFiles), [], "a follower never loads the syncer");
  assert.deepEqual(await filesOf(SELFSIGNED, followerFiles), [], "a follower never loads selfsigned");

  // Handover: the new leader imports the syncer and the SDK, and syncs with them.
  const since = Date.now();
  await leader.proc.stop();
  await follower.proc.waitForLog((line) => line.msg === "became leader" && Number(line.receivedAt) >= since, 30_000);
  await follower.proc.waitForLog((line) => line.msg === "sync finished" && Number(line.receivedAt) >= since, 60_000);
  const promoted = await follower.files();
  assert.ok(await loaded(AZURE_SDK, promoted), "the new leader loaded the Azure SDK");
  assert.ok(await loaded(SYNCER, promoted), "the new leader loaded the syncer");
  // The CA in the Secret is valid: nothing to generate, so nothing to load.
  assert.deepEqual(await filesOf(SELFSIGNED, promoted), [], "a leader that finds a valid certificate never loads selfsigned");
});
