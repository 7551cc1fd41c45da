// Bundles the compiled operator (dist/src/main.js, after `npm run build`) into dist/bundle/main.js:
// only the code the operator can reach, one file per lazily loaded part, minified. Most of what Node
// otherwise loads and keeps is @kubernetes/client-node's generated API and model classes (its
// KubeConfig alone imports every one, ~70 MiB of RSS); the bundle keeps the five API groups in use.
//   npm run bundle   (BENCHMARKS.md, memory: what it saves)
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

export const BUNDLE_DIR = fileURLToPath(new URL("../dist/bundle/", import.meta.url));

await build({
  entryPoints: [fileURLToPath(new URL("../dist/src/main.js", import.meta.url))],
  outdir: BUNDLE_DIR,
  bundle: true,
  splitting: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  // Error and class names stay readable in logs and stack traces.
  keepNames: true,
  // CommonJS dependencies require() Node's built-in modules; an ES module has no require of its own.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: "warning",
});
console.log(`bundled into ${BUNDLE_DIR}`);
