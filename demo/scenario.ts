// What the demo seeds and applies: a few MSIs in the Azure fake, the namespaces that exist at the
// start, and the manifests jane tries. Plain data, so the walk-through and its test agree on names.

export const GROUP = "aadpodidentity.k8s.io";
export const SUBSCRIPTION = "6f3c1d2e-8a4b-4c5d-9e6f-7a8b9c0d1e2f";
export const RESOURCE_GROUP = "rg-shop";
export const LABEL_PREFIX = "msi.azure.k8s.io";

export interface DemoMsi {
  name: string;
  clientId: string;
  namespaces: string;
  /** Why this one is in the demo. */
  note: string;
}

export const SHOP: DemoMsi = { name: "shop", clientId: "0b1c2d3e-1111-4a5b-8c7d-000000000001", namespaces: "team-a,team-b", note: "tagged for two namespaces" };
export const REPORTS: DemoMsi = {
  name: "reports",
  clientId: "0b1c2d3e-2222-4a5b-8c7d-000000000002",
  namespaces: "team-new",
  note: "its namespace is created later",
};
/** Upper case and "_" are fine in Azure, but "{{ .Name }}-{{ .ClientId }}" then is no Kubernetes name. */
export const LEGACY: DemoMsi = {
  name: "Legacy_Payments",
  clientId: "0b1c2d3e-3333-4a5b-8c7d-000000000003",
  namespaces: "team-a",
  note: "breaks the name template",
};
export const MSIS: readonly DemoMsi[] = [SHOP, REPORTS, LEGACY];

/** The AzureIdentity name the default template "{{ .Name }}-{{ .ClientId }}" renders. */
export const identityName = (msi: DemoMsi): string => `${msi.name}-${msi.clientId}`;

export const msiResourceId = (msi: DemoMsi): string =>
  `/subscriptions/${SUBSCRIPTION}/resourcegroups/${RESOURCE_GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${msi.name}`;

/** Namespaces created before the operator starts; jane may edit aad-pod-identity objects in them. */
export const TEAM_NAMESPACES = ["team-a", "team-b"] as const;
export const NEW_NAMESPACE = "team-new";

/** jane edits aad-pod-identity objects in the team namespaces, as a developer on AKS would. */
export function janeRbacYaml(): string {
  const clusterRole = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: aad-pod-identity-editor
rules:
  - apiGroups: ["${GROUP}"]
    resources: ["*"]
    verbs: ["*"]`;
  const bindings = TEAM_NAMESPACES.map(
    (namespace) => `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: dev-team-aad-pod-identity
  namespace: ${namespace}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: aad-pod-identity-editor
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: dev-team`,
  );
  return [clusterRole, ...bindings].join("\n---\n") + "\n";
}

/** jane's own AzureIdentity for the shop MSI: what the validating webhook exists to stop. */
export function janeIdentityYaml(): string {
  return `apiVersion: ${GROUP}/v1
kind: AzureIdentity
metadata:
  name: my-shop
  namespace: team-a
spec:
  type: 0
  resourceID: ${msiResourceId(SHOP).toLowerCase()}
  clientID: ${SHOP.clientId}
`;
}

/** A binding that names the MSI by the three lookup labels only; the mutating webhook fills the rest. */
export function janeBindingYaml(): string {
  return `apiVersion: ${GROUP}/v1
kind: AzureIdentityBinding
metadata:
  name: shop
  namespace: team-a
  labels:
    ${LABEL_PREFIX}/name: ${SHOP.name}
    ${LABEL_PREFIX}/resourcegroup: ${RESOURCE_GROUP}
    ${LABEL_PREFIX}/subscription: ${SUBSCRIPTION}
spec:
  selector: shop
`;
}
