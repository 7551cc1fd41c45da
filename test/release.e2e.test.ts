// `npm run release`'s artifacts, checked as a user would use them (only the linux-x64 single
// executable is built here, the one this machine runs; `npm run release` builds every target the npm
// registry serves): the executable's --version and diff --help, SHA256SUMS, the SBOM against
// package-lock.json, the packaged chart through helm lint and helm template, the npm package's files.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRelease, type Release } from "../tools/release.js";
import { ROOT } from "../tools/bundle.js";
import { helmBinary } from "./tools/helm.js";
import { runProcess } from "./support/process.js";

interface PackageJson {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}
interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo: string;
  licenseDeclared: string;
  checksums?: { algorithm: string; checksumValue: string }[];
  externalRefs: { referenceType: string; referenceLocator: string }[];
}

describe("npm run release", { timeout: 600_000 }, () => {
  let release: Release;
  let scratch: string;
  let pkg: PackageJson;
  const file = (name: string) => join(release.outdir, name);

  before(async () => {
    pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as PackageJson;
    scratch = await mkdtemp(join(tmpdir(), "release-test-"));
    release = await buildRelease({ outdir: join(scratch, "release"), targets: ["linux-x64"], log: () => {} });
  });
  after(() => rm(scratch, { recursive: true, force: true }));

  test("the linux-x64 single executable runs with nothing installed: --version, diff --help", async () => {
    const exe = file(release.executables["linux-x64"]!);
    assert.equal(release.executables["linux-x64"], `${pkg.name}-${pkg.version}-linux-x64`);
    // No PATH, no node_modules in reach (cwd outside the tree): the executable is the whole program.
    const env = { HOME: scratch };
    const version = await runProcess(exe, ["--version"], { cwd: scratch, env });
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, `azure-msi-operator ${pkg.version} (revision ${release.stamp.revision}, node ${process.version})\n`);
    assert.equal(version.stderr, "", "no experimental-feature warning");
    const help = await runProcess(exe, ["diff", "--help"], { cwd: scratch, env });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage:\n {2}azure-msi-operator /);
    assert.match(help.stdout, /^ {2}diff {4}print what a sync would create/m);
  });

  test("SHA256SUMS names every other file with its digest, in sha256sum's format", async () => {
    assert.equal(release.files.at(-1), "SHA256SUMS");
    const lines = (await readFile(file("SHA256SUMS"), "utf8")).trimEnd().split("\n");
    const named = new Map(lines.map((line) => /^([0-9a-f]{64}) {2}(\S+)$/.exec(line)!).map((match) => [match[2]!, match[1]!]));
    assert.deepEqual([...named.keys()].sort(), release.files.filter((name) => name !== "SHA256SUMS").sort());
    for (const [name, digest] of named)
      assert.equal(
        createHash("sha256")
          .update(await readFile(file(name)))
          .digest("hex"),
        digest,
        name,
      );
    assert.deepEqual(
      release.files.filter((name) => name !== "SHA256SUMS").sort(),
      [
        `${pkg.name}-${pkg.version}-linux-x64`,
        `${pkg.name}-${pkg.version}-npm.tgz`,
        `${pkg.name}-${pkg.version}.spdx.json`,
        `${pkg.name}-${pkg.version}.tgz`,
      ].sort(),
    );
  });

  test("the SBOM is SPDX 2.3 and lists the bundle's runtime packages with package-lock.json's versions, no dev tool", async () => {
    const sbom = JSON.parse(await readFile(file(`${pkg.name}-${pkg.version}.spdx.json`), "utf8")) as {
      spdxVersion: string;
      dataLicense: string;
      packages: SpdxPackage[];
      relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
    };
    assert.equal(sbom.spdxVersion, "SPDX-2.3");
    assert.equal(sbom.dataLicense, "CC0-1.0");
    const lock = JSON.parse(await readFile(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { version: string }> };
    const listed = new Map(sbom.packages.map((p) => [p.name, p]));
    const root = listed.get(pkg.name);
    assert.equal(root?.versionInfo, pkg.version);
    // Every direct runtime dependency is bundled (pino-pretty too: the readable log format).
    for (const name of Object.keys(pkg.dependencies)) {
      const entry = listed.get(name);
      assert.ok(entry, `${name} is in the SBOM`);
      assert.equal(entry.versionInfo, lock.packages[`node_modules/${name}`]!.version, `${name}: the locked version`);
      assert.ok(entry.externalRefs.some((ref) => ref.referenceType === "purl" && ref.referenceLocator.endsWith(`@${entry.versionInfo}`)));
      assert.equal(entry.checksums?.[0]?.algorithm, "SHA512", `${name}: the lockfile's digest`);
    }
    for (const name of ["esbuild", "typescript", "eslint", "prettier", "tsx", "fast-check", "postject"]) assert.ok(!listed.has(name), `${name} is not shipped`);
    assert.ok(sbom.packages.length > Object.keys(pkg.dependencies).length, "transitive packages too");
    const contained = sbom.relationships.filter((r) => r.spdxElementId === root.SPDXID && r.relationshipType === "CONTAINS");
    assert.equal(contained.length, sbom.packages.length - 1, "the application contains every other package");
    assert.ok(
      sbom.relationships.some((r) => r.spdxElementId === "SPDXRef-DOCUMENT" && r.relationshipType === "DESCRIBES" && r.relatedSpdxElement === root.SPDXID),
    );
  });

  test("the packaged chart carries package.json's version and passes helm lint and helm template", async () => {
    const helm = await helmBinary();
    const chart = file(`${pkg.name}-${pkg.version}.tgz`);
    const shown = await runProcess(helm, ["show", "chart", chart], { cwd: scratch });
    assert.match(shown.stdout, new RegExp(`^version: ${pkg.version.replace(/\./g, "\\.")}$`, "m"));
    assert.match(shown.stdout, new RegExp(`^appVersion: "?${pkg.version.replace(/\./g, "\\.")}"?$`, "m"));
    const values = ["--set", "image.repository=example.azurecr.io/azure-msi-operator"];
    const lint = await runProcess(helm, ["lint", chart, ...values], { cwd: scratch });
    assert.equal(lint.code, 0, lint.stdout + lint.stderr);
    const rendered = await runProcess(helm, ["template", "amo", chart, "-n", "azure-msi-operator", ...values], { cwd: scratch });
    assert.equal(rendered.code, 0, rendered.stderr);
    assert.match(rendered.stdout, new RegExp(`image: example\\.azurecr\\.io/azure-msi-operator:${pkg.version.replace(/\./g, "\\.")}`));
  });

  test("the npm package holds the bundle and a package.json with the command and no dependencies to install", async () => {
    const tarball = file(`${pkg.name}-${pkg.version}-npm.tgz`);
    const listing = await runProcess("tar", ["-tzf", tarball], { cwd: scratch });
    const files = listing.stdout.trim().split("\n");
    assert.ok(files.includes("package/dist/bundle/main.js"), "the bundle's entry");
    assert.ok(files.includes("package/LICENSE"));
    const manifest = await runProcess("tar", ["-xzOf", tarball, "package/package.json"], { cwd: scratch });
    const packed = JSON.parse(manifest.stdout) as Record<string, unknown>;
    assert.deepEqual(packed.bin, { "azure-msi-operator": "dist/bundle/main.js" });
    for (const field of ["dependencies", "devDependencies", "optionalDependencies", "scripts"]) assert.equal(packed[field], undefined, `no ${field}`);
    assert.equal(packed.version, pkg.version);
  });
});
