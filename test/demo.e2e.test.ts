// `npm run demo` as a child process, as a person runs it (npm -> sh -> launcher -> demo). With --once
// it must walk through every step and exit 0; without, it stays up until Ctrl-C or SIGTERM and then
// exits 0 and leaves no process and no temp dir behind.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { identityName, LEGACY, REPORTS, SHOP } from "../demo/scenario.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const UP = /Press Ctrl-C to stop everything/;
const RUN_TIMEOUT_MS = 5 * 60_000;

/** `npm run demo -- <extra>` with the npm that runs the tests (npm_execpath), else the one on PATH. */
function npmRunDemo(extra: string[]): [string, string[]] {
  const args = ["run", "demo", ...(extra.length > 0 ? ["--", ...extra] : [])];
  const npm = process.env.npm_execpath;
  if (npm?.endsWith(".js")) return [process.execPath, [npm, ...args]];
  return [npm ?? "npm", args];
}

class DemoRun {
  output = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(extra: string[]) {
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    // Its own process group, so a test can send what a terminal's Ctrl-C sends: a signal to all of it.
    const [command, args] = npmRunDemo(extra);
    this.child = spawn(command, args, { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.output)) {
      if (!this.running) throw new Error(`demo exited before printing ${pattern}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`demo did not print ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** Alive and not a zombie (a reparented child may linger as one until init reaps it). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return existsSync(`/proc/${pid}`);
  }
}

/** The pids and temp dirs the demo printed while up ("pids: ..." and "temp dirs: ..."). */
function upBanner(output: string): { pids: number[]; dirs: string[] } {
  const pids = /^\s+pids: ([\d ]+)$/m.exec(output)?.[1]?.trim().split(/\s+/).map(Number) ?? [];
  const dirs = /^\s+temp dirs: (.+)$/m.exec(output)?.[1]?.trim().split(/\s+/) ?? [];
  return { pids, dirs };
}

/** The pids and directories its cleanup reported ("stopped ... (pids 1 2 3), removed /tmp/..."). */
function cleanupReport(output: string): { pids: number[]; dirs: string[] } {
  const pids = [...output.matchAll(/^\s+stopped .*\(pids? ([\d ]+)\)/gm)].flatMap((match) => (match[1] ?? "").trim().split(/\s+/).map(Number));
  const dirs = [...output.matchAll(/removed (\/\S+)/g)].map((match) => match[1] ?? "");
  return { pids, dirs };
}

function assertNothingLeft(pids: number[], dirs: string[], output: string): void {
  assert.ok(pids.length >= 4, `operator + etcd + kube-apiserver + kube-controller-manager pids printed:\n${output}`);
  assert.ok(dirs.length >= 3, `control plane, Azure fake and demo dirs printed:\n${output}`);
  assert.deepEqual(pids.filter(alive), [], "no process left running");
  assert.deepEqual(
    dirs.filter((dir) => existsSync(dir)),
    [],
    "no temp dir left",
  );
}

describe("npm run demo", () => {
  const runs: DemoRun[] = [];
  const start = (extra: string[] = []) => {
    const run = new DemoRun(extra);
    runs.push(run);
    return run;
  };
  after(() => {
    for (const run of runs) if (run.running) process.kill(-run.pid, "SIGKILL");
  });

  test("--once walks through every step, prints kubectl's output and exits 0", { timeout: RUN_TIMEOUT_MS }, async () => {
    const run = start(["--once"]);
    const { code } = await run.exited;
    const out = run.output;
    assert.equal(code, 0, out);
    // 1: identities in both namespaces of the MSI tagged for two, as kubectl lists them
    for (const namespace of SHOP.namespaces.split(","))
      assert.match(out, new RegExp(`^\\s+${namespace}\\s+${identityName(SHOP)}\\s+0\\s+${SHOP.clientId}\\s`, "m"));
    // 2: the template-breaking MSI skipped, with the operator's logged reason
    assert.match(out, new RegExp(`"reason":"rendered name \\\\"${identityName(LEGACY)}\\\\" is not a valid Kubernetes name: .*","msg":"MSI skipped"`));
    // 3: jane denied by the validating webhook, with its message
    assert.match(
      out,
      /admission webhook "azureidentities\.azure-msi-operator\.aadpodidentity\.k8s\.io" denied the request: AzureIdentity objects are managed by azure-msi-operator: jane may not create them/,
    );
    // 4: her binding as stored, with spec.azureIdentity filled
    assert.match(out, new RegExp(`^\\s+spec:\\n\\s+azureIdentity: ${identityName(SHOP)}$`, "m"));
    // 5: the new namespace's identity, with its timing and kubectl showing it
    assert.match(out, /team-new got its identity in \d+ ms/);
    assert.match(out, new RegExp(`^\\s+${identityName(REPORTS)}\\s+0\\s+${REPORTS.clientId}\\s`, "m"));
    // 6: metric lines from /metrics
    assert.match(out, /^\s+azuremsi_admission_requests_total\{webhook="validate-azureidentity",operation="CREATE",result="denied"\} [1-9]/m);
    assert.match(out, /^\s+azuremsi_msi_skipped_total\{subscription="[^"]+"\} 1$/m);
    assert.doesNotMatch(out, /FAILED/);
    const { pids, dirs } = cleanupReport(out);
    assertNothingLeft(pids, dirs, out);
  });

  test("Ctrl-C (SIGINT to the whole process group) while it is up: exit 0, nothing left", { timeout: RUN_TIMEOUT_MS }, async () => {
    const run = start();
    await run.waitForOutput(UP, RUN_TIMEOUT_MS - 30_000);
    const { pids, dirs } = upBanner(run.output);
    assert.deepEqual(
      pids.filter((pid) => !alive(pid)),
      [],
      "every printed pid runs while the demo is up",
    );
    assert.deepEqual(
      dirs.filter((dir) => !existsSync(dir)),
      [],
      "every printed temp dir exists while the demo is up",
    );
    process.kill(-run.pid, "SIGINT");
    const { code } = await run.exited;
    assert.equal(code, 0, run.output);
    assert.match(run.output, /SIGINT: stopping and cleaning up/);
    assertNothingLeft(pids, dirs, run.output);
  });

  test("SIGTERM to npm alone (kill <pid>): the demo stops its children itself, exit 0, nothing left", { timeout: RUN_TIMEOUT_MS }, async () => {
    const run = start();
    await run.waitForOutput(UP, RUN_TIMEOUT_MS - 30_000);
    const { pids, dirs } = upBanner(run.output);
    process.kill(run.pid, "SIGTERM");
    const { code } = await run.exited;
    assert.equal(code, 0, run.output);
    assert.match(run.output, /SIGTERM: stopping and cleaning up/);
    assertNothingLeft(pids, dirs, run.output);
  });
});
