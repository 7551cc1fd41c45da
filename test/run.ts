// The test entry point behind `npm test`: prepares what must exist before any test process starts,
// then hands over to node's own test runner (whose summary ends the output).
//
// NODE_EXTRA_CA_CERTS is read by Node only at start-up, so the throwaway CA that local HTTPS fakes
// are issued from is created here and passed to every test process through the environment.
import { readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnTrustingTestCa } from "./support/test-ca.js";

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

const requested = process.argv.slice(2);
const files = requested.length > 0 ? requested : [...(await findTests(join(root, "src"))), ...(await findTests(join(root, "certs"))), ...(await findTests(join(root, "test")))];
await spawnTrustingTestCa(["--test", "--test-concurrency=1", ...files]);
