import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { README, renderReadme } from "../tools/readme.js";

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));

test("README's configuration and metrics tables are what the code generates (run `npm run docs` when this fails)", async () => {
  const readme = await readFile(README, "utf8");
  assert.equal(readme, renderReadme(readme));
});

test("every flag, alias and env var that `azure-msi-operator --help` prints is in README's table with its default", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", MAIN, "--help"]);
  const readme = await readFile(README, "utf8");
  const table = readme.slice(readme.indexOf("<!-- flags:start -->"), readme.indexOf("<!-- flags:end -->"));
  const flags = [...stdout.matchAll(/(?<![\w-])--([a-z][\w.-]*)/g)].map((match) => match[1]!).filter((name) => name !== "help");
  const envs = [...stdout.matchAll(/\$([A-Z][A-Z0-9_]+)/g)].map((match) => match[1]!);
  assert.ok(flags.length > 40 && envs.length > 40, `--help printed ${flags.length} flags and ${envs.length} env vars`);
  for (const flag of new Set(flags)) assert.ok(table.includes(`\`--${flag}\``), `--${flag} missing from README`);
  for (const env of new Set(envs)) assert.ok(table.includes(`\`${env}\``), `${env} missing from README`);
  for (const [, flag, shown] of stdout.matchAll(/--([a-z][\w.-]*)[^\n]*\(default: ([^)\n]+)\)/g)) {
    const row = table.split("\n").find((line) => line.startsWith(`| \`--${flag}\``));
    assert.ok(row?.includes(shown!.replace(/\|/g, "\\|")), `--${flag}: default ${shown} not in README row ${row}`);
  }
});
