import type { V1Namespace } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { SubscriptionListing } from "../azure/types.js";
import type { Config } from "../config/config.js";
import type { FicApi } from "../azure/fic.js";
import { auditCaches, lookupBindings, podIdentityPods, workloadServiceAccounts, namespaces, type CacheOptions } from "../kube/caches.js";
import { AuditRunner } from "../audit/runner.js";
import { PolicyReportWriter } from "../audit/policy-report.js";
import { ownedFicPrefix } from "../workload/names.js";
import type { EventSink, ObjectRef } from "../kube/events.js";
import { ficEvent, syncEvent } from "../events/sync-events.js";
import { discoverIssuer } from "../kube/issuer.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import { FicController, type FicHappening, type ServiceAccountView } from "../workload/fic-controller.js";
import { clusterNameFor } from "../workload/names.js";
import { labelledServiceAccount } from "../workload/plan.js";
import { podIdentityCounts } from "../workload/migrate.js";
import type { KubeClients } from "../kube/clients.js";
import type { Informer } from "../kube/informer.js";
import { POD_IDENTITY_LABEL, type AzureIdentity, type AzureIdentityBinding } from "../kube/resources.js";
import type { V1Pod, V1ServiceAccount } from "@kubernetes/client-node";
import type { Duty, Term } from "../lifecycle/duty.js";
import type { Metrics } from "../metrics/metrics.js";
import type { DesiredStateOptions } from "../syncer/desired.js";
import { Syncer, type SyncSummary, type WorkloadSync } from "../syncer/syncer.js";
import { IdentityWriter } from "../syncer/writer.js";

export interface SyncerDutyDeps {
  config: Config;
  clients: KubeClients;
  /** Every replica's cache of operator-owned identities (it outlives this duty). */
  identities: Informer<AzureIdentity>;
  listAzure: (signal: AbortSignal) => Promise<SubscriptionListing[]>;
  /** Federated identity credentials in Azure (workload identity mode). */
  ficApi: FicApi | undefined;
  metrics: Metrics;
  log: Logger;
  cacheOptions: CacheOptions;
  /** The process's one Event recorder. */
  events: EventSink;
  /** This operator's pod, where a failed sync is told (undefined outside a pod). */
  pod: ObjectRef | undefined;
}

export function desiredOptionsFrom(config: Config): (now: Date) => DesiredStateOptions {
  const { azureIdentity, kubernetes } = config;
  return (now) => ({
    namespaceTemplate: azureIdentity.namespaceTemplate,
    resourceNameTemplate: azureIdentity.resourceNameTemplate,
    labelFormat: kubernetes.labelFormat,
    ignoredNamespaces: new Set(kubernetes.namespaceIgnore),
    namespaced: azureIdentity.namespaced,
    workloadIdentity: config.workloadIdentity.enable,
    ...(azureIdentity.expiry.enable
      ? {
          expiry: {
            annotation: azureIdentity.expiry.annotation,
            value: azureIdentity.expiry.timeFormat.format(new Date(now.getTime() + azureIdentity.expiry.durationMs)),
          },
        }
      : {}),
  });
}

/**
 * One term of the leader's sync: the namespace and binding caches it alone needs, and the Syncer
 * reading them. Built anew on every gain of the Lease; every write asks the term, the term's end
 * halts the Syncer, and stop() resolves once nothing of it is in flight.
 */
export class SyncerDuty implements Duty {
  readonly name = "syncer";
  private namespaces: Informer<V1Namespace> | undefined;
  private bindings: Informer<AzureIdentityBinding> | undefined;
  private serviceAccounts: Informer<V1ServiceAccount> | undefined;
  /** Pods with the aadpodidbinding label, for azuremsi_pod_identity_pods (not with `sync --once`: nobody scrapes it). */
  private pods: Informer<V1Pod> | undefined;
  private current: Syncer | undefined;
  private auditCaches: ReturnType<typeof auditCaches> | undefined;
  private auditor: AuditRunner | undefined;
  /** Workload identity mode: the FIC controller, its issuer and cluster name (the audit reads its listings). */
  private ficController: { controller: FicController; issuer: string; cluster: string } | undefined;

  /** `loop` false: built for `sync --once`, the caller runs the one full sync. */
  constructor(
    private readonly deps: SyncerDutyDeps,
    private readonly term: Term,
    private readonly loop = true,
  ) {}

  /** One full sync now (for `sync --once`); only after start() resolved. */
  fullSync(): Promise<SyncSummary> {
    if (!this.current) return Promise.reject(new Error("the syncer has not started"));
    return this.current.fullSync();
  }

  /** One full sync with a fresh Azure listing (a requested "sync now"); only after start() resolved. */
  fullSyncFresh(): Promise<SyncSummary> {
    if (!this.current) return Promise.reject(new Error("the syncer has not started"));
    return this.current.fullSyncFresh();
  }

  async start(signal: AbortSignal): Promise<void> {
    const { config, clients, log, metrics, cacheOptions } = this.deps;
    this.namespaces = namespaces(clients, log, metrics, cacheOptions);
    this.bindings = config.azureIdentity.bindingSync ? lookupBindings(clients, config.kubernetes.labelFormat, log, metrics, cacheOptions) : undefined;
    const workload = await this.workload();
    // Issuer discovery takes a request: the term may have ended meanwhile.
    signal.throwIfAborted();
    const auditor = this.startAudit();
    this.pods = this.loop ? podIdentityPods(clients, log, metrics, cacheOptions) : undefined;
    this.namespaces.start();
    this.bindings?.start();
    this.serviceAccounts?.start();
    // Not waited for: a gauge must not hold up the sync (nor, without its RBAC, stop it). Exported
    // once it has synced, then after each full sync.
    this.pods?.start();
    void this.pods?.waitForSync(signal).then(
      () => this.exportPodIdentity(),
      () => undefined,
    );
    // A one-shot sync (`sync --once`) ends after its one audit, so it waits for the audit's caches too.
    const auditCaches = this.loop ? [] : Object.values(this.auditCaches ?? {});
    await Promise.all([
      this.namespaces.waitForSync(signal),
      this.bindings?.waitForSync(signal),
      this.serviceAccounts?.waitForSync(signal),
      ...auditCaches.map((cache) => cache?.waitForSync(signal)),
    ]);
    this.current = new Syncer(
      {
        intervalMs: config.sync.intervalMs,
        watch: this.loop && config.sync.watch,
        lockTimeMs: config.sync.lockTimeMs,
        prune: config.azureIdentity.prune,
        bindingSync: config.azureIdentity.bindingSync,
        concurrency: config.sync.concurrency,
        labelFormat: config.kubernetes.labelFormat,
        desiredOptions: desiredOptionsFrom(config),
      },
      {
        listAzure: this.deps.listAzure,
        identities: this.deps.identities,
        namespaces: this.namespaces,
        bindings: this.bindings,
        writer: new IdentityWriter(clients.custom, this.term.canWrite, metrics, { signal: this.term.signal }),
        ...(workload ? { workload } : {}),
        ...(auditor ? { audit: auditor } : {}),
        metrics,
        log,
        signal: this.term.signal,
        report: (happening) => {
          const event = syncEvent(happening, this.deps.pod);
          if (event) this.deps.events.record(event);
        },
        synced: () => this.exportPodIdentity(),
      },
    );
    if (this.loop) this.current.start();
  }

  async stop(): Promise<void> {
    const syncer = this.current;
    this.current = undefined;
    await syncer?.stop();
    this.auditor?.stop();
    this.auditor = undefined;
    const audit = this.auditCaches;
    this.auditCaches = undefined;
    for (const cache of [this.namespaces, this.bindings, this.serviceAccounts, this.pods, audit?.unowned, audit?.assigned, audit?.exceptions]) cache?.stop();
    this.namespaces = undefined;
    this.bindings = undefined;
    this.serviceAccounts = undefined;
    this.ficController = undefined;
    // Only the leader counts: a replica whose term ended exports no stale series.
    if (this.pods) this.deps.metrics.recordPodIdentityPods(new Map());
    this.pods = undefined;
  }

  /**
   * The audit's own caches (not waited for: they may lack RBAC on an old install, and the sync must
   * not), and the runner the syncer calls after each full sync.
   */
  private startAudit(): AuditRunner | undefined {
    const { config, clients, log, metrics, cacheOptions, identities, events, pod } = this.deps;
    if (!config.audit.enable || !this.namespaces) return undefined;
    const caches = auditCaches(clients, log, metrics, cacheOptions);
    this.auditCaches = caches;
    for (const cache of [caches.unowned, caches.assigned, caches.exceptions]) cache.start();
    const fic = this.ficController;
    this.auditor = new AuditRunner({
      identities,
      unowned: caches.unowned,
      assigned: caches.assigned,
      exceptions: caches.exceptions,
      namespaces: this.namespaces,
      // Workload identity mode's cache keeps every ServiceAccount that names a client ID: what the audit reads.
      ...(fic && this.serviceAccounts ? { serviceAccounts: this.serviceAccounts } : {}),
      ...(fic ? { fics: () => fic.controller.foreignFederatedCredentials() } : {}),
      options: {
        micForceNamespaced: config.audit.micForceNamespaced,
        micManagers: config.audit.micManagers,
        ...(fic ? { workload: { issuer: fic.issuer, ownedFicPrefix: ownedFicPrefix(fic.cluster) } } : {}),
      },
      metrics,
      log,
      events,
      pod,
      policyReports: new PolicyReportWriter(clients.custom, this.term.canWrite, log),
    });
    return this.auditor;
  }

  /** azuremsi_pod_identity_pods from the pod cache, once it holds the whole list. */
  private exportPodIdentity(): void {
    if (!this.pods?.synced) return;
    const pods = this.pods.list().map((pod) => ({
      namespace: pod.metadata?.namespace ?? "",
      selector: pod.metadata?.labels?.[POD_IDENTITY_LABEL] ?? "",
      phase: pod.status?.phase,
    }));
    this.deps.metrics.recordPodIdentityPods(podIdentityCounts(pods));
  }

  /**
   * With --workloadidentity.enable: the issuer (flag or discovery), this cluster's name, the
   * ServiceAccount cache and the FIC controller it feeds. The controller's Azure writes are gated by
   * the same canWrite() as the Kubernetes writes, and end with the term's signal.
   */
  private async workload(): Promise<WorkloadSync | undefined> {
    const { config, clients, log, metrics, cacheOptions, ficApi } = this.deps;
    const keys = lookupLabelKeys(config.kubernetes.labelFormat);
    if (!config.workloadIdentity.enable || !ficApi || !keys) return undefined;
    const issuer = config.workloadIdentity.issuer ?? (await discoverIssuer(clients));
    const cluster = config.workloadIdentity.cluster ?? clusterNameFor(issuer);
    this.serviceAccounts = workloadServiceAccounts(clients, config.kubernetes.labelFormat, log, metrics, cacheOptions);
    if (!this.serviceAccounts) return undefined;
    log.info({ issuer, cluster }, "workload identity mode: keeping federated identity credentials for labelled ServiceAccounts");
    const accounts = this.serviceAccounts;
    const namespaces = this.namespaces;
    const report = (happening: FicHappening) =>
      this.deps.events.record(
        ficEvent(
          happening,
          happening.kind === "overShare"
            ? namespaces?.get(undefined, happening.share.namespace)?.metadata?.uid
            : accounts.get(happening.fic.namespace, happening.fic.serviceAccount)?.metadata?.uid,
        ),
      );
    const view = (account: V1ServiceAccount): ServiceAccountView => labelledServiceAccount(account);
    const fics = new FicController({
      api: ficApi,
      context: {
        issuer,
        cluster,
        lookupKeys: keys,
        concurrency: config.sync.concurrency,
        namespaceCap: config.workloadIdentity.ficNamespaceCap,
        previousClusters: config.workloadIdentity.previousClusters,
      },
      serviceAccounts: () => accounts.list().map(view),
      canWrite: this.term.canWrite,
      signal: this.term.signal,
      metrics,
      log,
      report,
      unmatched: (account, lookup) => {
        const event = syncEvent(
          { kind: "serviceAccountUnmatched", serviceAccount: { namespace: account.namespace, name: account.name, uid: account.uid }, lookup },
          this.deps.pod,
        );
        if (event) this.deps.events.record(event);
      },
    });
    // A deleted or relabelled ServiceAccount revokes its FIC at once, --sync.watch or not. The cache
    // is this term's (stopped with it), so the handlers go with it.
    accounts.on("add", (account) => fics.serviceAccountChanged(undefined, view(account)));
    accounts.on("update", (account, old) => fics.serviceAccountChanged(old ? view(old) : undefined, view(account)));
    accounts.on("delete", (account) => fics.serviceAccountChanged(view(account), undefined));
    this.ficController = { controller: fics, issuer, cluster };
    return { fics };
  }
}
