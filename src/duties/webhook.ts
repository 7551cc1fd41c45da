import type { Logger } from "pino";
import { serviceNames } from "../../certs/manager.js";
import { CertSourceStoppedError, type CertSource } from "../../certs/sources.js";
import { certificateWindow } from "../../certs/state.js";
import type { Config } from "../config/config.js";
import type { Informer } from "../kube/informer.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { AzureIdentity } from "../kube/resources.js";
import type { Duty } from "../lifecycle/duty.js";
import type { Metrics } from "../metrics/metrics.js";
import type { GuardPolicy } from "../webhook/decide-guard.js";
import { startWebhookServer, type WebhookServer } from "../webhook/server.js";
import { ListenError, listenHost } from "./listen.js";

/**
 * The admission HTTPS server on every replica. It serves once the certificate exists, which on a
 * fresh cluster only the leader creates, so start() does not wait for it: waiting would keep this
 * replica from ever campaigning for the Lease. So a failure to listen comes later, and goes to
 * `onFatal`: the process exits on it (a replica that cannot serve admission must be restarted, not
 * left NotReady with a green /healthz).
 */
export class WebhookDuty implements Duty {
  readonly name = "webhook server";
  private server: WebhookServer | undefined;
  private serving: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly config: Config,
    private readonly certSource: CertSource,
    private readonly identities: Informer<AzureIdentity>,
    private readonly guard: () => GuardPolicy,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly onFatal: (error: Error) => void = (error) => log.error({ err: error.message }, "webhook server failed to start"),
  ) {}

  get port(): number | undefined {
    return this.server?.port;
  }

  /** True once the server is listening with a certificate. */
  get loaded(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<void> {
    this.certSource.onChange((pem) => {
      this.metrics.certificateExpiry.set({ certificate: "serving" }, certificateWindow(pem.cert).notAfter / 1000);
      this.server?.updateTls(pem);
    });
    this.certSource.start();
    this.serving = this.serve().catch((error: unknown) => {
      // Stopped before a certificate loaded: nothing failed.
      if (error instanceof CertSourceStoppedError && this.stopped) return;
      this.onFatal(error as Error);
    });
  }

  private async serve(): Promise<void> {
    const { config } = this;
    const pem = await this.certSource.ready();
    if (this.stopped) return;
    const lookupKeys = lookupLabelKeys(config.kubernetes.labelFormat);
    const identitiesIn = (namespace: string) => this.identities.list(namespace);
    const guardPolicy = this.guard();
    const host = listenHost(config.webhook.bind.host);
    const server = await startWebhookServer({
      host,
      port: config.webhook.bind.port,
      tls: pem,
      guardPolicy,
      bindingPolicy: { lookupKeys, strict: config.webhook.bindingStrict, identitiesIn, namespaceTags: guardPolicy.namespaceTags },
      serviceAccountPolicy: {
        enable: config.workloadIdentity.enable,
        strict: config.workloadIdentity.strict,
        lookupKeys,
        identitiesIn,
        allIdentities: () => this.identities.list(),
        namespaceTags: guardPolicy.namespaceTags,
      },
      metrics: this.metrics,
      log: this.log,
      enforcement: config.webhook.enforcement,
      inflightBytes: config.webhook.inflightBytes,
      maxConnections: config.webhook.maxConnections,
    }).catch((error: unknown) => {
      throw new ListenError("webhook server (--webhook.bind)", host, config.webhook.bind.port, error);
    });
    // Stopped while it was starting to listen: close it here, stop() found nothing to close.
    if (this.stopped) {
      await server.close();
      return;
    }
    this.server = server;
    this.log.info(
      { port: this.server.port, sans: serviceNames(config.webhook.serviceName, config.instance.namespace).concat(config.webhook.tls.sans) },
      "webhook serving",
    );
  }

  /** Shutdown has begun: answers go on, each with Connection: close, so clients move elsewhere. */
  drain(): void {
    this.server?.drain();
  }

  /** Resolves also when no certificate ever loaded: stopping the source releases the wait for one. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.certSource.stop();
    await this.serving;
    const server = this.server;
    this.server = undefined;
    await server?.close();
  }
}
