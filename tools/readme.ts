// Regenerates the generated tables of the documentation from the code and the chart (`npm run docs`),
// so they cannot drift: the flags, chart values and metrics tables of docs/reference.md and the values
// table of the chart's README. test/readme.test.ts fails when one is out of date.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { renderFlagsMarkdown } from "../src/config/help.js";
import { renderMetricsMarkdown } from "../src/metrics/docs.js";
import { renderValuesMarkdown } from "./chart-values.js";

export const REFERENCE = fileURLToPath(new URL("../docs/reference.md", import.meta.url));
export const CHART_README = fileURLToPath(new URL("../charts/azure-msi-operator/README.md", import.meta.url));

const SECTIONS = { flags: renderFlagsMarkdown, values: renderValuesMarkdown, metrics: renderMetricsMarkdown } as const;
export type Section = keyof typeof SECTIONS;

/** Each file with generated tables, and which. */
export const GENERATED_DOCS: ReadonlyArray<{ path: string; sections: readonly Section[] }> = [
  { path: REFERENCE, sections: ["flags", "values", "metrics"] },
  { path: CHART_README, sections: ["values"] },
];

/** `text` with each `<!-- name:start -->…<!-- name:end -->` section of `sections` replaced by its generated table. */
export function renderSections(text: string, sections: readonly Section[], file = "the file"): string {
  let out = text;
  for (const name of sections) {
    const start = `<!-- ${name}:start -->\n`;
    const end = `<!-- ${name}:end -->`;
    const from = out.indexOf(start);
    const to = out.indexOf(end, from);
    if (from < 0 || to < 0) throw new Error(`${file} has no ${start.trim()} … ${end} section`);
    out = out.slice(0, from + start.length) + SECTIONS[name]() + out.slice(to);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const { path, sections } of GENERATED_DOCS) {
    const current = await readFile(path, "utf8");
    const next = renderSections(current, sections, path);
    if (next !== current) await writeFile(path, next);
    console.log(next === current ? `${path} is up to date` : `${path}: tables regenerated`);
  }
}
