import type { V1Namespace } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Msi, SubscriptionListing } from "../azure/types.js";

export type { SubscriptionListing };
import type { Informer } from "../kube/informer.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { AzureIdentity, AzureIdentityBinding } from "../kube/resources.js";
import type { Metrics } from "../metrics/metrics.js";
import type { FicOutcome, FicReconciler } from "../model/fic.js";
import type { SyncAuditor } from "../model/audit.js";
import { desiredState, type DesiredStateOptions } from "./desired.js";
import { pruneGate } from "./prune.js";
import { WorkQueue } from "./queue.js";
import { addOutcome, emptyOutcome, namespaceIsLive, reconcileNamespace, type ListingState, type NamespaceOutcome, type ReconcilerDeps } from "./reconciler.js";
import type { WriteVerb } from "../kube/errors.js";
import { NotLeaderError, type IdentityWriter } from "./writer.js";
import type { SyncReport } from "./report.js";

export interface SyncerOptions {
  intervalMs: number;
  watch: boolean;
  lockTimeMs: number;
  prune: boolean;
  bindingSync: boolean;
  concurrency: number;
  labelFormat: string;
  /** Built per listing, so the expiry date is that of the sync. */
  desiredOptions: (now: Date) => DesiredStateOptions;
}

/**
 * The workload identity mode's part of a sync: the FIC controller (src/workload/fic-controller.ts),
 * which also follows ServiceAccount events itself. A full sync hands it each listing and waits for it.
 */
export interface WorkloadSync {
  fics: FicReconciler;
}

export interface SyncerDeps {
  /** Lists Azure; the signal is aborted when the syncer stops (leadership lost, shutdown). */
  listAzure: (signal: AbortSignal) => Promise<SubscriptionListing[]>;
  identities: Informer<AzureIdentity>;
  namespaces: Informer<V1Namespace>;
  bindings: Informer<AzureIdentityBinding> | undefined;
  writer: IdentityWriter;
  /** Only with --workloadidentity.enable. */
  workload?: WorkloadSync;
  /** Run after each full sync's reconcile (src/audit); absent with --audit.enable=false. */
  audit?: SyncAuditor;
  metrics: Metrics;
  log: Logger;
  /** Told what a sync did or could not do (for Events). */
  report?: SyncReport;
  /** Called after each full sync, whatever its result (the leader's per-sync gauges). */
  synced?: (summary: SyncSummary) => void;
  /**
   * The term's signal: aborted when leadership is lost or the process shuts down. The syncer then
   * halts at once (listing aborted, nothing new started) as if stop() had been called.
   */
  signal?: AbortSignal;
  now?: () => Date;
}

export interface SyncSummary extends NamespaceOutcome {
  result: "success" | "failed";
  listed: number;
  skipped: number;
  listingReused: boolean;
  writes: Record<WriteVerb, number>;
  durationMs: number;
  failedSubscriptions: string[];
  /** The federated identity credential pass, in workload identity mode. */
  fics?: FicOutcome;
  /** Violations the audit after this sync found (absent: no audit ran). */
  violations?: number;
}

/**
 * The leader's sync loop. Full syncs list Azure (at most once per lock time), compute the desired
 * state and reconcile every namespace through a bounded work queue; with --sync.watch, namespace,
 * identity and binding events reconcile their namespace from the last listing at once.
 */
export class Syncer {
  private readonly queue: WorkQueue;
  private readonly reconcileDeps: ReconcilerDeps;
  private listing: ListingState | undefined;
  private lastMsis = new Map<string, Msi[]>();
  private lastListingAt = 0;
  private running: Promise<SyncSummary> | undefined;
  private accumulator: NamespaceOutcome | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly abort = new AbortController();
  /** Aborted by stop() or by the end of the term. */
  private readonly signal: AbortSignal;
  private active = false;
  private stopped = false;
  private freshListingWanted = false;
  private readonly now: () => Date;

  constructor(
    private readonly options: SyncerOptions,
    private readonly deps: SyncerDeps,
  ) {
    this.now = deps.now ?? (() => new Date());
    this.signal = deps.signal ? AbortSignal.any([this.abort.signal, deps.signal]) : this.abort.signal;
    this.reconcileDeps = {
      identities: deps.identities,
      namespaces: deps.namespaces,
      bindings: options.bindingSync ? deps.bindings : undefined,
      lookupKeys: lookupLabelKeys(options.labelFormat),
      writer: deps.writer,
      metrics: deps.metrics,
      log: deps.log,
      ...(deps.report ? { report: deps.report } : {}),
    };
    this.queue = new WorkQueue(
      options.concurrency,
      (namespace) => this.reconcile(namespace),
      (namespace, error) => {
        if (error instanceof NotLeaderError) deps.log.debug({ namespace }, "namespace reconcile stopped: no longer the leader");
        else deps.log.error({ namespace, err: (error as Error).message }, "namespace reconcile failed");
      },
    );
    if (options.watch) this.subscribe();
    // The term's end halts everything at once; stop() then only waits for what is in flight.
    this.signal.addEventListener("abort", () => this.halt(), { once: true });
    if (this.signal.aborted) this.halt();
  }

  /** Starts syncing (the caller has become leader and the caches have synced). */
  start(): void {
    if (this.active) return;
    this.active = true;
    // runAndReschedule() logs a failed sync itself and never rejects.
    void this.runAndReschedule();
  }

  /**
   * Stops for good: no more syncs, the Azure listing in flight is aborted, the caches' handlers
   * removed. Resolves once no reconcile, write or FIC pass of this syncer is in flight, so nothing
   * of it can act in a later term.
   */
  async stop(): Promise<void> {
    if (!this.abort.signal.aborted) this.abort.abort(new Error("syncer stopped"));
    this.halt();
    await Promise.allSettled([this.running, this.queue.shutdown(), this.deps.workload?.fics.stop()]);
  }

  /** Nothing new starts: timers cleared, waiting keys and retries dropped, handlers removed. */
  private halt(): void {
    this.active = false;
    this.stopped = true;
    clearTimeout(this.timer);
    this.queue.stop();
    void this.deps.workload?.fics.stop();
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
  }

  /** Rejects with the reason the syncer stopped (leadership lost, shutdown), if it did. */
  private throwIfStopped(): void {
    this.signal.throwIfAborted();
    if (this.stopped) throw new Error("syncer stopped");
  }

  private async runAndReschedule(): Promise<void> {
    await this.fullSync().catch((error: unknown) => {
      // A sync cut short by the end of the term did not fail: nothing to tell.
      if (this.stopped) return;
      this.deps.log.error({ err: (error as Error).message }, "sync failed");
      this.deps.report?.({ kind: "syncFailed", reason: (error as Error).message });
    });
    if (!this.active) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runAndReschedule(), this.options.intervalMs);
  }

  /** One full sync; concurrent callers share the one in progress. Rejects once the syncer has stopped. */
  fullSync(): Promise<SyncSummary> {
    this.running ??= this.doFullSync().finally(() => (this.running = undefined));
    return this.running;
  }

  /**
   * One full sync with a fresh Azure listing whatever --sync.locktime says (a requested "sync now"),
   * after the one in progress. Once the term has ended (or the syncer stopped) while waiting, no
   * fresh sync starts: it rejects.
   */
  async fullSyncFresh(): Promise<SyncSummary> {
    await this.running?.catch(() => undefined);
    this.throwIfStopped();
    this.freshListingWanted = true;
    return this.fullSync();
  }

  private async doFullSync(): Promise<SyncSummary> {
    this.throwIfStopped();
    const started = Date.now();
    const writesBefore = this.deps.writer.writes();
    const log = this.deps.log;
    const reuse = !this.freshListingWanted && this.listing !== undefined && started - this.lastListingAt < this.options.lockTimeMs;
    this.freshListingWanted = false;
    let failedSubscriptions: string[] = [];
    let listed = 0;
    if (reuse) {
      log.info(
        { lastListingSecondsAgo: Math.round((started - this.lastListingAt) / 1000), lockTimeSeconds: this.options.lockTimeMs / 1000 },
        "sync.locktime not yet over: reconciling from the last Azure listing",
      );
    } else {
      const listings = await this.deps.listAzure(this.signal).catch((error: unknown) => {
        // No per-subscription result to record (e.g. the subscription list itself failed): still a failed run.
        if (!this.stopped) this.deps.metrics.recordSyncRun("failed");
        throw error;
      });
      this.throwIfStopped();
      this.lastListingAt = Date.now();
      failedSubscriptions = listings.filter((part) => !part.complete).map((part) => part.subscriptionId);
      const msis = this.mergeWithPrevious(listings);
      listed = msis.length;
      this.listing = this.buildListingState(listings, msis);
    }
    const listing = this.listing;
    if (!listing) throw new Error("no Azure listing yet");
    this.accumulator = emptyOutcome();
    for (const namespace of this.namespacesToReconcile(listing)) this.queue.add(namespace);
    await this.queue.drain();
    const outcome = this.accumulator;
    this.accumulator = undefined;
    // Stopped while the namespaces were reconciled: no FIC pass starts on the old term's listing.
    this.throwIfStopped();
    const fics = this.deps.workload ? await this.ficPass(this.deps.workload, listing, !reuse) : undefined;
    this.throwIfStopped();
    const violations = this.deps.audit ? await this.runAudit(this.deps.audit, listing) : undefined;
    const writesAfter = this.deps.writer.writes();
    const writes = {
      create: writesAfter.create - writesBefore.create,
      patch: writesAfter.patch - writesBefore.patch,
      delete: writesAfter.delete - writesBefore.delete,
    };
    const summary: SyncSummary = {
      result: failedSubscriptions.length > 0 || outcome.errors > 0 || (fics?.errors ?? 0) > 0 ? "failed" : "success",
      listed,
      skipped: listing.desired.skipped.length,
      listingReused: reuse,
      ...outcome,
      writes,
      durationMs: Date.now() - started,
      failedSubscriptions,
      ...(fics ? { fics } : {}),
      ...(violations !== undefined ? { violations } : {}),
    };
    this.record(summary);
    this.deps.synced?.(summary);
    return summary;
  }

  /** The audit of what the sync left; its failure is logged and counted, never the sync's. */
  private async runAudit(auditor: SyncAuditor, listing: ListingState): Promise<number | undefined> {
    try {
      return await auditor.run({ desired: listing.desired, msis: listing.msis, subscriptions: listing.subscriptions });
    } catch (error) {
      this.deps.metrics.auditRuns.inc({ result: "failed" });
      this.deps.log.error({ err: (error as Error).message }, "audit failed");
      return undefined;
    }
  }

  /**
   * A subscription that failed mid-listing keeps the MSIs the previous listing had for it (merged
   * with what was read this time), so a flaky page never makes identities vanish from the desired state.
   */
  private mergeWithPrevious(listings: SubscriptionListing[]): Msi[] {
    const next = new Map<string, Msi[]>();
    for (const part of listings) {
      const key = part.subscriptionId.toLowerCase();
      if (part.complete) {
        next.set(key, part.identities);
        continue;
      }
      const byId = new Map((this.lastMsis.get(key) ?? []).map((msi) => [msi.id.toLowerCase(), msi]));
      for (const msi of part.identities) byId.set(msi.id.toLowerCase(), msi);
      next.set(key, [...byId.values()]);
    }
    this.lastMsis = next;
    return [...next.values()].flat();
  }

  private buildListingState(listings: SubscriptionListing[], msis: Msi[]): ListingState {
    const desired = desiredState(msis, this.options.desiredOptions(this.now()));
    for (const skipped of desired.skipped) {
      this.deps.metrics.msiSkipped.inc({ subscription: skipped.subscriptionId.toLowerCase() });
      this.deps.log.warn({ msi: skipped.msiId, reason: skipped.reason }, "MSI skipped");
      for (const namespace of skipped.namespaces) {
        const object = this.deps.namespaces.get(undefined, namespace);
        if (namespaceIsLive(object))
          this.deps.report?.({
            kind: "msiSkipped",
            namespace: { namespace, name: namespace, uid: object?.metadata?.uid },
            msiId: skipped.msiId,
            reason: skipped.reason,
          });
      }
    }
    const gate = pruneGate(listings, msis, this.options.prune, this.deps.identities.size > 0);
    if (gate.skipped === "incomplete")
      this.deps.log.warn({ failed: listings.filter((p) => !p.complete).map((p) => p.subscriptionId) }, "Azure listing incomplete: prune skipped this sync");
    if (gate.skipped === "empty")
      this.deps.log.warn("Azure listing is empty while the cluster holds operator-owned identities: prune skipped (refusing to delete everything)");
    const completeSubscriptions = new Set(listings.filter((part) => part.complete).map((part) => part.subscriptionId.toLowerCase()));
    return {
      desired,
      pruneAllowed: gate.pruneAllowed,
      listedSubscriptions: gate.listedSubscriptions,
      complete: gate.complete && msis.length > 0,
      completeMsis: msis.filter((msi) => completeSubscriptions.has(msi.subscriptionId.toLowerCase())),
      msis,
      subscriptions: listings.map((part) => ({
        subscriptionId: part.subscriptionId.toLowerCase(),
        complete: part.complete,
        ...(part.error ? { error: part.error.message } : {}),
      })),
    };
  }

  /**
   * FICs for the labelled ServiceAccounts, through the FIC controller. After a fresh listing every MSI
   * of a complete subscription is looked at (so a removed tag revokes); otherwise only the wanted ones
   * and those holding ours.
   */
  private ficPass(workload: WorkloadSync, listing: ListingState, fresh: boolean): Promise<FicOutcome> {
    const scan = fresh ? listing.completeMsis.map((msi) => ({ subscriptionId: msi.subscriptionId, resourceGroup: msi.resourceGroup, name: msi.name })) : [];
    return workload.fics.sync({ desired: listing.desired, scan, complete: listing.complete });
  }

  private namespacesToReconcile(listing: ListingState): Set<string> {
    const namespaces = new Set<string>();
    for (const namespace of listing.desired.byNamespace.keys()) {
      if (namespaceIsLive(this.deps.namespaces.get(undefined, namespace))) namespaces.add(namespace);
    }
    for (const identity of this.deps.identities.list()) namespaces.add(identity.metadata?.namespace ?? "");
    if (this.reconcileDeps.bindings) for (const binding of this.reconcileDeps.bindings.list()) namespaces.add(binding.metadata?.namespace ?? "");
    namespaces.delete("");
    return namespaces;
  }

  private async reconcile(namespace: string): Promise<void> {
    const listing = this.listing;
    if (!listing || this.stopped) return;
    const outcome = await reconcileNamespace(namespace, listing, this.reconcileDeps);
    // Writes that failed (each already retried in place) are tried again after the key's backoff,
    // not only at the next full sync (--sync.interval, 1 h by default).
    if (outcome.errors > 0 && this.active) this.queue.retryLater(namespace);
    else if (outcome.errors === 0) this.queue.forget(namespace);
    if (this.accumulator) addOutcome(this.accumulator, outcome);
    else if (outcome.created + outcome.updated + outcome.deleted + outcome.bindingsUpdated + outcome.errors > 0) {
      this.deps.log.info({ namespace, ...outcome }, "namespace reconciled after a cluster event");
    }
  }

  private record(summary: SyncSummary): void {
    const metrics = this.deps.metrics;
    metrics.recordSyncRun(summary.result);
    for (const verb of ["create", "patch", "delete"] as const) metrics.syncWrites.set({ verb }, summary.writes[verb]);
    for (const outcome of ["created", "updated", "unchanged", "deleted", "skipped", "errors"] as const) metrics.syncObjects.set({ outcome }, summary[outcome]);
    const { result, listed, created, updated, unchanged, deleted, skipped, errors, bindingsUpdated, durationMs, listingReused, failedSubscriptions } = summary;
    const fields = {
      result,
      listed,
      created,
      updated,
      unchanged,
      deleted,
      skipped,
      errors,
      bindingsUpdated,
      writes: summary.writes.create + summary.writes.patch + summary.writes.delete,
      durationMs,
      listingReused,
      failedSubscriptions,
      ...(summary.fics ? { fics: summary.fics } : {}),
      ...(summary.violations !== undefined ? { violations: summary.violations } : {}),
    };
    if (result === "success") this.deps.log.info(fields, "sync finished");
    else {
      this.deps.log.warn(fields, "sync finished with errors");
      this.deps.report?.({ kind: "syncFailed", reason: failureReason(summary) });
    }
  }

  private subscribe(): void {
    const enqueue = (namespace: string | undefined) => {
      if (this.active && !this.stopped && this.listing && namespace) this.queue.add(namespace);
    };
    // The identities cache outlives this syncer (every replica keeps it), so each handler is removed on stop.
    this.unsubscribe.push(
      this.deps.namespaces.on("add", (namespace) => enqueue(namespace.metadata?.name)),
      this.deps.identities.on("update", (identity) => enqueue(identity.metadata?.namespace)),
      this.deps.identities.on("delete", (identity) => enqueue(identity.metadata?.namespace)),
    );
    if (this.options.bindingSync && this.deps.bindings) {
      this.unsubscribe.push(
        this.deps.bindings.on("add", (binding) => enqueue(binding.metadata?.namespace)),
        this.deps.bindings.on("update", (binding) => enqueue(binding.metadata?.namespace)),
      );
    }
  }
}

/** Why a finished sync counts as failed, in one line (the log has the details). */
function failureReason(summary: SyncSummary): string {
  const parts: string[] = [];
  if (summary.failedSubscriptions.length > 0) parts.push(`listing failed for subscription(s) ${summary.failedSubscriptions.join(", ")}`);
  if (summary.errors > 0) parts.push(`${summary.errors} Kubernetes write(s) failed`);
  if ((summary.fics?.errors ?? 0) > 0) parts.push(`${summary.fics?.errors} federated identity credential operation(s) failed`);
  return parts.join("; ");
}
