import { AZURE_ASSIGNED_IDENTITIES, AZURE_IDENTITIES, AZURE_POD_IDENTITY_EXCEPTIONS } from "../kube/resources.js";
import type { AdmissionRequest, Decision } from "./admission.js";
import { unowned } from "./unowned.js";

/**
 * Who may write the kinds that decide who gets a token. Everything else is denied whatever RBAC
 * says, because aad-pod-identity trusts these objects as they are.
 */
export interface GuardPolicy {
  /** The operator's own user, learned at start-up with a SelfSubjectReview. */
  operatorUser: string;
  /** --webhook.allow.users and --webhook.allow.groups: the cluster's admins. */
  adminUsers: ReadonlySet<string>;
  adminGroups: ReadonlySet<string>;
  /** --webhook.allow.mic: aad-pod-identity MIC's service accounts. */
  micUsers: ReadonlySet<string>;
  /** Azure tag keys the namespace template reads, for telling a developer what to ask for. */
  namespaceTags: readonly string[];
}

/** Who may write the guarded kinds, from the --webhook.allow.* flags, once the operator's own user is known. */
export function guardPolicyFrom(
  operatorUser: string,
  allow: { allowUsers: readonly string[]; allowGroups: readonly string[]; allowMic: readonly string[] },
  namespaceTags: readonly string[],
): GuardPolicy {
  return {
    operatorUser,
    adminUsers: new Set(allow.allowUsers),
    adminGroups: new Set(allow.allowGroups),
    micUsers: new Set(allow.allowMic),
    namespaceTags,
  };
}

/**
 * Kubernetes' own controllers that must be able to delete whatever a namespace holds. The shipped
 * webhook configurations skip them with matchConditions (so cleanup never waits on this webhook),
 * and so the admins, the operator (AzureIdentity) and MIC (AzureAssignedIdentity): whom
 * decideGuarded allows whatever the object. This is the same rule for API servers that do not
 * evaluate matchConditions; test/support/match-conditions.ts holds the two together.
 */
export const NAMESPACE_CLEANUP_USERS: ReadonlySet<string> = new Set([
  "system:serviceaccount:kube-system:namespace-controller",
  "system:serviceaccount:kube-system:generic-garbage-collector",
]);

export type GuardedKind = "AzureIdentity" | "AzureAssignedIdentity" | "AzurePodIdentityException";

interface Guard {
  readonly resource: string;
  /** Who writes this kind in normal operation, besides the admins. */
  readonly writers: (policy: GuardPolicy, user: string) => boolean;
  /** Who writes this kind, the first words of a denial. */
  readonly owner: string;
  /** What the developer should do instead, told in the denial. */
  readonly instead: (namespace: string, policy: GuardPolicy) => string;
}

export const GUARDS: Readonly<Record<GuardedKind, Guard>> = {
  AzureIdentity: {
    resource: AZURE_IDENTITIES,
    writers: (policy, user) => user === policy.operatorUser,
    owner: "AzureIdentity objects are managed by azure-msi-operator",
    instead: (namespace, policy) =>
      `To get a managed identity into namespace "${namespace}", a platform admin tags the ` +
      `user-assigned managed identity in Azure with ${tagToSet(policy.namespaceTags, namespace)}; the operator then creates the AzureIdentity here. ` +
      `Reference it from an AzureIdentityBinding (the lookup labels fill spec.azureIdentity for you).`,
  },
  AzureAssignedIdentity: {
    resource: AZURE_ASSIGNED_IDENTITIES,
    writers: (policy, user) => policy.micUsers.has(user),
    owner: "AzureAssignedIdentity objects are written only by aad-pod-identity's MIC",
    instead: (namespace) =>
      `NMI hands out tokens from them as they are. To give a pod in ` +
      `namespace "${namespace}" a managed identity, label the pod aadpodidbinding: <selector> matching an AzureIdentityBinding ` +
      `in "${namespace}"; MIC assigns it.`,
  },
  AzurePodIdentityException: {
    resource: AZURE_POD_IDENTITY_EXCEPTIONS,
    writers: () => false,
    owner: "AzurePodIdentityException objects are written only by cluster admins",
    instead: (namespace) =>
      `Pods they match skip NMI and reach every identity on their node. To give a pod ` +
      `in namespace "${namespace}" a managed identity, use an AzureIdentityBinding; a pod that must bypass NMI needs a cluster admin.`,
  },
};

/**
 * Only the kind's writers and the admins may create, change (spec, metadata or status: the upstream
 * CRDs have no status subresource) or delete one; namespace cleanup still deletes. Dry-run is
 * judged the same as a real request.
 */
export function decideGuarded(kind: GuardedKind, request: AdmissionRequest, policy: GuardPolicy): Decision {
  const guard = GUARDS[kind];
  const misrouted = unowned(request, guard.resource, kind, "ValidatingWebhookConfiguration");
  if (misrouted) return misrouted;
  const user = request.userInfo.username ?? "";
  if (isAdmin(policy, user, request.userInfo.groups ?? []) || guard.writers(policy, user)) return { allowed: true, result: "allowed" };
  if (request.operation === "DELETE" && NAMESPACE_CLEANUP_USERS.has(user)) return { allowed: true, result: "allowed" };
  const namespace = request.namespace || request.object?.metadata?.namespace || "<namespace>";
  const verb = request.operation === "CREATE" ? "create" : request.operation === "DELETE" ? "delete" : "change";
  return {
    allowed: false,
    code: 403,
    result: "denied",
    message: `${guard.owner}: ${user || "this user"} may not ${verb} them. ${guard.instead(namespace, policy)}`,
  };
}

/** The cluster's admins (--webhook.allow.users/groups): they may write every guarded kind and set any client ID. */
export function isAdmin(policy: Pick<GuardPolicy, "adminUsers" | "adminGroups">, user: string, groups: readonly string[]): boolean {
  return policy.adminUsers.has(user) || groups.some((group) => policy.adminGroups.has(group));
}

/** "k8snamespace: team-a", or the choices when the namespace template reads several tags. */
export function tagToSet(tags: readonly string[], namespace: string): string {
  if (tags.length === 0) return `the tag your namespace template reads set to ${namespace}`;
  return tags.map((tag) => `${tag}: ${namespace}`).join(" or ");
}
