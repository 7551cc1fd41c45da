import { lookupValuesOf, matchingIdentity, type LookupValues } from "../kube/lookup.js";
import { AZURE_IDENTITY_BINDINGS, type AzureIdentity } from "../kube/resources.js";
import type { AdmissionRequest, Decision, JsonPatchOperation, KubeObject } from "./admission.js";
import { noIdentity } from "./no-identity.js";
import { unowned } from "./unowned.js";

export interface BindingPolicy {
  /** Lookup label keys; undefined when --kubernetes.label.format is empty (nothing to fill). */
  lookupKeys: Record<keyof LookupValues, string> | undefined;
  /** --webhook.binding.strict: deny a labelled binding whose identity does not exist in its namespace. */
  strict: boolean;
  /** Operator-owned identities of one namespace, from the informer cache (no I/O). */
  identitiesIn: (namespace: string) => readonly AzureIdentity[];
  /** Azure tag keys the namespace template reads, for the strict denial. */
  namespaceTags: readonly string[];
}

/**
 * A binding with all three lookup labels gets spec.azureIdentity set to the operator-owned identity
 * with the same labels in its own namespace; the patch is the difference between the object before
 * and after, so an already-right binding gets none (no update loops under reinvocation).
 */
export function decideBinding(request: AdmissionRequest, policy: BindingPolicy): Decision {
  const misrouted = unowned(request, AZURE_IDENTITY_BINDINGS, "AzureIdentityBinding", "MutatingWebhookConfiguration");
  if (misrouted) return misrouted;
  const binding = request.object;
  if ((request.operation !== "CREATE" && request.operation !== "UPDATE") || !binding || !policy.lookupKeys) return { allowed: true, result: "allowed" };
  const values = lookupValuesOf(binding.metadata?.labels, policy.lookupKeys);
  if (!values) return { allowed: true, result: "allowed" };
  const namespace = request.namespace ?? binding.metadata?.namespace ?? "";
  const identity = matchingIdentity(policy.identitiesIn(namespace), values, policy.lookupKeys);
  const name = identity?.metadata?.name;
  if (!name) {
    return noIdentity(values, namespace, {
      strict: policy.strict,
      namespaceTags: policy.namespaceTags,
      leftAsIs: "spec.azureIdentity left as it is; the operator fills it once the identity exists",
    });
  }
  const patch = azureIdentityPatch(binding, name);
  return patch.length > 0 ? { allowed: true, result: "patched", patch } : { allowed: true, result: "allowed" };
}

/**
 * The JSON patch from the binding as it is to the binding with spec.azureIdentity set: what a
 * deep compare of the two would give, without copying and walking the whole object on every
 * admission (that compare was the largest part of a decision's time under load).
 */
export function azureIdentityPatch(binding: KubeObject, azureIdentity: string): JsonPatchOperation[] {
  const spec = binding.spec;
  if (spec === undefined) return [{ op: "add", path: "/spec", value: { azureIdentity } }];
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) return [{ op: "replace", path: "/spec", value: { azureIdentity } }];
  if (spec.azureIdentity === azureIdentity) return [];
  return [{ op: "azureIdentity" in spec ? "replace" : "add", path: "/spec/azureIdentity", value: azureIdentity }];
}
