import { lookupValuesOf, matchingIdentity, type LookupValues } from "../kube/lookup.js";
import { SERVICE_ACCOUNTS, WI_CLIENT_ID_ANNOTATION, WI_TENANT_ID_ANNOTATION, type AzureIdentity } from "../kube/resources.js";
import type { AdmissionRequest, Decision, JsonPatchOperation, KubeObject } from "./admission.js";
import { isAdmin, tagToSet, type GuardPolicy } from "./decide-guard.js";
import { noIdentity } from "./no-identity.js";
import { unowned } from "./unowned.js";

/** ServiceAccounts are in the core API group, which admission spells "". */
const CORE_GROUP = "";
// A fresh object each time: callers may add to a decision.
const allowed = (): Decision => ({ allowed: true, result: "allowed" });

/**
 * The workload identity mode's ServiceAccount webhooks: the same rule as for bindings (Azure tags
 * decide which MSI a namespace may use), applied to `azure.workload.identity/client-id`, which
 * Azure Workload Identity's own webhook turns into a pod's AZURE_CLIENT_ID.
 */
export interface ServiceAccountPolicy {
  /** --workloadidentity.enable; off, both webhooks allow everything untouched. */
  enable: boolean;
  /** --workloadidentity.strict: deny a labelled ServiceAccount whose labels match no identity of its namespace. */
  strict: boolean;
  /** Lookup label keys; undefined when --kubernetes.label.format is empty (nothing to fill). */
  lookupKeys: Record<keyof LookupValues, string> | undefined;
  /** Operator-owned identities of one namespace, from the informer cache (no I/O). */
  identitiesIn: (namespace: string) => readonly AzureIdentity[];
  /** Azure tag keys the namespace template reads, for telling a developer what to ask for. */
  namespaceTags: readonly string[];
}

type Admins = Pick<GuardPolicy, "adminUsers" | "adminGroups">;

/** What a policy without the mode looks like: the server's default, so callers that predate the mode need not know it. */
export const WORKLOAD_IDENTITY_OFF: ServiceAccountPolicy = { enable: false, strict: false, lookupKeys: undefined, identitiesIn: () => [], namespaceTags: [] };

const writes = (request: AdmissionRequest) => request.operation === "CREATE" || request.operation === "UPDATE";
const namespaceOf = (request: AdmissionRequest, object: KubeObject) => request.namespace ?? object.metadata?.namespace ?? "";
const clientIdOf = (object: KubeObject | null | undefined) => object?.metadata?.annotations?.[WI_CLIENT_ID_ANNOTATION];

/**
 * A ServiceAccount with all three lookup labels gets the client ID (and, when the identity knows
 * it, the tenant) of the operator-owned identity with the same labels in its own namespace. No
 * patch when the annotations are already right, so reinvocation never loops.
 */
export function mutateServiceAccount(request: AdmissionRequest, policy: ServiceAccountPolicy): Decision {
  const misrouted = unowned(request, SERVICE_ACCOUNTS, "ServiceAccount", "MutatingWebhookConfiguration", CORE_GROUP);
  if (misrouted) return misrouted;
  const account = request.object;
  if (!policy.enable || !writes(request) || !account || !policy.lookupKeys) return allowed();
  const values = lookupValuesOf(account.metadata?.labels, policy.lookupKeys);
  if (!values) return allowed();
  const namespace = namespaceOf(request, account);
  const identity = matchingIdentity(policy.identitiesIn(namespace), values, policy.lookupKeys);
  const clientId = identity?.spec?.clientID;
  if (!clientId) return noIdentity(values, namespace, { ...policy, leftAsIs: `${WI_CLIENT_ID_ANNOTATION} left as it is` });
  const wanted: Record<string, string> = { [WI_CLIENT_ID_ANNOTATION]: clientId };
  const tenantId = identity.metadata?.annotations?.[WI_TENANT_ID_ANNOTATION];
  if (tenantId) wanted[WI_TENANT_ID_ANNOTATION] = tenantId;
  const patch = annotationsPatch(account, wanted);
  return patch.length > 0 ? { allowed: true, result: "patched", patch } : allowed();
}

/** RFC 6901: "~" and "/" inside a key are escaped, so "azure.workload.identity/client-id" stays one segment. */
export function pointerSegment(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}

/**
 * The JSON patch that sets `wanted` among the object's annotations and leaves every other one as
 * it is: one add of the whole map when there is none, else one add or replace per key that differs.
 */
export function annotationsPatch(object: KubeObject, wanted: Readonly<Record<string, string>>): JsonPatchOperation[] {
  const metadata = object.metadata;
  if (metadata === undefined) return [{ op: "add", path: "/metadata", value: { annotations: { ...wanted } } }];
  const annotations = metadata.annotations;
  if (annotations === undefined) return [{ op: "add", path: "/metadata/annotations", value: { ...wanted } }];
  return Object.entries(wanted)
    .filter(([key, value]) => annotations[key] !== value)
    .map(([key, value]) => ({ op: Object.hasOwn(annotations, key) ? "replace" : "add", path: `/metadata/annotations/${pointerSegment(key)}`, value }));
}

/**
 * A ServiceAccount may name only the client ID of an operator-owned identity of its own namespace
 * (compared case-insensitively, as Azure does). The admins may name any; removing the annotation
 * and updates that leave it as stored pass: this judges what a write sets, not what existed before.
 */
export function validateServiceAccount(request: AdmissionRequest, policy: ServiceAccountPolicy, admins: Admins): Decision {
  const misrouted = unowned(request, SERVICE_ACCOUNTS, "ServiceAccount", "ValidatingWebhookConfiguration", CORE_GROUP);
  if (misrouted) return misrouted;
  const account = request.object;
  const clientId = clientIdOf(account);
  if (!policy.enable || !writes(request) || !account || clientId === undefined) return allowed();
  const user = request.userInfo.username ?? "";
  if (isAdmin(admins, user, request.userInfo.groups ?? [])) return allowed();
  if (request.operation === "UPDATE" && clientIdOf(request.oldObject) === clientId) return allowed();
  const namespace = namespaceOf(request, account);
  const wanted = clientId.toLowerCase();
  const assigned = policy
    .identitiesIn(namespace)
    .some((identity) => !identity.metadata?.deletionTimestamp && identity.spec?.clientID?.toLowerCase() === wanted);
  if (assigned) return allowed();
  return { allowed: false, code: 403, result: "denied", message: denial(user, clientId, namespace, policy) };
}

function denial(user: string, clientId: string, namespace: string, policy: ServiceAccountPolicy): string {
  const shown = JSON.stringify(clientId.length > 64 ? `${clientId.slice(0, 61)}...` : clientId);
  const keys = policy.lookupKeys;
  const how = keys
    ? `label the ServiceAccount with ${keys.name}, ${keys.resourcegroup} and ${keys.subscription} of a managed identity ` +
      `tagged in Azure with ${tagToSet(policy.namespaceTags, namespace)}; the operator fills the annotation`
    : `a platform admin tags a managed identity in Azure with ${tagToSet(policy.namespaceTags, namespace)}`;
  return (
    `${WI_CLIENT_ID_ANNOTATION} names only managed identities assigned to the ServiceAccount's namespace: ` +
    `${user || "this user"} may not set it to ${shown}, which no AzureIdentity in "${namespace}" has. ` +
    `Azure tags decide which managed identities a namespace may use: ${how}.`
  );
}
