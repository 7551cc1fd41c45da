import { homedir } from "node:os";
import { join } from "node:path";

/** Where built control-plane binaries and the test CA live between runs (outside the work tree). */
export function cacheRoot(): string {
  const explicit = process.env.AZURE_MSI_OPERATOR_CACHE;
  if (explicit) return explicit;
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "azure-msi-operator");
}
