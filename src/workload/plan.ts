import type { V1ServiceAccount } from "@kubernetes/client-node";
import type { FederatedCredential, MsiRef } from "../azure/types.js";
import { lookupValuesOf, sameLookup, type LookupValues } from "../kube/lookup.js";
import { WI_CLIENT_ID_ANNOTATION } from "../kube/resources.js";
import type { DesiredIdentity, DesiredState } from "../model/desired.js";
import { clusterNameFor, FIC_AUDIENCE, ficName, ownedFicPrefix, serviceAccountSubject } from "./names.js";

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
  /** Its `azure.workload.identity/client-id` annotation, as Azure Workload Identity's own docs set it. */
  clientId?: string | undefined;
}

/** A ServiceAccount as the FIC planning reads it (the controller from its cache, `diff` from a listing). */
export function labelledServiceAccount(account: V1ServiceAccount): LabelledServiceAccount & { uid: string | undefined } {
  return {
    namespace: account.metadata?.namespace ?? "",
    name: account.metadata?.name ?? "",
    uid: account.metadata?.uid,
    labels: account.metadata?.labels ?? {},
    clientId: account.metadata?.annotations?.[WI_CLIENT_ID_ANNOTATION],
  };
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
 * What a ServiceAccount asks for: its three lookup labels when it carries them (they win over the
 * annotation, which the mutating webhook then sets to match), else its client-id annotation (the
 * Azure Workload Identity convention), else nothing. Only this decides which MSI an account wants.
 */
export type Selection = { by: "labels"; values: LookupValues } | { by: "clientId"; clientId: string };

export function selectionOf(account: LabelledServiceAccount, keys: Record<keyof LookupValues, string>): Selection | undefined {
  const values = lookupValuesOf(account.labels, keys);
  if (values) return { by: "labels", values };
  const clientId = account.clientId?.trim().toLowerCase();
  return clientId ? { by: "clientId", clientId } : undefined;
}

export function sameSelection(a: Selection | undefined, b: Selection | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.by === "labels") return b.by === "labels" && sameLookup(a.values, b.values);
  return b.by === "clientId" && a.clientId === b.clientId;
}

/**
 * Desired FICs (pure): one per ServiceAccount whose lookup labels, or else whose client-id
 * annotation, name an MSI tagged for its own namespace, on that MSI. The annotation only names: an
 * MSI counts only through an identity of the account's own namespace, i.e. only if Azure tagged it
 * for that namespace. ServiceAccounts whose labels match nothing are returned as unmatched; an
 * annotation matching nothing is not (it may name an app registration or another tool's MSI).
 */
export function desiredFics<T extends LabelledServiceAccount>(
  serviceAccounts: readonly T[],
  state: DesiredState,
  context: FicContext,
): { byMsi: Map<string, MsiFics>; unmatched: T[] } {
  const byMsi = new Map<string, MsiFics>();
  const unmatched: T[] = [];
  for (const account of serviceAccounts) {
    const selection = selectionOf(account, context.lookupKeys);
    if (!selection) continue;
    const inNamespace = state.byNamespace.get(account.namespace);
    const identity =
      selection.by === "labels" ? identityFor(inNamespace, selection.values, context.lookupKeys) : identityWithClientId(inNamespace, selection.clientId);
    if (!identity) {
      if (selection.by === "labels") unmatched.push(account);
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

function identityWithClientId(inNamespace: ReadonlyMap<string, DesiredIdentity> | undefined, clientId: string) {
  for (const identity of inNamespace?.values() ?? []) if (identity.spec.clientID.toLowerCase() === clientId) return identity;
  return undefined;
}

/** Why a namespace got fewer FICs on an MSI than it asked for. */
export type ShareReason = "share" | "cap" | "limit";

/** A namespace that asked an MSI for more FICs than it was granted (told with a Warning Event). */
export interface NamespaceShare {
  namespace: string;
  /** FICs its ServiceAccounts want on the MSI. */
  asked: number;
  /** FICs of its own the MSI holds already (never revoked to make room). */
  holds: number;
  /** FICs it may have on the MSI after this plan: what it holds plus what it is granted now. */
  slots: number;
  /** Its max-min fair share of the slots open to the namespaces asking (before what it holds already). */
  share: number;
  /** Namespaces asking for FICs on the MSI, itself included. */
  asking: number;
  reason: ShareReason;
}

export type FicAction =
  | { kind: "create" | "update"; fic: DesiredFic }
  /** `keeps`: the FIC that stays for the same subject, when this one is a duplicate of it (a rename). */
  | { kind: "delete"; name: string; subject: string; keeps?: string }
  | { kind: "skip"; fic: DesiredFic; reason: string; why: "limit" | "share" | "cap" | "conflict" }
  | { kind: "share"; share: NamespaceShare };

export interface PlanContext extends OwnerContext {
  mayRevoke: boolean;
  /** --workloadidentity.fic.namespacecap: at most this many FICs per namespace on one MSI (0: no cap). */
  namespaceCap?: number;
}

/** Who this cluster is in FIC names: its issuer, its name now, and the names it had before. */
export interface OwnerContext {
  issuer: string;
  cluster: string;
  /** --workloadidentity.cluster.previous: names this cluster had before a rename (the default name, from the issuer, always counts). */
  previousClusters?: readonly string[];
}

/**
 * Whether a FIC is this cluster's, to change or revoke: its issuer is ours, and its name has this
 * cluster's prefix, or is exactly `ficName(<earlier name>, namespace, name)` of its own subject for
 * an earlier name of this cluster (the default one derived from the issuer, or one listed in
 * --workloadidentity.cluster.previous). That survives a rename; a FIC named any other way (by hand,
 * by Terraform) is never revoked, though one for a wanted subject is adopted (planMsi).
 */
export function isOurFic(fic: FederatedCredential, context: OwnerContext): boolean {
  if (fic.issuer !== context.issuer) return false;
  if (fic.name.startsWith(ownedFicPrefix(context.cluster))) return true;
  const subject = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(fic.subject);
  if (!subject) return false;
  return [clusterNameFor(context.issuer), ...(context.previousClusters ?? [])].some((earlier) => ficName(earlier, subject[1]!, subject[2]!) === fic.name);
}

/**
 * What to do on one MSI (pure), given every FIC it has now. Only our FICs (isOurFic) are changed
 * or deleted; deletes only when `mayRevoke` (a complete listing). A wanted subject already
 * federated for our issuer under another name (a renamed cluster, or by hand) is adopted: it serves
 * the subject, no second one is made (Azure refuses one), and it is never revoked unless ours.
 * Creates share the free slots of Azure's 20 fairly between the namespaces asking (fairShares);
 * nothing that exists is deleted to make room.
 */
export function planMsi(wanted: readonly DesiredFic[], actual: readonly FederatedCredential[], context: PlanContext): FicAction[] {
  const ours = (fic: FederatedCredential) => isOurFic(fic, context);
  const byName = new Map(actual.map((fic) => [fic.name, fic]));
  const actions: FicAction[] = [];
  /** Existing FICs that serve a wanted one (by name, or adopted by subject): never deleted. */
  const serving = new Map<string, string>();
  const present = new Map<string, number>();
  const pending = new Map<string, DesiredFic[]>();
  const writes: FicAction[] = [];
  for (const fic of [...wanted].sort((a, b) => a.name.localeCompare(b.name))) {
    const existing = byName.get(fic.name);
    const sameSubject = actual.filter((other) => other.issuer === fic.issuer && other.subject === fic.subject);
    if (existing && !ours(existing)) {
      writes.push({ kind: "skip", fic, why: "conflict", reason: `a FIC named ${fic.name} with another issuer exists on this MSI` });
      continue;
    }
    // Ours under this name, else ours under an earlier cluster name, else one made by hand: adopted
    // (FIC names cannot be changed, and Azure refuses a second FIC for the issuer and subject).
    const keep = existing ?? sameSubject.find(ours) ?? sameSubject[0];
    if (keep) {
      serving.set(keep.name, fic.subject);
      present.set(fic.namespace, (present.get(fic.namespace) ?? 0) + 1);
      const adopted = { ...fic, name: keep.name };
      // Someone else's is left as it is: it serves the subject, and is theirs to change.
      if (ours(keep) && !sameCredential(keep, adopted)) writes.push({ kind: "update", fic: adopted });
    } else {
      let list = pending.get(fic.namespace);
      if (!list) pending.set(fic.namespace, (list = []));
      list.push(fic);
    }
  }
  const deletes = context.mayRevoke ? actual.filter((fic) => ours(fic) && !serving.has(fic.name)) : [];
  for (const fic of deletes) {
    const keeps = [...serving].find(([, subject]) => subject === fic.subject)?.[0];
    actions.push({ kind: "delete", name: fic.name, subject: fic.subject, ...(keeps ? { keeps } : {}) });
  }
  actions.push(...writes);
  const free = Math.max(0, MAX_FICS_PER_MSI - (actual.length - deletes.length));
  actions.push(...grants(present, pending, free, context.namespaceCap ?? 0));
  return actions;
}

/** The creates the fair shares allow, per namespace in FIC-name order; the rest skipped, and a note per namespace left short. */
function grants(present: ReadonlyMap<string, number>, pending: ReadonlyMap<string, DesiredFic[]>, free: number, cap: number): FicAction[] {
  const actions: FicAction[] = [];
  const demands = new Map<string, { holds: number; asks: number }>();
  for (const namespace of new Set([...present.keys(), ...pending.keys()])) {
    const holds = present.get(namespace) ?? 0;
    demands.set(namespace, { holds, asks: holds + (pending.get(namespace)?.length ?? 0) });
  }
  const shares = fairShares(demands, free, cap);
  for (const [namespace, fics] of [...pending].sort(([a], [b]) => a.localeCompare(b))) {
    const share = shares.get(namespace)!;
    const granted = share.slots - share.holds;
    fics.forEach((fic, i) => {
      if (i < granted) actions.push({ kind: "create", fic });
      else actions.push({ kind: "skip", fic, why: share.reason, reason: skipReason(share) });
    });
    if (granted < fics.length) actions.push({ kind: "share", share });
  }
  return actions;
}

function skipReason(share: NamespaceShare): string {
  const has = `namespace "${share.namespace}" has ${share.slots} of the MSI's ${MAX_FICS_PER_MSI} federated identity credential slots for the ${share.asked} it asks for`;
  switch (share.reason) {
    case "limit":
      return `the MSI already has ${MAX_FICS_PER_MSI} federated identity credentials (Azure's limit): ${has}`;
    case "cap":
      return `${has}: the per-namespace cap (--workloadidentity.fic.namespacecap) is ${share.slots}`;
    case "share":
      return `${has}: ${share.asking} namespaces share the MSI and its fair share is ${share.share}`;
  }
}

/**
 * Max-min fair shares of an MSI's FIC slots between the namespaces asking for them (pure).
 * `demands`: per namespace, the FICs of its own the MSI holds (kept: nothing is revoked to make
 * room) and how many it asks for in all. `free`: slots open now. The slots open to the namespaces
 * (free plus what they hold) are water-filled: every namespace gets up to a common level, none more
 * than it asks or than `cap` (0: none), none less than it holds; the last few slots that cannot be
 * spread evenly go one each to the namespaces holding fewest, then by name (stable from run to run,
 * since what is granted is then held). So no namespace is granted past its share while another waits.
 */
export function fairShares(demands: ReadonlyMap<string, { holds: number; asks: number }>, free: number, cap: number): Map<string, NamespaceShare> {
  const names = [...demands.keys()].sort();
  const total = free + names.reduce((sum, name) => sum + demands.get(name)!.holds, 0);
  const ceiling = (name: string) => {
    const { holds, asks } = demands.get(name)!;
    return Math.max(holds, cap > 0 ? Math.min(asks, cap) : asks);
  };
  const at = (level: number, name: string) => Math.min(Math.max(level, demands.get(name)!.holds), ceiling(name));
  const filled = (level: number) => names.reduce((sum, name) => sum + at(level, name), 0);
  // The highest common level that fits (binary search: filled() grows with the level).
  let [low, high] = [0, Math.max(0, ...names.map(ceiling))];
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (filled(mid) <= total) low = mid;
    else high = mid - 1;
  }
  const slots = new Map(names.map((name) => [name, at(low, name)]));
  let left = total - filled(low);
  const rising = names.filter((name) => at(low + 1, name) > at(low, name)).sort((a, b) => demands.get(a)!.holds - demands.get(b)!.holds || a.localeCompare(b));
  for (const name of rising) {
    if (left <= 0) break;
    slots.set(name, slots.get(name)! + 1);
    left--;
  }
  // The share without what is held already: what a namespace could claim if nothing were held.
  const unheld = (name: string) => (cap > 0 ? Math.min(demands.get(name)!.asks, cap) : demands.get(name)!.asks);
  const shareOf = waterFill(names.map(unheld), total);
  const result = new Map<string, NamespaceShare>();
  names.forEach((name, i) => {
    const { holds, asks } = demands.get(name)!;
    const got = slots.get(name)!;
    const reason: ShareReason = cap > 0 && got >= cap && asks > cap ? "cap" : names.length > 1 && total > 0 ? "share" : "limit";
    result.set(name, { namespace: name, asked: asks, holds, slots: got, share: shareOf[i]!, asking: names.length, reason });
  });
  return result;
}

/** Max-min fair integer split of `total` between claims (pure): the remainder goes to the first claims still short. */
function waterFill(claims: readonly number[], total: number): number[] {
  const share = claims.map(() => 0);
  let left = total;
  let open = claims.map((_, i) => i).filter((i) => claims[i]! > 0);
  while (left > 0 && open.length > 0) {
    const each = Math.max(1, Math.floor(left / open.length));
    for (const i of open) {
      if (left === 0) break;
      const add = Math.min(each, claims[i]! - share[i]!, left);
      share[i]! += add;
      left -= add;
    }
    open = open.filter((i) => share[i]! < claims[i]!);
  }
  return share;
}

function sameCredential(a: FederatedCredential, b: FederatedCredential): boolean {
  return (
    a.issuer === b.issuer &&
    a.subject === b.subject &&
    a.audiences.length === b.audiences.length &&
    a.audiences.every((audience, i) => audience === b.audiences[i])
  );
}
