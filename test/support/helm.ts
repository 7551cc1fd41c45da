// helm as the tests and tools/manifests.ts run it: the pinned build from test/tools/helm.ts, with a
// kubeconfig when it talks to an API server, its caches kept out of $HOME.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { helmBinary } from "../tools/helm.js";

export const CHART_DIR = fileURLToPath(new URL("../../charts/azure-msi-operator/", import.meta.url));
/** The release and namespace manifests/base/ is rendered for (and the control plane's operator namespace). */
export const RELEASE = "azure-msi-operator";

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Helm {
  private constructor(
    readonly binary: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly home: string,
  ) {}

  /** `kubeconfig`: the cluster that install, upgrade and uninstall talk to. */
  static async create(kubeconfig?: string): Promise<Helm> {
    const home = await mkdtemp(join(tmpdir(), "amo-helm-"));
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      // client-go keeps its discovery cache under $HOME/.kube (in the working directory without HOME).
      HOME: home,
      HELM_CACHE_HOME: join(home, "cache"),
      HELM_CONFIG_HOME: join(home, "config"),
      HELM_DATA_HOME: join(home, "data"),
      ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
    };
    return new Helm(await helmBinary(), env, home);
  }

  /** Removes helm's caches and config (and the release records of no cluster: those live in the cluster). */
  close(): Promise<void> {
    return rm(this.home, { recursive: true, force: true });
  }

  run(args: readonly string[], stdin?: string): Promise<HelmResult> {
    return new Promise((resolve, reject) => {
      const child = execFile(this.binary, [...args], { env: this.env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        if (error && typeof error.code !== "number") reject(new Error(`cannot run ${this.binary}: ${error.message}`, { cause: error }));
        else resolve({ code, stdout, stderr });
      });
      child.stdin?.end(stdin ?? "");
    });
  }

  async runOrThrow(args: readonly string[], stdin?: string): Promise<string> {
    const result = await this.run(args, stdin);
    if (result.code !== 0) throw new Error(`helm ${args.join(" ")} exited with ${result.code}: ${result.stderr}`);
    return result.stdout;
  }

  /** `helm template` of the chart; `values` is a values document (YAML or JSON) passed on stdin. */
  template(options: { values?: string; release?: string; namespace?: string; extra?: readonly string[] } = {}): Promise<HelmResult> {
    return this.run(
      [
        "template",
        options.release ?? RELEASE,
        CHART_DIR,
        "--namespace",
        options.namespace ?? RELEASE,
        ...(options.values !== undefined ? ["--values", "-"] : []),
        ...(options.extra ?? []),
      ],
      options.values,
    );
  }
}
