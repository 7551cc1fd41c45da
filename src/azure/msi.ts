import type { Identity } from "@azure/arm-msi";
import type { Msi, SkippedItem } from "./types.js";

export const MSI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities";

// ARM answers "resourcegroups" where requests say "resourceGroups": IDs match case-insensitively.
const MSI_ID = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.managedidentity\/userassignedidentities\/([^/]+)\/?$/i;

export interface MsiIdParts {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

export function parseMsiId(id: string): MsiIdParts | undefined {
  const match = MSI_ID.exec(id.trim());
  if (!match) return undefined;
  const [, subscriptionId, resourceGroup, name] = match as unknown as [string, string, string, string];
  return { subscriptionId, resourceGroup, name };
}

/**
 * An identity as ARM listed it -> our plain Msi, or the reason it is unusable. An item without an ID
 * or a client ID cannot become an AzureIdentity; it is reported, never guessed at.
 */
export function toMsi(item: Identity): { ok: true; msi: Msi } | { ok: false; skipped: SkippedItem } {
  const id = typeof item.id === "string" ? item.id.trim() : "";
  const skip = (reason: string) => ({ ok: false as const, skipped: { ...(id ? { id } : item.name ? { id: item.name } : {}), reason } });
  if (!id) return skip("no resource ID");
  const parts = parseMsiId(id);
  if (!parts) return skip(`resource ID is not that of a user-assigned identity: "${id}"`);
  if (typeof item.clientId !== "string" || item.clientId.trim() === "") return skip("no clientId");
  return {
    ok: true,
    msi: {
      id,
      name: typeof item.name === "string" && item.name !== "" ? item.name : parts.name,
      location: typeof item.location === "string" ? item.location : "",
      resourceGroup: parts.resourceGroup,
      subscriptionId: parts.subscriptionId,
      clientId: item.clientId.trim(),
      tenantId: typeof item.tenantId === "string" ? item.tenantId : "",
      principalId: typeof item.principalId === "string" ? item.principalId : "",
      tags: stringTags(item.tags),
      type: typeof item.type === "string" && item.type !== "" ? item.type : MSI_TYPE,
    },
  };
}

// Tag values are strings in ARM; anything else in a body would only break templates later.
function stringTags(tags: unknown): Record<string, string> {
  if (typeof tags !== "object" || tags === null || Array.isArray(tags)) return {};
  return Object.fromEntries(Object.entries(tags).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
}
