import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { FileCertSource, SecretCertSource, type CertSource } from "../certs/sources.js";
import type { FicApi } from "./azure/fic.js";
import type { SubscriptionListing } from "./azure/types.js";
import type { Config } from "./config/config.js";
import { certCheckIntervalMs, certDuties, certManagerOptionsFrom } from "./duties/certs.js";
import { informerDuty } from "./duties/informer.js";
import { syncerDuties } from "./duties/leader.js";
import { LeaseDuty } from "./duties/lease.js";
import { OpsDuty } from "./duties/ops.js";
import type { SyncNowDeps } from "./duties/sync-now.js";
import type { SyncerDutyDeps } from "./duties/syncer.js";
import { WebhookDuty } from "./duties/webhook.js";
import { leaderLease, ownedIdentities, type CacheOptions } from "./kube/caches.js";
import { kubeClients, whoAmI, type KubeClients } from "./kube/clients.js";
import { EventRecorder, type ObjectRef } from "./kube/events.js";
import { operatorEvent, type OperatorHappening } from "./events/sync-events.js";
import { correlatorOptionsFrom } from "./kube/event-correlator.js";
import type { Informer } from "./kube/informer.js";
import type { AzureIdentity } from "./kube/resources.js";
import type { V1Lease } from "@kubernetes/client-node";
import { LeaderElector } from "./leader/elector.js";
import { DutyManager, type LeaderDutyFactory } from "./lifecycle/duty.js";
import { openTerm } from "./lifecycle/term.js";
import type { Metrics } from "./metrics/metrics.js";
import { sleep } from "./retry/backoff.js";
import type { SyncSummary } from "./syncer/syncer.js";
import { guardPolicyFrom, NAMESPACE_CLEANUP_USERS } from "./webhook/decide-guard.js";
import { buildInfo } from "./version.js";

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
  /** A server that cannot listen once it has its certificate (the webhook): main exits on it; default: logged. */
  onFatal?: (error: Error) => void;
}

/**
 * The whole operator in one process: a list of duties and the order they start and stop in. Every
 * replica runs the ops server, the webhook and the cache of operator-owned identities; the Lease
 * holder also runs the syncer and the certificate duties, built anew for each term (the Term they
 * get says when they may write). Built from the one Config, with no module state, so tests can run
 * several in one process.
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
  private shuttingDown = false;
  readonly identity: string;

  constructor(private readonly deps: AppDeps) {
    const { config } = deps;
    this.clients = kubeClients(deps.kubeConfig);
    this.cacheOptions = deps.watchTimeoutSeconds ? { watchTimeoutSeconds: deps.watchTimeoutSeconds } : {};
    this.identities = ownedIdentities(this.clients, deps.log, deps.metrics, this.cacheOptions);
    this.identity = config.instance.pod ?? `${hostname()}-${randomBytes(3).toString("hex")}`;
    this.events = new EventRecorder(deps.kubeConfig, this.identity, deps.log, deps.metrics, correlatorOptionsFrom(config.events));
    const { pod, podUid, namespace } = config.instance;
    this.pod = pod ? { apiVersion: "v1", kind: "Pod", namespace, name: pod, ...(podUid ? { uid: podUid } : {}) } : undefined;
    this.ops = new OpsDuty(
      config,
      deps.metrics,
      () => this.notReady(),
      () => this.manager.unhealthy(),
    );
    const serveWebhooks = config.webhook.enable && config.command === "run";
    const certSource = serveWebhooks ? this.certSource() : undefined;
    const guardPolicy = () => guardPolicyFrom(this.operatorUser, config.webhook, config.azureIdentity.namespaceTemplate.tags);
    this.webhook = certSource ? new WebhookDuty(config, certSource, this.identities, guardPolicy, deps.metrics, deps.log, deps.onFatal) : undefined;
    // In order: certificates first (their first pass puts the caBundle in place before the syncer's
    // first writes meet the fail-closed webhooks), then the syncer and its "sync now".
    const leaderDuties: LeaderDutyFactory[] = [];
    if (serveWebhooks && !config.webhook.tls.files) leaderDuties.push(this.certDuties());
    if (config.lease.enable)
      this.leaseCache = leaderLease(this.clients, config.instance.namespace, config.lease.name, deps.log, deps.metrics, this.cacheOptions);
    leaderDuties.push(syncerDuties(this.syncerDeps(), this.leaseCache && this.syncNowDeps(this.leaseCache)));
    // Without a Lease this replica always holds it; with one, the elector judges (renew deadline, holder).
    this.manager = new DutyManager(leaderDuties, deps.log, { holdsLease: () => (this.elector ? this.elector.isLeader() : !config.lease.enable) });
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

  /** `azure-msi-operator sync --once`: one full sync against KUBECONFIG, no webhook, no Lease. */
  async syncOnce(): Promise<SyncSummary> {
    this.operatorUser = await whoAmI(this.clients.authentication);
    this.deps.log.info({ user: this.operatorUser }, "one-shot sync");
    const identities = informerDuty("AzureIdentity cache", this.identities);
    const { SyncerDuty } = await import("./duties/syncer.js");
    // No Lease: the one term lasts as long as the command.
    const { term, end } = openTerm(1, () => true);
    const syncer = new SyncerDuty(this.syncerDeps(), term, false);
    try {
      await identities.start(term.signal);
      await syncer.start(term.signal);
      return await syncer.fullSync();
    } finally {
      end(new Error("sync done"));
      await syncer.stop();
      await identities.stop();
      // The sync's Events are written before the process exits.
      await this.events.close();
    }
  }

  /** `azure-msi-operator diff`: what a sync would write, printed; kubectl diff's exit code. Lists only. */
  async diff(write: (text: string) => void): Promise<number> {
    const { config, listAzure, ficApi, log } = this.deps;
    // Imported only by the command: it brings the syncer's planning, which a serving replica loads on gaining the Lease.
    const { runDiff } = await import("./commands/diff.js");
    return runDiff({ config, clients: this.clients, listAzure: () => listAzure(), ficApi, log, write });
  }

  /** `azure-msi-operator migrate`: the pods still on aad-pod-identity and how to move them, printed. Lists and reads only. */
  async migrate(write: (text: string) => void): Promise<number> {
    const { config, log } = this.deps;
    const { runMigrate } = await import("./commands/migrate.js");
    return runMigrate({ config, clients: this.clients, log, write });
  }

  /** `azure-msi-operator audit`: what violates the tags, printed; 0 clean, 1 violations. Lists only. */
  async audit(write: (text: string) => void): Promise<number> {
    const { config, listAzure, log, ficApi } = this.deps;
    const { runAudit } = await import("./commands/audit.js");
    return runAudit({ config, clients: this.clients, listAzure: () => listAzure(), ficApi, log, write });
  }

  async start(): Promise<void> {
    const { config, log, metrics } = this.deps;
    await this.manager.startDuty(this.ops);
    log.info({ port: this.ops.port }, "ops serving");
    this.events.start();
    this.operatorUser = await whoAmI(this.clients.authentication);
    log.info({ user: this.operatorUser, identity: this.identity, command: config.command, ...buildInfo() }, "starting");
    this.reportSecurityPosture();
    // The webhook before the cache has synced: it may need the leader to create its certificate,
    // and readiness stays false until both are there.
    if (this.webhook) await this.manager.startDuty(this.webhook);
    await this.manager.startDuty(informerDuty("AzureIdentity cache", this.identities));
    log.info({ identities: this.identities.size }, "AzureIdentity cache synced");
    if (!config.lease.enable) {
      metrics.leader.set(1);
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
    // The last term ends at once (nothing of it writes any more) and no later gain starts one,
    // so the Lease is released only once nothing of it runs.
    await this.manager.stopLeading(true);
    await this.lease?.stop();
    await sleep(delayMs);
    await this.manager.stop();
    await this.events.close();
    this.deps.log.info("stopped");
  }

  private onLeadership(leading: boolean): void {
    const lease = `${this.deps.config.instance.namespace}/${this.deps.config.lease.name}`;
    this.tell(leading ? { kind: "leading", lease } : { kind: "stoppedLeading", lease });
    // The manager serialises terms and retries a duty that fails to start; nothing here waits for it.
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

  private syncNowDeps(lease: Informer<V1Lease>): Omit<SyncNowDeps, "term" | "syncNow"> {
    const { config, log } = this.deps;
    return {
      lease,
      coordination: this.clients.coordination,
      namespace: config.instance.namespace,
      name: config.lease.name,
      minIntervalMs: config.sync.requestIntervalMs,
      log,
    };
  }

  private syncerDeps(): SyncerDutyDeps {
    const { config, listAzure, metrics, log } = this.deps;
    return {
      config,
      clients: this.clients,
      identities: this.identities,
      listAzure,
      ficApi: this.deps.ficApi,
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

  private certDuties(): LeaderDutyFactory {
    const { config, log, metrics } = this.deps;
    const deps = {
      core: this.clients.core,
      admission: this.clients.admission,
      log,
      onRotation: (step: string, reason: string | undefined) => {
        metrics.certificateRotations.inc();
        this.tell({ kind: "certificateRotated", step, reason });
      },
    };
    const intervalMs = this.deps.certCheckIntervalMs ?? certCheckIntervalMs(config.webhook.tls.certValidityMs);
    return certDuties(certManagerOptionsFrom(config), deps, intervalMs, metrics);
  }
}
