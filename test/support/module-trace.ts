// Which modules a real operator process loaded: a load hook, given to the process through
// NODE_OPTIONS, appends every file: URL it loads to a file. Process inspection rather than a debug
// endpoint, so the operator carries nothing for it. Works for the sources (tsx), dist/ and the bundle.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

/**
 * The hook itself, as a data: URL module (it must load before tsx or the operator). Node ≥ 22.15 has
 * synchronous in-thread hooks (module.registerHooks, which also see require()); Node 20 has only
 * module.register, whose hooks run on a loader thread and see ES module loads.
 */
function hookSource(traceFile: string): string {
  const file = JSON.stringify(traceFile);
  const offThread = `import { appendFileSync } from "node:fs";
export async function load(url, context, next) { if (url.startsWith("file:")) appendFileSync(${file}, url + "\\n"); return next(url, context); }`;
  return `import { appendFileSync } from "node:fs";
import * as nodeModule from "node:module";
if (typeof nodeModule.registerHooks === "function") {
  nodeModule.registerHooks({ load(url, context, next) { if (url.startsWith("file:")) appendFileSync(${file}, url + "\\n"); return next(url, context); } });
} else {
  nodeModule.register("data:text/javascript," + encodeURIComponent(${JSON.stringify(offThread)}));
}`;
}

/** NODE_OPTIONS for a process whose loaded modules are to be traced into `traceFile` (after `nodeOptions`). */
export function tracingNodeOptions(traceFile: string, nodeOptions = ""): string {
  return [nodeOptions, `--import=data:text/javascript,${encodeURIComponent(hookSource(traceFile))}`].filter(Boolean).join(" ");
}

/** The files a traced process loaded, in order, each once. */
export async function loadedFiles(traceFile: string): Promise<string[]> {
  const text = await readFile(traceFile, "utf8").catch(() => "");
  return [...new Set(text.split("\n").filter(Boolean))].map((url) => fileURLToPath(url.split("?")[0]!));
}

/** Who loaded what, by package or by the code a bundle chunk contains (esbuild keeps class names). */
export interface Probe {
  name: string;
  /** A path of the unbundled module graph, e.g. "/node_modules/@azure/". */
  path: string;
  /** Text only that code's bundle chunk contains, e.g. a class name of the package. */
  marker: string;
}

export const AZURE_SDK: Probe = { name: "the Azure SDK", path: "/node_modules/@azure/", marker: "ManagedServiceIdentityClient" };
export const SELFSIGNED: Probe = { name: "selfsigned", path: "/node_modules/selfsigned/", marker: "X509CertificateGenerator" };

/** The loaded files that are (or, in a bundle, contain) what `probe` names. */
export async function filesOf(probe: Probe, files: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const file of files) {
    if (file.includes(probe.path)) found.push(file);
    // A bundle: dist/bundle/, or the tests' own build of it in the cache (test/support/operator-bundle.ts).
    else if (file.includes("/bundle/") && (await readFile(file, "utf8").catch(() => "")).includes(probe.marker)) found.push(file);
  }
  return found;
}
export const SYNCER: Probe = { name: "the syncer", path: "/src/syncer/", marker: "IdentityWriter" };
