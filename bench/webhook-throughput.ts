// Webhook throughput: AdmissionReviews posted over HTTPS keep-alive by autocannon (concurrency 32)
// at our real webhook server (cache of 10,000 operator-owned identities in 2,000 namespaces) and,
// in the same run, at a bare node:https server returning a canned answer (Node's own limit here).
// Each server is its own process (bench/webhook-target.ts, compiled); the load tool runs here.
// Then open-loop fixed-rate runs (bench/open-loop.ts) measure our latency at half of bare's maximum
// rate and at half of our own. Our server runs twice: as a follower holds it (webhook and cache) and
// as a leader holds it (the syncer, the Azure SDK and selfsigned loaded too); each one's RSS at start
// and its peak under load are reported. --node-options is the servers' NODE_OPTIONS (the image's),
// --node-flags V8 flags that NODE_OPTIONS refuses (on the node command line, as an ENTRYPOINT has them).
//   npm run bench:webhook -- --duration=10 --warmup=3 --connections=32 [--node-options="--max-semi-space-size=4"] [--node-flags="--single-threaded-gc"] [--profile=/tmp/webhook-prof]
import autocannon from "autocannon";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { issueCert } from "../certs/pki.js";
import { MUTATE_BINDING_PATH, VALIDATE_IDENTITY_PATH } from "../src/webhook/server.js";
import { ensureTestCa } from "../test/support/test-ca.js";
import { flag, machine, rssSampler } from "./common.js";
import { openLoop } from "./open-loop.js";
import { mutateReview, validateReview } from "./webhook-fixture.js";

const durationS = flag("duration", 10);
const warmupS = flag("warmup", 3);
const connections = flag("connections", 32);
const identities = flag("identities", 10_000);
const namespaces = flag("namespaces", 2_000);
const profileDir = process.argv.find((arg) => arg.startsWith("--profile="))?.slice("--profile=".length);
const nodeOptions = process.argv.find((arg) => arg.startsWith("--node-options="))?.slice("--node-options=".length) ?? "";
const nodeFlags = (process.argv.find((arg) => arg.startsWith("--node-flags="))?.slice("--node-flags=".length) ?? "").split(" ").filter(Boolean);
const TARGET = fileURLToPath(new URL("../dist/bench/webhook-target.js", import.meta.url));

type Kind = "bare" | "ours" | "leader";
type Hook = "mutate" | "validate";
const PATHS: Record<Hook, string> = { mutate: MUTATE_BINDING_PATH, validate: VALIDATE_IDENTITY_PATH };
// An identity in the middle of the cache: its namespace holds identities / namespaces of them.
const BODIES: Record<Hook, string> = { mutate: JSON.stringify(mutateReview(4_321, namespaces)), validate: JSON.stringify(validateReview(4_321, namespaces)) };

interface Target {
  kind: Kind;
  port: number;
  child: ChildProcess;
  startRssMiB: number;
  stop: () => Promise<void>;
}

async function startTarget(kind: Kind, certFile: string, keyFile: string): Promise<Target> {
  const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${join(profileDir, kind)}`] : [];
  // The bare server is Node's own limit: no options of ours.
  const ours = kind !== "bare";
  const child = spawn(
    process.execPath,
    [
      ...(ours ? nodeFlags : []),
      ...profile,
      TARGET,
      `--kind=${ours ? "ours" : "bare"}`,
      ...(kind === "leader" ? ["--leader"] : []),
      `--cert=${certFile}`,
      `--key=${keyFile}`,
      `--identities=${identities}`,
      `--namespaces=${namespaces}`,
    ],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, NODE_OPTIONS: ours ? nodeOptions : "" } },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    void exited.then(() => reject(new Error(`${kind} server exited before listening`)));
  });
  const { port, rssMiB } = JSON.parse(first) as { port: number; rssMiB: number };
  lines.on("line", () => undefined); // the server's own log lines, if any
  return { kind, port, child, startRssMiB: rssMiB, stop: async () => (child.kill("SIGTERM"), await exited) };
}

/** One POST, so a wrong answer is seen before it is measured 100,000 times. */
function post(port: number, path: string, body: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "POST", ca, headers: { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (chunk: Buffer) => (text += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

interface LoadResult {
  rps: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

async function load(port: number, hook: Hook, seconds: number): Promise<LoadResult> {
  const result = await autocannon({
    url: `https://127.0.0.1:${port}${PATHS[hook]}`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: BODIES[hook],
    connections,
    pipelining: 1,
    duration: seconds,
  });
  if (result.errors > 0 || result.non2xx > 0 || result.timeouts > 0)
    throw new Error(`${hook} on ${port}: ${result.errors} errors, ${result.non2xx} non-2xx, ${result.timeouts} timeouts`);
  return {
    rps: Math.round(result.requests.total / (result.duration || seconds)),
    requests: result.requests.total,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
  };
}

/** CPU seconds (user + system) a process has used so far: robust to other load on the machine. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

async function maxRate(target: Target, hook: Hook): Promise<LoadResult & { cpuUsPerRequest: number; peakRssMiB: number }> {
  await load(target.port, hook, warmupS);
  const rss = rssSampler(target.child.pid!);
  const cpuBefore = await cpuSeconds(target.child.pid!);
  const measured = await load(target.port, hook, durationS);
  const cpu = (await cpuSeconds(target.child.pid!)) - cpuBefore;
  return { ...measured, cpuUsPerRequest: Math.round((cpu * 1e6) / measured.requests), peakRssMiB: Math.round(rss.stop()) };
}

const dir = await mkdtemp(join(tmpdir(), "webhook-bench-"));
const targets: Target[] = [];
try {
  // One serving certificate for both servers: the same key type and size (RSA 2048, as the operator's own).
  const ca = await ensureTestCa();
  const pem = await issueCert(ca, { commonName: "webhook-bench", usage: "server", ipAddresses: ["127.0.0.1"], validityMs: 3_600_000 });
  const certFile = join(dir, "tls.crt");
  const keyFile = join(dir, "tls.key");
  await Promise.all([writeFile(certFile, pem.cert), writeFile(keyFile, pem.key, { mode: 0o600 })]);

  const bare = await startTarget("bare", certFile, keyFile);
  targets.push(bare);
  const bareMax = { mutate: await maxRate(bare, "mutate"), validate: await maxRate(bare, "validate") };
  await bare.stop();

  const ours = await startTarget("ours", certFile, keyFile);
  targets.push(ours);
  const mutated = JSON.parse((await post(ours.port, PATHS.mutate, BODIES.mutate, ca.cert)).body) as { response?: { patch?: string } };
  const patch = Buffer.from(mutated.response?.patch ?? "", "base64").toString();
  if (!patch.includes("/spec/azureIdentity")) throw new Error(`the mutating webhook did not fill spec.azureIdentity: ${JSON.stringify(mutated)}`);
  const validated = JSON.parse((await post(ours.port, PATHS.validate, BODIES.validate, ca.cert)).body) as { response?: { allowed?: boolean } };
  if (validated.response?.allowed !== true) throw new Error(`the validating webhook did not allow the operator: ${JSON.stringify(validated)}`);
  const oursMax = { mutate: await maxRate(ours, "mutate"), validate: await maxRate(ours, "validate") };
  const fixedRate = async (hook: Hook, ratePerSecond: number) => {
    const run = (seconds: number) => openLoop({ port: ours.port, path: PATHS[hook], body: BODIES[hook], ca: ca.cert, ratePerSecond, seconds, connections });
    await run(warmupS);
    return run(durationS);
  };
  const oursHalf = {
    mutate: await fixedRate("mutate", Math.round(bareMax.mutate.rps / 2)),
    validate: await fixedRate("validate", Math.round(bareMax.validate.rps / 2)),
  };
  // For context: latency at a rate this server sustains with room to spare (half of its own maximum).
  const oursHalfOwn = {
    mutate: await fixedRate("mutate", Math.round(oursMax.mutate.rps / 2)),
    validate: await fixedRate("validate", Math.round(oursMax.validate.rps / 2)),
  };
  await ours.stop();

  const leader = await startTarget("leader", certFile, keyFile);
  targets.push(leader);
  const leaderMax = { mutate: await maxRate(leader, "mutate"), validate: await maxRate(leader, "validate") };
  await leader.stop();

  const ratio = (hook: Hook) => +(oursMax[hook].rps / bareMax[hook].rps).toFixed(3);
  console.log(
    JSON.stringify(
      {
        machine: machine(),
        tool: "maximum rate: autocannon 9; fixed rate: bench/open-loop.ts (HTTPS keep-alive, one event loop; each server in its own process)",
        connections,
        durationS,
        cache: { identities, namespaces },
        bodyBytes: { mutate: BODIES.mutate.length, validate: BODIES.validate.length },
        nodeOptions,
        nodeFlags: nodeFlags.join(" "),
        serverStartRssMiB: { bare: bare.startRssMiB, ours: ours.startRssMiB, leader: leader.startRssMiB },
        peakRssMiB: {
          follower: Math.max(oursMax.mutate.peakRssMiB, oursMax.validate.peakRssMiB),
          leader: Math.max(leaderMax.mutate.peakRssMiB, leaderMax.validate.peakRssMiB),
        },
        max: {
          mutate: { bare: bareMax.mutate, ours: oursMax.mutate, ratio: ratio("mutate"), leader: leaderMax.mutate },
          validate: { bare: bareMax.validate, ours: oursMax.validate, ratio: ratio("validate"), leader: leaderMax.validate },
        },
        oursAtHalfBareMax: oursHalf,
        oursAtHalfOwnMax: oursHalfOwn,
        goals: {
          throughputRatioAtLeast0_85: { mutate: ratio("mutate") >= 0.85, validate: ratio("validate") >= 0.85 },
          p99AtMost5msAtHalfRate: {
            mutate: oursHalf.mutate.p99Ms <= 5 && oursHalf.mutate.errors === 0,
            validate: oursHalf.validate.p99Ms <= 5 && oursHalf.validate.errors === 0,
          },
        },
        ...(profileDir ? { cpuProfileDir: profileDir } : {}),
      },
      null,
      2,
    ),
  );
} finally {
  await Promise.all(targets.filter((target) => target.child.exitCode === null && target.child.signalCode === null).map((target) => target.stop()));
  await rm(dir, { recursive: true, force: true });
}
