// What the operator tells people with Events (pure): the syncer's happenings on namespaces, bindings
// and ServiceAccounts, and the operator's own on its pod. The recorder (src/kube/events.ts) writes them.
import type { ObjectEvent, ObjectRef } from "../kube/event-correlator.js";
import type { LookupValues } from "../kube/lookup.js";
import { AAD_API_VERSION } from "../kube/resources.js";
import type { Subject, SyncHappening } from "../syncer/report.js";
import type { FicHappening } from "../workload/fic-controller.js";
import { MAX_FICS_PER_MSI } from "../workload/plan.js";

const namespaceRef = (subject: Subject): ObjectRef => ({
  apiVersion: "v1",
  kind: "Namespace",
  // A Namespace is cluster-scoped; its Events live in the namespace itself, where its team reads them.
  namespace: subject.name,
  name: subject.name,
  ...(subject.uid ? { uid: subject.uid } : {}),
});
const ref = (apiVersion: string, kind: string, subject: Subject): ObjectRef => ({
  apiVersion,
  kind,
  namespace: subject.namespace,
  name: subject.name,
  ...(subject.uid ? { uid: subject.uid } : {}),
});
const noIdentity = (lookup: LookupValues, namespace: string) =>
  `lookup labels name managed identity ${lookup.name} (resource group ${lookup.resourcegroup}, subscription ${lookup.subscription}), ` +
  `but no AzureIdentity for it is assigned to namespace "${namespace}"`;

/** The Event for a sync happening; the operator's pod is where a failed sync is told (none: not told). */
export function syncEvent(happening: SyncHappening, pod: ObjectRef | undefined): ObjectEvent | undefined {
  switch (happening.kind) {
    case "msiSkipped":
      return {
        regarding: namespaceRef(happening.namespace),
        type: "Warning",
        reason: "MSISkipped",
        note: `managed identity ${happening.msiId} is tagged for this namespace but got no AzureIdentity: ${happening.reason}`,
        action: "Sync",
      };
    case "identityCreated":
      return {
        regarding: namespaceRef(happening.namespace),
        type: "Normal",
        reason: "IdentityCreated",
        note: `created AzureIdentity ${happening.name} for managed identity ${happening.msiId}`,
        action: "Create",
      };
    case "identityDeleted":
      return {
        regarding: namespaceRef(happening.namespace),
        type: "Normal",
        reason: "IdentityDeleted",
        note: `deleted AzureIdentity ${happening.name}: its managed identity is no longer tagged for this namespace (prune)`,
        action: "Delete",
      };
    case "bindingSynced":
      return {
        regarding: ref(AAD_API_VERSION, "AzureIdentityBinding", happening.binding),
        type: "Normal",
        reason: "BindingSynced",
        note: `spec.azureIdentity set to ${happening.to} (was ${happening.from === undefined || happening.from === "" ? "empty" : happening.from}) from its lookup labels`,
        action: "Update",
      };
    case "bindingUnmatched":
      return {
        regarding: ref(AAD_API_VERSION, "AzureIdentityBinding", happening.binding),
        type: "Warning",
        reason: "NoMatchingIdentity",
        note: `${noIdentity(happening.lookup, happening.binding.namespace)}; spec.azureIdentity is filled once Azure tags it for this namespace`,
        action: "Sync",
      };
    case "serviceAccountUnmatched":
      return {
        regarding: ref("v1", "ServiceAccount", happening.serviceAccount),
        type: "Warning",
        reason: "NoMatchingIdentity",
        note: `${noIdentity(happening.lookup, happening.serviceAccount.namespace)}; no federated identity credential until Azure tags it for this namespace`,
        action: "Sync",
      };
    case "syncFailed":
      return pod && { regarding: pod, type: "Warning", reason: "SyncFailed", note: `sync failed: ${happening.reason}`, action: "Sync" };
  }
}

/**
 * The Event for what happened to a ServiceAccount's federated identity credential, on it (`uid`:
 * the ServiceAccount's), or for a namespace over its share of an MSI's slots, on the namespace
 * (`uid`: the namespace's).
 */
export function ficEvent(happening: FicHappening, uid: string | undefined): ObjectEvent {
  if (happening.kind === "overShare") {
    const { msi, share } = happening;
    const waiting = share.asked - share.slots;
    const why =
      share.reason === "cap"
        ? `the per-namespace cap (--workloadidentity.fic.namespacecap) is ${share.slots}`
        : share.reason === "share"
          ? `${share.asking} namespaces ask for its ${MAX_FICS_PER_MSI} slots and this namespace's fair share is ${share.share}` +
            (share.holds > share.share ? ` (it holds ${share.holds} already: nothing is revoked to make room)` : "")
          : `the managed identity has no free slot of Azure's ${MAX_FICS_PER_MSI}`;
    return {
      regarding: namespaceRef({ namespace: share.namespace, name: share.namespace, uid }),
      type: "Warning",
      reason: "FederatedCredentialShareExceeded",
      note:
        `ServiceAccounts of this namespace ask managed identity ${msi.name} (resource group ${msi.resourceGroup}, subscription ${msi.subscriptionId}) ` +
        `for ${share.asked} federated identity credentials; the namespace has ${share.slots} slots: ${why}. ${waiting} wait`,
      action: "CreateFederatedCredential",
    };
  }
  const { fic } = happening;
  const regarding = ref("v1", "ServiceAccount", { namespace: fic.namespace, name: fic.serviceAccount, uid });
  if (happening.kind === "skipped")
    return {
      regarding,
      type: "Warning",
      reason: "FederatedCredentialSkipped",
      note: `no federated identity credential ${fic.name} for this ServiceAccount: ${happening.reason}`,
      action: "CreateFederatedCredential",
    };
  return {
    regarding,
    type: "Normal",
    reason: happening.kind === "created" ? "FederatedCredentialCreated" : "FederatedCredentialUpdated",
    note: `federated identity credential ${fic.name} ${happening.kind} for this ServiceAccount (subject ${fic.subject})`,
    action: happening.kind === "created" ? "CreateFederatedCredential" : "UpdateFederatedCredential",
  };
}

/** What happened to the operator itself, told on its own pod. */
export type OperatorHappening =
  { kind: "leading"; lease: string } | { kind: "stoppedLeading"; lease: string } | { kind: "certificateRotated"; step: string; reason: string | undefined };

export function operatorEvent(happening: OperatorHappening, pod: ObjectRef): ObjectEvent {
  switch (happening.kind) {
    case "leading":
      return {
        regarding: pod,
        type: "Normal",
        reason: "LeaderElected",
        note: `became the leader (Lease ${happening.lease}): this pod syncs and manages the webhook certificate`,
        action: "Lead",
      };
    case "stoppedLeading":
      return { regarding: pod, type: "Normal", reason: "LeadershipLost", note: `stopped leading (Lease ${happening.lease})`, action: "Lead" };
    case "certificateRotated":
      return {
        regarding: pod,
        type: "Normal",
        reason: "CertificateRotated",
        note: `webhook certificates updated: ${happening.step}${happening.reason ? ` (${happening.reason})` : ""}`,
        action: "Rotate",
      };
  }
}
