// Regenerates README's configuration, Helm values and metrics tables from the code and the chart (`npm run docs`), so the
// documentation cannot drift; test/readme.test.ts fails when README is out of date.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { renderFlagsMarkdown } from "../src/config/help.js";
import { renderMetricsMarkdown } from "../src/metrics/docs.js";
import { renderValuesMarkdown } from "./chart-values.js";

export const README = fileURLToPath(new URL("../README.md", import.meta.url));

const SECTIONS: Record<string, () => string> = { flags: renderFlagsMarkdown, values: renderValuesMarkdown, metrics: renderMetricsMarkdown };

/** README with every `<!-- name:start -->…<!-- name:end -->` section replaced by its generated table. */
export function renderReadme(readme: string): string {
  let out = readme;
  for (const [name, render] of Object.entries(SECTIONS)) {
    const start = `<!-- ${name}:start -->\n`;
    const end = `<!-- ${name}:end -->`;
    const from = out.indexOf(start);
    const to = out.indexOf(end, from);
    if (from < 0 || to < 0) throw new Error(`README.md has no ${start.trim()} … ${end} section`);
    out = out.slice(0, from + start.length) + render() + out.slice(to);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const current = await readFile(README, "utf8");
  const next = renderReadme(current);
  if (next !== current) await writeFile(README, next);
  console.log(next === current ? "README.md is up to date" : "README.md tables regenerated");
}
