// What a release ships besides the code: the license package.json names, a changelog whose newest
// release is package.json's version (and the chart's), a security policy, and an npm package whose
// `azure-msi-operator` command is the bundle, so `npx azure-msi-operator diff` needs no clone or build.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { loadYaml } from "@kubernetes/client-node";
import { BUNDLE_DIR, BUNDLE_MAIN, ROOT } from "../tools/bundle.js";
import { runProcess } from "./support/process.js";

interface PackageJson {
  name: string;
  version: string;
  license: string;
  private?: boolean;
  bin: Record<string, string>;
  files: string[];
}

const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as PackageJson;

test("LICENSE is the MIT license package.json declares, for the project's authors", async () => {
  assert.equal(pkg.license, "MIT");
  const license = await readFile(join(ROOT, "LICENSE"), "utf8");
  assert.match(license, /^MIT License\n\nCopyright \(c\) \d{4} azure-msi-operator authors\n/);
  assert.match(license, /THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND/);
});

test("CHANGELOG.md keeps a changelog whose newest release is package.json's version, the chart's version and appVersion", async () => {
  const changelog = await readFile(join(ROOT, "CHANGELOG.md"), "utf8");
  assert.match(changelog, /keepachangelog\.com/);
  const releases = [...changelog.matchAll(/^## \[([^\]]+)\]/gm)].map((match) => match[1]);
  assert.equal(releases[0], "Unreleased", "an Unreleased section on top, for the next release's entries");
  assert.equal(releases[1], pkg.version, "the newest release is package.json's version");
  const chart = loadYaml<{ version: string; appVersion: string }>(await readFile(join(ROOT, "charts", "azure-msi-operator", "Chart.yaml"), "utf8"));
  assert.equal(chart.version, pkg.version, "Chart.yaml version");
  assert.equal(chart.appVersion, pkg.version, "Chart.yaml appVersion");
});

test("SECURITY.md says how to report privately and what the guarantee does and does not cover", async () => {
  const security = await readFile(join(ROOT, "SECURITY.md"), "utf8");
  assert.match(security, /private security advisory/);
  assert.match(security, /## What the guarantee covers/);
  for (const limit of ["hostNetwork", "MIC short-circuit"]) assert.ok(security.includes(limit), `names ${limit} as outside`);
});

test(
  "the npm package is publishable, its command is the bundle, and `npm pack` ships the whole bundle and nothing else of the tree",
  { timeout: 120_000 },
  async () => {
    assert.notEqual(pkg.private, true, "not private");
    const bin = pkg.bin["azure-msi-operator"];
    assert.equal(bin, relative(ROOT, join(BUNDLE_DIR, BUNDLE_MAIN)), "bin is the bundle's entry, where tools/bundle.ts writes it");
    // npm pack's prepack script bundles first; its JSON report follows that script's output.
    const packed = await runProcess("npm", ["pack", "--dry-run", "--json"], { cwd: ROOT });
    assert.equal(packed.code, 0, packed.stderr);
    const report = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("\n[") + 1)) as { files: { path: string; mode: number }[] }[];
    const files = report[0]!.files.map((file) => file.path);
    assert.ok(files.includes(bin), `${bin} is packed`);
    assert.ok(files.includes(relative(ROOT, join(BUNDLE_DIR, "package.json"))), "the bundle's package.json (its files are ES modules)");
    for (const file of files)
      assert.match(file, /^(dist\/bundle\/[\w.-]+\.(js|json)|package\.json|README\.md|LICENSE|CHANGELOG\.md|SECURITY\.md)$/, `${file}: packed`);
    const main = await readFile(join(ROOT, bin), "utf8");
    assert.ok(main.startsWith("#!/usr/bin/env node\n"), "the command runs with node");
  },
);
