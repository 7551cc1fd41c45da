// Bundles the operator (src/main.ts, TypeScript read by esbuild itself) into one directory that runs
// with Node alone: only the code the operator can reach, one file per lazily loaded part, minified,
// and a package.json that makes its files ES modules. It is what the image ships (Dockerfile) and what
// the tests' operator processes run (test/support/operator-bundle.ts), from this one function. Most of
// what Node otherwise loads and keeps is @kubernetes/client-node's generated API and model classes (its
// KubeConfig alone imports every one, ~70 MiB of RSS); the bundle keeps the five API groups in use.
//   npm run bundle [-- --outdir=DIR]   (default dist/bundle/; BENCHMARKS.md, memory: what it saves)
import { build, type Metafile } from "esbuild";
import { rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const BUNDLE_DIR = join(ROOT, "dist", "bundle");
/** The entry file inside a bundle directory. */
export const BUNDLE_MAIN = "main.js";
/** The Node line the bundle is built for: the image's and the tests' (test/runtime.test.ts holds them together). */
export const BUNDLE_TARGET = "node24";

/** Bundles into `outdir` (emptied first); returns esbuild's metafile (which files went in). */
export async function bundleOperator(outdir: string): Promise<Metafile> {
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
    // CommonJS dependencies require() Node's built-in modules; an ES module has no require of its own.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: "warning",
  });
  // No package.json above the image's /app/dist/bundle says what .js files are; this one does.
  await writeFile(join(outdir, "package.json"), `${JSON.stringify({ type: "module" })}\n`);
  return result.metafile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = process.argv.find((value) => value.startsWith("--outdir="));
  const outdir = arg ? resolve(arg.slice("--outdir=".length)) : BUNDLE_DIR;
  await bundleOperator(outdir);
  console.log(`bundled into ${outdir}`);
}
