import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { V1Lease, V1Namespace } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { CertManager, serviceNames } from "../certs/manager.js";
import { FileCertSource, SecretCertSource, type CertSource } from "../certs/sources.js";
import { certificateWindow } from "../certs/state.js";
import type { Config } from "./config/config.js";
import { rotationLeadMs } from "./config/values.js";
import { leaderLease, lookupBindings, namespaces, ownedIdentities } from "./kube/caches.js";
import { kubeClients, whoAmI, type KubeClients } from "./kube/clients.js";
import type { Informer } from "./kube/informer.js";
import { lookupLabelKeys } from "./kube/lookup.js";
import type { AzureIdentity, AzureIdentityBinding } from "./kube/resources.js";
import { LeaderElector } from "./leader/elector.js";
import type { Metrics } from "./metrics/metrics.js";
import { startOpsServer } from "./ops/server.js";
import type { DesiredStateOptions } from "./syncer/desired.js";
import { Syncer, type SubscriptionListing, type SyncSummary } from "./syncer/syncer.js";
import { IdentityWriter } from "./syncer/writer.js";
import { NAMESPACE_CLEANUP_USERS, type GuardPolicy } from "./webhook/decide-guard.js";
import { startWebhookServer, type WebhookServer } from "./webhook/server.js";
import type { KubeConfig } from "@kubernetes/client-node";

export interface AppDeps {
  config: Config;
  kubeConfig: KubeConfig;
  metrics: Metrics;
  log: Logger;
  listAzure: () => Promise<SubscriptionListing[]>;
  /** Tests shorten watch timeouts to bound silent-watch recovery. */
  watchTimeoutSeconds?: number;
  /** How often the leader checks certificates; defaults to a tenth of the serving validity, 10 s to 10 min. */
  certCheckIntervalMs?: number;
}

/** Go's ":8080" means every interface; "::" is that for IPv6 and (dual-stack) IPv4 alike. */
function listenHost(host: string | undefined): string {
  return host ?? "::";
}

export function desiredOptionsFrom(config: Config): (now: Date) => DesiredStateOptions {
  const { azureIdentity, kubernetes } = config;
  return (now) => ({
    namespaceTemplate: azureIdentity.namespaceTemplate,
    resourceNameTemplate: azureIdentity.resourceNameTemplate,
    labelFormat: kubernetes.labelFormat,
    ignoredNamespaces: new Set(kubernetes.namespaceIgnore),
    namespaced: azureIdentity.namespaced,
    ...(azureIdentity.expiry.enable
      ? { expiry: { annotation: azureIdentity.expiry.annotation, value: azureIdentity.expiry.timeFormat.format(new Date(now.getTime() + azureIdentity.expiry.durationMs)) } }
      : {}),
  });
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
 * The whole operator in one process: caches and webhook on every replica, the syncer and the
 * certificate duties only on the Lease holder. Built from the one Config, with no module state, so
 * tests can run several in one process.
 */
export class App {
  private readonly clients: KubeClients;
  private readonly identities: Informer<AzureIdentity>;
  private namespacesCache: Informer<V1Namespace> | undefined;
  private bindingsCache: Informer<AzureIdentityBinding> | undefined;
  private syncer: Syncer | undefined;
  private elector: LeaderElector | undefined;
  private leaseCache: Informer<V1Lease> | undefined;
  private leading = false;
  private certSource: CertSource | undefined;
  private certManager: CertManager | undefined;
  private certTimer: NodeJS.Timeout | undefined;
  private webhook: WebhookServer | undefined;
  private ops: { port: number; close: () => Promise<void> } | undefined;
  private operatorUser = "";
  private shuttingDown = false;
  readonly identity: string;

  constructor(private readonly deps: AppDeps) {
    this.clients = kubeClients(deps.kubeConfig);
    this.identities = ownedIdentities(this.clients, deps.log, deps.metrics, { watchTimeoutSeconds: deps.watchTimeoutSeconds });
    this.identity = deps.config.instance.pod ?? `${hostname()}-${randomBytes(3).toString("hex")}`;
  }

  get webhookPort(): number | undefined {
    return this.webhook?.port;
  }

  get opsPort(): number | undefined {
    return this.ops?.port;
  }

  /** Why this replica should not get admission traffic yet, or undefined when it should. */
  notReady(): string | undefined {
    if (this.shuttingDown) return "shutting down";
    if (!this.identities.synced) return "AzureIdentity cache not synced";
    if (this.deps.config.webhook.enable && !this.webhook) return "webhook certificate not loaded";
    return undefined;
  }

  canWrite(): boolean {
    return !this.shuttingDown && this.leading && (this.elector ? this.elector.isLeader() : true);
  }

  /** `azure-msi-operator sync --once`: one full sync against KUBECONFIG, no webhook, no Lease. */
  async syncOnce(): Promise<SyncSummary> {
    this.operatorUser = await whoAmI(this.clients.authentication);
    this.deps.log.info({ user: this.operatorUser }, "one-shot sync");
    this.identities.start();
    await this.identities.waitForSync();
    this.leading = true;
    const syncer = await this.startSyncer(false);
    try {
      return await syncer.fullSync();
    } finally {
      this.stopSyncer();
      this.identities.stop();
    }
  }

  async start(): Promise<void> {
    const { config, log, metrics } = this.deps;
    this.ops = await startOpsServer({
      host: listenHost(config.server.bind.host),
      port: config.server.bind.port,
      readTimeoutMs: config.server.readTimeoutMs,
      writeTimeoutMs: config.server.writeTimeoutMs,
      metrics,
      notReady: () => this.notReady(),
    });
    this.operatorUser = await whoAmI(this.clients.authentication);
    log.info({ user: this.operatorUser, identity: this.identity, command: config.command }, "starting");
    this.reportSecurityPosture();
    this.identities.start();
    if (config.webhook.enable && config.command === "run") await this.startWebhook();
    await this.identities.waitForSync();
    log.info({ identities: this.identities.size }, "AzureIdentity cache synced");
    if (config.lease.enable) {
      this.elector = new LeaderElector(
        this.clients.coordination,
        { namespace: config.instance.namespace, name: config.lease.name, identity: this.identity, durationMs: config.lease.durationMs, renewDeadlineMs: config.lease.renewDeadlineMs, retryPeriodMs: config.lease.retryPeriodMs },
        { onStartedLeading: () => void this.onLeadership(true), onStoppedLeading: () => void this.onLeadership(false) },
        log,
        metrics,
      );
      const elector = this.elector;
      this.leaseCache = leaderLease(this.clients, config.instance.namespace, config.lease.name, log, metrics, { watchTimeoutSeconds: this.deps.watchTimeoutSeconds });
      const released = (lease: V1Lease) => (lease.spec?.holderIdentity ?? "") === "" && elector.nudge();
      this.leaseCache.on("add", released);
      this.leaseCache.on("update", released);
      this.leaseCache.on("delete", () => elector.nudge());
      this.leaseCache.start();
      elector.start();
    } else {
      metrics.leader.set(1);
      await this.onLeadership(true);
    }
  }

  /** What decides who gets a token here, said once at start-up (and the insecure part as a metric). */
  private reportSecurityPosture(): void {
    const { config, log, metrics } = this.deps;
    metrics.namespacedIdentities.set(config.azureIdentity.namespaced ? 1 : 0);
    if (!config.azureIdentity.namespaced) {
      log.warn(
        { flag: "--azureidentity.namespaced", env: "AZUREIDENTITY_NAMESPACED" },
        "identities are not namespaced: MIC matches a pod of ANY namespace to them when its aadpodidbinding label equals the selector of a binding that references them, so one team can use another team's identity; set AZUREIDENTITY_NAMESPACED=true (the shipped Deployment does) or run MIC with --forceNamespaced",
      );
    }
    if (config.webhook.enable && config.command === "run") {
      log.info(
        {
          azureIdentities: [this.operatorUser, ...config.webhook.allowUsers, ...config.webhook.allowGroups.map((group) => `group:${group}`)],
          azureAssignedIdentities: [...config.webhook.allowMic, ...config.webhook.allowUsers, ...config.webhook.allowGroups.map((group) => `group:${group}`)],
          azurePodIdentityExceptions: [...config.webhook.allowUsers, ...config.webhook.allowGroups.map((group) => `group:${group}`)],
          deleteOnNamespaceCleanup: [...NAMESPACE_CLEANUP_USERS],
        },
        "guard: only these users and groups may write the kinds that decide who gets a token",
      );
    }
  }

  private async onLeadership(leading: boolean): Promise<void> {
    this.leading = leading;
    if (leading) {
      this.startCertDuties();
      await this.startSyncer(this.deps.config.sync.watch);
    } else {
      clearInterval(this.certTimer);
      this.stopSyncer();
    }
  }

  private async startSyncer(watch: boolean): Promise<Syncer> {
    const { config, log, metrics } = this.deps;
    this.namespacesCache = namespaces(this.clients, log, metrics, { watchTimeoutSeconds: this.deps.watchTimeoutSeconds });
    this.bindingsCache = config.azureIdentity.bindingSync ? lookupBindings(this.clients, config.kubernetes.labelFormat, log, metrics, { watchTimeoutSeconds: this.deps.watchTimeoutSeconds }) : undefined;
    this.namespacesCache.start();
    this.bindingsCache?.start();
    await Promise.all([this.namespacesCache.waitForSync(), this.bindingsCache?.waitForSync()]);
    const syncer = new Syncer(
      {
        intervalMs: config.sync.intervalMs,
        watch,
        lockTimeMs: config.sync.lockTimeMs,
        prune: config.azureIdentity.prune,
        bindingSync: config.azureIdentity.bindingSync,
        concurrency: config.sync.concurrency,
        labelFormat: config.kubernetes.labelFormat,
        desiredOptions: desiredOptionsFrom(config),
      },
      {
        listAzure: this.deps.listAzure,
        identities: this.identities,
        namespaces: this.namespacesCache,
        bindings: this.bindingsCache,
        writer: new IdentityWriter(this.clients.custom, () => this.canWrite(), metrics),
        metrics,
        log,
      },
    );
    this.syncer = syncer;
    if (!this.shuttingDown && !(config.command === "sync" && config.once)) syncer.start();
    return syncer;
  }

  private stopSyncer(): void {
    this.syncer?.stop();
    this.syncer = undefined;
    this.namespacesCache?.stop();
    this.bindingsCache?.stop();
  }

  private async startWebhook(): Promise<void> {
    const { config, log, metrics } = this.deps;
    const tls = config.webhook.tls;
    this.certSource = tls.files
      ? new FileCertSource(tls.files.certFile, tls.files.keyFile, log)
      : new SecretCertSource(this.clients.kubeConfig, this.clients.core, config.instance.namespace, tls.secretName, log);
    if (!tls.files) {
      const leadMs = rotationLeadMs(tls.rotate, tls.certValidityMs);
      this.certManager = new CertManager(
        {
          namespace: config.instance.namespace,
          secretName: tls.secretName,
          serviceName: config.webhook.serviceName,
          extraSans: tls.sans,
          validatingWebhookConfiguration: config.webhook.validatingConfigName,
          mutatingWebhookConfiguration: config.webhook.mutatingConfigName,
          policy: { caValidityMs: tls.caValidityMs, leafValidityMs: tls.certValidityMs, rotateRemainingFraction: leadMs / tls.certValidityMs, propagationMs: Math.min(60_000, Math.max(2_000, tls.certValidityMs / 100)) },
        },
        { core: this.clients.core, admission: this.clients.admission, log, canWrite: () => this.canWrite(), onRotation: () => metrics.certificateRotations.inc() },
      );
    }
    this.certSource.onChange((pem) => {
      metrics.certificateExpiry.set({ certificate: "serving" }, certificateWindow(pem.cert).notAfter / 1000);
      this.webhook?.updateTls(pem);
    });
    const keys = lookupLabelKeys(config.kubernetes.labelFormat);
    const guard = guardPolicyFrom(config, this.operatorUser);
    const startServer = async () => {
      const pem = await this.certSource!.ready();
      this.webhook = await startWebhookServer({
        host: listenHost(config.webhook.bind.host),
        port: config.webhook.bind.port,
        tls: pem,
        guardPolicy: guard,
        bindingPolicy: { lookupKeys: keys, strict: config.webhook.bindingStrict, identitiesIn: (namespace) => this.identities.list(namespace) },
        metrics,
        log,
      });
      log.info({ port: this.webhook.port, sans: serviceNames(config.webhook.serviceName, config.instance.namespace).concat(tls.sans) }, "webhook serving");
    };
    // Without a certificate yet (a fresh cluster) the leader creates one; serving starts once it exists.
    void startServer().catch((error: unknown) => log.error({ err: (error as Error).message }, "webhook server failed to start"));
  }

  private startCertDuties(): void {
    if (!this.certManager) return;
    const validity = this.deps.config.webhook.tls.certValidityMs;
    const interval = this.deps.certCheckIntervalMs ?? Math.min(600_000, Math.max(10_000, validity / 10));
    const run = () =>
      void this.certManager!.reconcile()
        .then((state) => {
          if (state) this.deps.metrics.certificateExpiry.set({ certificate: "ca" }, certificateWindow(state.ca.cert).notAfter / 1000);
        })
        .catch((error: unknown) => this.deps.log.error({ err: (error as Error).message }, "certificate reconcile failed"));
    run();
    clearInterval(this.certTimer);
    this.certTimer = setInterval(run, interval);
  }

  /** Graceful: not ready at once, admission served for the delay, Lease released, everything closed. */
  async shutdown(delayMs = this.deps.config.shutdown.delayMs): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.deps.log.info({ delayMs }, "shutting down: readiness off, admission still served during the delay");
    this.webhook?.drain();
    clearInterval(this.certTimer);
    this.stopSyncer();
    this.leaseCache?.stop();
    await this.elector?.stop(true);
    this.leading = false;
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    await this.webhook?.close();
    this.certSource?.stop();
    this.identities.stop();
    await this.ops?.close();
    this.deps.log.info("stopped");
  }
}
