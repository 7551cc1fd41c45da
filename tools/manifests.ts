// Regenerates manifests/base/ from the Helm chart (`npm run manifests`): the chart is the source of
// truth, the kustomize base is `helm template` of its defaults, split into one file per template.
// test/chart.test.ts fails when the committed files differ from a fresh render.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Helm } from "../test/support/helm.js";

export const BASE_DIR = fileURLToPath(new URL("../manifests/base/", import.meta.url));
/** The generated files, named after the chart templates they come from; namespace.yaml and kustomization.yaml stay hand-written. */
export const GENERATED = ["rbac.yaml", "webhooks.yaml", "deployment.yaml", "service.yaml", "pdb.yaml"] as const;
export const GENERATOR = "npm run manifests";
export const HEADER =
  `# Generated from charts/azure-msi-operator by \`${GENERATOR}\` (helm template, default values, release and\n` +
  `# namespace azure-msi-operator): edit the chart, then regenerate. test/chart.test.ts holds the two together.\n`;

const SOURCE = /^# Source: [^/\n]+\/templates\/(\S+)\n/;

/**
 * `helm template` output as one file per template: each document's `# Source:` line names its
 * template; the documents of one template keep helm's order. Templates that rendered nothing (the
 * optional ones) have no file; an unexpected one is an error, so a new template is not silently lost.
 */
export function splitBySource(rendered: string): Map<string, string> {
  const files = new Map<string, string[]>();
  for (const chunk of rendered.split(/^---\n/m)) {
    if (chunk.trim() === "") continue;
    const source = SOURCE.exec(chunk);
    if (!source) throw new Error(`helm template printed a document without a "# Source:" line:\n${chunk.slice(0, 200)}`);
    const body = chunk.slice(source[0].length).replace(/\s+$/, "\n");
    files.set(source[1]!, [...(files.get(source[1]!) ?? []), body]);
  }
  const unexpected = [...files.keys()].filter((name) => !(GENERATED as readonly string[]).includes(name));
  if (unexpected.length > 0)
    throw new Error(`templates ${unexpected.join(", ")} render with the defaults but have no file in manifests/base/: add them to GENERATED`);
  return new Map(GENERATED.filter((name) => files.has(name)).map((name) => [name, HEADER + files.get(name)!.join("---\n")]));
}

/** The files manifests/base/ should hold, rendered by `helm`. */
export async function renderManifests(helm: Helm): Promise<Map<string, string>> {
  const result = await helm.template();
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  const files = splitBySource(result.stdout);
  const missing = GENERATED.filter((name) => !files.has(name));
  if (missing.length > 0) throw new Error(`the chart rendered nothing for ${missing.join(", ")}`);
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const helm = await Helm.create();
  const files = await renderManifests(helm).finally(() => helm.close());
  let changed = 0;
  for (const [name, content] of files) {
    const path = `${BASE_DIR}${name}`;
    if ((await readFile(path, "utf8").catch(() => "")) === content) continue;
    await writeFile(path, content);
    changed += 1;
    console.log(`manifests/base/${name} regenerated`);
  }
  if (changed === 0) console.log("manifests/base/ is up to date");
}
