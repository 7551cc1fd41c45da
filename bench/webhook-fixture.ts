// What bench/webhook-throughput.ts sends and what its server's cache holds: operator-owned
// AzureIdentities as the informer keeps them, and the AdmissionReviews the API server posts.
import type { AzureIdentity } from "../src/kube/resources.js";
import { lookupLabelKeys } from "../src/kube/lookup.js";
import { AAD_API_VERSION, AAD_GROUP, AZURE_IDENTITIES, AZURE_IDENTITY_BINDINGS, MANAGED_BY_LABEL, MANAGED_BY_VALUE } from "../src/kube/resources.js";
import type { AdmissionReview } from "../src/webhook/admission.js";

export const OPERATOR_USER = "system:serviceaccount:azure-msi-operator:azure-msi-operator";
export const LABEL_FORMAT = "msi.azure.k8s.io/%s";
export const SUBSCRIPTION = "00000000-0000-0000-0000-0000000000ab";

/** Where identity `index` of the bench cache lives and what it is called (shared with the load side). */
export function benchIdentity(index: number, namespaces: number): { namespace: string; name: string; msi: string; resourceGroup: string } {
  return {
    namespace: `team-${index % namespaces}`,
    name: `msi-${index}-${String(index).padStart(8, "0")}-0000-0000-0000-000000000000`,
    msi: `msi-${index}`,
    resourceGroup: `rg-${index % 50}`,
  };
}

/** An AzureIdentity as the API server returns it to the informer (managedFields and all). */
export function cachedIdentity(index: number, namespaces: number): AzureIdentity {
  const { namespace, name, msi, resourceGroup } = benchIdentity(index, namespaces);
  const keys = lookupLabelKeys(LABEL_FORMAT)!;
  const resourceID = `/subscriptions/${SUBSCRIPTION}/resourcegroups/${resourceGroup}/providers/microsoft.managedidentity/userassignedidentities/${msi}`;
  return {
    apiVersion: AAD_API_VERSION,
    kind: "AzureIdentity",
    metadata: {
      name,
      namespace,
      uid: `6f1c2a3b-0000-4000-8000-${String(index).padStart(12, "0")}`,
      resourceVersion: String(1000 + index),
      generation: 1,
      creationTimestamp: new Date("2025-01-01T00:00:00Z"),
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [keys.name]: msi, [keys.resourcegroup]: resourceGroup, [keys.subscription]: SUBSCRIPTION },
      annotations: {},
      managedFields: [
        {
          manager: "azure-msi-operator",
          operation: "Update",
          apiVersion: AAD_API_VERSION,
          time: new Date("2025-01-01T00:00:00Z"),
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": {
              "f:labels": { ".": {}, [`f:${MANAGED_BY_LABEL}`]: {}, [`f:${keys.name}`]: {}, [`f:${keys.resourcegroup}`]: {}, [`f:${keys.subscription}`]: {} },
            },
            "f:spec": { ".": {}, "f:clientID": {}, "f:resourceID": {}, "f:type": {} },
          },
        },
      ],
    },
    spec: { type: 0, resourceID, clientID: `${String(index).padStart(8, "0")}-0000-0000-0000-000000000000` },
  };
}

const gvk = (kind: string) => ({ group: AAD_GROUP, version: "v1", kind });
const gvr = (resource: string) => ({ group: AAD_GROUP, version: "v1", resource });

/** kubectl apply of a new binding with the three lookup labels of an identity in its namespace: answered with a patch. */
export function mutateReview(index: number, namespaces: number): AdmissionReview {
  const { namespace, msi, resourceGroup } = benchIdentity(index, namespaces);
  const keys = lookupLabelKeys(LABEL_FORMAT)!;
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "705ab4f5-6393-11e8-b7cc-42010a800002",
      kind: gvk("AzureIdentityBinding"),
      resource: gvr(AZURE_IDENTITY_BINDINGS),
      name: "app",
      namespace,
      operation: "CREATE",
      userInfo: { username: "jane", uid: "u-1", groups: ["dev-team", "system:authenticated"] },
      object: {
        apiVersion: AAD_API_VERSION,
        kind: "AzureIdentityBinding",
        metadata: {
          name: "app",
          namespace,
          labels: { [keys.name]: msi, [keys.resourcegroup]: resourceGroup, [keys.subscription]: SUBSCRIPTION },
          annotations: {
            "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({
              apiVersion: AAD_API_VERSION,
              kind: "AzureIdentityBinding",
              metadata: { name: "app", namespace, labels: { [keys.name]: msi } },
              spec: { selector: "app" },
            }),
          },
        },
        spec: { selector: "app" },
      },
      oldObject: null,
      dryRun: false,
    },
  };
}

/** The operator's own update of an identity it owns (the webhook's everyday traffic): allowed. */
export function validateReview(index: number, namespaces: number): AdmissionReview {
  const old = cachedIdentity(index, namespaces);
  const updated = { ...old, spec: { ...old.spec, clientID: "99999999-0000-0000-0000-000000000000" } };
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "705ab4f5-6393-11e8-b7cc-42010a800003",
      kind: gvk("AzureIdentity"),
      resource: gvr(AZURE_IDENTITIES),
      name: old.metadata!.name!,
      namespace: old.metadata!.namespace!,
      operation: "UPDATE",
      userInfo: {
        username: OPERATOR_USER,
        uid: "u-2",
        groups: ["system:serviceaccounts", "system:serviceaccounts:azure-msi-operator", "system:authenticated"],
      },
      object: JSON.parse(JSON.stringify(updated)) as AdmissionReview["request"]["object"],
      oldObject: JSON.parse(JSON.stringify(old)) as AdmissionReview["request"]["oldObject"],
      dryRun: false,
    },
  };
}
