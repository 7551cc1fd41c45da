// The leader's audit after each full sync: reads the term's caches and the listing the sync already
// has (no Azure call of its own; FICs come from the FIC controller's listings), runs the pure
// audit(), and tells what it found: the metric, Warning Events through the process's recorder
// (the correlator turns a repeat into a series count), and PolicyReports where the CRD exists.
import type { V1Namespace, V1ServiceAccount } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { EventSink, ObjectRef } from "../kube/events.js";
import type { Informer } from "../kube/informer.js";
import type { AzureAssignedIdentity, AzureIdentity, AzurePodIdentityException } from "../kube/resources.js";
import type { Metrics } from "../metrics/metrics.js";
import type { AuditListing, SyncAuditor } from "../model/audit.js";
import { audit, clientIdOf, type AuditOptions, type AuditServiceAccount, type ListedFics, type Violation } from "./audit.js";
import type { PolicyReportWriter } from "./policy-report.js";
import { auditEvent, seriesLabels, violationSeries } from "./report.js";

export interface AuditRunnerDeps {
  /** Owned AzureIdentities (every replica's cache). */
  identities: Informer<AzureIdentity>;
  unowned: Informer<AzureIdentity>;
  assigned: Informer<AzureAssignedIdentity>;
  exceptions: Informer<AzurePodIdentityException>;
  namespaces: Informer<V1Namespace>;
  /** Workload identity mode: every ServiceAccount, slimmed to its client-id annotation. */
  serviceAccounts?: Informer<V1ServiceAccount> | undefined;
  /** Workload identity mode: the FICs the FIC controller's listings found. */
  fics?: () => readonly ListedFics[];
  options: AuditOptions;
  metrics: Metrics;
  log: Logger;
  events: EventSink;
  /** This operator's pod: where a violation about no object (a subscription) is told. */
  pod: ObjectRef | undefined;
  /** Absent: no PolicyReports. */
  policyReports?: PolicyReportWriter;
  now?: () => Date;
}

export class AuditRunner implements SyncAuditor {
  /** The metric's series this runner set, so those that went clean are removed. */
  private series = new Set<string>();
  private stopped = false;
  private readonly abort = new AbortController();
  /** The listing of a sync that came before the caches synced: audited once they have. */
  private deferred: AuditListing | undefined;

  constructor(private readonly deps: AuditRunnerDeps) {}

  async run(listing: AuditListing): Promise<number> {
    const { deps } = this;
    if (this.stopped) return 0;
    const caches = [deps.unowned, deps.assigned, deps.exceptions, deps.serviceAccounts].filter((cache) => cache !== undefined);
    if (!caches.every((cache) => cache.synced)) {
      // Old RBAC without list/watch on these kinds must not hold up the sync: the audit runs once they sync.
      deps.metrics.auditRuns.inc({ result: "skipped" });
      deps.log.warn("audit deferred: its caches have not synced yet (RBAC: list and watch on AzureAssignedIdentities, AzurePodIdentityExceptions)");
      const first = this.deferred === undefined;
      this.deferred = listing;
      if (first)
        void Promise.all(caches.map((cache) => cache.waitForSync(this.abort.signal))).then(
          () => this.runDeferred(),
          () => undefined, // stopped first: nothing to audit
        );
      return 0;
    }
    this.deferred = undefined;
    return this.audit(listing);
  }

  private async runDeferred(): Promise<void> {
    const listing = this.deferred;
    if (!listing || this.stopped) return;
    await this.run(listing).catch((error: unknown) => {
      this.deps.metrics.auditRuns.inc({ result: "failed" });
      this.deps.log.error({ err: (error as Error).message }, "audit failed");
    });
  }

  private async audit(listing: AuditListing): Promise<number> {
    const { deps } = this;
    const started = performance.now();
    const violations = audit({
      identities: [...deps.identities.list(), ...deps.unowned.list()],
      assignedIdentities: deps.assigned.list(),
      exceptions: deps.exceptions.list(),
      ...(deps.serviceAccounts ? { serviceAccounts: this.serviceAccounts(deps.serviceAccounts) } : {}),
      ...(deps.fics ? { fics: deps.fics() } : {}),
      listing,
      options: deps.options,
    });
    this.setSeries(violations);
    const namespaceUid = (name: string) => deps.namespaces.get(undefined, name)?.metadata?.uid;
    for (const violation of violations) {
      const event = auditEvent(violation, namespaceUid, deps.pod);
      if (event) deps.events.record(event);
    }
    const checkedMs = Math.round(performance.now() - started);
    const reports = await this.writeReports(violations);
    deps.metrics.auditRuns.inc({ result: "success" });
    const timing = { durationMs: Math.round(performance.now() - started), checkedMs };
    const byKind: Record<string, number> = {};
    for (const violation of violations) byKind[violation.kind] = (byKind[violation.kind] ?? 0) + 1;
    if (violations.length > 0)
      deps.log.warn({ violations: violations.length, byKind, ...timing, ...(reports ? { policyReports: reports } : {}) }, "audit found violations");
    else deps.log.info({ violations: 0, ...timing, ...(reports ? { policyReports: reports } : {}) }, "audit found no violations");
    return violations.length;
  }

  /** The term ended: its series go (a follower exports none), nothing more is told. */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
    for (const key of this.series) this.deps.metrics.auditViolations.remove(seriesLabels(key));
    this.series.clear();
  }

  private serviceAccounts(cache: Informer<V1ServiceAccount>): AuditServiceAccount[] {
    const accounts: AuditServiceAccount[] = [];
    for (const account of cache.list()) {
      const clientId = clientIdOf(account.metadata?.annotations);
      if (clientId) accounts.push({ namespace: account.metadata?.namespace ?? "", name: account.metadata?.name ?? "", uid: account.metadata?.uid, clientId });
    }
    return accounts;
  }

  private setSeries(violations: readonly Violation[]): void {
    const gauge = this.deps.metrics.auditViolations;
    const next = violationSeries(violations, (namespace) => this.deps.namespaces.get(undefined, namespace) !== undefined);
    for (const key of this.series) if (!next.has(key)) gauge.remove(seriesLabels(key));
    for (const [key, count] of next) gauge.set(seriesLabels(key), count);
    this.series = new Set(next.keys());
  }

  private async writeReports(violations: readonly Violation[]) {
    const writer = this.deps.policyReports;
    if (!writer) return undefined;
    const byNamespace = new Map<string, Violation[]>();
    for (const violation of violations) {
      // Only namespaces that exist (a FIC's subject may name one that does not).
      if (violation.namespace === "" || !this.deps.namespaces.get(undefined, violation.namespace)) continue;
      let list = byNamespace.get(violation.namespace);
      if (!list) byNamespace.set(violation.namespace, (list = []));
      list.push(violation);
    }
    try {
      const outcome = await writer.write(byNamespace, (this.deps.now ?? (() => new Date()))());
      return outcome.installed ? outcome : undefined;
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, "PolicyReports not written");
      return undefined;
    }
  }
}
