// The image's Node (Dockerfile, build stage): the official binary of the release package-lock.json
// pins for node-linux-<arch>, the package the tests run on, for the image's target architecture.
//   node --import tsx tools/node-binary.ts <amd64|arm64> <output file>
// The build stage runs on the builder's platform, so npm ci installed the builder's package only; the
// target's comes from the npm registry (tools/registry-package.ts: the lockfile's integrity checked).
import { copyFile, chmod } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "./bundle.js";
import { lockedPackage, registryPackage, type RegistryPackage } from "./registry-package.js";

/** Docker's TARGETARCH to Node's name of the architecture (node-linux-<arch>). */
export const NODE_ARCH: Readonly<Record<string, string>> = { amd64: "x64", arm64: "arm64" };

/** The node-linux-<arch> package package-lock.json pins for a Docker architecture. */
export async function lockedNodePackage(targetArch: string, root = ROOT): Promise<RegistryPackage> {
  const arch = NODE_ARCH[targetArch];
  if (arch === undefined) throw new Error(`no Node binary for ${targetArch} (architectures: ${Object.keys(NODE_ARCH).join(", ")})`);
  const pkg = await lockedPackage(root, `node-linux-${arch}`);
  if (pkg === undefined) throw new Error(`package-lock.json pins no node-linux-${arch}`);
  return pkg;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [targetArch, output] = process.argv.slice(2);
  if (!targetArch || !output) throw new Error("usage: node-binary.ts <amd64|arm64> <output file>");
  const pkg = await lockedNodePackage(targetArch);
  const dir = await registryPackage(pkg, (line) => console.log(line));
  await copyFile(join(dir, "bin", "node"), resolve(output));
  await chmod(resolve(output), 0o755);
  console.log(`${pkg.name}@${pkg.version} -> ${output}`);
}
