import type { Msi } from "../azure/types.js";
import type { ListedSubscription } from "../model/audit.js";
import type { V1Namespace } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { kubeErrorMessage } from "../kube/errors.js";
import type { Informer } from "../kube/informer.js";
import type { LookupValues } from "../kube/lookup.js";
import type { AzureIdentity, AzureIdentityBinding } from "../kube/resources.js";
import type { Metrics } from "../metrics/metrics.js";
import type { DesiredState } from "./desired.js";
import { planBindings, planIdentities, unmatchedBindings, type IdentityAction } from "./diff.js";
import { subscriptionOf, unlistedDeletes } from "./prune.js";
import type { Subject, SyncReport } from "./report.js";
import { NotLeaderError, type IdentityWriter } from "./writer.js";

/** What the last Azure listing allows: its desired state and whether deletions are safe. */
export interface ListingState {
  desired: DesiredState;
  /** --azureidentity.prune and a complete, error-free, non-suspicious listing. */
  pruneAllowed: boolean;
  /**
   * Lower-cased IDs of the subscriptions this listing covers. Prune deletes only identities of these:
   * a subscription missing from the subscription list (a lost role assignment, a listing glitch) is
   * no evidence that its MSIs are gone.
   */
  listedSubscriptions: ReadonlySet<string>;
  /** Every subscription listed completely and without error, and the listing not empty. */
  complete: boolean;
  /** The MSIs of the subscriptions that were listed completely. */
  completeMsis: readonly Msi[];
  /** Every MSI (an incomplete subscription's merged with the previous listing's) and each subscription's state: for the audit. */
  msis: readonly Msi[];
  subscriptions: readonly ListedSubscription[];
}

export interface NamespaceOutcome {
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  bindingsUpdated: number;
  errors: number;
}

export function emptyOutcome(): NamespaceOutcome {
  return { created: 0, updated: 0, unchanged: 0, deleted: 0, bindingsUpdated: 0, errors: 0 };
}

export function addOutcome(total: NamespaceOutcome, part: NamespaceOutcome): void {
  for (const key of Object.keys(total) as (keyof NamespaceOutcome)[]) total[key] += part[key];
}

export interface ReconcilerDeps {
  identities: Informer<AzureIdentity>;
  namespaces: Informer<V1Namespace>;
  bindings: Informer<AzureIdentityBinding> | undefined;
  lookupKeys: Record<keyof LookupValues, string> | undefined;
  writer: IdentityWriter;
  metrics: Metrics;
  log: Logger;
  /** Told what was done, for Events; nothing when absent. */
  report?: SyncReport;
}

export function namespaceIsLive(namespace: V1Namespace | undefined): boolean {
  return namespace !== undefined && !namespace.metadata?.deletionTimestamp && namespace.status?.phase !== "Terminating";
}

/**
 * Level-triggered reconcile of one namespace: compare the last listing's desired identities with the
 * operator-owned ones in the cache, write only the difference, then point lookup-labelled bindings at
 * the right identity. Each write's result goes back into the cache so a reconcile that follows before
 * the watch event does not repeat it.
 */
export async function reconcileNamespace(namespace: string, listing: ListingState, deps: ReconcilerDeps): Promise<NamespaceOutcome> {
  const outcome = emptyOutcome();
  const object = deps.namespaces.get(undefined, namespace);
  const live = namespaceIsLive(object);
  // Creates and deletes happen only in a live namespace (a terminating one takes no new Events).
  const subject: Subject = { namespace, name: namespace, uid: object?.metadata?.uid };
  const desired = live ? listing.desired.byNamespace.get(namespace) : undefined;
  const actual = deps.identities.list(namespace);
  if (!live && actual.length === 0) return outcome;
  const plan = planIdentities(desired, actual, listing.pruneAllowed && live);
  outcome.unchanged = plan.unchanged;
  const unlisted = unlistedDeletes(plan.actions, actual, listing.listedSubscriptions);
  const actions = plan.actions.filter((action) => action.kind !== "delete" || !unlisted.includes(action.name));
  if (unlisted.length > 0) deps.log.warn({ namespace, names: unlisted }, "not pruned: their subscription is not in the Azure listing");
  for (const action of actions) {
    const subscription = action.kind === "delete" ? subscriptionOf(actual, action.name) : action.desired.subscriptionId;
    try {
      await applyIdentityAction(action, actual, deps, outcome, subject);
      deps.metrics.resourceSuccess.inc({ subscription, resource: "AzureIdentity" });
    } catch (error) {
      if (error instanceof NotLeaderError) throw error;
      outcome.errors++;
      deps.metrics.resourceErrors.inc({ subscription, resource: "AzureIdentity" });
      deps.log.error(
        { namespace, name: action.kind === "delete" ? action.name : action.desired.name, action: action.kind, err: kubeErrorMessage(error) },
        "AzureIdentity write failed",
      );
    }
  }
  if (deps.bindings && deps.lookupKeys && live)
    await syncBindings(namespace, { ...deps, bindings: deps.bindings, lookupKeys: deps.lookupKeys }, outcome, (name) => desired?.has(name) ?? false);
  return outcome;
}

/** One identity write, its result put into the cache, counted, logged and reported. */
async function applyIdentityAction(
  action: IdentityAction,
  actual: readonly AzureIdentity[],
  deps: ReconcilerDeps,
  outcome: NamespaceOutcome,
  subject: Subject,
) {
  const namespace = subject.name;
  if (action.kind === "create") {
    deps.identities.observe(await deps.writer.createIdentity(action.desired));
    outcome.created++;
    deps.log.info({ namespace, name: action.desired.name, msi: action.desired.msiId }, "created AzureIdentity");
    deps.report?.({ kind: "identityCreated", namespace: subject, name: action.desired.name, msiId: action.desired.msiId });
  } else if (action.kind === "patch") {
    deps.identities.observe(await deps.writer.patchIdentity(namespace, action.desired.name, action.patch));
    outcome.updated++;
    deps.log.info({ namespace, name: action.desired.name, changed: action.changed }, "updated AzureIdentity");
  } else {
    await deps.writer.deleteIdentity(namespace, action.name, { uid: action.uid, resourceVersion: action.resourceVersion });
    const gone = actual.find((object) => object.metadata?.name === action.name);
    if (gone) deps.identities.forget(gone);
    outcome.deleted++;
    deps.log.info({ namespace, name: action.name }, "deleted AzureIdentity no longer wanted (prune)");
    deps.report?.({ kind: "identityDeleted", namespace: subject, name: action.name });
  }
}

/** The reconciler's deps when binding sync is on: a bindings cache and lookup keys are there. */
type BindingSyncDeps = Omit<ReconcilerDeps, "bindings" | "lookupKeys"> & {
  bindings: Informer<AzureIdentityBinding>;
  lookupKeys: Record<keyof LookupValues, string>;
};

async function syncBindings(namespace: string, deps: BindingSyncDeps, outcome: NamespaceOutcome, current: (name: string) => boolean): Promise<void> {
  const bindings = deps.bindings.list(namespace);
  const identities = deps.identities.list(namespace);
  const actions = planBindings(bindings, identities, deps.lookupKeys, current);
  for (const unmatched of unmatchedBindings(bindings, identities, deps.lookupKeys, current))
    deps.report?.({ kind: "bindingUnmatched", binding: unmatched, lookup: unmatched.values });
  for (const action of actions) {
    const subscription = deps.bindings.get(namespace, action.name)?.metadata?.labels?.[deps.lookupKeys.subscription] ?? "";
    try {
      const patched = await deps.writer.patchBinding(namespace, action.name, action.to);
      deps.bindings.observe(patched);
      deps.report?.({ kind: "bindingSynced", binding: { namespace, name: action.name, uid: patched.metadata?.uid }, from: action.from, to: action.to });
      outcome.bindingsUpdated++;
      deps.metrics.resourceSuccess.inc({ subscription, resource: "AzureIdentityBinding" });
      deps.log.info({ namespace, binding: action.name, from: action.from ?? null, to: action.to }, "synced AzureIdentityBinding");
    } catch (error) {
      if (error instanceof NotLeaderError) throw error;
      outcome.errors++;
      deps.metrics.resourceErrors.inc({ subscription, resource: "AzureIdentityBinding" });
      deps.log.error({ namespace, binding: action.name, err: kubeErrorMessage(error) }, "AzureIdentityBinding write failed");
    }
  }
}
