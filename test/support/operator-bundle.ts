// The bundle the tests' operator processes run: tools/bundle.ts's bundleOperator, the same function
// and options the image's `npm run bundle` uses, so what the tests start is what the image ships.
//
// Built at most once per change of its inputs: a build records the files esbuild read (its metafile)
// and their digest; the next call re-reads those files and reuses the build while the digest holds
// (an added import changes the file that imports it, so the recorded set is enough; the lockfile,
// tools/bundle.ts and the build stamp, version and git revision, are in the digest too). Builds live under the cache root, outside the work tree, so
// no node_modules can be reached from them: an operator process that runs there needs nothing the
// image (which has no node_modules) lacks. Concurrent builders each write a directory of their own and
// rename it into place; the first rename wins and the others drop theirs.
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BUNDLE_MAIN, bundleOperator, buildStamp, ROOT, type BuildStamp } from "../../tools/bundle.js";
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

async function seenOf(inputs: string[], stamp: BuildStamp): Promise<string | undefined> {
  const stats = await Promise.all([...new Set([...inputs, ...ALWAYS])].sort().map((path) => stat(join(ROOT, path)).catch(() => undefined)));
  if (!stats.every((entry) => entry !== undefined)) return undefined;
  return [JSON.stringify(stamp), ...stats.map((entry) => `${entry.size}:${entry.mtimeMs}`)].join(",");
}

async function digestOf(inputs: string[], stamp: BuildStamp): Promise<string | undefined> {
  const hash = createHash("sha256").update(`${JSON.stringify(stamp)}\0`);
  for (const path of [...new Set([...inputs, ...ALWAYS])].sort()) {
    const content = await readFile(join(ROOT, path)).catch(() => undefined);
    if (content === undefined) return undefined;
    hash.update(`${path}\0${content.length}\0`).update(content);
  }
  return hash.digest("hex").slice(0, 16);
}

async function build(dir: string, stampFile: string, stamp: BuildStamp): Promise<string> {
  const scratch = join(dir, `.build-${process.pid}-${randomBytes(4).toString("hex")}`);
  const metafile = await bundleOperator(scratch, stamp);
  // esbuild's names for non-file inputs (e.g. "<define:...>", "(disabled):...") have no content to read.
  const inputs = Object.keys(metafile.inputs).filter((path) => existsSync(join(ROOT, path)));
  const digest = await digestOf(inputs, stamp);
  if (digest === undefined) throw new Error("an input of the operator bundle vanished while it was built");
  const target = join(dir, digest);
  await rename(scratch, target).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
    await rm(scratch, { recursive: true, force: true }); // another process built the same inputs first
  });
  await writeStamp(stampFile, { digest, inputs, seen: (await seenOf(inputs, stamp)) ?? "" });
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
  const buildAs = buildStamp();
  if (stamp && existsSync(join(dir, stamp.digest, BUNDLE_MAIN))) {
    const seen = await seenOf(stamp.inputs, buildAs);
    if (seen === undefined) return build(dir, stampFile, buildAs);
    if (seen !== stamp.seen) {
      // Touched (a checkout, a save without a change) or committed: the content and the stamp decide.
      if ((await digestOf(stamp.inputs, buildAs)) !== stamp.digest) return build(dir, stampFile, buildAs);
      await writeStamp(stampFile, { ...stamp, seen });
    }
    const now = new Date();
    await utimes(join(dir, stamp.digest), now, now); // in use: not pruned
    return join(dir, stamp.digest);
  }
  return build(dir, stampFile, buildAs);
}

/** The absolute path of the bundle's entry file, built first if its inputs changed since the last build. */
export async function operatorBundle(): Promise<string> {
  return join(await locate(), BUNDLE_MAIN);
}
