// The audit (pure): what already exists, in Kubernetes and in Azure, checked against the promise
// that an MSI's tokens reach a pod only if Azure tagged that MSI for the pod's namespace. Admission
// judges what is written from now on; this judges what is there. Each finding is a named kind from a
// fixed set, so metrics, Events, PolicyReports and the `audit` command all speak the same words.
import type { FederatedCredential, Msi, MsiRef } from "../azure/types.js";
import type { AuditListing } from "../model/audit.js";
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, NAMESPACED_ANNOTATION, NAMESPACED_VALUE } from "../kube/resources.js";

export const VIOLATION_KINDS = [
  /** An AzureIdentity the operator does not own: someone chose its MSI, not Azure's tag. */
  "UnownedIdentity",
  /** An owned AzureIdentity whose MSI (listed completely) is no longer tagged for its namespace. */
  "StaleIdentity",
  /** An AzureIdentity without aadpodidentity.k8s.io/Behavior: namespaced while MIC is not forced namespaced. */
  "IdentityNotNamespaced",
  /** An AzureAssignedIdentity whose identity or pod is in another namespace. */
  "AssignedIdentityCrossNamespace",
  /** An AzureAssignedIdentity written (also) by someone other than MIC. */
  "AssignedIdentityNotFromMic",
  /** An AzurePodIdentityException: its pods skip NMI and reach every identity of their node. */
  "PodIdentityException",
  /** A ServiceAccount whose azure.workload.identity/client-id names a listed MSI not tagged for its namespace. */
  "ServiceAccountUntaggedClientId",
  /** A FIC for this cluster's issuer, not the operator's, whose subject's namespace its MSI is not tagged for. */
  "FederatedCredentialUntaggedNamespace",
  /** Identities of a subscription missing from the listing or whose listing failed: unknown, not empty (kept). */
  "SubscriptionUnknown",
] as const;

export type ViolationKind = (typeof VIOLATION_KINDS)[number];

/** The Kubernetes object a violation is about. */
export interface ViolatingObject {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
}

export interface Violation {
  kind: ViolationKind;
  /** Where it lives (the metric's and the PolicyReport's namespace); "" for a subscription with nothing in the cluster. */
  namespace: string;
  /** The object it is about; a FIC's violation is about its subject's ServiceAccount. */
  object?: ViolatingObject;
  /** The Azure resource it is about, when there is one (an MSI's ID, with the FIC's name). */
  azure?: { msiId: string; fic?: string };
  message: string;
}

/** An object as the caches hold it: only what the audit reads. */
export interface AuditObject {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    managedFields?: readonly { manager?: string }[];
  };
}

export interface AuditIdentity extends AuditObject {
  spec?: { resourceID?: string; clientID?: string; [field: string]: unknown };
}

export interface AuditAssignedIdentity extends AuditObject {
  spec?: {
    pod?: string;
    podNamespace?: string;
    azureIdentityRef?: { metadata?: { name?: string; namespace?: string } } | null;
    azureBindingRef?: { metadata?: { name?: string; namespace?: string } } | null;
    [field: string]: unknown;
  };
}

/** A ServiceAccount's name and the client ID it asks tokens for. */
export interface AuditServiceAccount {
  namespace: string;
  name: string;
  uid?: string | undefined;
  clientId: string;
}

/** The FICs listed on one MSI. */
export interface ListedFics {
  msi: MsiRef;
  fics: readonly FederatedCredential[];
}

export interface AuditOptions {
  /** MIC runs with --forceNamespaced (only a flag can say so): identities then need no annotation. */
  micForceNamespaced: boolean;
  /** Field managers MIC writes AzureAssignedIdentities as (its User-Agent's first part). */
  micManagers: readonly string[];
  /** Workload identity mode: this cluster's issuer and the prefix of the operator's FIC names. */
  workload?: { issuer: string; ownedFicPrefix: string };
}

export interface AuditState {
  /** Every AzureIdentity of the cluster, owned or not. */
  identities: readonly AuditIdentity[];
  assignedIdentities: readonly AuditAssignedIdentity[];
  exceptions: readonly AuditObject[];
  /** Workload identity mode: ServiceAccounts that carry a client-id annotation. */
  serviceAccounts?: readonly AuditServiceAccount[];
  /** Workload identity mode: FICs as the last listing of each MSI found them. */
  fics?: readonly ListedFics[];
  listing: AuditListing;
  options: AuditOptions;
}

const AAD = "aadpodidentity.k8s.io/v1";
const WI_CLIENT_ID = "azure.workload.identity/client-id";

const ref = (apiVersion: string, kind: string, object: AuditObject): ViolatingObject => ({
  apiVersion,
  kind,
  namespace: object.metadata?.namespace ?? "",
  name: object.metadata?.name ?? "",
  ...(object.metadata?.uid ? { uid: object.metadata.uid } : {}),
});

/** Lower-cased subscription of an ARM resource ID ("" when it has none). */
export function subscriptionOfId(resourceId: string | undefined): string {
  return /^\/subscriptions\/([^/]+)/i.exec(resourceId ?? "")?.[1]?.toLowerCase() ?? "";
}

/** What the listing says, indexed once per audit. */
interface ListingIndex {
  complete: Set<string>;
  failed: Map<string, string | undefined>;
  /** Lower-cased client ID -> the namespaces its MSI is tagged for (as the operator applies tags). */
  taggedByClientId: Map<string, Set<string>>;
  /** Lower-cased MSI key -> the namespaces it is tagged for. */
  taggedByMsi: Map<string, Set<string>>;
  msiByClientId: Map<string, Msi>;
  listedMsis: Set<string>;
}

const msiRefKey = (msi: MsiRef) => `${msi.subscriptionId}/${msi.resourceGroup}/${msi.name}`.toLowerCase();

function indexListing(listing: AuditListing): ListingIndex {
  const complete = new Set(listing.subscriptions.filter((part) => part.complete).map((part) => part.subscriptionId.toLowerCase()));
  const failed = new Map(listing.subscriptions.filter((part) => !part.complete).map((part) => [part.subscriptionId.toLowerCase(), part.error]));
  const taggedByClientId = new Map<string, Set<string>>();
  const taggedByMsi = new Map<string, Set<string>>();
  const add = (map: Map<string, Set<string>>, key: string, namespace: string) => {
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    set.add(namespace);
  };
  for (const [namespace, identities] of listing.desired.byNamespace)
    for (const identity of identities.values()) {
      add(taggedByClientId, identity.spec.clientID.toLowerCase(), namespace);
      add(taggedByMsi, msiRefKey({ subscriptionId: identity.subscriptionId, resourceGroup: identity.resourceGroup, name: identity.msiName }), namespace);
    }
  const msiByClientId = new Map(listing.msis.map((msi) => [msi.clientId.toLowerCase(), msi]));
  const listedMsis = new Set(listing.msis.filter((msi) => complete.has(msi.subscriptionId.toLowerCase())).map(msiRefKey));
  return { complete, failed, taggedByClientId, taggedByMsi, msiByClientId, listedMsis };
}

const isOwned = (identity: AuditIdentity) => identity.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
const isNamespaced = (identity: AuditIdentity) =>
  Object.entries(identity.metadata?.annotations ?? {}).some(
    ([key, value]) => key.toLowerCase() === NAMESPACED_ANNOTATION.toLowerCase() && value.toLowerCase() === NAMESPACED_VALUE,
  );

/** Why a subscription is unknown, in words. */
function unknownReason(subscription: string, index: ListingIndex): string {
  if (index.failed.has(subscription)) {
    const error = index.failed.get(subscription);
    return `the Azure listing of subscription ${subscription} failed${error ? ` (${error})` : ""}`;
  }
  return `subscription ${subscription} is missing from the Azure listing (has the credential lost its role?)`;
}

function auditIdentities(state: AuditState, index: ListingIndex, out: Violation[]): void {
  const { desired } = state.listing;
  for (const identity of state.identities) {
    const object = ref(AAD, "AzureIdentity", identity);
    const where = `${object.namespace}/${object.name}`;
    if (!isOwned(identity)) {
      out.push({
        kind: "UnownedIdentity",
        namespace: object.namespace,
        object,
        message: `AzureIdentity ${where} (resourceID ${identity.spec?.resourceID ?? "none"}) is not managed by azure-msi-operator: its MSI was chosen by whoever wrote it, not by Azure's tag`,
      });
    } else {
      const subscription = subscriptionOfId(identity.spec?.resourceID);
      if (!index.complete.has(subscription)) {
        out.push({
          kind: "SubscriptionUnknown",
          namespace: object.namespace,
          object,
          message: `AzureIdentity ${where} kept: ${unknownReason(subscription, index)}; unknown is not empty, so it is neither confirmed nor pruned`,
        });
      } else if (!desired.byNamespace.get(object.namespace)?.has(object.name)) {
        out.push({
          kind: "StaleIdentity",
          namespace: object.namespace,
          object,
          message: `AzureIdentity ${where}: its MSI ${identity.spec?.resourceID ?? ""} is no longer tagged for namespace ${object.namespace} (or is gone), yet the identity still works; prune removes it`,
        });
      }
    }
    if (!state.options.micForceNamespaced && !isNamespaced(identity)) {
      out.push({
        kind: "IdentityNotNamespaced",
        namespace: object.namespace,
        object,
        message: `AzureIdentity ${where} lacks ${NAMESPACED_ANNOTATION}: ${NAMESPACED_VALUE} and MIC is not forced namespaced, so a pod of any namespace can be matched to it`,
      });
    }
  }
}

/** Subscriptions that failed and hold nothing in the cluster still count: a lost role must not stay a log line. */
function auditFailedSubscriptions(state: AuditState, index: ListingIndex, out: Violation[]): void {
  const held = new Set(state.identities.filter(isOwned).map((identity) => subscriptionOfId(identity.spec?.resourceID)));
  for (const subscription of index.failed.keys()) {
    if (held.has(subscription)) continue;
    out.push({ kind: "SubscriptionUnknown", namespace: "", message: `${unknownReason(subscription, index)}: its MSIs are unknown, not absent` });
  }
}

/** Where an assigned identity's pod, identity and binding live. */
function placesOf(assigned: AuditAssignedIdentity) {
  const spec = assigned.spec ?? {};
  const identity = spec.azureIdentityRef?.metadata ?? {};
  const podNamespace = spec.podNamespace ?? "";
  const identityNamespace = identity.namespace ?? "";
  return {
    pod: `${podNamespace}/${spec.pod ?? ""}`,
    podNamespace,
    identity: `${identityNamespace}/${identity.name ?? ""}`,
    identityNamespace,
    bindingNamespace: spec.azureBindingRef?.metadata?.namespace,
  };
}

function auditAssigned(state: AuditState, out: Violation[]): void {
  const managers = new Set(state.options.micManagers);
  for (const assigned of state.assignedIdentities) {
    const object = ref(AAD, "AzureAssignedIdentity", assigned);
    const where = `${object.namespace}/${object.name}`;
    const places = placesOf(assigned);
    // MIC puts a non-namespaced identity's assigned identities in "default" (its back-compat); anywhere
    // else they live with their identity.
    const misplaced = object.namespace !== places.identityNamespace && object.namespace !== "default";
    const viaBinding = places.bindingNamespace !== undefined && places.bindingNamespace !== places.podNamespace;
    if (places.podNamespace !== places.identityNamespace || viaBinding || misplaced) {
      out.push({
        kind: "AssignedIdentityCrossNamespace",
        namespace: object.namespace,
        object,
        message:
          `AzureAssignedIdentity ${where} gives pod ${places.pod} the AzureIdentity ${places.identity}` +
          `${places.bindingNamespace !== undefined ? ` through a binding in ${places.bindingNamespace}` : ""}: across namespaces`,
      });
    }
    const writers = [...new Set((assigned.metadata?.managedFields ?? []).map((entry) => entry.manager ?? ""))];
    const foreign = writers.filter((writer) => !managers.has(writer));
    if (writers.length === 0 || foreign.length > 0) {
      out.push({
        kind: "AssignedIdentityNotFromMic",
        namespace: object.namespace,
        object,
        message:
          `AzureAssignedIdentity ${where} was written by ${foreign.length > 0 ? foreign.join(", ") : "an unknown writer"}, ` +
          `not (only) by MIC (${[...managers].join(", ")}); NMI hands its identity's tokens to the pod it names`,
      });
    }
  }
}

function auditExceptions(state: AuditState, out: Violation[]): void {
  for (const exception of state.exceptions) {
    const object = ref(AAD, "AzurePodIdentityException", exception);
    out.push({
      kind: "PodIdentityException",
      namespace: object.namespace,
      object,
      message: `AzurePodIdentityException ${object.namespace}/${object.name}: the pods it matches skip NMI and can reach every identity assigned to their node`,
    });
  }
}

function auditServiceAccounts(state: AuditState, index: ListingIndex, out: Violation[]): void {
  for (const account of state.serviceAccounts ?? []) {
    const clientId = account.clientId.trim().toLowerCase();
    const msi = index.msiByClientId.get(clientId);
    // A client ID no listed MSI has (an app registration, another tenant's MSI) is not Azure's tag to judge.
    if (!msi || !index.complete.has(msi.subscriptionId.toLowerCase())) continue;
    const tagged = index.taggedByClientId.get(clientId);
    if (tagged?.has(account.namespace)) continue;
    out.push({
      kind: "ServiceAccountUntaggedClientId",
      namespace: account.namespace,
      object: { apiVersion: "v1", kind: "ServiceAccount", namespace: account.namespace, name: account.name, ...(account.uid ? { uid: account.uid } : {}) },
      azure: { msiId: msi.id },
      message:
        `ServiceAccount ${account.namespace}/${account.name} names MSI ${msi.name} (${WI_CLIENT_ID}: ${account.clientId}), ` +
        `which Azure tagged ${tagged && tagged.size > 0 ? `for ${[...tagged].sort().join(", ")}` : "for no namespace"}, not for ${account.namespace}`,
    });
  }
}

const SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;

function auditFics(state: AuditState, index: ListingIndex, out: Violation[]): void {
  const workload = state.options.workload;
  if (!workload) return;
  for (const { msi, fics } of state.fics ?? []) {
    const key = msiRefKey(msi);
    // Only MSIs the last listing showed, in a subscription it listed completely: the tag is known.
    if (!index.listedMsis.has(key)) continue;
    const tagged = index.taggedByMsi.get(key);
    for (const fic of fics) {
      if (fic.issuer !== workload.issuer || fic.name.startsWith(workload.ownedFicPrefix)) continue;
      const subject = SUBJECT.exec(fic.subject);
      if (!subject) continue;
      const [, namespace = "", name = ""] = subject;
      if (tagged?.has(namespace)) continue;
      const msiId = `/subscriptions/${msi.subscriptionId}/resourceGroups/${msi.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${msi.name}`;
      out.push({
        kind: "FederatedCredentialUntaggedNamespace",
        namespace,
        object: { apiVersion: "v1", kind: "ServiceAccount", namespace, name },
        azure: { msiId, fic: fic.name },
        message:
          `federated identity credential ${fic.name} on MSI ${msi.name} (not made by azure-msi-operator) lets ServiceAccount ${namespace}/${name} ` +
          `of this cluster get its tokens, but Azure tagged the MSI ${tagged && tagged.size > 0 ? `for ${[...tagged].sort().join(", ")}` : "for no namespace"}`,
      });
    }
  }
}

/** Every violation found in `state`, in a stable order (kind, namespace, object, message). */
export function audit(state: AuditState): Violation[] {
  const index = indexListing(state.listing);
  const out: Violation[] = [];
  auditIdentities(state, index, out);
  auditFailedSubscriptions(state, index, out);
  auditAssigned(state, out);
  auditExceptions(state, out);
  auditServiceAccounts(state, index, out);
  auditFics(state, index, out);
  const order = new Map(VIOLATION_KINDS.map((kind, position) => [kind, position]));
  return out.sort(
    (a, b) =>
      (order.get(a.kind) ?? 0) - (order.get(b.kind) ?? 0) ||
      a.namespace.localeCompare(b.namespace) ||
      (a.object?.name ?? "").localeCompare(b.object?.name ?? "") ||
      a.message.localeCompare(b.message),
  );
}

/** The client ID a ServiceAccount names, if any. */
export function clientIdOf(annotations: Record<string, string> | undefined): string | undefined {
  const value = annotations?.[WI_CLIENT_ID]?.trim();
  return value ? value : undefined;
}
