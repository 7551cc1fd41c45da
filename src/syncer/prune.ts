// When a sync may delete: pure rules shared by the syncer and `azure-msi-operator diff`, so the
// preview deletes exactly what a sync would.
import type { Msi, SubscriptionListing } from "../azure/types.js";
import type { AzureIdentity } from "../kube/resources.js";
import type { IdentityAction } from "./diff.js";

export interface PruneGate {
  /** --azureidentity.prune and a complete, non-suspicious listing. */
  pruneAllowed: boolean;
  /** Why prune is off for this listing although the flag is on. */
  skipped: "incomplete" | "empty" | undefined;
  /** Lower-cased IDs of the subscriptions the listing covers. */
  listedSubscriptions: Set<string>;
  /** Every subscription listed completely. */
  complete: boolean;
}

/** An incomplete listing, or an empty one while the cluster holds owned identities, never prunes. */
export function pruneGate(listings: readonly SubscriptionListing[], msis: readonly Msi[], prune: boolean, clusterHasOwnedIdentities: boolean): PruneGate {
  const complete = listings.every((part) => part.complete);
  const suspicious = msis.length === 0 && clusterHasOwnedIdentities;
  return {
    pruneAllowed: prune && complete && !suspicious,
    skipped: !prune ? undefined : !complete ? "incomplete" : suspicious ? "empty" : undefined,
    listedSubscriptions: new Set(listings.map((part) => part.subscriptionId.toLowerCase())),
    complete,
  };
}

/** The subscription (lower-cased) of an identity among `identities`, from its resourceID. */
export function subscriptionOf(identities: readonly AzureIdentity[], name: string): string {
  const resourceID = identities.find((object) => object.metadata?.name === name)?.spec?.resourceID ?? "";
  return /^\/subscriptions\/([^/]+)/i.exec(resourceID)?.[1]?.toLowerCase() ?? "";
}

/** Deletes planned for identities of a subscription the listing does not cover: no evidence their MSI is gone. */
export function unlistedDeletes(actions: readonly IdentityAction[], actual: readonly AzureIdentity[], listed: ReadonlySet<string>): string[] {
  return actions.flatMap((action) => (action.kind === "delete" && !listed.has(subscriptionOf(actual, action.name)) ? [action.name] : []));
}
