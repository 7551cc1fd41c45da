import { AAD_GROUP, AZURE_IDENTITIES } from "../kube/resources.js";
import type { AdmissionRequest, Decision } from "./admission.js";

export interface IdentityPolicy {
  /** The operator's own user, learned at start-up with a SelfSubjectReview. */
  operatorUser: string;
  allowedUsers: ReadonlySet<string>;
  allowedGroups: ReadonlySet<string>;
}

/** Kubernetes' own controllers that must be able to delete whatever a namespace holds. */
export const NAMESPACE_CLEANUP_USERS: ReadonlySet<string> = new Set([
  "system:serviceaccount:kube-system:namespace-controller",
  "system:serviceaccount:kube-system:generic-garbage-collector",
]);

/**
 * Only the operator (and explicitly allowed admins) may create, change or delete AzureIdentities;
 * namespace deletion still works. Dry-run requests are judged the same as real ones.
 */
export function decideIdentity(request: AdmissionRequest, policy: IdentityPolicy): Decision {
  const misrouted = unowned(request, AZURE_IDENTITIES, "AzureIdentity", "ValidatingWebhookConfiguration");
  if (misrouted) return misrouted;
  const user = request.userInfo.username ?? "";
  const groups = request.userInfo.groups ?? [];
  if (user === policy.operatorUser || policy.allowedUsers.has(user) || groups.some((group) => policy.allowedGroups.has(group))) {
    return { allowed: true, result: "allowed" };
  }
  if (request.operation === "DELETE" && NAMESPACE_CLEANUP_USERS.has(user)) return { allowed: true, result: "allowed" };
  const namespace = request.namespace ?? request.object?.metadata?.namespace ?? "<namespace>";
  const verb = request.operation === "CREATE" ? "create" : request.operation === "DELETE" ? "delete" : "change";
  return {
    allowed: false,
    code: 403,
    result: "denied",
    message:
      `AzureIdentity objects are managed by azure-msi-operator: ${user || "this user"} may not ${verb} them. ` +
      `To get a managed identity into namespace "${namespace}", a platform admin tags the user-assigned managed identity in Azure ` +
      `with k8snamespace: ${namespace}; the operator then creates the AzureIdentity here. Reference it from an AzureIdentityBinding ` +
      `(the lookup labels fill spec.azureIdentity for you).`,
  };
}

/**
 * A request for a resource this webhook does not guard is allowed with a warning: a mis-scoped
 * configuration must never block the cluster.
 */
export function unowned(request: AdmissionRequest, resource: string, kind: string, configuration: string): Decision | undefined {
  if (request.resource.group === AAD_GROUP && request.resource.resource === resource) return undefined;
  return { allowed: true, result: "unowned", warnings: [`azure-msi-operator: the ${kind} webhook was called for ${describe(request)}; check the ${configuration}'s rules`] };
}

export function describe(request: AdmissionRequest): string {
  const { group, version, resource } = request.resource;
  return `${resource}${request.subResource ? `/${request.subResource}` : ""}.${group || "core"}/${version} (${request.operation})`;
}
