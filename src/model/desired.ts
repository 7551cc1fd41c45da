// The desired state an Azure listing gives (pure data): the syncer turns it into AzureIdentities,
// the FIC controller (src/workload) into federated identity credentials. It lives here, below both,
// so neither controller imports the other for it.

/**
 * One AzureIdentity as the operator wants it. `labels` and `annotations` hold only the keys the
 * operator owns; a null value means "owned, and must be absent".
 */
export interface DesiredIdentity {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string | null>;
  spec: { type: 0; resourceID: string; clientID: string };
  subscriptionId: string;
  msiId: string;
  /** Where the MSI lives, as Azure spells it (for its federated identity credentials). */
  resourceGroup: string;
  msiName: string;
}

export interface SkippedMsi {
  msiId: string;
  subscriptionId: string;
  reason: string;
  /** The valid namespaces it was tagged for (told with an Event); none when the template failed. */
  namespaces: string[];
}

export interface DesiredState {
  /** namespace -> identity name -> desired identity (namespaces as tagged, whether they exist or not). */
  byNamespace: Map<string, Map<string, DesiredIdentity>>;
  skipped: SkippedMsi[];
}
