import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { loadYaml } from "@kubernetes/client-node";
import type { SchemaNode } from "../tools/chart-values.js";
import { CHART_README, GENERATED_DOCS, REFERENCE, renderSections } from "../tools/readme.js";

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const CHART = fileURLToPath(new URL("../charts/azure-msi-operator/", import.meta.url));

test("the generated tables (docs/reference.md's flags, values and metrics, the chart README's values) are what the code and the chart generate (run `npm run docs` when this fails)", async () => {
  for (const { path, sections } of GENERATED_DOCS) {
    const text = await readFile(path, "utf8");
    assert.equal(text, renderSections(text, sections, path), path);
  }
  assert.throws(() => renderSections("no tables here\n", ["values"], "x.md"), /x\.md has no <!-- values:start --> … <!-- values:end --> section/);
});

test("every flag, alias and env var that `azure-msi-operator --help` prints is in the reference's table with its default", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", MAIN, "--help"]);
  const readme = await readFile(REFERENCE, "utf8");
  const table = readme.slice(readme.indexOf("<!-- flags:start -->"), readme.indexOf("<!-- flags:end -->"));
  const flags = [...stdout.matchAll(/(?<![\w-])--([a-z][\w.-]*)/g)].map((match) => match[1]!).filter((name) => name !== "help" && name !== "version");
  const envs = [...stdout.matchAll(/\$([A-Z][A-Z0-9_]+)/g)].map((match) => match[1]!);
  assert.ok(flags.length > 40 && envs.length > 40, `--help printed ${flags.length} flags and ${envs.length} env vars`);
  for (const flag of new Set(flags)) assert.ok(table.includes(`\`--${flag}\``), `--${flag} missing from the reference`);
  for (const env of new Set(envs)) assert.ok(table.includes(`\`${env}\``), `${env} missing from the reference`);
  for (const [, flag, shown] of stdout.matchAll(/--([a-z][\w.-]*)[^\n]*\(default: ([^)\n]+)\)/g)) {
    const row = table.split("\n").find((line) => line.startsWith(`| \`--${flag}\``));
    assert.ok(row?.includes(shown!.replace(/\|/g, "\\|")), `--${flag}: default ${shown} not in the reference's row ${row}`);
  }
});

test("every value in the chart's values.yaml has a row in the values tables (the reference's, the chart README's), with the schema's description", async () => {
  for (const file of [REFERENCE, CHART_README]) await valuesTableHasEveryValue(await readFile(file, "utf8"), file);
});

async function valuesTableHasEveryValue(readme: string, file: string): Promise<void> {
  const table = readme.slice(readme.indexOf("<!-- values:start -->"), readme.indexOf("<!-- values:end -->"));
  const schema = JSON.parse(await readFile(`${CHART}values.schema.json`, "utf8")) as SchemaNode;
  const values = loadYaml(await readFile(`${CHART}values.yaml`, "utf8"));
  const paths = (value: unknown, node: SchemaNode | undefined, path: string): [string, SchemaNode | undefined][] =>
    value !== null && typeof value === "object" && !Array.isArray(value) && node?.properties
      ? Object.entries(value).flatMap(([key, child]) => paths(child, node.properties?.[key], path ? `${path}.${key}` : key))
      : [[path, node]];
  const leaves = paths(values, schema, "");
  assert.ok(leaves.length > 50, `${leaves.length} values`);
  for (const [path, node] of leaves) {
    assert.ok(node?.description, `${path}: in values.yaml but without a description in values.schema.json`);
    const row = table.split("\n").find((line) => line.startsWith(`| \`${path}\` |`));
    assert.ok(row?.includes(node.description.replace(/\|/g, "\\|")), `${path} missing from ${file}'s values table`);
  }
}
