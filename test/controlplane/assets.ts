import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheRoot } from "../support/cache-dir.js";

/** Paths of the control-plane binaries tests run. */
export interface ControlPlaneAssets {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
}

const goDir = fileURLToPath(new URL("./go/", import.meta.url));
const LOCK_STALE_MS = 30 * 60_000;

/**
 * Finds the binaries: explicit TEST_ASSET_* paths or KUBEBUILDER_ASSETS win (as in envtest);
 * otherwise they are built from the Go module proxy once and cached by a key over everything
 * that decides their content (the wrapper modules, the build script, the Go version).
 */
export async function controlPlaneAssets(log: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Promise<ControlPlaneAssets> {
  const explicit = fromEnvironment();
  if (explicit) return explicit;
  const dir = join(cacheRoot(), "controlplane", await cacheKey());
  const assets = inDir(dir);
  if (!allExist(assets)) await buildOnce(dir, log);
  if (!allExist(assets)) throw new Error(`control plane build finished but binaries are missing in ${dir}`);
  return assets;
}

function inDir(dir: string): ControlPlaneAssets {
  return {
    etcd: join(dir, "etcd"),
    kubeApiserver: join(dir, "kube-apiserver"),
    kubeControllerManager: join(dir, "kube-controller-manager"),
    kubectl: join(dir, "kubectl"),
  };
}

function allExist(assets: ControlPlaneAssets): boolean {
  return (Object.values(assets) as string[]).every((path) => existsSync(path));
}

function fromEnvironment(): ControlPlaneAssets | undefined {
  const env = process.env;
  const base = env.KUBEBUILDER_ASSETS ? inDir(env.KUBEBUILDER_ASSETS) : undefined;
  const etcd = env.TEST_ASSET_ETCD ?? base?.etcd;
  const kubeApiserver = env.TEST_ASSET_KUBE_APISERVER ?? base?.kubeApiserver;
  const kubectl = env.TEST_ASSET_KUBECTL ?? base?.kubectl;
  const kubeControllerManager = env.TEST_ASSET_KUBE_CONTROLLER_MANAGER ?? base?.kubeControllerManager;
  if (!etcd || !kubeApiserver || !kubectl || !kubeControllerManager) return undefined;
  const assets = { etcd, kubeApiserver, kubectl, kubeControllerManager };
  const missing = Object.entries(assets).filter(([, path]) => !existsSync(path));
  if (missing.length > 0) {
    throw new Error(`control plane binaries named by the environment do not exist: ${missing.map(([name, path]) => `${name}=${path}`).join(", ")}`);
  }
  return assets;
}

async function cacheKey(): Promise<string> {
  const hash = createHash("sha256");
  for (const file of ["build.sh", "kubernetes/go.mod", "kubernetes/go.sum", "etcd/go.mod", "etcd/go.sum"]) {
    hash.update(file).update(await readFile(join(goDir, file)));
  }
  hash.update(await run("go", ["env", "GOVERSION"], { capture: true }));
  const kube = (await readFile(join(goDir, "kubernetes/go.mod"), "utf8")).match(/^\s*(?:require )?k8s\.io\/kubernetes (v\S+)/m)?.[1] ?? "kubernetes";
  return `${kube}-${hash.digest("hex").slice(0, 12)}`;
}

/** Builds into `dir` unless another process is already doing it, in which case it waits for that one. */
async function buildOnce(dir: string, log: (line: string) => void): Promise<void> {
  await mkdir(join(dir, ".."), { recursive: true });
  const lock = `${dir}.lock`;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      const { mtimeMs } = await stat(lock).catch(() => ({ mtimeMs: 0 }));
      if (Date.now() - mtimeMs > LOCK_STALE_MS) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      log(`[controlplane] waiting for another build of ${dir}`);
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      if (allExist(inDir(dir))) return;
    }
  }
  try {
    if (allExist(inDir(dir))) return;
    log(`[controlplane] no cached binaries in ${dir}: building them from the Go module proxy (once; takes minutes)`);
    await run("bash", [join(goDir, "build.sh"), dir], { capture: false });
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

function run(command: string, args: string[], options: { capture: boolean }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", options.capture ? "pipe" : "inherit", "inherit"] });
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(" ")} exited with ${code}`))));
  });
}
