// Every relative link between the repository's Markdown files resolves: the file exists and, with a
// #fragment, the target has a heading of that GitHub anchor. Cheap, and the docs are split over many
// files that move.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** GitHub's heading anchor: lower case, punctuation but hyphens and underscores dropped, spaces to hyphens. */
export function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, "")
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** Lines outside fenced code blocks. */
function prose(markdown: string): string[] {
  let fenced = false;
  return markdown.split("\n").filter((line) => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      return false;
    }
    return !fenced;
  });
}

/** The anchors a file's headings get (a repeated heading gets -1, -2, ... as on GitHub). */
export function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of prose(markdown)) {
    const heading = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = githubAnchor(heading[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** Relative link targets in a file's prose: [text](target), inline code stripped first. */
export function relativeLinks(markdown: string): string[] {
  return prose(markdown)
    .map((line) => line.replace(/`[^`]*`/g, ""))
    .flatMap((line) => [...line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((match) => match[1]!))
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

async function markdownFiles(): Promise<string[]> {
  const { stdout } = await promisify(execFile)("git", ["ls-files", "--cached", "--others", "--exclude-standard", "*.md"], { cwd: ROOT });
  return stdout.split("\n").filter((file) => file !== "" && !file.startsWith("node_modules/"));
}

test("githubAnchor and relativeLinks follow GitHub's rules on the forms the docs use", () => {
  assert.equal(githubAnchor("Migrating from webdevops/azure-msi-operator"), "migrating-from-webdevopsazure-msi-operator");
  assert.equal(githubAnchor("Quick start (no cluster, no Azure)"), "quick-start-no-cluster-no-azure");
  assert.equal(githubAnchor("Install, upgrade, uninstall"), "install-upgrade-uninstall");
  assert.deepEqual([...anchorsOf("# A\n## A\n```\n# not a heading\n```\n")], ["a", "a-1"]);
  assert.deepEqual(relativeLinks("[a](docs/x.md#y) [b](https://example.com) `[c](z.md)`\n```\n[d](w.md)\n```\n"), ["docs/x.md#y"]);
});

test("every relative link in the repository's Markdown files resolves to a file and, with a #fragment, to a heading", async () => {
  const files = await markdownFiles();
  assert.ok(files.includes("README.md") && files.includes("docs/README.md"), `found ${files.length} Markdown files`);
  const broken: string[] = [];
  let checked = 0;
  for (const file of files) {
    const text = await readFile(join(ROOT, file), "utf8");
    for (const link of relativeLinks(text)) {
      checked += 1;
      const [path, fragment] = link.split("#", 2) as [string, string | undefined];
      const target = path === "" ? join(ROOT, file) : join(ROOT, dirname(file), decodeURIComponent(path));
      const found = await stat(target).catch(() => undefined);
      if (!found) {
        broken.push(`${file}: ${link} (no ${relative(ROOT, target)})`);
        continue;
      }
      if (fragment && found.isFile() && target.endsWith(".md") && !anchorsOf(await readFile(target, "utf8")).has(fragment))
        broken.push(`${file}: ${link} (no heading #${fragment} in ${relative(ROOT, target)})`);
    }
  }
  assert.ok(checked > 30, `${checked} links checked`);
  assert.deepEqual(broken, []);
});
