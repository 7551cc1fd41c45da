// The bundle the tests' operator processes run: tools/bundle.ts's bundleOperator, the same function
// and options the image's `npm run bundle` uses, so what the tests start is what the image ships.
//
// Built at most once per change of its inputs: a build records the files esbuild read (its metafile)
// and their digest; the next call re-reads those files and reuses the build while the digest holds
// (an added import changes the file that imports it, so the recorded set is enough; the lockfile and
// tools/bundle.ts are in the digest too). Builds live under the cache root, outside the work tree, so
// no node_modules can be reached from them: an operator process that runs there needs nothing the
// image (which has no node_modules) lacks. Concurrent builders each write a directory of their own and
// rename it into place; the first rename wins and the others drop theirs.
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BUNDLE_MAIN, bundleOperator, ROOT } from "../../tools/bundle.js";
import { cacheRoot } from "./cache-dir.js";

/** Read besides esbuild's own inputs: what decides how they are bundled. */
const ALWAYS = ["tools/bundle.ts", "package-lock.json"];
/** Builds nobody has reused for this long are removed when a new one is made. */
const KEEP_MS = 7 * 86_400_000;

interface Stamp {
  digest: string;
  inputs: string[];
  /** size:mtime of every input when the digest was taken: while it holds, the files are not re-read. */
  seen: string;
}

async function seenOf(inputs: string[]): Promise<string | undefined> {
  const stats = await Promise.all([...new Set([...inputs, ...ALWAYS])].sort().map((path) => stat(join(ROOT, path)).catch(() => undefined)));
  return stats.every((entry) => entry !== undefined) ? stats.map((entry) => `${entry.size}:${entry.mtimeMs}`).join(",") : undefined;
}

async function digestOf(inputs: string[]): Promise<string | undefined> {
  const hash = createHash("sha256");
  for (const path of [...new Set([...inputs, ...ALWAYS])].sort()) {
    const content = await readFile(join(ROOT, path)).catch(() => undefined);
    if (content === undefined) return undefined;
    hash.update(`${path}\0${content.length}\0`).update(content);
  }
  return hash.digest("hex").slice(0, 16);
}

async function build(dir: string, stampFile: string): Promise<string> {
  const scratch = join(dir, `.build-${process.pid}-${randomBytes(4).toString("hex")}`);
  const metafile = await bundleOperator(scratch);
  // esbuild's names for non-file inputs (e.g. "<define:...>", "(disabled):...") have no content to read.
  const inputs = Object.keys(metafile.inputs).filter((path) => existsSync(join(ROOT, path)));
  const digest = await digestOf(inputs);
  if (digest === undefined) throw new Error("an input of the operator bundle vanished while it was built");
  const target = join(dir, digest);
  await rename(scratch, target).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
    await rm(scratch, { recursive: true, force: true }); // another process built the same inputs first
  });
  await writeStamp(stampFile, { digest, inputs, seen: (await seenOf(inputs)) ?? "" });
  await prune(dir, digest);
  return target;
}

async function writeStamp(stampFile: string, stamp: Stamp): Promise<void> {
  await writeFile(`${stampFile}.${process.pid}`, JSON.stringify(stamp));
  await rename(`${stampFile}.${process.pid}`, stampFile);
}

async function prune(dir: string, keep: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name === keep) continue;
    const path = join(dir, entry.name);
    const { mtimeMs } = await stat(path);
    if (Date.now() - mtimeMs > KEEP_MS) await rm(path, { recursive: true, force: true });
  }
}

async function locate(dir = join(cacheRoot(), "bundle")): Promise<string> {
  await mkdir(dir, { recursive: true });
  // One stamp per work tree: several checkouts share the cache root, each with its own sources.
  const stampFile = join(dir, `stamp-${createHash("sha256").update(ROOT).digest("hex").slice(0, 12)}.json`);
  const stamp = await readFile(stampFile, "utf8")
    .then((text) => JSON.parse(text) as Stamp)
    .catch(() => undefined);
  if (stamp && existsSync(join(dir, stamp.digest, BUNDLE_MAIN))) {
    const seen = await seenOf(stamp.inputs);
    if (seen === undefined) return build(dir, stampFile);
    if (seen !== stamp.seen) {
      // Touched (a checkout, a save without a change): the content decides.
      if ((await digestOf(stamp.inputs)) !== stamp.digest) return build(dir, stampFile);
      await writeStamp(stampFile, { ...stamp, seen });
    }
    const now = new Date();
    await utimes(join(dir, stamp.digest), now, now); // in use: not pruned
    return join(dir, stamp.digest);
  }
  return build(dir, stampFile);
}

/** The absolute path of the bundle's entry file, built first if its inputs changed since the last build. */
export async function operatorBundle(): Promise<string> {
  return join(await locate(), BUNDLE_MAIN);
}
