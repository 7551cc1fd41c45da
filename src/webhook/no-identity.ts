import type { LookupValues } from "../kube/lookup.js";
import type { Decision } from "./admission.js";
import { tagToSet } from "./decide-guard.js";

/**
 * Lookup labels that name no identity of the object's namespace: a warning (the syncer or a later
 * apply fills it once Azure tags the MSI), or with strict a denial that says which tag to ask for.
 */
export function noIdentity(
  values: LookupValues,
  namespace: string,
  options: { strict: boolean; namespaceTags: readonly string[]; leftAsIs: string },
): Decision {
  const message =
    `no AzureIdentity for managed identity ${values.name} (resource group ${values.resourcegroup}, subscription ${values.subscription}) ` +
    `is assigned to namespace "${namespace}"`;
  if (options.strict) {
    return {
      allowed: false,
      code: 403,
      result: "denied",
      message: `${message}; ask a platform admin to tag the managed identity in Azure with ${tagToSet(options.namespaceTags, namespace)}`,
    };
  }
  return { allowed: true, result: "allowed", warnings: [`${message} (yet): ${options.leftAsIs}`] };
}
