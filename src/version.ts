// What this build of the operator is: its release (package.json's version), the git revision it was
// built from, and the Node it runs on. tools/bundle.ts stamps the first two into the bundle and the
// single executables at build time (esbuild's `define` replaces the two identifiers below); a run
// from the sources (tsx, tsc's output) reads the version from package.json and knows no revision.
import packageJson from "../package.json" with { type: "json" };

declare const __AZURE_MSI_OPERATOR_VERSION__: string | undefined;
declare const __AZURE_MSI_OPERATOR_REVISION__: string | undefined;

export const PROGRAM = "azure-msi-operator";
/** The revision of a build from the sources, where no build stamped one. */
export const UNKNOWN_REVISION = "unknown";

export interface BuildInfo {
  /** package.json's version, e.g. 0.1.0. */
  version: string;
  /** The git commit the build was made from (12 hex digits, "-dirty" with uncommitted changes), or "unknown". */
  revision: string;
  /** The Node release running this process, e.g. v24.22.3. */
  node: string;
}

export function buildInfo(): BuildInfo {
  return {
    version: typeof __AZURE_MSI_OPERATOR_VERSION__ === "string" ? __AZURE_MSI_OPERATOR_VERSION__ : packageJson.version,
    revision: typeof __AZURE_MSI_OPERATOR_REVISION__ === "string" ? __AZURE_MSI_OPERATOR_REVISION__ : UNKNOWN_REVISION,
    node: process.version,
  };
}

/** What `--version` and `version` print: one line, the same fields as azuremsi_build_info. */
export function renderVersion(info: BuildInfo): string {
  return `${PROGRAM} ${info.version} (revision ${info.revision}, node ${info.node})\n`;
}
