import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { controlPlaneAssets, type ControlPlaneAssets } from "./assets.js";
import { kubeconfigYaml } from "./kubeconfig.js";
import { ADMIN, DEVELOPER, makeControlPlanePki, type ControlPlanePki } from "./pki.js";
import { AddressInUseError, ports, withFreshPorts, type PortAllocator } from "./ports.js";
import { Reaper, startProcess, stopProcess, type ManagedProcess } from "./processes.js";

export { ADMIN, DEVELOPER };
export const OPERATOR_NAMESPACE = "azure-msi-operator";
export const OPERATOR_SERVICE_ACCOUNT = "azure-msi-operator";
export const OPERATOR_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:${OPERATOR_SERVICE_ACCOUNT}`;
export const AAD_POD_IDENTITY_CRDS = fileURLToPath(new URL("../../../shared/fixtures/aad-pod-identity/crd.yaml", import.meta.url));

export type Who = "admin" | "jane" | "operator";

export interface ControlPlaneOptions {
  /** Install the upstream aad-pod-identity CRDs (default true). */
  crds?: boolean;
  /** Start kube-controller-manager's namespace, garbage-collector and service-account controllers too (default false). */
  controllerManager?: boolean;
  /** Extra kube-apiserver flags, e.g. to lower request limits in a fault test. */
  apiserverFlags?: string[];
  /** Kill the processes and exit on SIGINT/SIGTERM (default true); false when the caller stops the plane itself. */
  handleSignals?: boolean;
  /** Where etcd's and kube-apiserver's ports come from (a test of the retry scripts the kernel). */
  ports?: PortAllocator;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface AuditEvent {
  verb: string;
  user: { username: string; groups?: string[] };
  impersonatedUser?: { username: string };
  objectRef?: { resource?: string; namespace?: string; name?: string; apiGroup?: string; subresource?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
  stage: string;
  /** Only for Leases (audited at Request level, so who held the Lease when is on record). */
  requestObject?: { spec?: { holderIdentity?: string } };
}

const READY_TIMEOUT_MS = 90_000;
// What etcd and kube-apiserver (Go) write when a port they were told is taken.
const BIND_FAILED = /bind: address already in use/;

// Writes only: reads would flood the log and no test counts them.
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    verbs: ["get", "list", "watch"]
  - level: Request
    resources: [{ group: "coordination.k8s.io", resources: ["leases"] }]
  - level: Metadata
`;

/**
 * A real etcd + kube-apiserver on random loopback ports, as controller-runtime's envtest runs them:
 * RBAC on, service-account tokens signed, an admin in system:masters, a developer with a client
 * certificate, the operator's service account with a real token, and an audit log of every write.
 * One per test file; `stop()` leaves no process, port or directory behind.
 */
export class ControlPlane {
  private readonly processes: ManagedProcess[] = [];
  private readonly kubeconfigs = new Map<Who, string>();
  private apiserverArgs: string[] = [];
  private apiserverRestarts = 0;
  private bootAttempts = 0;
  private serverUrl = "";

  private constructor(
    readonly dir: string,
    readonly assets: ControlPlaneAssets,
    private readonly pki: ControlPlanePki,
    private readonly reaper: Reaper,
  ) {}

  /** kube-apiserver's URL, known once it is up. */
  get server(): string {
    return this.serverUrl;
  }

  /** How many times etcd and kube-apiserver were started before they came up (1 unless a port was taken). */
  get boots(): number {
    return this.bootAttempts;
  }

  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const assets = await controlPlaneAssets();
    const dir = await mkdtemp(join(tmpdir(), "amo-controlplane-"));
    const reaper = new Reaper(dir, { signals: options.handleSignals ?? true });
    const pki = await makeControlPlanePki();
    const plane = new ControlPlane(dir, assets, pki, reaper);
    try {
      await plane.boot(options);
      return plane;
    } catch (error) {
      const logs = await plane.logTails();
      await plane.stop();
      throw new Error(`control plane failed to start: ${(error as Error).message}\n${logs}`, { cause: error });
    }
  }

  private async boot(options: ControlPlaneOptions): Promise<void> {
    const file = (name: string) => join(this.dir, name);
    await Promise.all([
      writeFile(file("ca.crt"), this.pki.ca.cert),
      writeFile(file("ca.key"), this.pki.ca.key, { mode: 0o600 }),
      writeFile(file("serving.crt"), this.pki.serving.cert),
      writeFile(file("serving.key"), this.pki.serving.key, { mode: 0o600 }),
      writeFile(file("sa.key"), this.pki.serviceAccount.privateKey, { mode: 0o600 }),
      writeFile(file("sa.pub"), this.pki.serviceAccount.publicKey),
      writeFile(file("audit-policy.yaml"), AUDIT_POLICY),
    ]);
    await withFreshPorts(3, (ports, attempt) => this.bootEtcdAndApiserver(ports, attempt, options), { allocator: options.ports ?? ports });
    await this.writeKubeconfig("admin", { clientCert: this.pki.admin });
    await this.writeKubeconfig("jane", { clientCert: this.pki.developer });
    await this.createOperatorServiceAccount();
    if (options.crds ?? true) await this.installCrds();
    if (options.controllerManager) await this.startControllerManager();
  }

  /**
   * etcd and kube-apiserver on the given ports. Both are told their ports, so one may meet a port
   * another process took since it was reserved: then both are stopped and AddressInUseError says to
   * try again with fresh ports (each attempt its own etcd data directory).
   */
  private async bootEtcdAndApiserver([port, etcdClient, etcdPeer]: number[], attempt: number, options: ControlPlaneOptions): Promise<void> {
    this.bootAttempts = attempt;
    const file = (name: string) => join(this.dir, name);
    this.serverUrl = `https://127.0.0.1:${port}`;
    this.spawn("etcd", this.assets.etcd, [
      "--name=default",
      `--data-dir=${file(`etcd-data-${attempt}`)}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      "--unsafe-no-fsync=true",
    ]);
    this.apiserverArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${port}`,
      `--cert-dir=${file("apiserver-certs")}`,
      `--tls-cert-file=${file("serving.crt")}`,
      `--tls-private-key-file=${file("serving.key")}`,
      `--client-ca-file=${file("ca.crt")}`,
      "--authorization-mode=RBAC",
      `--service-account-key-file=${file("sa.pub")}`,
      `--service-account-signing-key-file=${file("sa.key")}`,
      "--service-account-issuer=https://kubernetes.default.svc",
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      "--disable-admission-plugins=ServiceAccount",
      `--audit-policy-file=${file("audit-policy.yaml")}`,
      `--audit-log-path=${file("audit.log")}`,
      "--audit-log-mode=blocking",
      ...(options.apiserverFlags ?? []),
    ];
    this.spawn("kube-apiserver", this.assets.kubeApiserver, this.apiserverArgs);
    try {
      await this.waitReady();
    } catch (error) {
      await Promise.all(this.processes.filter((p) => p.child.exitCode !== null).map((p) => p.exited));
      const taken = await this.bindFailures();
      if (taken.length === 0) throw error;
      for (const managed of this.processes.splice(0).reverse()) await stopProcess(managed);
      throw new AddressInUseError(`${taken.join(", ")}: bind: address already in use (boot ${attempt})`, { cause: error });
    }
  }

  /** Names of the processes whose log says a bind failed. */
  private async bindFailures(): Promise<string[]> {
    const failed = await Promise.all(
      this.processes.map(async (p) => (BIND_FAILED.test(await readFile(p.logFile, "utf8").catch(() => "")) ? p.name : undefined)),
    );
    return failed.filter((name) => name !== undefined);
  }

  /**
   * Stops kube-apiserver (SIGTERM: graceful; SIGKILL: a crash) and starts it again on the same port
   * with the same flags, etcd left running: what clients see during a control-plane upgrade or crash.
   * Resolves once it is ready again.
   */
  async restartApiServer(options: { signal?: "SIGTERM" | "SIGKILL"; downMs?: number } = {}): Promise<void> {
    const index = this.processes.findIndex((p) => p.name === "kube-apiserver");
    const old = this.processes[index];
    if (!old) throw new Error("no kube-apiserver to restart");
    if (options.signal === "SIGKILL") {
      old.child.kill("SIGKILL");
      await old.exited;
    } else await stopProcess(old);
    await new Promise((resolve) => setTimeout(resolve, options.downMs ?? 0));
    const managed = startProcess(
      "kube-apiserver",
      this.assets.kubeApiserver,
      this.apiserverArgs,
      join(this.dir, `kube-apiserver.restart-${++this.apiserverRestarts}.log`),
    );
    this.processes.splice(index, 1, managed);
    this.reaper.track(managed);
    await this.waitReady();
  }

  private spawn(name: string, command: string, args: string[]): ManagedProcess {
    const managed = startProcess(name, command, args, join(this.dir, `${name}.log`));
    this.processes.push(managed);
    this.reaper.track(managed);
    return managed;
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let last = "no answer yet";
    while (Date.now() < deadline) {
      const dead = this.processes.find((p) => p.child.exitCode !== null);
      if (dead) throw new Error(`${dead.name} exited with ${dead.child.exitCode}`);
      try {
        const { status, body } = await this.adminGet("/readyz");
        if (status === 200) return;
        last = `/readyz ${status}: ${body
          .split("\n")
          .filter((l) => l.includes("[-]"))
          .join("; ")}`;
      } catch (error) {
        last = (error as Error).message;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`kube-apiserver not ready after ${READY_TIMEOUT_MS / 1000}s (${last})`);
  }

  /** A raw GET as the admin, for readiness probes and /version. */
  adminGet(path: string): Promise<{ status: number; body: string }> {
    return this.adminRequest("GET", path);
  }

  private adminRequest(method: string, path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const options = { method, ca: this.pki.ca.cert, cert: this.pki.admin.cert, key: this.pki.admin.key, timeout: 5_000 };
      const req = request(`${this.server}${path}`, options, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out`)));
      req.on("error", reject);
      req.end();
    });
  }

  private async writeKubeconfig(who: Who, credentials: Parameters<typeof kubeconfigYaml>[3]): Promise<void> {
    const path = join(this.dir, `${who}.kubeconfig`);
    const user = who === "admin" ? ADMIN.user : who === "jane" ? DEVELOPER.user : OPERATOR_USER;
    await writeFile(path, kubeconfigYaml(this.server, this.pki.ca.cert, user, credentials), { mode: 0o600 });
    this.kubeconfigs.set(who, path);
  }

  private async createOperatorServiceAccount(): Promise<void> {
    const core = this.api("admin", CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: OPERATOR_NAMESPACE } } });
    await core.createNamespacedServiceAccount({ namespace: OPERATOR_NAMESPACE, body: { metadata: { name: OPERATOR_SERVICE_ACCOUNT } } });
    const tokenRequest = await core.createNamespacedServiceAccountToken({
      name: OPERATOR_SERVICE_ACCOUNT,
      namespace: OPERATOR_NAMESPACE,
      body: { spec: { audiences: ["https://kubernetes.default.svc"], expirationSeconds: 86_400 } },
    });
    const token = tokenRequest.status?.token;
    if (!token) throw new Error("TokenRequest for the operator service account returned no token");
    await this.writeKubeconfig("operator", { token });
  }

  /**
   * A kubeconfig file for another service account (created when missing) with a real token, e.g.
   * for a second operator replica that must be told apart in the audit log.
   */
  async serviceAccountKubeconfig(namespace: string, name: string, server = this.server): Promise<string> {
    const core = this.api("admin", CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }).catch((error: { code?: number }) => {
      if (error.code !== 409) throw error;
    });
    const tokenRequest = await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: ["https://kubernetes.default.svc"], expirationSeconds: 86_400 } },
    });
    const path = join(this.dir, `sa-${namespace}-${name}-${randomBytes(3).toString("hex")}.kubeconfig`);
    await writeFile(path, kubeconfigYaml(server, this.pki.ca.cert, `system:serviceaccount:${namespace}:${name}`, { token: tokenRequest.status?.token ?? "" }), {
      mode: 0o600,
    });
    return path;
  }

  private async installCrds(): Promise<void> {
    await this.kubectlOrThrow("admin", ["apply", "-f", AAD_POD_IDENTITY_CRDS]);
    await this.kubectlOrThrow("admin", ["wait", "--for=condition=Established", "--timeout=60s", "-f", AAD_POD_IDENTITY_CRDS]);
  }

  /**
   * kube-controller-manager with the controllers that make namespace deletion real, as AKS runs them,
   * and the one that gives every new namespace its `default` ServiceAccount (which admission
   * webhooks on ServiceAccounts must never hold up).
   */
  async startControllerManager(): Promise<void> {
    if (this.processes.some((p) => p.name === "kube-controller-manager")) return;
    this.spawn("kube-controller-manager", this.assets.kubeControllerManager, [
      `--kubeconfig=${this.kubeconfigPath("admin")}`,
      "--controllers=namespace-controller,garbage-collector-controller,serviceaccount-token-controller,serviceaccount-controller",
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${join(this.dir, "sa.key")}`,
      `--root-ca-file=${join(this.dir, "ca.crt")}`,
      "--leader-elect=false",
      "--secure-port=0",
    ]);
  }

  kubeconfigPath(who: Who): string {
    const path = this.kubeconfigs.get(who);
    if (!path) throw new Error(`no kubeconfig for ${who}`);
    return path;
  }

  kubeConfig(who: Who): KubeConfig {
    const config = new KubeConfig();
    config.loadFromFile(this.kubeconfigPath(who));
    return config;
  }

  api<T>(who: Who, apiClass: new (...args: never[]) => T): T {
    return this.kubeConfig(who).makeApiClient(apiClass as unknown as Parameters<KubeConfig["makeApiClient"]>[0]) as T;
  }

  kubectl(who: Who, args: string[], options: { stdin?: string } = {}): Promise<KubectlResult> {
    return this.kubectlWith(this.kubeconfigPath(who), args, options);
  }

  /** kubectl with another kubeconfig, e.g. one from serviceAccountKubeconfig(). */
  kubectlWith(kubeconfig: string, args: string[], options: { stdin?: string } = {}): Promise<KubectlResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.assets.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], {
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.end(options.stdin ?? "");
    });
  }

  async kubectlOrThrow(who: Who, args: string[], options: { stdin?: string } = {}): Promise<string> {
    const result = await this.kubectl(who, args, options);
    if (result.code !== 0) throw new Error(`kubectl ${args.join(" ")} as ${who} failed (${result.code}): ${result.stderr.trim()}`);
    return result.stdout;
  }

  /**
   * Every write the API server audited, including each whose response reached its client before this
   * call, however late its audit line reaches the file (the log is written per request, not as a
   * transaction with the answer). This makes a write of its own (a dry-run delete of a ConfigMap that does not exist: it changes
   * nothing) and reads the log until that write is in it. Use it before asserting that a write did
   * NOT happen, instead of waiting a while.
   */
  async auditEventsSettled(timeoutMs = 10_000): Promise<AuditEvent[]> {
    const marker = `audit-barrier-${randomBytes(6).toString("hex")}`;
    await this.adminRequest("DELETE", `/api/v1/namespaces/default/configmaps/${marker}?dryRun=All`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const events = await this.auditEvents();
      const index = events.findIndex((event) => event.objectRef?.name === marker && event.stage === "ResponseComplete");
      if (index >= 0) return events.filter((event) => event.objectRef?.name !== marker);
      if (Date.now() > deadline) throw new Error(`the audit log did not record ${marker} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Every write the API server audited, in order (see auditEventsSettled for writes just answered). */
  async auditEvents(): Promise<AuditEvent[]> {
    const text = await readFile(join(this.dir, "audit.log"), "utf8").catch(() => "");
    return text
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as AuditEvent);
  }

  async logTails(lines = 20): Promise<string> {
    const tails = await Promise.all(
      this.processes.map(async (p) => {
        const text = await readFile(p.logFile, "utf8").catch(() => "");
        return `--- ${p.name} (last ${lines} lines) ---\n${text
          .split("\n")
          .slice(-lines - 1)
          .join("\n")}`;
      }),
    );
    return tails.join("\n");
  }

  /** Pids of the control plane's processes (for leak checks). */
  pids(): number[] {
    return this.processes.map((p) => p.child.pid ?? 0);
  }

  async stop(): Promise<void> {
    // Every process is stopped even when one needed SIGKILL; that one then fails the caller.
    const failures: unknown[] = [];
    for (const managed of [...this.processes].reverse()) await stopProcess(managed).catch((error: unknown) => failures.push(error));
    this.reaper.dispose();
    if (failures.length > 0) {
      await rm(this.dir, { recursive: true, force: true });
      throw failures[0];
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
