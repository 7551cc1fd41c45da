// Everything the demo runs: the control plane binaries (built on first use), a real kube-apiserver +
// etcd + kube-controller-manager, the Azure fake seeded with a few MSIs, and the operator CLI as a
// child process with its service account, the shipped RBAC and the webhooks registered by URL.
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { FakeAzure } from "../test/azure/fake.js";
import { controlPlaneAssets } from "../test/controlplane/assets.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "../test/controlplane/controlplane.js";
import { reservePort } from "../test/controlplane/ports.js";
import { applyOperatorRbac } from "../test/support/operator.js";
import { OperatorProcess } from "../test/support/process.js";
import { installWebhooks, waitForCaBundles } from "../test/support/webhooks.js";
import { logLine, seconds } from "./print.js";
import { janeBindingYaml, janeIdentityYaml, janeRbacYaml, MSIS, RESOURCE_GROUP, SUBSCRIPTION, TEAM_NAMESPACES } from "./scenario.js";
import { waitFor, type StopRequest } from "./stop.js";

export type Print = (text: string) => void;

const READY_TIMEOUT_MS = 60_000;

export class DemoEnvironment {
  plane: ControlPlane | undefined;
  fake: FakeAzure | undefined;
  operator: OperatorProcess | undefined;
  /** Holds jane's manifests and the operator's log. */
  dir: string | undefined;
  webhookPort = 0;
  /** The fake's credential env: AZURE_ENVIRONMENT_FILEPATH lies in a directory of its own. */
  private azureEnv: Record<string, string> | undefined;
  private operatorLog: WriteStream | undefined;

  constructor(
    private readonly print: Print,
    private readonly stop: StopRequest,
  ) {}

  get operatorLogPath(): string {
    return join(this.need(this.dir, "demo directory"), "operator.log");
  }

  get opsUrl(): string {
    return `http://127.0.0.1:${this.need(this.operator, "operator").opsPort}`;
  }

  /** Every directory the demo created; all are gone after stop(). */
  tempDirs(): string[] {
    const envFile = this.azureEnv?.AZURE_ENVIRONMENT_FILEPATH;
    return [this.plane?.dir, envFile ? dirname(envFile) : undefined, this.dir].filter((dir): dir is string => dir !== undefined);
  }

  /** Every process the demo started; none is left after stop(). */
  pids(): number[] {
    return [this.operator?.child.pid, ...(this.plane?.pids() ?? [])].filter((pid): pid is number => typeof pid === "number" && pid > 0);
  }

  async start(): Promise<void> {
    const print = this.print;
    print("Control plane binaries (etcd, kube-apiserver, kube-controller-manager, kubectl):");
    let started = Date.now();
    // On a fresh machine this builds them from the Go module proxy once, printing its progress.
    const assets = await controlPlaneAssets((line) => print(`    ${line}`));
    print(`    ready in ${dirname(assets.kubectl)} (${seconds(Date.now() - started)})`);
    this.stop.throwIfRequested();

    started = Date.now();
    this.dir = await mkdtemp(join(tmpdir(), "amo-demo-"));
    const [plane, fake] = await Promise.allSettled([ControlPlane.start({ controllerManager: true, handleSignals: false }), FakeAzure.start()]);
    if (plane.status === "fulfilled") this.plane = plane.value;
    if (fake.status === "fulfilled") this.fake = fake.value;
    if (plane.status === "rejected") throw plane.reason;
    if (fake.status === "rejected") throw fake.reason;
    print(`Control plane: kube-apiserver ${this.plane?.server}, etcd, kube-controller-manager (${seconds(Date.now() - started)})`);
    this.seedAzure();
    this.stop.throwIfRequested();

    await this.prepareCluster();
    this.stop.throwIfRequested();
    await this.startOperator();
  }

  private seedAzure(): void {
    const fake = this.need(this.fake, "Azure fake");
    for (const msi of MSIS) {
      fake.model.addIdentity({
        subscriptionId: SUBSCRIPTION,
        resourceGroup: RESOURCE_GROUP,
        name: msi.name,
        clientId: msi.clientId,
        tags: { k8snamespace: msi.namespaces },
      });
    }
    this.print(`Azure fake: ${fake.url} (Entra ID + Resource Manager), subscription ${SUBSCRIPTION}, resource group ${RESOURCE_GROUP}:`);
    const width = Math.max(...MSIS.map((msi) => msi.name.length));
    for (const msi of MSIS) this.print(`    MSI ${msi.name.padEnd(width)}  tags k8snamespace=${msi.namespaces.padEnd(14)} ${msi.note}`);
  }

  /** The operator's namespace and service account exist already (ControlPlane); add RBAC, teams, webhooks. */
  private async prepareCluster(): Promise<void> {
    const plane = this.need(this.plane, "control plane");
    const dir = this.need(this.dir, "demo directory");
    await applyOperatorRbac(plane);
    for (const namespace of TEAM_NAMESPACES) await plane.kubectlOrThrow("admin", ["create", "namespace", namespace]);
    await plane.kubectlOrThrow("admin", ["apply", "-f", "-"], { stdin: janeRbacYaml() });
    await writeFile(join(dir, "jane-azureidentity.yaml"), janeIdentityYaml());
    await writeFile(join(dir, "jane-binding.yaml"), janeBindingYaml());
    this.webhookPort = await reservePort();
    await installWebhooks(plane, this.webhookPort);
    this.print(
      `Cluster: namespaces ${TEAM_NAMESPACES.join(", ")}; jane (group dev-team) may edit aad-pod-identity objects there; operator RBAC from manifests/base/rbac.yaml; webhooks registered at https://127.0.0.1:${this.webhookPort}`,
    );
  }

  private async startOperator(): Promise<void> {
    const plane = this.need(this.plane, "control plane");
    const fake = this.need(this.fake, "Azure fake");
    const started = Date.now();
    const flags = [
      "run",
      "--sync.watch",
      "--azureidentity.binding.sync",
      `--webhook.bind=127.0.0.1:${this.webhookPort}`,
      "--webhook.tls.san=127.0.0.1",
      "--shutdown.delay=0s",
    ];
    this.azureEnv = fake.credentialEnv();
    const operator = await OperatorProcess.start("azure-msi-operator-demo", {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...this.azureEnv, INSTANCE_NAMESPACE: OPERATOR_NAMESPACE },
      flags,
    });
    this.operator = operator;
    const log = createWriteStream(this.operatorLogPath);
    this.operatorLog = log;
    operator.child.stdout?.on("data", (chunk: Buffer) => log.write(chunk));
    operator.child.stderr?.on("data", (chunk: Buffer) => log.write(chunk));
    this.print(`Operator: pid ${operator.child.pid}, as system:serviceaccount:${OPERATOR_NAMESPACE}:azure-msi-operator: azure-msi-operator ${flags.join(" ")}`);
    const check = () => this.assertOperatorRunning();
    await waitFor(() => operator.ready(), { timeoutMs: READY_TIMEOUT_MS, what: "operator /readyz", stop: this.stop, check });
    await waitForCaBundles(plane, READY_TIMEOUT_MS);
    await waitFor(() => operator.logs.some((line) => line.msg === "sync finished" || line.msg === "sync finished with errors"), {
      timeoutMs: READY_TIMEOUT_MS,
      what: "first sync",
      stop: this.stop,
      check,
    });
    this.print(`    ready, caBundle injected, first sync done (${seconds(Date.now() - started)})`);
  }

  assertOperatorRunning(): void {
    const child = this.operator?.child;
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`the operator exited (${child.exitCode ?? child.signalCode})`);
  }

  /** The operator's last log lines (and stderr), for a failure report. */
  operatorTail(lines = 15): string[] {
    if (!this.operator) return [];
    const logs = this.operator.logs.slice(-lines).map(logLine);
    const stderr = this.operator.stderr.join("").trim();
    return stderr ? [...logs, ...stderr.split("\n").slice(-lines)] : logs;
  }

  /** Operator, then the fake, then the control plane, then the demo's files: each even if another fails. */
  async stopAll(): Promise<void> {
    const attempt = async (what: string, action: () => Promise<void>) => {
      try {
        await action();
        this.print(`    stopped ${what}`);
      } catch (error) {
        this.print(`    could not stop ${what}: ${(error as Error).message}`);
      }
    };
    const { operator, fake, plane, dir } = this;
    if (operator) await attempt(`the operator (pid ${operator.child.pid})`, () => operator.stop());
    const log = this.operatorLog;
    if (log) await new Promise<void>((resolve) => log.end(resolve));
    const fakeDir = this.azureEnv?.AZURE_ENVIRONMENT_FILEPATH;
    if (fake) await attempt(`the Azure fake${fakeDir ? `, removed ${dirname(fakeDir)}` : ""}`, () => fake.close());
    if (plane) await attempt(`the control plane (pids ${plane.pids().join(" ")}), removed ${plane.dir}`, () => plane.stop());
    if (dir) await attempt(`the demo, removed ${dir}`, () => rm(dir, { recursive: true, force: true }));
  }

  private need<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new Error(`${what} is not running`);
    return value;
  }
}
