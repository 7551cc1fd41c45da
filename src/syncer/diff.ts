import { lookupValuesOf, matchingIdentity, type LookupValues } from "../kube/lookup.js";
import type { AzureIdentity, AzureIdentityBinding } from "../kube/resources.js";
import type { DesiredIdentity } from "./desired.js";

/** A JSON merge patch (RFC 7386) touching only the fields and keys the operator owns. */
export interface IdentityPatch {
  metadata?: { labels?: Record<string, string | null>; annotations?: Record<string, string | null> };
  spec?: Partial<DesiredIdentity["spec"]>;
}

export type IdentityAction =
  | { kind: "create"; desired: DesiredIdentity }
  | { kind: "patch"; desired: DesiredIdentity; patch: IdentityPatch; changed: string[] }
  | { kind: "delete"; namespace: string; name: string; uid: string | undefined; resourceVersion: string | undefined };

export interface IdentityPlan {
  actions: IdentityAction[];
  unchanged: number;
}

/**
 * What to do in one namespace so that the operator-owned identities there match `desired`.
 * Equal objects produce no action; deletes appear only with `prune`. Objects already being deleted
 * are left to finish (they are recreated by a later pass once gone).
 */
export function planIdentities(desired: ReadonlyMap<string, DesiredIdentity> | undefined, actual: readonly AzureIdentity[], prune: boolean): IdentityPlan {
  const actions: IdentityAction[] = [];
  let unchanged = 0;
  const actualByName = new Map(actual.map((object) => [object.metadata?.name ?? "", object]));
  for (const [name, want] of desired ?? []) {
    const have = actualByName.get(name);
    if (!have) {
      actions.push({ kind: "create", desired: want });
      continue;
    }
    if (have.metadata?.deletionTimestamp) continue;
    const diff = identityPatch(want, have);
    if (diff) actions.push({ kind: "patch", desired: want, ...diff });
    else unchanged++;
  }
  if (prune) {
    for (const [name, have] of actualByName) {
      if (desired?.has(name) || have.metadata?.deletionTimestamp) continue;
      actions.push({
        kind: "delete",
        namespace: have.metadata?.namespace ?? "",
        name,
        uid: have.metadata?.uid,
        resourceVersion: have.metadata?.resourceVersion,
      });
    }
  }
  return { actions, unchanged };
}

/** The merge patch that brings `actual` to `desired` on the owned fields, or undefined when equal. */
export function identityPatch(desired: DesiredIdentity, actual: AzureIdentity): { patch: IdentityPatch; changed: string[] } | undefined {
  const changed: string[] = [];
  const labels = ownedKeysPatch(desired.labels, actual.metadata?.labels, "labels", changed);
  const annotations = ownedKeysPatch(desired.annotations, actual.metadata?.annotations, "annotations", changed);
  const spec: Partial<DesiredIdentity["spec"]> = {};
  const actualSpec = actual.spec ?? {};
  if (actualSpec.type !== desired.spec.type) spec.type = desired.spec.type;
  if (actualSpec.resourceID !== desired.spec.resourceID) spec.resourceID = desired.spec.resourceID;
  if (actualSpec.clientID !== desired.spec.clientID) spec.clientID = desired.spec.clientID;
  changed.push(...Object.keys(spec).map((field) => `spec.${field}`));
  if (changed.length === 0) return undefined;
  const patch: IdentityPatch = {};
  if (labels || annotations) patch.metadata = { ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) };
  if (Object.keys(spec).length > 0) patch.spec = spec;
  return { patch, changed };
}

function ownedKeysPatch(
  desired: Record<string, string | null>,
  actual: Record<string, string> | undefined,
  field: string,
  changed: string[],
): Record<string, string | null> | undefined {
  const patch: Record<string, string | null> = {};
  for (const [key, value] of Object.entries(desired)) {
    const current = actual?.[key];
    if (value === null ? current === undefined : current === value) continue;
    patch[key] = value;
    changed.push(`metadata.${field}.${key}`);
  }
  return Object.keys(patch).length > 0 ? patch : undefined;
}

export interface BindingAction {
  namespace: string;
  name: string;
  from: string | undefined;
  to: string;
}

/**
 * Bindings that carry all three lookup labels get `spec.azureIdentity` pointed at the operator-owned
 * identity with the same lookup values in their own namespace; bindings without a match are left alone.
 */
export function planBindings(
  bindings: readonly AzureIdentityBinding[],
  identities: readonly AzureIdentity[],
  keys: Record<keyof LookupValues, string>,
  current?: (name: string) => boolean,
): BindingAction[] {
  const actions: BindingAction[] = [];
  for (const binding of bindings) {
    if (binding.metadata?.deletionTimestamp) continue;
    const values = lookupValuesOf(binding.metadata?.labels, keys);
    if (!values) continue;
    const target = matchingIdentity(identities, values, keys, current);
    const to = target?.metadata?.name;
    if (!to || binding.spec?.azureIdentity === to) continue;
    actions.push({ namespace: binding.metadata?.namespace ?? "", name: binding.metadata?.name ?? "", from: binding.spec?.azureIdentity, to });
  }
  return actions;
}

export interface UnmatchedBinding {
  namespace: string;
  name: string;
  uid: string | undefined;
  values: LookupValues;
}

/** Bindings whose three lookup labels name no operator-owned identity of their namespace (pure). */
export function unmatchedBindings(
  bindings: readonly AzureIdentityBinding[],
  identities: readonly AzureIdentity[],
  keys: Record<keyof LookupValues, string>,
  current?: (name: string) => boolean,
): UnmatchedBinding[] {
  return bindings.flatMap((binding) => {
    const values = binding.metadata?.deletionTimestamp ? undefined : lookupValuesOf(binding.metadata?.labels, keys);
    if (!values || matchingIdentity(identities, values, keys, current)) return [];
    return [{ namespace: binding.metadata?.namespace ?? "", name: binding.metadata?.name ?? "", uid: binding.metadata?.uid, values }];
  });
}
