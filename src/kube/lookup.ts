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

export const LOOKUP_FIELDS = ["name", "resourcegroup", "subscription"] as const;

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

/** The identity among `identities` (one namespace's, operator-owned) whose lookup labels equal `values`. */
export function matchingIdentity<T extends { metadata?: { labels?: Record<string, string>; name?: string; deletionTimestamp?: Date | string } }>(
  identities: readonly T[],
  values: LookupValues,
  keys: Record<keyof LookupValues, string>,
): T | undefined {
  return identities.find((identity) => {
    if (identity.metadata?.deletionTimestamp) return false;
    const own = lookupValuesOf(identity.metadata?.labels, keys);
    return own !== undefined && sameLookup(own, values);
  });
}
