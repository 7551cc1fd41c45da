import type { KubernetesObject, V1ObjectMeta } from "@kubernetes/client-node";

export const AAD_GROUP = "aadpodidentity.k8s.io";
export const AAD_VERSION = "v1";
export const AAD_API_VERSION = `${AAD_GROUP}/${AAD_VERSION}`;
export const AZURE_IDENTITIES = "azureidentities";
export const AZURE_IDENTITY_BINDINGS = "azureidentitybindings";
/** MIC writes these; NMI serves a pod every one that names it, from any namespace. */
export const AZURE_ASSIGNED_IDENTITIES = "azureassignedidentities";
/** Pods these match skip NMI and reach the node's IMDS, i.e. every identity on the node. */
export const AZURE_POD_IDENTITY_EXCEPTIONS = "azurepodidentityexceptions";

/** The ownership marker: objects with it are the operator's, and only they are watched and changed. */
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY_VALUE = "azure-msi-operator";
export const OWNED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

/** Azure Workload Identity's ServiceAccount annotations; the tenant one also rides on identities in that mode. */
export const WI_CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id";
export const WI_TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id";
export const SERVICE_ACCOUNTS = "serviceaccounts";
/** Azure Workload Identity's pod label: its webhook projects the token into pods that carry it ("true"). */
export const WI_USE_LABEL = "azure.workload.identity/use";
/** aad-pod-identity's pod label: NMI gives a pod the identities of the bindings whose selector equals it. */
export const POD_IDENTITY_LABEL = "aadpodidbinding";

export const NAMESPACED_ANNOTATION = "aadpodidentity.k8s.io/Behavior";
export const NAMESPACED_VALUE = "namespaced";

/** Field names follow the upstream CRD exactly (they are case-sensitive). */
export interface AzureIdentitySpec {
  type?: number;
  resourceID?: string;
  clientID?: string;
  [field: string]: unknown;
}

export interface AzureIdentity extends KubernetesObject {
  metadata?: V1ObjectMeta;
  spec?: AzureIdentitySpec;
}

export interface AzureIdentityBindingSpec {
  azureIdentity?: string;
  selector?: string;
  weight?: number;
  [field: string]: unknown;
}

export interface AzureIdentityBinding extends KubernetesObject {
  metadata?: V1ObjectMeta;
  spec?: AzureIdentityBindingSpec;
}

/** An AzureAssignedIdentity as the audit's cache keeps it: who wrote it, where its pod, identity and binding are. */
export interface AzureAssignedIdentity extends KubernetesObject {
  metadata?: V1ObjectMeta;
  spec?: {
    pod?: string;
    podNamespace?: string;
    azureIdentityRef?: { metadata?: { name?: string; namespace?: string } } | null;
    azureBindingRef?: { metadata?: { name?: string; namespace?: string } } | null;
    [field: string]: unknown;
  };
}

/** An AzurePodIdentityException: only its metadata is read. */
export interface AzurePodIdentityException extends KubernetesObject {
  metadata?: V1ObjectMeta;
}

export function objectKey(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;
}
