/**
 * The three lookup labels that tie an AzureIdentityBinding to the AzureIdentity of one MSI
 * (`msi.azure.k8s.io/name|resourcegroup|subscription` with the default format). Pure helpers shared
 * by the syncer (which writes them) and the mutating webhook (which reads them).
 */
export interface LookupValues {
  name: string;
  resourcegroup: string;
  subscription: string;
}

/** Label keys for a `--kubernetes.label.format` such as `msi.azure.k8s.io/%s`; none when it is empty. */
export function lookupLabelKeys(labelFormat: string): Record<keyof LookupValues, string> | undefined {
  if (labelFormat === "") return undefined;
  return {
    name: labelFormat.replace("%s", "name"),
    resourcegroup: labelFormat.replace("%s", "resourcegroup"),
    subscription: labelFormat.replace("%s", "subscription"),
  };
}

/** The lookup values an object carries, or undefined unless it carries all three. */
export function lookupValuesOf(labels: Record<string, string> | undefined, keys: Record<keyof LookupValues, string>): LookupValues | undefined {
  const name = labels?.[keys.name];
  const resourcegroup = labels?.[keys.resourcegroup];
  const subscription = labels?.[keys.subscription];
  if (!name || !resourcegroup || !subscription) return undefined;
  return { name, resourcegroup, subscription };
}

/** Azure IDs and names compare case-insensitively, so lookups do too. */
export function sameLookup(a: LookupValues, b: LookupValues): boolean {
  return (
    a.name.toLowerCase() === b.name.toLowerCase() &&
    a.resourcegroup.toLowerCase() === b.resourcegroup.toLowerCase() &&
    a.subscription.toLowerCase() === b.subscription.toLowerCase()
  );
}

interface IdentityLike {
  metadata?: { labels?: Record<string, string>; name?: string; deletionTimestamp?: Date | string; creationTimestamp?: Date | string };
}

/**
 * The identity among `identities` (one namespace's, operator-owned) whose lookup labels equal
 * `values`. Without prune an MSI recreated with a new clientId leaves its old identity behind, so
 * several can match: the one `preferred` says is current wins, else the most recently created.
 */
export function matchingIdentity<T extends IdentityLike>(
  identities: readonly T[],
  values: LookupValues,
  keys: Record<keyof LookupValues, string>,
  preferred?: (name: string) => boolean,
): T | undefined {
  const matches = identities.filter((identity) => {
    if (identity.metadata?.deletionTimestamp) return false;
    const own = lookupValuesOf(identity.metadata?.labels, keys);
    return own !== undefined && sameLookup(own, values);
  });
  if (matches.length <= 1) return matches[0];
  const current = preferred ? matches.find((identity) => preferred(identity.metadata?.name ?? "")) : undefined;
  if (current) return current;
  const created = (identity: T) => new Date(identity.metadata?.creationTimestamp ?? 0).getTime();
  return matches.reduce((newest, identity) => (created(identity) > created(newest) ? identity : newest));
}
