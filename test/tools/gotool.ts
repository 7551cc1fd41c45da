import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { constants, existsSync } from "node:fs";
import { access, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { cacheRoot } from "../support/cache-dir.js";
import { buildOnce, isAlive } from "./build-lock.js";

/** A command-line tool that tests run, built from a pinned Go module on the Go module proxy. */
export interface GoTool {
  /** The binary's name. */
  name: string;
  /** Module path on the proxy, e.g. github.com/prometheus/prometheus. */
  module: string;
  /** The pinned module version; it is part of the cache key, so changing it builds anew. */
  version: string;
  /** The main package inside the module, e.g. ./cmd/promtool. */
  package: string;
  /** `-X name=value` link flags: a module build does not stamp the version a tool reports by itself. */
  stamp?: Readonly<Record<string, string>>;
  /** Env var naming an existing binary to use instead (like the control plane's TEST_ASSET_*). */
  override: string;
}

export interface GoToolOptions {
  /** The environment the override is read from and `go` runs in (tests pass their own). */
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

const HEARTBEAT_MS = 30_000;
// CGO_ENABLED=0 for static binaries. GOFLAGS is cleared so the caller's go flags (-tags, -race, …)
// cannot change the binary behind the cache key's back; GOWORK=off and a fresh cwd keep a go.work
// or go.mod around from steering the build.
const BUILD_ENV = { CGO_ENABLED: "0", GOFLAGS: "", GOWORK: "off" };

/**
 * The path of `tool`: the binary its override env var names, else the pinned build from the cache,
 * built once (minutes) when missing. A same-named binary on PATH is never used, so tests run the
 * version this project pins rather than whatever the machine happens to have.
 */
export async function goToolBinary(tool: GoTool, options: GoToolOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const explicit = env[tool.override];
  if (explicit) return checkedOverride(tool, explicit);
  const args = installArgs(tool);
  const toolsDir = join(cacheRoot(), "tools");
  await mkdir(toolsDir, { recursive: true });
  const dir = join(toolsDir, await cacheKey(tool, args, env, toolsDir));
  const binary = join(dir, tool.name);
  await buildOnce({ lock: `${dir}.lock`, done: () => existsSync(binary), build: () => install(tool, args, binary, env, log), log });
  if (!existsSync(binary)) throw new Error(`${tool.name} build finished but ${binary} is missing`);
  return binary;
}

/** `go install` arguments; they are hashed into the cache key, so a change to them rebuilds. */
function installArgs(tool: GoTool): string[] {
  const stamp = Object.entries(tool.stamp ?? {}).map(([name, value]) => `-X ${name}=${value}`);
  const pkg = tool.package === "." ? tool.module : `${tool.module}/${tool.package.replace(/^\.\//, "")}`;
  return ["install", "-trimpath", "-ldflags", ["-s", "-w", ...stamp].join(" "), `${pkg}@${tool.version}`];
}

async function cacheKey(tool: GoTool, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  const go = await runGo(["env", "GOVERSION", "GOOS", "GOARCH"], { env: { ...env, ...BUILD_ENV }, cwd, capture: true, tool });
  const hash = createHash("sha256").update(JSON.stringify({ args, go, BUILD_ENV })).digest("hex");
  return `${tool.name}-${tool.version}-${hash.slice(0, 12)}`;
}

/**
 * Builds into a directory of this process's own and renames the binary into place, so no caller ever
 * sees half of it. Runs under the build lock, which is what makes clearing abandoned partials safe.
 */
async function install(tool: GoTool, args: string[], binary: string, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const elapsed = () => `${Math.round((Date.now() - started) / 1000)}s`;
  log(`[tools] no cached ${tool.name} ${tool.version}: building ${args.at(-1)} from the Go module proxy (once; takes minutes)`);
  const partial = `${dirname(binary)}.partial-${process.pid}`;
  await removeAbandonedPartials(dirname(binary));
  await mkdir(partial);
  const heartbeat = setInterval(() => log(`[tools] still building ${tool.name} (${elapsed()})`), HEARTBEAT_MS);
  try {
    await runGo(args, { env: { ...env, ...BUILD_ENV, GOBIN: partial }, cwd: partial, capture: false, tool });
    await mkdir(dirname(binary), { recursive: true });
    await rename(join(partial, tool.name), binary);
    log(`[tools] built ${tool.name} in ${elapsed()}: ${binary}`);
  } finally {
    clearInterval(heartbeat);
    await rm(partial, { recursive: true, force: true });
  }
}

/** What builders killed mid-build (Ctrl-C during the first run) left behind would stay in the cache otherwise. */
async function removeAbandonedPartials(dir: string): Promise<void> {
  const prefix = `${basename(dir)}.partial-`;
  for (const name of await readdir(dirname(dir))) {
    const pid = Number(name.slice(prefix.length));
    if (name.startsWith(prefix) && (pid === process.pid || !isAlive(pid))) await rm(join(dirname(dir), name), { recursive: true, force: true });
  }
}

async function checkedOverride(tool: GoTool, path: string): Promise<string> {
  const fail = (reason: string) =>
    new Error(
      `${tool.override}=${path} ${reason}: point it at a ${tool.name} binary, or unset it to build the pinned ${tool.name} (${tool.module} ${tool.version}) from the Go module proxy`,
    );
  const found = await stat(path).catch(() => undefined);
  if (!found) throw fail("does not exist");
  if (!found.isFile()) throw fail("is not a file");
  await access(path, constants.X_OK).catch(() => {
    throw fail("is not executable");
  });
  return path;
}

function runGo(args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string; capture: boolean; tool: GoTool }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("go", args, { env: options.env, cwd: options.cwd, stdio: ["ignore", options.capture ? "pipe" : "inherit", "inherit"] });
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", (error) =>
      reject(
        new Error(`cannot run go (${error.message}): building ${options.tool.name} needs Go on PATH, or set ${options.tool.override} to an existing binary`),
      ),
    );
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`go ${args.join(" ")} exited with ${code}`))));
  });
}
