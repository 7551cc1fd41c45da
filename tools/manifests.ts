// Regenerates manifests/ from the Helm chart (`npm run manifests`): the chart is the source of truth.
// manifests/base/ is `helm template` of its defaults, manifests/monitoring/ (and aks/) of the
// monitoring templates with those values on, each split into one file per template. kubectl, not
// Helm, applies them: the labels that say Helm manages an object are left out (HELM_ONLY_LABELS), and
// so is the chart's `helm test` pod.
// test/chart.test.ts fails when the committed files differ from a fresh render.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Helm } from "../test/support/helm.js";

export const MANIFESTS = fileURLToPath(new URL("../manifests/", import.meta.url));
export const BASE_DIR = `${MANIFESTS}base/`;
/** manifests/base/'s generated files, named after the chart templates they come from; namespace.yaml and kustomization.yaml stay hand-written. */
export const GENERATED = ["rbac.yaml", "webhooks.yaml", "deployment.yaml", "service.yaml", "pdb.yaml"] as const;
export const GENERATOR = "npm run manifests";
/**
 * The chart has no default image (a default install whose image cannot be pulled would leave the
 * fail-closed webhooks without a replica), so every render names one: for manifests/ the bare name
 * kustomize's `images:` rewrites (docs/install-upgrade-uninstall.md).
 */
export const KUSTOMIZE_IMAGE = "image.repository=azure-msi-operator";

export interface Output {
  /** Directory under manifests/ (its kustomization.yaml is hand-written and lists the files). */
  dir: string;
  /** `helm template --set` values (the chart's defaults otherwise); each output names the image. */
  set: readonly string[];
  /** The templates written, each to a file of its name. */
  templates: readonly string[];
  /**
   * Every template that renders must be one of `templates` (the defaults: a new template is not
   * silently left out of `kubectl apply -k`); otherwise only `templates` are rendered (--show-only,
   * which fails when one renders nothing).
   */
  whole: boolean;
}

export const OUTPUTS: readonly Output[] = [
  { dir: "base", set: [KUSTOMIZE_IMAGE], templates: GENERATED, whole: true },
  {
    dir: "monitoring",
    set: [KUSTOMIZE_IMAGE, "monitoring.podMonitor.enabled=true", "monitoring.prometheusRule.enabled=true", "monitoring.dashboard.enabled=true"],
    templates: ["podmonitor.yaml", "prometheusrule.yaml", "dashboard.yaml"],
    whole: false,
  },
  {
    dir: "monitoring/aks",
    set: [KUSTOMIZE_IMAGE, "monitoring.podMonitor.enabled=true", "monitoring.podMonitor.apiGroup=azmonitoring.coreos.com"],
    templates: ["podmonitor.yaml"],
    whole: false,
  },
];

/** The comment on top of each generated file: how to get it again. */
export function header(set: readonly string[]): string {
  const values = set.length === 0 ? "default values" : "its defaults and the values below";
  return (
    `# Generated from charts/azure-msi-operator by \`${GENERATOR}\` (helm template, ${values}, release and\n` +
    `# namespace azure-msi-operator): edit the chart, then regenerate. test/chart.test.ts holds the two together.\n` +
    (set.length === 0 ? "" : `#   --set ${set.join(",")}\n`)
  );
}
export const HEADER = header([]);

const SOURCE = /^# Source: [^/\n]+\/templates\/(\S+)\n/;

/** The chart's labels that only a Helm release has: helm.sh/chart, and managed-by with Helm (.Release.Service). */
export const HELM_ONLY_LABELS = /^ +(helm\.sh\/chart: \S+|app\.kubernetes\.io\/managed-by: Helm)\n/gm;

/**
 * `helm template` output as one file per template of `output`: each document's `# Source:` line
 * names its template; the documents of one template keep helm's order. Templates that rendered
 * nothing have no file; a template that is not among the output's is an error.
 */
export function splitBySource(rendered: string, output: Pick<Output, "dir" | "set" | "templates">): Map<string, string> {
  const files = new Map<string, string[]>();
  for (const chunk of rendered.split(/^---\n/m)) {
    if (chunk.trim() === "") continue;
    const source = SOURCE.exec(chunk);
    if (!source) throw new Error(`helm template printed a document without a "# Source:" line:\n${chunk.slice(0, 200)}`);
    const body = chunk.slice(source[0].length).replace(HELM_ONLY_LABELS, "").replace(/\s+$/, "\n");
    files.set(source[1]!, [...(files.get(source[1]!) ?? []), body]);
  }
  const unexpected = [...files.keys()].filter((name) => !output.templates.includes(name));
  if (unexpected.length > 0)
    throw new Error(`templates ${unexpected.join(", ")} render but have no file in manifests/${output.dir}/: add them to its output in tools/manifests.ts`);
  const top = header(output.set);
  return new Map(output.templates.filter((name) => files.has(name)).map((name) => [name, top + files.get(name)!.join("---\n")]));
}

/** The files an output directory should hold, rendered by `helm`, by name. */
export async function renderOutput(helm: Helm, output: Output): Promise<Map<string, string>> {
  const extra = [
    "--skip-tests",
    ...(output.set.length > 0 ? ["--set", output.set.join(",")] : []),
    ...(output.whole ? [] : output.templates.flatMap((name) => ["--show-only", `templates/${name}`])),
  ];
  const result = await helm.template({ extra });
  if (result.code !== 0) throw new Error(`helm template for manifests/${output.dir}/ failed: ${result.stderr}`);
  const files = splitBySource(result.stdout, output);
  const missing = output.templates.filter((name) => !files.has(name));
  if (missing.length > 0) throw new Error(`the chart rendered nothing for manifests/${output.dir}/${missing.join(", ")}`);
  return files;
}

/** Every generated file under manifests/, by its path there (e.g. monitoring/aks/podmonitor.yaml). */
export async function renderManifests(helm: Helm): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  for (const output of OUTPUTS) for (const [name, content] of await renderOutput(helm, output)) all.set(`${output.dir}/${name}`, content);
  return all;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const helm = await Helm.create();
  const files = await renderManifests(helm).finally(() => helm.close());
  let changed = 0;
  for (const [name, content] of files) {
    if ((await readFile(`${MANIFESTS}${name}`, "utf8").catch(() => "")) === content) continue;
    await writeFile(`${MANIFESTS}${name}`, content);
    changed += 1;
    console.log(`manifests/${name} regenerated`);
  }
  if (changed === 0) console.log("manifests/ is up to date");
}
