import type { FederatedCredential, MsiRef } from "../azure/types.js";
import { lookupValuesOf, sameLookup, type LookupValues } from "../kube/lookup.js";
import type { DesiredIdentity, DesiredState } from "../model/desired.js";
import { FIC_AUDIENCE, ficName, ownedFicPrefix, serviceAccountSubject } from "./names.js";

/** Azure allows this many federated identity credentials on one MSI. */
export const MAX_FICS_PER_MSI = 20;

export type { FederatedCredential, MsiRef };

export interface DesiredFic extends FederatedCredential {
  /** Which ServiceAccount it is for. */
  namespace: string;
  serviceAccount: string;
}

/** The FICs wanted on one MSI. */
export interface MsiFics {
  msi: MsiRef;
  wanted: DesiredFic[];
}

export interface LabelledServiceAccount {
  namespace: string;
  name: string;
  labels: Record<string, string>;
}

export interface FicContext {
  issuer: string;
  cluster: string;
  lookupKeys: Record<keyof LookupValues, string>;
}

/** Lower-cased ARM path of an MSI: the key MSIs are compared by (Azure IDs are case-insensitive). */
export function msiKey(msi: MsiRef): string {
  return `/subscriptions/${msi.subscriptionId}/resourcegroups/${msi.resourceGroup}/${msi.name}`.toLowerCase();
}

/**
 * Desired FICs (pure): one per ServiceAccount whose lookup labels name an MSI tagged for its own
 * namespace, on that MSI. ServiceAccounts whose labels match nothing are returned as unmatched.
 */
export function desiredFics<T extends LabelledServiceAccount>(
  serviceAccounts: readonly T[],
  state: DesiredState,
  context: FicContext,
): { byMsi: Map<string, MsiFics>; unmatched: T[] } {
  const byMsi = new Map<string, MsiFics>();
  const unmatched: T[] = [];
  for (const account of serviceAccounts) {
    const values = lookupValuesOf(account.labels, context.lookupKeys);
    const identity = values ? identityFor(state.byNamespace.get(account.namespace), values, context.lookupKeys) : undefined;
    if (!identity) {
      if (values) unmatched.push(account);
      continue;
    }
    const msi = { subscriptionId: identity.subscriptionId, resourceGroup: identity.resourceGroup, name: identity.msiName };
    const key = msiKey(msi);
    let entry = byMsi.get(key);
    if (!entry) byMsi.set(key, (entry = { msi, wanted: [] }));
    entry.wanted.push({
      name: ficName(context.cluster, account.namespace, account.name),
      issuer: context.issuer,
      subject: serviceAccountSubject(account.namespace, account.name),
      audiences: [FIC_AUDIENCE],
      namespace: account.namespace,
      serviceAccount: account.name,
    });
  }
  return { byMsi, unmatched };
}

function identityFor(inNamespace: ReadonlyMap<string, DesiredIdentity> | undefined, values: LookupValues, keys: Record<keyof LookupValues, string>) {
  for (const identity of inNamespace?.values() ?? []) {
    const own = lookupValuesOf(identity.labels, keys);
    if (own && sameLookup(own, values)) return identity;
  }
  return undefined;
}

export type FicAction =
  { kind: "create" | "update"; fic: DesiredFic } | { kind: "delete"; name: string; subject: string } | { kind: "skip"; fic: DesiredFic; reason: string };

/**
 * What to do on one MSI (pure), given every FIC it has now. Only FICs named with this cluster's
 * prefix and carrying this cluster's issuer are ours to change or delete; deletes only when
 * `mayRevoke` (a complete listing). A create that would pass Azure's limit is skipped, never made
 * room for by deleting someone else's FIC.
 */
export function planMsi(
  wanted: readonly DesiredFic[],
  actual: readonly FederatedCredential[],
  context: { issuer: string; cluster: string; mayRevoke: boolean },
): FicAction[] {
  const prefix = ownedFicPrefix(context.cluster);
  const isOurs = (fic: FederatedCredential) => fic.name.startsWith(prefix) && fic.issuer === context.issuer;
  const byName = new Map(actual.map((fic) => [fic.name, fic]));
  const wantedNames = new Set(wanted.map((fic) => fic.name));
  const actions: FicAction[] = [];
  const deletes = context.mayRevoke ? actual.filter((fic) => isOurs(fic) && !wantedNames.has(fic.name)) : [];
  for (const fic of deletes) actions.push({ kind: "delete", name: fic.name, subject: fic.subject });
  let count = actual.length - deletes.length;
  for (const fic of [...wanted].sort((a, b) => a.name.localeCompare(b.name))) {
    const existing = byName.get(fic.name);
    if (existing && !isOurs(existing)) {
      actions.push({ kind: "skip", fic, reason: `a FIC named ${fic.name} with another issuer exists on this MSI` });
    } else if (existing) {
      if (!sameCredential(existing, fic)) actions.push({ kind: "update", fic });
    } else if (actual.some((other) => other.issuer === fic.issuer && other.subject === fic.subject)) {
      // Someone federated this ServiceAccount by hand already; Azure refuses a second FIC for the pair.
      actions.push({ kind: "skip", fic, reason: "this issuer and subject are already federated by another FIC on the MSI" });
    } else if (count >= MAX_FICS_PER_MSI) {
      actions.push({ kind: "skip", fic, reason: `the MSI already has ${MAX_FICS_PER_MSI} federated identity credentials (Azure's limit)` });
    } else {
      count++;
      actions.push({ kind: "create", fic });
    }
  }
  return actions;
}

function sameCredential(a: FederatedCredential, b: FederatedCredential): boolean {
  return (
    a.issuer === b.issuer &&
    a.subject === b.subject &&
    a.audiences.length === b.audiences.length &&
    a.audiences.every((audience, i) => audience === b.audiences[i])
  );
}
