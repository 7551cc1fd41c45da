// Creating aad-pod-identity objects as a test's user would, through the real API server.
import type { CustomObjectsApi, V1ObjectMeta } from "@kubernetes/client-node";
import { lookupLabelKeys } from "../../src/kube/lookup.js";
import {
  AAD_API_VERSION,
  AAD_GROUP,
  AAD_VERSION,
  AZURE_IDENTITIES,
  AZURE_IDENTITY_BINDINGS,
  type AzureIdentity,
  type AzureIdentityBinding,
  type AzureIdentityBindingSpec,
  type AzureIdentitySpec,
} from "../../src/kube/resources.js";

const DEFAULT_KEYS = lookupLabelKeys("msi.azure.k8s.io/%s")!;

/** The binding lookup labels in the default --kubernetes.label.format for one managed identity. */
export function lookupLabels(name: string, resourceGroup: string, subscription: string): Record<string, string> {
  return { [DEFAULT_KEYS.name]: name, [DEFAULT_KEYS.resourcegroup]: resourceGroup, [DEFAULT_KEYS.subscription]: subscription };
}

export async function createAzureIdentity(api: CustomObjectsApi, namespace: string, metadata: V1ObjectMeta, spec: AzureIdentitySpec): Promise<AzureIdentity> {
  const body: AzureIdentity = { apiVersion: AAD_API_VERSION, kind: "AzureIdentity", metadata, spec };
  return (await api.createNamespacedCustomObject({ group: AAD_GROUP, version: AAD_VERSION, namespace, plural: AZURE_IDENTITIES, body })) as AzureIdentity;
}

export async function createAzureIdentityBinding(
  api: CustomObjectsApi,
  namespace: string,
  metadata: V1ObjectMeta,
  spec: AzureIdentityBindingSpec,
): Promise<AzureIdentityBinding> {
  const body: AzureIdentityBinding = { apiVersion: AAD_API_VERSION, kind: "AzureIdentityBinding", metadata, spec };
  return (await api.createNamespacedCustomObject({
    group: AAD_GROUP,
    version: AAD_VERSION,
    namespace,
    plural: AZURE_IDENTITY_BINDINGS,
    body,
  })) as AzureIdentityBinding;
}
