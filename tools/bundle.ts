// Bundles the operator (src/main.ts, TypeScript read by esbuild itself) into one directory that runs
// with Node alone: only the code the operator can reach, one file per lazily loaded part, minified,
// and a package.json that makes its files ES modules. It is what the image ships (Dockerfile) and what
// the tests' operator processes run (test/support/operator-bundle.ts), from this one function. Most of
// what Node otherwise loads and keeps is @kubernetes/client-node's generated API and model classes (its
// KubeConfig alone imports every one, ~70 MiB of RSS); the bundle keeps the five API groups in use.
// The build is stamped (src/version.ts): package.json's version and the git revision, or REVISION from
// the environment where there is no git (the image's build stage: `--build-arg REVISION=...`).
//   npm run bundle [-- --outdir=DIR]   (default dist/bundle/; BENCHMARKS.md, memory: what it saves)
import { build, type Metafile, type Plugin } from "esbuild";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UNKNOWN_REVISION } from "../src/version.js";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const BUNDLE_DIR = join(ROOT, "dist", "bundle");
/** The entry file inside a bundle directory. */
export const BUNDLE_MAIN = "main.js";
/** The Node line the bundle is built for: the image's and the tests' (test/runtime.test.ts holds them together). */
export const BUNDLE_TARGET = "node24";

/** What src/version.ts reports for a build (the Node version is the running one's). */
export interface BuildStamp {
  version: string;
  revision: string;
}

/**
 * This work tree's stamp: REVISION when set (a build without git, e.g. the image's), else HEAD's
 * commit, "-dirty" when tracked files differ from it, else "unknown" (no git, no repository).
 */
export function buildStamp(env: NodeJS.ProcessEnv = process.env): BuildStamp {
  const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
  return { version, revision: env.REVISION?.trim() || gitRevision() || UNKNOWN_REVISION };
}

function gitRevision(): string | undefined {
  const git = (...args: string[]) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    const commit = git("rev-parse", "--short=12", "HEAD");
    // Refresh stat-only changes first (a touched file is no change), then compare the contents.
    git("update-index", "-q", "--refresh");
    const dirty = git("diff-index", "--name-only", "HEAD", "--") !== "";
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    return undefined; // no git, or not a repository (a source archive, the image's build stage)
  }
}

/**
 * The stamp in esbuild's terms: `define` for src/version.ts's build-time constants, and a plugin that
 * gives its package.json import (the fallback of a run from the sources) nothing but the version, so
 * the rest of package.json (scripts, dependency lists) is not shipped in the bundle.
 */
export function stampOptions(stamp: BuildStamp): { define: Record<string, string>; plugins: Plugin[] } {
  const version = join(ROOT, "src", "version.ts");
  const plugin: Plugin = {
    name: "version-stamp",
    setup(build) {
      build.onResolve({ filter: /package\.json$/ }, (args) => (args.importer === version ? { path: "package.json", namespace: "version-stamp" } : undefined));
      build.onLoad({ filter: /.*/, namespace: "version-stamp" }, () => ({ contents: JSON.stringify({ version: stamp.version }), loader: "json" }));
    },
  };
  return {
    define: { __AZURE_MSI_OPERATOR_VERSION__: JSON.stringify(stamp.version), __AZURE_MSI_OPERATOR_REVISION__: JSON.stringify(stamp.revision) },
    plugins: [plugin],
  };
}

/** Bundles into `outdir` (emptied first); returns esbuild's metafile (which files went in). */
export async function bundleOperator(outdir: string, stamp: BuildStamp = buildStamp()): Promise<Metafile> {
  // Chunk names carry content hashes: a previous build's chunks would stay beside the new ones.
  await rm(outdir, { recursive: true, force: true });
  const result = await build({
    entryPoints: [join(ROOT, "src", "main.ts")],
    absWorkingDir: ROOT,
    outdir,
    bundle: true,
    splitting: true,
    platform: "node",
    format: "esm",
    target: BUNDLE_TARGET,
    minify: true,
    // Error and class names stay readable in logs and stack traces.
    keepNames: true,
    metafile: true,
    ...stampOptions(stamp),
    // CommonJS dependencies require() Node's built-in modules; an ES module has no require of its own.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: "warning",
  });
  // No package.json above the image's /app/dist/bundle says what .js files are; this one does.
  await writeFile(join(outdir, "package.json"), `${JSON.stringify({ type: "module" })}\n`);
  return result.metafile;
}

/**
 * The operator as one CommonJS file, for Node's single executable applications (tools/release.ts):
 * their main script is one CommonJS file that can require Node's built-in modules only. The lazily
 * loaded parts are inlined (no chunks to load from beside it). Returns esbuild's metafile.
 */
export async function bundleSingleFile(outfile: string, stamp: BuildStamp = buildStamp()): Promise<Metafile> {
  const result = await build({
    entryPoints: [join(ROOT, "src", "main.ts")],
    absWorkingDir: ROOT,
    outfile,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: BUNDLE_TARGET,
    minify: true,
    keepNames: true,
    metafile: true,
    ...stampOptions(stamp),
    logLevel: "warning",
  });
  return result.metafile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = process.argv.find((value) => value.startsWith("--outdir="));
  const outdir = arg ? resolve(arg.slice("--outdir=".length)) : BUNDLE_DIR;
  await bundleOperator(outdir);
  console.log(`bundled into ${outdir}`);
}
