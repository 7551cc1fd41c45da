import type { Msi } from "../azure/types.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import {
  AAD_API_VERSION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  NAMESPACED_ANNOTATION,
  NAMESPACED_VALUE,
  WI_TENANT_ID_ANNOTATION,
  type AzureIdentity,
} from "../kube/resources.js";
import { invalidLabelValue, invalidNamespaceName, invalidObjectName } from "../kube/validation.js";
import type { CompiledTemplate, TemplateFields } from "../template/template.js";
import type { DesiredIdentity, DesiredState, SkippedMsi } from "../model/desired.js";

// The types live in src/model (the syncer and the FIC controller both read them); said here too for the syncer's own modules.
export type { DesiredIdentity, DesiredState, SkippedMsi };

export interface DesiredStateOptions {
  namespaceTemplate: CompiledTemplate;
  resourceNameTemplate: CompiledTemplate;
  /** `--kubernetes.label.format`; empty: no lookup labels. */
  labelFormat: string;
  ignoredNamespaces: ReadonlySet<string>;
  /** `--azureidentity.namespaced`. */
  namespaced: boolean;
  /** With `--azureidentity.expiry`: the annotation and the formatted date of this sync. */
  expiry?: { annotation: string; value: string };
  /** `--workloadidentity.enable`: identities also carry their MSI's tenant (for ServiceAccounts). */
  workloadIdentity?: boolean;
}

/** The names and values Go templates of the original operator see. */
export function templateFields(msi: Msi): TemplateFields {
  return {
    Id: msi.id,
    Name: msi.name,
    Location: msi.location,
    ResourceGroup: msi.resourceGroup,
    SubscriptionId: msi.subscriptionId,
    ClientId: msi.clientId,
    TenantId: msi.tenantId,
    PrincipalID: msi.principalId,
    Tags: msi.tags,
    Type: msi.type,
  };
}

/** `"team-a, Team-B,,kube-system"` -> `["team-a", "team-b"]` (trimmed, lower-cased, ignored and duplicates dropped). */
export function namespacesFromTag(rendered: string, ignored: ReadonlySet<string>): string[] {
  const namespaces = rendered
    .split(",")
    .map((part) => part.trim().toLowerCase())
    .filter((namespace) => namespace !== "" && !ignored.has(namespace));
  return [...new Set(namespaces)];
}

/**
 * Desired state is a pure function of the Azure listing and the configuration. MSIs whose rendered
 * name, namespace or label values Kubernetes would reject are skipped with a reason (the rest of
 * the sync goes on); of two MSIs that render the same name in one namespace, the first by ID wins.
 */
export function desiredState(msis: readonly Msi[], options: DesiredStateOptions): DesiredState {
  const byNamespace = new Map<string, Map<string, DesiredIdentity>>();
  const skipped: SkippedMsi[] = [];
  const keys = lookupLabelKeys(options.labelFormat);
  const sorted = [...msis].sort((a, b) => compareIds(a.id, b.id));
  for (const msi of sorted) {
    const skip = (reason: string, namespaces: string[] = []) => skipped.push({ msiId: msi.id, subscriptionId: msi.subscriptionId, reason, namespaces });
    let name: string;
    let namespaces: string[];
    try {
      const fields = templateFields(msi);
      name = options.resourceNameTemplate.render(fields);
      namespaces = namespacesFromTag(options.namespaceTemplate.render(fields), options.ignoredNamespaces);
    } catch (error) {
      skip(`template failed: ${(error as Error).message}`);
      continue;
    }
    if (namespaces.length === 0) continue;
    const nameProblem = invalidObjectName(name);
    if (nameProblem) {
      skip(`rendered name "${name}" is not a valid Kubernetes name: ${nameProblem}`, namespaces);
      continue;
    }
    const badNamespace = namespaces.find((namespace) => invalidNamespaceName(namespace));
    if (badNamespace !== undefined) {
      skip(
        `namespace "${badNamespace}" from the namespace template is not valid: ${invalidNamespaceName(badNamespace)}`,
        namespaces.filter((namespace) => !invalidNamespaceName(namespace)),
      );
      continue;
    }
    const labels: Record<string, string> = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
    if (keys) {
      const values = { name: msi.name.toLowerCase(), resourcegroup: msi.resourceGroup.toLowerCase(), subscription: msi.subscriptionId.toLowerCase() };
      const badLabel = (Object.keys(values) as (keyof typeof values)[]).find((field) => invalidLabelValue(values[field]));
      if (badLabel) {
        skip(`${badLabel} "${values[badLabel]}" is not a valid label value for ${keys[badLabel]}: ${invalidLabelValue(values[badLabel])}`, namespaces);
        continue;
      }
      labels[keys.name] = values.name;
      labels[keys.resourcegroup] = values.resourcegroup;
      labels[keys.subscription] = values.subscription;
    }
    const annotations: Record<string, string | null> = { [NAMESPACED_ANNOTATION]: options.namespaced ? NAMESPACED_VALUE : null };
    if (options.expiry) annotations[options.expiry.annotation] = options.expiry.value;
    if (options.workloadIdentity) annotations[WI_TENANT_ID_ANNOTATION] = msi.tenantId || null;
    for (const namespace of namespaces) {
      let inNamespace = byNamespace.get(namespace);
      if (!inNamespace) byNamespace.set(namespace, (inNamespace = new Map<string, DesiredIdentity>()));
      const taken = inNamespace.get(name);
      if (taken) {
        skip(`name "${name}" in namespace "${namespace}" is already used by ${taken.msiId}`, [namespace]);
        continue;
      }
      inNamespace.set(name, {
        namespace,
        name,
        labels,
        annotations,
        spec: { type: 0, resourceID: msi.id.toLowerCase(), clientID: msi.clientId },
        subscriptionId: msi.subscriptionId.toLowerCase(),
        msiId: msi.id,
        resourceGroup: msi.resourceGroup,
        msiName: msi.name,
      });
    }
  }
  return { byNamespace, skipped };
}

function compareIds(a: string, b: string): number {
  const left = a.toLowerCase();
  const right = b.toLowerCase();
  return left < right ? -1 : left > right ? 1 : 0;
}

/** The object to create for a desired identity (owned keys with null values left out). */
export function toAzureIdentity(desired: DesiredIdentity): AzureIdentity {
  const annotations = Object.fromEntries(Object.entries(desired.annotations).filter((entry): entry is [string, string] => entry[1] !== null));
  return {
    apiVersion: AAD_API_VERSION,
    kind: "AzureIdentity",
    metadata: {
      name: desired.name,
      namespace: desired.namespace,
      labels: { ...desired.labels },
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    },
    spec: { ...desired.spec },
  };
}
