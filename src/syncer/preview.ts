// `azure-msi-operator diff`: what a full sync would write, computed with the syncer's own pure
// functions (desired state, plans, prune gate) from one Azure listing and one read of the cluster.
import type { V1Namespace } from "@kubernetes/client-node";
import type { SubscriptionListing } from "../azure/types.js";
import type { LookupValues } from "../kube/lookup.js";
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, type AzureIdentity, type AzureIdentityBinding } from "../kube/resources.js";
import { desiredState, toAzureIdentity, type DesiredIdentity, type DesiredState, type DesiredStateOptions, type SkippedMsi } from "./desired.js";
import { identityPatch, planBindings, planIdentities, type IdentityAction, type IdentityPatch } from "./diff.js";
import { pruneGate, unlistedDeletes, type PruneGate } from "./prune.js";
import { namespaceIsLive } from "./reconciler.js";

export interface PreviewInput {
  listings: readonly SubscriptionListing[];
  desiredOptions: DesiredStateOptions;
  prune: boolean;
  /** Lookup keys when --azureidentity.binding.sync is on (bindings are previewed too). */
  bindingKeys: Record<keyof LookupValues, string> | undefined;
  namespaces: readonly V1Namespace[];
  /** Every AzureIdentity of the cluster, owned or not (an unowned one of a desired name is adopted). */
  identities: readonly AzureIdentity[];
  bindings: readonly AzureIdentityBinding[];
}

export interface FieldChange {
  field: string;
  /** null: absent. */
  from: string | number | null;
  to: string | number | null;
}

export type PreviewChange =
  | { action: "create"; kind: "AzureIdentity"; namespace: string; name: string; msi: string; object: AzureIdentity }
  | { action: "change"; kind: "AzureIdentity"; namespace: string; name: string; msi: string; adopt: boolean; fields: FieldChange[] }
  | { action: "delete"; kind: "AzureIdentity"; namespace: string; name: string; resourceID: string | null }
  | { action: "change"; kind: "AzureIdentityBinding"; namespace: string; name: string; fields: FieldChange[] };

export interface Preview {
  changes: PreviewChange[];
  unchanged: number;
  listed: number;
  skipped: SkippedMsi[];
  incompleteSubscriptions: string[];
  prune: { enabled: boolean; allowed: boolean; skipped: "incomplete" | "empty" | null };
  /** Identities prune would delete but keeps: their subscription is not in the listing. */
  notPruned: { namespace: string; name: string }[];
}

const isOwned = (identity: AzureIdentity) => identity.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;

const inNamespace = <T extends { metadata?: { namespace?: string } }>(objects: readonly T[], namespace: string) =>
  objects.filter((object) => object.metadata?.namespace === namespace);

/** What one namespace's preview needs, computed once for the whole listing. */
interface PreviewContext {
  input: PreviewInput;
  desired: DesiredState;
  owned: AzureIdentity[];
  gate: PruneGate;
  namespaces: Map<string, V1Namespace>;
}

export function previewSync(input: PreviewInput): Preview {
  const msis = input.listings.flatMap((part) => part.identities);
  const desired = desiredState(msis, input.desiredOptions);
  const owned = input.identities.filter(isOwned);
  const gate = pruneGate(input.listings, msis, input.prune, owned.length > 0);
  const namespaces = new Map(input.namespaces.map((namespace) => [namespace.metadata?.name ?? "", namespace]));
  const context: PreviewContext = { input, desired, owned, gate, namespaces };

  // The namespaces a full sync reconciles, in a stable order.
  const candidates = new Set<string>();
  for (const namespace of desired.byNamespace.keys()) if (namespaceIsLive(namespaces.get(namespace))) candidates.add(namespace);
  for (const identity of owned) candidates.add(identity.metadata?.namespace ?? "");
  if (input.bindingKeys) for (const binding of input.bindings) candidates.add(binding.metadata?.namespace ?? "");
  candidates.delete("");

  const preview: Preview = {
    changes: [],
    unchanged: 0,
    listed: msis.length,
    skipped: desired.skipped,
    incompleteSubscriptions: input.listings.filter((part) => !part.complete).map((part) => part.subscriptionId),
    prune: { enabled: input.prune, allowed: gate.pruneAllowed, skipped: gate.skipped ?? null },
    notPruned: [],
  };
  for (const namespace of [...candidates].sort()) previewNamespace(namespace, context, preview);
  return preview;
}

/** One namespace, as reconcileNamespace() plans it. */
function previewNamespace(namespace: string, { input, desired, owned, gate, namespaces }: PreviewContext, preview: Preview): void {
  const live = namespaceIsLive(namespaces.get(namespace));
  const want = live ? desired.byNamespace.get(namespace) : undefined;
  const actual = inNamespace(owned, namespace);
  if (!live && actual.length === 0) return;
  const plan = planIdentities(want, actual, gate.pruneAllowed && live);
  preview.unchanged += plan.unchanged;
  const unlisted = unlistedDeletes(plan.actions, actual, gate.listedSubscriptions);
  preview.notPruned.push(...unlisted.map((name) => ({ namespace, name })));
  const unowned = new Map(
    inNamespace(input.identities, namespace)
      .filter((identity) => !isOwned(identity))
      .map((identity) => [identity.metadata?.name ?? "", identity]),
  );
  for (const action of plan.actions) {
    if (action.kind === "delete" && unlisted.includes(action.name)) continue;
    const change = actionChange(namespace, action, actual, unowned);
    if (change) preview.changes.push(change);
    else preview.unchanged++;
  }
  if (!input.bindingKeys || !live) return;
  // Bindings are planned against the identities as the sync would leave them.
  const kept = (object: AzureIdentity) => !want?.has(object.metadata?.name ?? "") && (!gate.pruneAllowed || unlisted.includes(object.metadata?.name ?? ""));
  const after = [...[...(want?.values() ?? [])].map(toAzureIdentity), ...actual.filter(kept)];
  for (const binding of planBindings(inNamespace(input.bindings, namespace), after, input.bindingKeys, (name) => want?.has(name) ?? false)) {
    preview.changes.push({
      action: "change",
      kind: "AzureIdentityBinding",
      namespace,
      name: binding.name,
      fields: [{ field: "spec.azureIdentity", from: binding.from ?? null, to: binding.to }],
    });
  }
}

/** The change one planned action makes; undefined when an adoption would find the object already right. */
function actionChange(
  namespace: string,
  action: IdentityAction,
  actual: readonly AzureIdentity[],
  unowned: ReadonlyMap<string, AzureIdentity>,
): PreviewChange | undefined {
  if (action.kind === "delete") {
    const resourceID = actual.find((object) => object.metadata?.name === action.name)?.spec?.resourceID ?? null;
    return { action: "delete", kind: "AzureIdentity", namespace, name: action.name, resourceID };
  }
  if (action.kind === "patch") {
    return identityChange(
      action.desired,
      action.patch,
      actual.find((object) => object.metadata?.name === action.desired.name),
      false,
    );
  }
  // The writer's create meets a 409 here and adopts the object (the Go original's, say) instead.
  const existing = unowned.get(action.desired.name);
  if (!existing)
    return {
      action: "create",
      kind: "AzureIdentity",
      namespace,
      name: action.desired.name,
      msi: action.desired.msiId,
      object: toAzureIdentity(action.desired),
    };
  const adoption = identityPatch(action.desired, existing);
  return adoption ? identityChange(action.desired, adoption.patch, existing, true) : undefined;
}

function identityChange(desired: DesiredIdentity, patch: IdentityPatch, actual: AzureIdentity | undefined, adopt: boolean): PreviewChange {
  const fields: FieldChange[] = [];
  for (const [key, to] of Object.entries(patch.metadata?.labels ?? {}))
    fields.push({ field: `metadata.labels[${key}]`, from: actual?.metadata?.labels?.[key] ?? null, to });
  for (const [key, to] of Object.entries(patch.metadata?.annotations ?? {}))
    fields.push({ field: `metadata.annotations[${key}]`, from: actual?.metadata?.annotations?.[key] ?? null, to });
  for (const [key, to] of Object.entries(patch.spec ?? {}) as [keyof DesiredIdentity["spec"], string | number][])
    fields.push({ field: `spec.${key}`, from: actual?.spec?.[key] ?? null, to });
  return { action: "change", kind: "AzureIdentity", namespace: desired.namespace, name: desired.name, msi: desired.msiId, adopt, fields };
}

/** kubectl diff's exit codes: 0 nothing to write, 1 something to write. */
export function previewExitCode(preview: Preview): 0 | 1 {
  return preview.changes.length > 0 ? 1 : 0;
}

const show = (value: string | number | null) => (value === null ? "(absent)" : JSON.stringify(value));

function formatChange(change: PreviewChange): string[] {
  const ref = `${change.kind} ${change.namespace}/${change.name}`;
  if (change.action === "create") {
    return [
      `+ create ${ref} (MSI ${change.msi})`,
      ...Object.entries(change.object.metadata?.labels ?? {}).map(([key, value]) => `    metadata.labels[${key}]: ${show(value)}`),
      ...Object.entries(change.object.metadata?.annotations ?? {}).map(([key, value]) => `    metadata.annotations[${key}]: ${show(value)}`),
      ...Object.entries(change.object.spec ?? {}).map(([key, value]) => `    spec.${key}: ${show(value as string | number)}`),
    ];
  }
  if (change.action === "delete") return [`- delete ${ref} (prune: resourceID ${change.resourceID ?? "(none)"} is not in the Azure listing)`];
  const why =
    change.kind === "AzureIdentity" ? (change.adopt ? ` (adopt: not yet owned by azure-msi-operator; MSI ${change.msi})` : ` (MSI ${change.msi})`) : "";
  return [`~ change ${ref}${why}`, ...change.fields.map((field) => `    ${field.field}: ${show(field.from)} -> ${show(field.to)}`)];
}

/** The human-readable form: one block per object, +/~/- as in a diff, then notes and a summary line. */
export function formatPreview(preview: Preview): string {
  const lines = preview.changes.flatMap(formatChange);
  for (const skipped of preview.skipped) lines.push(`! skip MSI ${skipped.msiId}: ${skipped.reason}`);
  for (const kept of preview.notPruned)
    lines.push(`! keep AzureIdentity ${kept.namespace}/${kept.name}: its subscription is not in the Azure listing (not pruned)`);
  if (preview.prune.skipped === "incomplete") lines.push("! prune skipped: the Azure listing is incomplete");
  if (preview.prune.skipped === "empty") lines.push("! prune skipped: the Azure listing is empty while the cluster holds operator-owned identities");
  for (const subscription of preview.incompleteSubscriptions) lines.push(`! subscription ${subscription}: listing incomplete`);
  const count = (action: string) => preview.changes.filter((change) => change.action === action).length;
  lines.push(
    `${preview.listed} MSIs listed; ${count("create")} to create, ${count("change")} to change, ${count("delete")} to delete, ` +
      `${preview.unchanged} unchanged, ${preview.skipped.length} skipped`,
  );
  return `${lines.join("\n")}\n`;
}
