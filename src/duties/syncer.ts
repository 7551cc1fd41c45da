import type { V1Namespace } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { SubscriptionListing } from "../azure/types.js";
import type { Config } from "../config/config.js";
import { lookupBindings, namespaces, type CacheOptions } from "../kube/caches.js";
import type { KubeClients } from "../kube/clients.js";
import type { Informer } from "../kube/informer.js";
import type { AzureIdentity, AzureIdentityBinding } from "../kube/resources.js";
import type { Duty } from "../lifecycle/duty.js";
import type { Metrics } from "../metrics/metrics.js";
import type { DesiredStateOptions } from "../syncer/desired.js";
import { Syncer, type SyncSummary } from "../syncer/syncer.js";
import { IdentityWriter } from "../syncer/writer.js";

export interface SyncerDutyDeps {
  config: Config;
  clients: KubeClients;
  /** Every replica's cache of operator-owned identities (it outlives this duty). */
  identities: Informer<AzureIdentity>;
  listAzure: (signal: AbortSignal) => Promise<SubscriptionListing[]>;
  canWrite: () => boolean;
  metrics: Metrics;
  log: Logger;
  cacheOptions: CacheOptions;
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
 * reading them. Built anew on every gain of the Lease; stop() leaves nothing behind.
 */
export class SyncerDuty implements Duty {
  readonly name = "syncer";
  private namespaces: Informer<V1Namespace> | undefined;
  private bindings: Informer<AzureIdentityBinding> | undefined;
  private current: Syncer | undefined;

  /** `loop` false: built for `sync --once`, the caller runs the one full sync. */
  constructor(
    private readonly deps: SyncerDutyDeps,
    private readonly loop = true,
  ) {}

  /** One full sync now (for `sync --once`); only after start() resolved. */
  fullSync(): Promise<SyncSummary> {
    if (!this.current) return Promise.reject(new Error("the syncer has not started"));
    return this.current.fullSync();
  }

  async start(signal: AbortSignal): Promise<void> {
    const { config, clients, log, metrics, cacheOptions } = this.deps;
    this.namespaces = namespaces(clients, log, metrics, cacheOptions);
    this.bindings = config.azureIdentity.bindingSync ? lookupBindings(clients, config.kubernetes.labelFormat, log, metrics, cacheOptions) : undefined;
    this.namespaces.start();
    this.bindings?.start();
    await Promise.all([this.namespaces.waitForSync(signal), this.bindings?.waitForSync(signal)]);
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
        writer: new IdentityWriter(clients.custom, this.deps.canWrite, metrics),
        metrics,
        log,
      },
    );
    if (this.loop) this.current.start();
  }

  async stop(): Promise<void> {
    this.current?.stop();
    this.current = undefined;
    this.namespaces?.stop();
    this.bindings?.stop();
    this.namespaces = undefined;
    this.bindings = undefined;
  }
}
