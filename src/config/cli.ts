// The only impure part of configuration: reads the service-account namespace, prints help or the
// error line, and exits (0 for help, 2 for a bad configuration, as go-flags did).
import { readFileSync } from "node:fs";
import { parseConfig, type Config } from "./config.js";

export const SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

export function readServiceAccountNamespace(file = SERVICE_ACCOUNT_NAMESPACE_FILE): string | undefined {
  try {
    return readFileSync(file, "utf8").trim() || undefined;
  } catch {
    return undefined; // not in a cluster
  }
}

export function loadConfig(argv: readonly string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Config {
  const result = parseConfig(argv, env, { serviceAccountNamespace: readServiceAccountNamespace() });
  if (result.ok) return result.config;
  if (result.help) {
    process.stdout.write(result.text);
    process.exit(0);
  }
  process.stderr.write(`azure-msi-operator: ${result.error}\n`);
  process.exit(result.exitCode);
}
