// Workload identity, FIC reconcile: N MSIs in one subscription tagged onto M namespaces (MSI j onto
// namespace j mod M), K ServiceAccounts carrying the lookup labels of an MSI tagged for their
// namespace (ServiceAccount i on MSI i mod N, so the FICs spread evenly), synced by the operator as a
// real process (`sync --once --workloadidentity.enable`) against the real control plane and the Azure
// fake. Reports the first sync (time, FIC requests by method, FICs and identities created), a
// no-change sync (time, requests, 0 FIC writes) and the peak RSS of each; verifies that every
// labelled ServiceAccount has exactly one FIC on its MSI in the fake's model (exit 1 otherwise).
//   npm run bench:fic -- --msis=200 --namespaces=100 --serviceaccounts=500 [--fic-write-ms=50] [--profile=/tmp/fic-prof]
// --fic-write-ms is how long the fake takes per FIC PUT or DELETE (its default, 50 ms); --profile
// writes a CPU profile of the operator per sync (<dir>/<first|no-change>.cpuprofile; Node 20 refuses
// --cpu-prof in NODE_OPTIONS, so a small entry point there profiles dist/src/main.js in-process).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api } from "@kubernetes/client-node";
import { FakeAzure, type FakeIdentity, type RecordedRequest } from "../test/azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "../test/controlplane/controlplane.js";
import { applyOperatorRbac, operatorWrites } from "../test/support/operator.js";
import { OperatorProcess } from "../test/support/process.js";
import { atLeast } from "../src/log.js";
import { WORKLOAD_IDENTITY_OVERLAY } from "../test/support/manifests.js";
import { flag, machine, mapLimit, rssSampler } from "./common.js";

const msiCount = flag("msis", 200);
const namespaceCount = flag("namespaces", 100);
const accountCount = flag("serviceaccounts", 500);
const ficWriteMs = flag("fic-write-ms", 50);
const profileDir = process.argv.find((arg) => arg.startsWith("--profile="))?.slice("--profile=".length);
const SUBSCRIPTION = "00000000-0000-0000-0000-0000000000f1";
const RESOURCE_GROUP = "rg-wi-bench";
const LOOKUP = "msi.azure.k8s.io";
const AUDIENCE = "api://AzureADTokenExchange";
/** Azure's limit of FICs on one MSI. */
const MAX_PER_MSI = 20;

if (Math.ceil(accountCount / msiCount) > MAX_PER_MSI)
  throw new Error(`--serviceaccounts=${accountCount} over --msis=${msiCount} puts more than ${MAX_PER_MSI} FICs on one MSI (Azure's limit)`);

/** The process's CPU time (user + system, ms) from /proc, sampled until stopped: the last reading before it exited. */
const cpuSampler = (pid: number, everyMs = 50) => {
  let cpuMs = 0;
  const timer = setInterval(() => {
    void readFile(`/proc/${pid}/stat`, "utf8")
      .then((stat) => {
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
      })
      .catch(() => undefined);
  }, everyMs);
  return { stop: () => (clearInterval(timer), cpuMs) };
};

/**
 * An entry point that samples the CPU from the first line of dist/src/main.js to its process.exit()
 * (the in-process inspector session answers synchronously, so the profile is written before exiting).
 */
async function profilingEntry(dir: string): Promise<string> {
  const main = fileURLToPath(new URL("../dist/src/main.js", import.meta.url));
  const path = join(dir, "profiled-main.mjs");
  await mkdir(dir, { recursive: true });
  await writeFile(
    path,
    `import { Session } from "node:inspector";
import { writeFileSync } from "node:fs";
const session = new Session();
session.connect();
session.post("Profiler.enable");
session.post("Profiler.setSamplingInterval", { interval: 500 });
session.post("Profiler.start");
const exit = process.exit.bind(process);
process.exit = (code) => {
  session.post("Profiler.stop", (error, result) => {
    if (!error) writeFileSync(${JSON.stringify(dir)} + "/" + process.env.INSTANCE_POD + ".cpuprofile", JSON.stringify(result.profile));
  });
  exit(code);
};
await import(${JSON.stringify(main)});
`,
  );
  return path;
}

const countBy = <T>(items: readonly T[], key: (item: T) => string) => {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
};

const profiledMain = profileDir ? await profilingEntry(resolve(profileDir)) : undefined;
const [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start({ pageSize: 100, ficWriteMs })]);
try {
  await applyOperatorRbac(plane);
  await plane.kubectlOrThrow("admin", ["apply", "-f", `${WORKLOAD_IDENTITY_OVERLAY}rbac.yaml`]);
  const core = plane.api("admin", CoreV1Api);
  const namespaces = Array.from({ length: namespaceCount }, (_, i) => `wi-${i}`);
  await mapLimit(namespaces, 16, (name) => core.createNamespace({ body: { metadata: { name } } }));
  const msis: FakeIdentity[] = fake.model.addIdentities(SUBSCRIPTION, msiCount, (j) => ({ tags: { k8snamespace: namespaces[j % namespaceCount]! } }), {
    prefix: "wi",
    resourceGroup: RESOURCE_GROUP,
  });
  const accounts = Array.from({ length: accountCount }, (_, i) => {
    const msi = msis[i % msiCount]!;
    return { namespace: namespaces[(i % msiCount) % namespaceCount]!, name: `sa-${i}`, msi };
  });
  await mapLimit(accounts, 16, ({ namespace, name, msi }) =>
    core.createNamespacedServiceAccount({
      namespace,
      body: {
        metadata: {
          name,
          labels: { [`${LOOKUP}/name`]: msi.name, [`${LOOKUP}/resourcegroup`]: msi.resourceGroup, [`${LOOKUP}/subscription`]: msi.subscriptionId },
        },
      },
    }),
  );
  const ficsPerMsi = countBy(accounts, (account) => account.msi.name);

  let issuer = "";
  const run = async (label: string) => {
    fake.clearRequests();
    const since = Date.now();
    const proc = await OperatorProcess.start(label, {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: {
        ...fake.credentialEnv(),
        INSTANCE_NAMESPACE: OPERATOR_NAMESPACE,
      },
      ...(profiledMain ? { main: profiledMain } : {}),
      flags: ["sync", "--once", "--workloadidentity.enable"],
      compiled: true,
    });
    const rss = rssSampler(proc.child.pid!);
    const cpu = cpuSampler(proc.child.pid!);
    const exit = await proc.exited;
    const wallMs = Date.now() - since;
    const peakMiB = rss.stop();
    const cpuMs = cpu.stop();
    if (exit.code !== 0)
      throw new Error(
        `${label} exited ${exit.code}: ${proc.stderr.join("").slice(-2000)} ${JSON.stringify(proc.logs.filter((line) => atLeast(line, "warn")).slice(-5))}`,
      );
    const summary = proc.logs.find((line) => line.msg === "sync finished")!;
    const listing = proc.logs.find((line) => line.msg === "Azure listing done");
    const mode = proc.logs.find((line) => line.msg === "workload identity mode: keeping federated identity credentials for labelled ServiceAccounts");
    if (!mode) throw new Error(`${label}: the workload identity mode did not start`);
    issuer = String(mode.issuer);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const writes = operatorWrites(await plane.auditEvents(), since).length;
    const fic = fake.federatedCredentialRequests();
    const ficWrites = fic.filter((request) => request.method === "PUT" || request.method === "DELETE");
    const span = (requests: RecordedRequest[]) => (requests.length ? requests[requests.length - 1]!.at - requests[0]!.at : 0);
    return {
      label,
      syncMs: Number(summary.durationMs),
      listingMs: listing ? Number(listing.durationMs) : undefined,
      /** From the first FIC request the fake received to the last one's arrival. */
      ficPassMs: span(fic),
      processWallMs: wallMs,
      /** The operator's CPU time over the whole process (start-up included), to within the last 50 ms. */
      processCpuMs: Math.round(cpuMs),
      ficRequests: countBy(fic, (request) => request.method),
      ficStatuses: countBy(fic, (request) => String(request.status)),
      ficWrites: ficWrites.length,
      ficsCreated: proc.logs.filter((line) => line.msg === "federated identity credential created").length,
      ficsUpdated: proc.logs.filter((line) => line.msg === "federated identity credential updated").length,
      ficsRevoked: proc.logs.filter((line) => line.msg === "federated identity credential revoked").length,
      ficsSkipped: proc.logs.filter((line) => line.msg === "federated identity credential skipped").length,
      armRequests: countBy(fake.armRequests(), (request) => request.method),
      tokenRequests: fake.tokenRequests().length,
      identitiesCreated: summary.created,
      identitiesUnchanged: summary.unchanged,
      kubeWrites: writes,
      peakRssMiB: Math.round(peakMiB),
    };
  };

  /** Every labelled ServiceAccount has exactly one FIC (issuer, subject, audience) on its MSI, and nothing else of ours is there. */
  const verify = (label: string): string[] => {
    const problems: string[] = [];
    for (const msi of msis) {
      const fics = fake.model.federatedCredentials(msi);
      const expected = ficsPerMsi[msi.name] ?? 0;
      if (fics.length !== expected) problems.push(`${label}: ${msi.name} has ${fics.length} FICs, expected ${expected}`);
    }
    for (const { namespace, name, msi } of accounts) {
      const subject = `system:serviceaccount:${namespace}:${name}`;
      const matching = fake.model.federatedCredentials(msi).filter((fic) => fic.subject === subject);
      if (matching.length !== 1) problems.push(`${label}: ${namespace}/${name} has ${matching.length} FICs on ${msi.name}`);
      else if (matching[0]!.issuer !== issuer || matching[0]!.audiences.join() !== AUDIENCE)
        problems.push(`${label}: ${namespace}/${name}'s FIC has issuer ${matching[0]!.issuer}, audiences ${matching[0]!.audiences.join()}`);
    }
    return problems;
  };

  const first = await run("first");
  const problems = verify("after the first sync");
  const second = await run("no-change");
  problems.push(...verify("after the no-change sync"));
  if (second.ficWrites !== 0) problems.push(`the no-change sync made ${second.ficWrites} FIC writes`);
  const totalFics = msis.reduce((sum, msi) => sum + fake.model.federatedCredentials(msi).length, 0);
  const result = {
    machine: machine(),
    entry: profiledMain ? "dist/src/main.js, CPU-profiled" : "dist/src/main.js",
    msis: msiCount,
    namespaces: namespaceCount,
    serviceAccounts: accountCount,
    ficWriteMs,
    issuer,
    ficsPerMsi: { min: Math.min(...msis.map((msi) => ficsPerMsi[msi.name] ?? 0)), max: Math.max(...Object.values(ficsPerMsi)) },
    ficsInAzure: totalFics,
    converged: problems.length === 0,
    first,
    second,
  };
  console.log(JSON.stringify(result, null, 2));
  if (problems.length > 0) {
    console.error(`not converged (${problems.length} problems):\n${problems.slice(0, 20).join("\n")}`);
    process.exitCode = 1;
  }
} finally {
  await Promise.all([plane.stop(), fake.close()]);
}
