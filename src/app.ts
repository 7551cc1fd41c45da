import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { CertManager } from "../certs/manager.js";
import { FileCertSource, SecretCertSource, type CertSource } from "../certs/sources.js";
import type { FicApi } from "./azure/fic.js";
import type { SubscriptionListing } from "./azure/types.js";
import type { Config } from "./config/config.js";
import { rotationLeadMs } from "./config/values.js";
import { CertDuty } from "./duties/certs.js";
import { informerDuty } from "./duties/informer.js";
import { LeaseDuty } from "./duties/lease.js";
import { OpsDuty } from "./duties/ops.js";
import { lazyDuty } from "./duties/lazy.js";
import { SyncNowDuty } from "./duties/sync-now.js";
import type { SyncerDuty, SyncerDutyDeps } from "./duties/syncer.js";
import { WebhookDuty } from "./duties/webhook.js";
import { leaderLease, ownedIdentities, type CacheOptions } from "./kube/caches.js";
import { kubeClients, whoAmI, type KubeClients } from "./kube/clients.js";
import { EventRecorder, type ObjectRef } from "./kube/events.js";
import { operatorEvent, type OperatorHappening } from "./events/sync-events.js";
import { DEFAULT_CORRELATOR, type CorrelatorOptions } from "./kube/event-correlator.js";
import type { Informer } from "./kube/informer.js";
import type { AzureIdentity } from "./kube/resources.js";
import type { V1Lease } from "@kubernetes/client-node";
import { LeaderElector } from "./leader/elector.js";
import { DutyManager, type LeaderDutyFactory } from "./lifecycle/duty.js";
import type { Metrics } from "./metrics/metrics.js";
import { sleep } from "./retry/backoff.js";
import type { SyncSummary } from "./syncer/syncer.js";
import { NAMESPACE_CLEANUP_USERS, type GuardPolicy } from "./webhook/decide-guard.js";

export interface AppDeps {
  config: Config;
  kubeConfig: KubeConfig;
  metrics: Metrics;
  log: Logger;
  listAzure: (signal?: AbortSignal) => Promise<SubscriptionListing[]>;
  /** Federated identity credentials in Azure, for the workload identity mode. */
  ficApi?: FicApi;
  /** Tests shorten watch timeouts to bound silent-watch recovery. */
  watchTimeoutSeconds?: number;
  /** How often the leader checks certificates; defaults to a tenth of the serving validity, 10 s to 10 min. */
  certCheckIntervalMs?: number;
}

export function correlatorOptionsFrom(config: Config): CorrelatorOptions {
  const { burst, perMinute, refreshMs } = config.events;
  return { ...DEFAULT_CORRELATOR, burst, perSecond: perMinute / 60, refreshMs };
}

/** Who may write the guarded kinds: fixed once the operator's own user is known. */
export function guardPolicyFrom(config: Config, operatorUser: string): GuardPolicy {
  return {
    operatorUser,
    adminUsers: new Set(config.webhook.allowUsers),
    adminGroups: new Set(config.webhook.allowGroups),
    micUsers: new Set(config.webhook.allowMic),
    namespaceTags: config.azureIdentity.namespaceTemplate.tags,
  };
}

/**
 * The whole operator in one process: a list of duties and the order they start and stop in. Every
 * replica runs the ops server, the webhook and the cache of operator-owned identities; the Lease
 * holder also runs the syncer and the certificate duties. Built from the one Config, with no module
 * state, so tests can run several in one process.
 */
export class App {
  private readonly clients: KubeClients;
  private readonly identities: Informer<AzureIdentity>;
  private readonly cacheOptions: CacheOptions;
  private readonly ops: OpsDuty;
  private readonly webhook: WebhookDuty | undefined;
  private readonly manager: DutyManager;
  private readonly events: EventRecorder;
  /** This replica's pod (with --instance.pod), where it tells what happens to it. */
  private readonly pod: ObjectRef | undefined;
  private lease: LeaseDuty | undefined;
  /** The leader Lease, cached on every replica with --lease.enable (handover nudges, sync now requests). */
  private readonly leaseCache: Informer<V1Lease> | undefined;
  private elector: LeaderElector | undefined;
  private operatorUser = "";
  private leading = false;
  private shuttingDown = false;
  readonly identity: string;

  constructor(private readonly deps: AppDeps) {
    const { config } = deps;
    this.clients = kubeClients(deps.kubeConfig);
    this.cacheOptions = deps.watchTimeoutSeconds ? { watchTimeoutSeconds: deps.watchTimeoutSeconds } : {};
    this.identities = ownedIdentities(this.clients, deps.log, deps.metrics, this.cacheOptions);
    this.identity = config.instance.pod ?? `${hostname()}-${randomBytes(3).toString("hex")}`;
    this.events = new EventRecorder(deps.kubeConfig, this.identity, deps.log, deps.metrics, correlatorOptionsFrom(config));
    const { pod, podUid, namespace } = config.instance;
    this.pod = pod ? { apiVersion: "v1", kind: "Pod", namespace, name: pod, ...(podUid ? { uid: podUid } : {}) } : undefined;
    this.ops = new OpsDuty(config, deps.metrics, () => this.notReady());
    const serveWebhooks = config.webhook.enable && config.command === "run";
    const certSource = serveWebhooks ? this.certSource() : undefined;
    this.webhook = certSource
      ? new WebhookDuty(config, certSource, this.identities, () => guardPolicyFrom(config, this.operatorUser), deps.metrics, deps.log)
      : undefined;
    const certManager = serveWebhooks && !config.webhook.tls.files ? this.certManager() : undefined;
    const leaderDuties: LeaderDutyFactory[] = [];
    if (certManager) leaderDuties.push(() => new CertDuty(certManager, this.certCheckIntervalMs(), deps.metrics, deps.log));
    let termSyncer: SyncerDuty | undefined;
    // Imported on gaining the Lease: the syncer and the Azure SDK it lists with are a leader's alone.
    leaderDuties.push(() => lazyDuty("syncer", async () => (termSyncer = new (await import("./duties/syncer.js")).SyncerDuty(this.syncerDeps()))));
    if (config.lease.enable) {
      this.leaseCache = leaderLease(this.clients, config.instance.namespace, config.lease.name, deps.log, deps.metrics, this.cacheOptions);
      const lease = this.leaseCache;
      leaderDuties.push(() => this.syncNowDuty(lease, () => termSyncer?.fullSyncFresh() ?? Promise.reject(new Error("the syncer has not started"))));
    }
    this.manager = new DutyManager(leaderDuties, deps.log);
  }

  get webhookPort(): number | undefined {
    return this.webhook?.port;
  }

  get opsPort(): number | undefined {
    return this.ops.port;
  }

  /** Handlers on the every-replica identities cache: flat across terms as leader, or something leaks. */
  get identityCacheHandlers(): number {
    return this.identities.handlerCount;
  }

  /** Why this replica should not get admission traffic yet, or undefined when it should. */
  notReady(): string | undefined {
    if (this.shuttingDown) return "shutting down";
    if (!this.identities.synced) return "AzureIdentity cache not synced";
    if (this.webhook && !this.webhook.loaded) return "webhook certificate not loaded";
    return undefined;
  }

  canWrite(): boolean {
    return !this.shuttingDown && this.leading && (this.elector ? this.elector.isLeader() : true);
  }

  /** `azure-msi-operator sync --once`: one full sync against KUBECONFIG, no webhook, no Lease. */
  async syncOnce(): Promise<SyncSummary> {
    this.operatorUser = await whoAmI(this.clients.authentication);
    this.deps.log.info({ user: this.operatorUser }, "one-shot sync");
    const identities = informerDuty("AzureIdentity cache", this.identities);
    const { SyncerDuty } = await import("./duties/syncer.js");
    const syncer = new SyncerDuty(this.syncerDeps(), false);
    const abort = new AbortController();
    try {
      await identities.start(abort.signal);
      this.leading = true;
      await syncer.start(abort.signal);
      return await syncer.fullSync();
    } finally {
      await syncer.stop();
      await identities.stop();
      // The sync's Events are written before the process exits.
      await this.events.close();
    }
  }

  /** `azure-msi-operator diff`: what a sync would write, printed; kubectl diff's exit code. Lists only. */
  async diff(write: (text: string) => void): Promise<number> {
    const { config, listAzure, log } = this.deps;
    // Imported only by the command: it brings the syncer's planning, which a serving replica loads on gaining the Lease.
    const { runDiff } = await import("./commands/diff.js");
    return runDiff({ config, clients: this.clients, listAzure: () => listAzure(), log, write });
  }

  async start(): Promise<void> {
    const { config, log, metrics } = this.deps;
    await this.manager.startDuty(this.ops);
    log.info({ port: this.ops.port }, "ops serving");
    this.events.start();
    this.operatorUser = await whoAmI(this.clients.authentication);
    log.info({ user: this.operatorUser, identity: this.identity, command: config.command }, "starting");
    this.reportSecurityPosture();
    // The webhook before the cache has synced: it may need the leader to create its certificate,
    // and readiness stays false until both are there.
    if (this.webhook) await this.manager.startDuty(this.webhook);
    await this.manager.startDuty(informerDuty("AzureIdentity cache", this.identities));
    log.info({ identities: this.identities.size }, "AzureIdentity cache synced");
    if (!config.lease.enable) {
      metrics.leader.set(1);
      this.leading = true;
      await this.manager.startLeading();
      return;
    }
    this.elector = new LeaderElector(
      this.clients.coordination,
      {
        namespace: config.instance.namespace,
        name: config.lease.name,
        identity: this.identity,
        durationMs: config.lease.durationMs,
        renewDeadlineMs: config.lease.renewDeadlineMs,
        retryPeriodMs: config.lease.retryPeriodMs,
      },
      { onStartedLeading: () => this.onLeadership(true), onStoppedLeading: () => this.onLeadership(false) },
      log,
      metrics,
    );
    this.lease = new LeaseDuty(
      this.elector,
      this.leaseCache ?? leaderLease(this.clients, config.instance.namespace, config.lease.name, log, metrics, this.cacheOptions),
    );
    await this.manager.startDuty(this.lease);
  }

  /** Graceful: not ready at once, admission served for the delay, Lease released, everything closed. */
  async shutdown(delayMs = this.deps.config.shutdown.delayMs): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.deps.log.info({ delayMs }, "shutting down: readiness off, admission still served during the delay");
    this.webhook?.drain();
    await this.manager.stopLeading();
    await this.lease?.stop();
    this.leading = false;
    await sleep(delayMs);
    await this.manager.stop();
    await this.events.close();
    this.deps.log.info("stopped");
  }

  private onLeadership(leading: boolean): void {
    this.leading = leading;
    const lease = `${this.deps.config.instance.namespace}/${this.deps.config.lease.name}`;
    this.tell(leading ? { kind: "leading", lease } : { kind: "stoppedLeading", lease });
    // The manager serialises terms and logs a duty that fails; nothing here waits for it.
    void (leading ? this.manager.startLeading() : this.manager.stopLeading());
  }

  private tell(happening: OperatorHappening): void {
    if (this.pod) this.events.record(operatorEvent(happening, this.pod));
  }

  /** What decides who gets a token here, said once at start-up (and the insecure part as a metric). */
  private reportSecurityPosture(): void {
    const { config, log, metrics } = this.deps;
    metrics.namespacedIdentities.set(config.azureIdentity.namespaced ? 1 : 0);
    if (!config.azureIdentity.namespaced) {
      log.warn(
        { flag: "--azureidentity.namespaced", env: "AZUREIDENTITY_NAMESPACED" },
        "identities are not namespaced: MIC matches a pod of ANY namespace to them when its aadpodidbinding label equals " +
          "the selector of a binding that references them, so one team can use another team's identity; " +
          "set AZUREIDENTITY_NAMESPACED=true (the shipped Deployment does) or run MIC with --forceNamespaced",
      );
    }
    if (!this.webhook) return;
    const admins = [...config.webhook.allowUsers, ...config.webhook.allowGroups.map((group) => `group:${group}`)];
    log.info(
      {
        azureIdentities: [this.operatorUser, ...admins],
        azureAssignedIdentities: [...config.webhook.allowMic, ...admins],
        azurePodIdentityExceptions: admins,
        deleteOnNamespaceCleanup: [...NAMESPACE_CLEANUP_USERS],
      },
      "guard: only these users and groups may write the kinds that decide who gets a token",
    );
  }

  private syncNowDuty(lease: Informer<V1Lease>, syncNow: () => Promise<SyncSummary>): SyncNowDuty {
    const { config, log } = this.deps;
    return new SyncNowDuty({
      lease,
      coordination: this.clients.coordination,
      namespace: config.instance.namespace,
      name: config.lease.name,
      minIntervalMs: config.sync.requestIntervalMs,
      canWrite: () => this.canWrite(),
      syncNow,
      log,
    });
  }

  private syncerDeps(): SyncerDutyDeps {
    const { config, listAzure, metrics, log } = this.deps;
    return {
      config,
      clients: this.clients,
      identities: this.identities,
      listAzure,
      ficApi: this.deps.ficApi,
      canWrite: () => this.canWrite(),
      metrics,
      log,
      cacheOptions: this.cacheOptions,
      events: this.events,
      pod: this.pod,
    };
  }

  private certSource(): CertSource {
    const { config, log } = this.deps;
    const tls = config.webhook.tls;
    return tls.files
      ? new FileCertSource(tls.files.certFile, tls.files.keyFile, log)
      : new SecretCertSource(this.clients.kubeConfig, this.clients.core, config.instance.namespace, tls.secretName, log);
  }

  private certManager(): CertManager {
    const { config, log, metrics } = this.deps;
    const tls = config.webhook.tls;
    const leadMs = rotationLeadMs(tls.rotate, tls.certValidityMs);
    return new CertManager(
      {
        namespace: config.instance.namespace,
        secretName: tls.secretName,
        serviceName: config.webhook.serviceName,
        extraSans: tls.sans,
        validatingWebhookConfiguration: config.webhook.validatingConfigName,
        mutatingWebhookConfiguration: config.webhook.mutatingConfigName,
        policy: {
          caValidityMs: tls.caValidityMs,
          leafValidityMs: tls.certValidityMs,
          rotateRemainingFraction: leadMs / tls.certValidityMs,
          propagationMs: Math.min(60_000, Math.max(2_000, tls.certValidityMs / 100)),
        },
      },
      {
        core: this.clients.core,
        admission: this.clients.admission,
        log,
        canWrite: () => this.canWrite(),
        onRotation: (step, reason) => {
          metrics.certificateRotations.inc();
          this.tell({ kind: "certificateRotated", step, reason });
        },
      },
    );
  }

  private certCheckIntervalMs(): number {
    const validity = this.deps.config.webhook.tls.certValidityMs;
    return this.deps.certCheckIntervalMs ?? Math.min(600_000, Math.max(10_000, validity / 10));
  }
}
