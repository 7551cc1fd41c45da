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
  /**
   * --workloadidentity.strict: deny a labelled ServiceAccount whose labels match no identity of its
   * namespace, and a client-id annotation the operator does not know.
   */
  strict: boolean;
  /** Lookup label keys; undefined when --kubernetes.label.format is empty (nothing to fill). */
  lookupKeys: Record<keyof LookupValues, string> | undefined;
  /** Operator-owned identities of one namespace, from the informer cache (no I/O). */
  identitiesIn: (namespace: string) => readonly AzureIdentity[];
  /**
   * Every operator-owned identity, from the same cache: an MSI tagged only for other namespaces has
   * identities there, which is the evidence that a client ID is another namespace's (no I/O).
   */
  allIdentities: () => readonly AzureIdentity[];
  /** Azure tag keys the namespace template reads, for telling a developer what to ask for. */
  namespaceTags: readonly string[];
}

type Admins = Pick<GuardPolicy, "adminUsers" | "adminGroups">;

/** What a policy without the mode looks like: the server's default, so callers that predate the mode need not know it. */
export const WORKLOAD_IDENTITY_OFF: ServiceAccountPolicy = {
  enable: false,
  strict: false,
  lookupKeys: undefined,
  identitiesIn: () => [],
  allIdentities: () => [],
  namespaceTags: [],
};

const writes = (request: AdmissionRequest) => request.operation === "CREATE" || request.operation === "UPDATE";
const namespaceOf = (request: AdmissionRequest, object: KubeObject) => request.namespace ?? object.metadata?.namespace ?? "";
const clientIdOf = (object: KubeObject | null | undefined) => object?.metadata?.annotations?.[WI_CLIENT_ID_ANNOTATION];

/**
 * A ServiceAccount with all three lookup labels gets the client ID (and, when the identity knows
 * it, the tenant) of the operator-owned identity with the same labels in its own namespace. No
 * patch when the annotations are already right, so reinvocation never loops. The labels decide:
 * a client-id annotation that disagrees with them is replaced, with a warning saying so (the
 * write still succeeds, as the labels are a valid choice); one alone is left for the validating
 * webhook to judge.
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
  const named = clientIdOf(account);
  if (!clientId) return labelsMatchNothing(values, namespace, named, policy);
  const wanted: Record<string, string> = { [WI_CLIENT_ID_ANNOTATION]: clientId };
  const tenantId = identity.metadata?.annotations?.[WI_TENANT_ID_ANNOTATION];
  if (tenantId) wanted[WI_TENANT_ID_ANNOTATION] = tenantId;
  const patch = annotationsPatch(account, wanted);
  if (patch.length === 0) return allowed();
  const decision: Decision = { allowed: true, result: "patched", patch };
  if (named !== undefined && named.trim() !== "" && named.toLowerCase() !== clientId.toLowerCase())
    decision.warnings = [
      `${WI_CLIENT_ID_ANNOTATION} ${JSON.stringify(named.slice(0, 40))} disagrees with the lookup labels (managed identity ${values.name}): ` +
        `replaced by ${clientId}; the labels decide (remove them to select by the annotation)`,
    ];
  return decision;
}

function labelsMatchNothing(values: LookupValues, namespace: string, named: string | undefined, policy: ServiceAccountPolicy): Decision {
  const decision = noIdentity(values, namespace, { ...policy, leftAsIs: `${WI_CLIENT_ID_ANNOTATION} left as it is` });
  if (decision.allowed && named !== undefined)
    decision.warnings = [
      ...(decision.warnings ?? []),
      `the lookup labels decide which managed identity gets a federated credential: ${WI_CLIENT_ID_ANNOTATION} gets none while they match nothing (remove them to select by the annotation)`,
    ];
  return decision;
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
 * A ServiceAccount may not name the client ID of an MSI the operator lists for other namespaces
 * only (an operator-owned identity of that client ID exists, none in its own namespace; compared
 * case-insensitively, as Azure does). A client ID the operator does not know at all (an app
 * registration, an MSI federated by Terraform or Azure Service Operator) passes with a warning,
 * or with --workloadidentity.strict is denied: the annotation alone grants nothing, as Entra
 * exchanges a token only for a subject with a federated credential on the identity, and this
 * operator makes one only on an MSI tagged for the namespace. The admins may name any; removing
 * the annotation and updates that leave it as stored pass: this judges what a write sets.
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
  const wanted = clientId.trim().toLowerCase();
  const named = (identity: AzureIdentity) => !identity.metadata?.deletionTimestamp && identity.spec?.clientID?.toLowerCase() === wanted;
  if (policy.identitiesIn(namespace).some(named)) return allowed();
  const elsewhere = policy.allIdentities().some((identity) => named(identity) && identity.metadata?.namespace !== namespace);
  const shown = JSON.stringify(clientId.length > 64 ? `${clientId.slice(0, 61)}...` : clientId);
  if (elsewhere) return { allowed: false, code: 403, result: "denied", message: denial(user, shown, namespace, policy) };
  const unknown = `${WI_CLIENT_ID_ANNOTATION} ${shown} is no managed identity this operator lists`;
  if (policy.strict)
    return {
      allowed: false,
      code: 403,
      result: "denied",
      unknownClientId: true,
      message: `${unknown}, and --workloadidentity.strict admits only managed identities tagged for the namespace. ${howTo(namespace, policy)}.`,
    };
  return {
    allowed: true,
    result: "allowed",
    unknownClientId: true,
    warnings: [
      `${unknown}: it grants nothing unless the identity has a federated credential for this ServiceAccount, which this operator makes only for MSIs tagged for "${namespace}"`,
    ],
  };
}

function howTo(namespace: string, policy: ServiceAccountPolicy): string {
  const keys = policy.lookupKeys;
  return keys
    ? `Azure tags decide which managed identities a namespace may use: label the ServiceAccount with ${keys.name}, ${keys.resourcegroup} and ${keys.subscription} of a managed identity ` +
        `tagged in Azure with ${tagToSet(policy.namespaceTags, namespace)}; the operator fills the annotation`
    : `Azure tags decide which managed identities a namespace may use: a platform admin tags a managed identity in Azure with ${tagToSet(policy.namespaceTags, namespace)}`;
}

function denial(user: string, shown: string, namespace: string, policy: ServiceAccountPolicy): string {
  return (
    `${WI_CLIENT_ID_ANNOTATION} names only managed identities assigned to the ServiceAccount's namespace: ` +
    `${user || "this user"} may not set it to ${shown}, which no AzureIdentity in "${namespace}" has (it is other namespaces' managed identity). ` +
    `${howTo(namespace, policy)}.`
  );
}
