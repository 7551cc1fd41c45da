import { readFile } from "node:fs/promises";

/** The endpoints of one Azure cloud, trailing slashes removed. */
export interface AzureEnvironment {
  name: string;
  resourceManagerEndpoint: string;
  /** The Entra authority host (`AZURE_AUTHORITY_HOST`). */
  activeDirectoryEndpoint: string;
  tokenAudience: string;
  /** The OAuth scope for Resource Manager tokens: `<tokenAudience>/.default`. */
  scope: string;
  /** Where it came from: a built-in name, or the path of a go-autorest environment file. */
  source: "builtin" | { file: string };
}

/** go-autorest reads a custom cloud from this file (Azure Stack and other private clouds). */
export const ENVIRONMENT_FILE_VAR = "AZURE_ENVIRONMENT_FILEPATH";

function builtin(name: string, resourceManager: string, activeDirectory: string): AzureEnvironment {
  return {
    name,
    resourceManagerEndpoint: resourceManager,
    activeDirectoryEndpoint: activeDirectory,
    tokenAudience: resourceManager,
    scope: `${resourceManager}/.default`,
    source: "builtin",
  };
}

const PUBLIC = builtin("AzurePublicCloud", "https://management.azure.com", "https://login.microsoftonline.com");
const CHINA = builtin("AzureChinaCloud", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn");
const US_GOVERNMENT = builtin("AzureUSGovernmentCloud", "https://management.usgovcloudapi.net", "https://login.microsoftonline.us");

// go-autorest's names, aliases included, so every value the Go operator accepted still works.
// AZUREGERMANCLOUD is left out on purpose: that cloud was shut down in 2021.
const BY_NAME: ReadonlyMap<string, AzureEnvironment> = new Map([
  ["AZUREPUBLICCLOUD", PUBLIC],
  ["AZURECLOUD", PUBLIC],
  ["AZURECHINACLOUD", CHINA],
  ["AZUREUSGOVERNMENTCLOUD", US_GOVERNMENT],
  ["AZUREUSGOVERNMENT", US_GOVERNMENT],
]);

export const ENVIRONMENT_NAMES: readonly string[] = ["AZUREPUBLICCLOUD", "AZURECHINACLOUD", "AZUREUSGOVERNMENTCLOUD"];

/** A built-in cloud by go-autorest name, case-insensitively. */
export function environmentFromName(name: string): AzureEnvironment {
  const found = BY_NAME.get(name.trim().toUpperCase());
  if (!found)
    throw new Error(
      `unknown Azure environment "${name}": use one of ${ENVIRONMENT_NAMES.join(", ")}, or set ${ENVIRONMENT_FILE_VAR} to a custom environment file`,
    );
  return found;
}

/**
 * MSAL knows the authority hosts of the built-in clouds. For any other host it asks
 * login.microsoftonline.com whether the host is a real authority ("instance discovery"), which a
 * private cloud or an offline test cannot answer: that check has to be off for them.
 */
export function isKnownAuthorityHost(activeDirectoryEndpoint: string): boolean {
  const host = new URL(activeDirectoryEndpoint).host.toLowerCase();
  return [PUBLIC, CHINA, US_GOVERNMENT].some((environment) => new URL(environment.activeDirectoryEndpoint).host === host);
}

/**
 * A go-autorest environment JSON file (`EnvironmentFromFile`). Only the fields this operator uses
 * are checked; the many other endpoints such a file carries are ignored, as go-autorest ignores
 * the ones it does not know.
 */
export function parseEnvironmentFile(text: string, path: string): AzureEnvironment {
  const fail = (reason: string) => new Error(`Azure environment file ${path}: ${reason}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw fail(`invalid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw fail("expected a JSON object with fields such as resourceManagerEndpoint and activeDirectoryEndpoint");
  const fields = parsed as Record<string, unknown>;

  const optionalString = (field: string): string | undefined => {
    const value = fields[field];
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value !== "string") throw fail(`field "${field}" must be a string, got ${JSON.stringify(value)}`);
    return value.trim();
  };
  const httpsUrl = (field: string, required: boolean): string | undefined => {
    const value = optionalString(field);
    if (value === undefined) {
      if (required) throw fail(`field "${field}" is missing`);
      return undefined;
    }
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw fail(`field "${field}" is not a URL: "${value}"`);
    }
    if (url.protocol !== "https:") throw fail(`field "${field}" must be an https URL, got "${value}"`);
    return withoutTrailingSlash(value);
  };

  const resourceManagerEndpoint = httpsUrl("resourceManagerEndpoint", true) as string;
  const activeDirectoryEndpoint = httpsUrl("activeDirectoryEndpoint", true) as string;
  // Azure Stack audiences are not always https URLs (they may carry an app ID); any text will do.
  const tokenAudience = withoutTrailingSlash(optionalString("tokenAudience") ?? resourceManagerEndpoint);
  const name = optionalString("name") ?? "AzureCustomCloud";
  return { name, resourceManagerEndpoint, activeDirectoryEndpoint, tokenAudience, scope: `${tokenAudience}/.default`, source: { file: path } };
}

/**
 * The environment the operator talks to: the file named by AZURE_ENVIRONMENT_FILEPATH when that is
 * set (whatever `name` says; the file is the more specific choice), else the built-in cloud `name`.
 */
export async function resolveEnvironment(name: string, env: Readonly<Record<string, string | undefined>> = process.env): Promise<AzureEnvironment> {
  const path = env[ENVIRONMENT_FILE_VAR]?.trim();
  if (!path) return environmentFromName(name);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new Error(`Azure environment file ${path} (from ${ENVIRONMENT_FILE_VAR}): ${(error as Error).message}`, { cause: error });
  }
  return parseEnvironmentFile(text, path);
}

function withoutTrailingSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
