// The workload identity part of `azure-msi-operator diff`: what the FIC controller would create,
// change, revoke and skip on each MSI, planned with the controller's own pure functions (desiredFics,
// planMsi and its fairShares) from one read of every relevant MSI's FICs. Pure: the command lists.
import type { DesiredState } from "../model/desired.js";
import { serviceAccountSubject } from "./names.js";
import {
  desiredFics,
  MAX_FICS_PER_MSI,
  msiKey,
  planMsi,
  selectionOf,
  type FederatedCredential,
  type FicContext,
  type LabelledServiceAccount,
  type MsiFics,
  type MsiRef,
  type NamespaceShare,
} from "./plan.js";

export interface FicPreviewContext extends FicContext {
  /** --workloadidentity.cluster.previous */
  previousClusters: readonly string[];
  /** --workloadidentity.fic.namespacecap (0: none) */
  namespaceCap: number;
}

/** What a preview must read before it can plan: the MSIs a full sync after a fresh listing looks at. */
export interface FicTargets {
  /** By msiKey, in a stable order: every MSI of a completely listed subscription, and every one wanted. */
  targets: Map<string, MsiRef>;
  wanted: Map<string, MsiFics>;
  /** ServiceAccounts whose lookup labels name no MSI tagged for their namespace. */
  unmatched: LabelledServiceAccount[];
}

/**
 * The MSIs to list FICs of, as FicController.sync() picks them after a fresh listing: those of
 * complete subscriptions (`scan`: a removed tag revokes there) and the wanted ones.
 */
export function ficTargets(
  serviceAccounts: readonly LabelledServiceAccount[],
  desired: DesiredState,
  context: FicContext,
  scan: readonly MsiRef[],
): FicTargets {
  const { byMsi, unmatched } = desiredFics(serviceAccounts, desired, context);
  const all = new Map<string, MsiRef>();
  for (const msi of scan) all.set(msiKey(msi), msi);
  for (const [key, entry] of byMsi) all.set(key, entry.msi);
  const targets = new Map([...all].sort(([a], [b]) => a.localeCompare(b)));
  return { targets, wanted: byMsi, unmatched };
}

/** One MSI's FICs as read, or why they could not be. */
export type MsiFicListing = { msi: MsiRef; fics: FederatedCredential[] } | { msi: MsiRef; error: string };

export interface FicFieldChange {
  field: "issuer" | "subject" | "audiences";
  from: string;
  to: string;
}

export type FicChange =
  | { action: "create"; name: string; subject: string; namespace: string; serviceAccount: string }
  | { action: "change"; name: string; subject: string; namespace: string; serviceAccount: string; fields: FicFieldChange[] }
  /**
   * `keeps`: another FIC stays for the same subject (a renamed cluster's duplicate), so no token is
   * lost; null: the subject loses its FIC on this MSI and its pods their Azure tokens.
   */
  | { action: "revoke"; name: string; subject: string; keeps: string | null; reason: string };

export interface FicSkip {
  name: string;
  namespace: string;
  serviceAccount: string;
  why: "limit" | "share" | "cap" | "conflict";
  reason: string;
}

export interface MsiFicPreview {
  /** ARM resource ID. */
  msi: string;
  /** FICs on the MSI now (all issuers), and after the sync. */
  before: number;
  after: number;
  changes: FicChange[];
  skipped: FicSkip[];
  /** Namespaces left short of what they ask for, with their share. */
  shares: NamespaceShare[];
}

export interface FicPreview {
  issuer: string;
  cluster: string;
  /** Revocations are planned only after a complete Azure listing, as the controller does. */
  mayRevoke: boolean;
  /** MSIs whose FICs were read. */
  looked: number;
  /** Only MSIs with something to create, change, revoke or skip. */
  msis: MsiFicPreview[];
  /** Wanted FICs already right. */
  unchanged: number;
  unmatched: { namespace: string; name: string }[];
  /** MSIs whose FICs could not be read: the preview is incomplete. */
  errors: { msi: string; error: string }[];
}

export interface FicPreviewInput {
  targets: FicTargets;
  listed: readonly MsiFicListing[];
  /** Every ServiceAccount listed (for why a FIC is revoked). */
  serviceAccounts: readonly LabelledServiceAccount[];
  context: FicPreviewContext;
  /** The Azure listing was complete and not empty. */
  complete: boolean;
}

export function msiResourceId(msi: MsiRef): string {
  return `/subscriptions/${msi.subscriptionId}/resourceGroups/${msi.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${msi.name}`;
}

/** Plans every listed MSI with planMsi, exactly as the controller's key would (pure). */
export function previewFics({ targets, listed, serviceAccounts, context, complete }: FicPreviewInput): FicPreview {
  const preview: FicPreview = {
    issuer: context.issuer,
    cluster: context.cluster,
    mayRevoke: complete,
    looked: 0,
    msis: [],
    unchanged: 0,
    unmatched: targets.unmatched.map(({ namespace, name }) => ({ namespace, name })),
    errors: [],
  };
  const plan = {
    issuer: context.issuer,
    cluster: context.cluster,
    previousClusters: context.previousClusters,
    mayRevoke: complete,
    namespaceCap: context.namespaceCap,
  };
  for (const entry of [...listed].sort((a, b) => msiKey(a.msi).localeCompare(msiKey(b.msi)))) {
    if ("error" in entry) {
      preview.errors.push({ msi: msiResourceId(entry.msi), error: entry.error });
      continue;
    }
    preview.looked++;
    const key = msiKey(entry.msi);
    const wanted = targets.wanted.get(key)?.wanted ?? [];
    const byName = new Map(entry.fics.map((fic) => [fic.name, fic]));
    const msi: MsiFicPreview = { msi: msiResourceId(entry.msi), before: entry.fics.length, after: entry.fics.length, changes: [], skipped: [], shares: [] };
    let touched = 0;
    for (const action of planMsi(wanted, entry.fics, plan)) {
      switch (action.kind) {
        case "create":
          touched++;
          msi.after++;
          msi.changes.push({ action: "create", ...who(action.fic) });
          break;
        case "update":
          touched++;
          msi.changes.push({ action: "change", ...who(action.fic), fields: fieldChanges(byName.get(action.fic.name), action.fic) });
          break;
        case "skip":
          touched++;
          msi.skipped.push({ ...who(action.fic), why: action.why, reason: action.reason });
          break;
        case "share":
          msi.shares.push(action.share);
          break;
        case "delete":
          msi.after--;
          msi.changes.push({
            action: "revoke",
            name: action.name,
            subject: action.subject,
            keeps: action.keeps ?? null,
            reason: revokeReason(action.subject, action.keeps, key, targets.wanted, serviceAccounts, context),
          });
          break;
      }
    }
    preview.unchanged += wanted.length - touched;
    if (msi.changes.length + msi.skipped.length + msi.shares.length > 0) preview.msis.push(msi);
  }
  return preview;
}

const who = (fic: { name: string; subject: string; namespace: string; serviceAccount: string }) => ({
  name: fic.name,
  subject: fic.subject,
  namespace: fic.namespace,
  serviceAccount: fic.serviceAccount,
});

function fieldChanges(actual: FederatedCredential | undefined, wanted: FederatedCredential): FicFieldChange[] {
  const fields: FicFieldChange[] = [];
  if (actual?.issuer !== wanted.issuer) fields.push({ field: "issuer", from: actual?.issuer ?? "", to: wanted.issuer });
  if (actual?.subject !== wanted.subject) fields.push({ field: "subject", from: actual?.subject ?? "", to: wanted.subject });
  const audiences = (list: readonly string[] | undefined) => JSON.stringify(list ?? []);
  if (audiences(actual?.audiences) !== audiences(wanted.audiences))
    fields.push({ field: "audiences", from: audiences(actual?.audiences), to: audiences(wanted.audiences) });
  return fields;
}

/** Why a FIC of ours is no longer wanted on this MSI, as an admin reading the diff needs it. */
function revokeReason(
  subject: string,
  keeps: string | undefined,
  key: string,
  wanted: ReadonlyMap<string, MsiFics>,
  serviceAccounts: readonly LabelledServiceAccount[],
  context: FicContext,
): string {
  if (keeps) return `a duplicate: ${keeps} stays for the same subject, so no token is lost`;
  const parsed = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(subject);
  if (!parsed) return "no ServiceAccount wants it";
  const [namespace, name] = [parsed[1]!, parsed[2]!];
  const ref = `ServiceAccount ${namespace}/${name}`;
  const account = serviceAccounts.find((candidate) => candidate.namespace === namespace && candidate.name === name);
  if (!account) return `${ref} no longer exists`;
  if (!selectionOf(account, context.lookupKeys)) return `${ref} no longer names an MSI (no lookup labels, no client-id annotation)`;
  const elsewhere = [...wanted].find(([other, entry]) => other !== key && entry.wanted.some((fic) => fic.subject === serviceAccountSubject(namespace, name)));
  if (elsewhere) return `${ref} now names another MSI (${msiResourceId(elsewhere[1].msi)})`;
  return `the MSI ${ref} names is not tagged for namespace ${namespace} (any more)`;
}

/** Writes the plan would make (the diff's exit code 1). */
export function ficChangeCount(preview: FicPreview): number {
  return preview.msis.reduce((sum, msi) => sum + msi.changes.length, 0);
}

/** Revocations that take a subject's only FIC on an MSI: its pods stop getting tokens. */
export function outageRevocations(preview: FicPreview): { msi: string; change: Extract<FicChange, { action: "revoke" }> }[] {
  return preview.msis.flatMap((msi) =>
    msi.changes.flatMap((change) => (change.action === "revoke" && change.keeps === null ? [{ msi: msi.msi, change }] : [])),
  );
}

/**
 * The text form: revocations that cost tokens first, in a block no one scrolls past, then per MSI
 * one line per FIC (+ create, ~ change, - revoke, ! skip), then notes and a summary line.
 */
export function formatFicPreview(preview: FicPreview): string {
  const lines = [`Federated identity credentials (workload identity; issuer ${preview.issuer}, cluster ${preview.cluster}):`];
  const outages = outageRevocations(preview);
  if (outages.length > 0) {
    const rule = "!".repeat(100);
    lines.push(
      rule,
      `!!! REVOKE: ${outages.length} federated identity credential(s) would be deleted; pods of these ServiceAccounts stop getting Azure tokens for the MSI`,
      ...outages.map(({ msi, change }) => `!!!   ${change.subject} on ${msi}: ${change.reason}`),
      rule,
    );
  }
  for (const msi of preview.msis) {
    lines.push(`MSI ${msi.msi} (${msi.before} of ${MAX_FICS_PER_MSI} FICs now, ${msi.after} after)`);
    for (const change of msi.changes) {
      const account = change.action === "revoke" ? "" : ` for ServiceAccount ${change.namespace}/${change.serviceAccount}`;
      if (change.action === "create") lines.push(`  + create FIC ${change.name}${account} (subject ${change.subject})`);
      else if (change.action === "change") {
        lines.push(`  ~ change FIC ${change.name}${account}`, ...change.fields.map((field) => `      ${field.field}: ${field.from} -> ${field.to}`));
      } else if (change.keeps) lines.push(`  - revoke FIC ${change.name} (subject ${change.subject}): ${change.reason}`);
      else lines.push(`  - REVOKE FIC ${change.name} (subject ${change.subject}): ${change.reason}; its pods lose their Azure tokens`);
    }
    for (const skip of msi.skipped) lines.push(`  ! skip ServiceAccount ${skip.namespace}/${skip.serviceAccount} (${skip.why}): ${skip.reason}`);
    for (const share of msi.shares)
      lines.push(
        `  ! namespace ${share.namespace} asks for ${share.asked} FICs, gets ${share.slots} (${share.reason}: ${share.asking} namespace(s) ask, fair share ${share.share})`,
      );
  }
  for (const account of preview.unmatched)
    lines.push(`! ServiceAccount ${account.namespace}/${account.name}: its lookup labels name no MSI tagged for namespace ${account.namespace}`);
  if (!preview.mayRevoke)
    lines.push("! no revocation planned: the Azure listing is incomplete or empty (as the controller, the diff revokes only after a complete one)");
  for (const error of preview.errors) lines.push(`! MSI ${error.msi}: its federated identity credentials could not be listed: ${error.error}`);
  const count = (action: FicChange["action"]) => preview.msis.reduce((sum, msi) => sum + msi.changes.filter((change) => change.action === action).length, 0);
  const skipped = preview.msis.reduce((sum, msi) => sum + msi.skipped.length, 0);
  lines.push(
    `FICs: ${preview.looked} MSIs looked at; ${count("create")} to create, ${count("change")} to change, ${count("revoke")} to revoke ` +
      `(${outages.length} losing tokens), ${preview.unchanged} unchanged, ${skipped} skipped`,
  );
  return `${lines.join("\n")}\n`;
}
