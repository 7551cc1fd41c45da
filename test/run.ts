// The test entry point behind `npm test`: prepares what must exist before any test process starts,
// then hands over to node's own test runner (whose summary ends the output).
//
// NODE_EXTRA_CA_CERTS is read by Node only at start-up, so the throwaway CA that local HTTPS fakes
// are issued from is created here and passed to every test process through the environment.
//
// Go tools that tests run (test/tools/tools.ts: promtool, helm) are built here too, because their first
// build takes minutes and must not count against a test's time. The rule: a tool is built when the
// source of a selected test file contains the tool's name (test files import the helper that runs it,
// e.g. ./support/promtool.js, so the name is there); an argument that is not a readable file (a
// directory, a glob) or no file argument at all builds every tool. A false match only builds early.
//
// The operator bundle that the tests' operator processes run (test/support/operator-bundle.ts) is
// built here as well when its sources changed (a few seconds), so that no test's timeout pays for it.
import { readdir, readFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { operatorBundle } from "./support/operator-bundle.js";
import { spawnTrustingTestCa } from "./support/test-ca.js";
import { goToolBinary, type GoTool } from "./tools/gotool.js";
import { TEST_TOOLS } from "./tools/tools.js";

const root = fileURLToPath(new URL("..", import.meta.url));

async function findTests(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await findTests(path)));
    else if (entry.name.endsWith(".test.ts")) found.push(relative(root, path));
  }
  return found.sort();
}

/** The tools the selected test files need (see the rule above); arguments starting with "-" are node flags. */
async function toolsNamedBy(args: string[]): Promise<GoTool[]> {
  const paths = args.filter((arg) => !arg.startsWith("-"));
  const sources = await Promise.all(paths.map((path) => readFile(resolve(root, path), "utf8").catch(() => undefined)));
  if (paths.length === 0 || sources.includes(undefined)) return [...TEST_TOOLS];
  return TEST_TOOLS.filter((tool) => sources.some((source) => source?.includes(tool.name)));
}

// `--unit` (npm run test:unit): only the tests that need no control plane. Those that start one are
// named *.e2e.test.ts, wherever they live.
const unitOnly = process.argv.includes("--unit");
const requested = process.argv.slice(2).filter((arg) => arg !== "--unit");
const everything = async () => [...(await findTests(join(root, "src"))), ...(await findTests(join(root, "certs"))), ...(await findTests(join(root, "test")))];
const files = requested.length > 0 ? requested : unitOnly ? (await everything()).filter((file) => !file.endsWith(".e2e.test.ts")) : await everything();

for (const tool of await toolsNamedBy(files)) await goToolBinary(tool);
await operatorBundle();
await spawnTrustingTestCa(["--test", "--test-concurrency=1", ...files]);
