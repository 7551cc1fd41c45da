import type { Logger } from "pino";
import { CertManager, type CertManagerDeps, type CertManagerOptions } from "../../certs/manager.js";
import { certificateWindow, type CertPolicy } from "../../certs/state.js";
import type { Config } from "../config/config.js";
import { rotationLeadMs } from "../config/values.js";
import type { Duty, LeaderDutyFactory } from "../lifecycle/duty.js";
import type { Metrics } from "../metrics/metrics.js";

type TlsConfig = Config["webhook"]["tls"];

/** How often the leader checks certificates: a tenth of the serving validity, 10 s to 10 min. */
export function certCheckIntervalMs(certValidityMs: number): number {
  return Math.min(600_000, Math.max(10_000, certValidityMs / 10));
}

/**
 * The certificate life cycle's numbers from the flags. A change needs time to reach every API
 * server and replica: a hundredth of the serving validity, 2 s to 1 min.
 */
export function certPolicyFrom(tls: Pick<TlsConfig, "caValidityMs" | "certValidityMs" | "rotate">): CertPolicy {
  return {
    caValidityMs: tls.caValidityMs,
    leafValidityMs: tls.certValidityMs,
    rotateRemainingFraction: rotationLeadMs(tls.rotate, tls.certValidityMs) / tls.certValidityMs,
    propagationMs: Math.min(60_000, Math.max(2_000, tls.certValidityMs / 100)),
  };
}

export function certManagerOptionsFrom(config: Config): CertManagerOptions {
  const { tls } = config.webhook;
  return {
    namespace: config.instance.namespace,
    secretName: tls.secretName,
    serviceName: config.webhook.serviceName,
    extraSans: tls.sans,
    validatingWebhookConfiguration: config.webhook.validatingConfigName,
    mutatingWebhookConfiguration: config.webhook.mutatingConfigName,
    policy: certPolicyFrom(tls),
  };
}

/**
 * The certificate duty of each term: a CertManager that asks that term before every write, so a
 * pass of an old term that is still generating keys never writes in a later one.
 */
export function certDuties(options: CertManagerOptions, deps: Omit<CertManagerDeps, "canWrite">, intervalMs: number, metrics: Metrics): LeaderDutyFactory {
  return (term) => new CertDuty(new CertManager(options, { ...deps, canWrite: term.canWrite }), intervalMs, metrics, deps.log);
}

/** The leader's certificate life cycle: one reconcile pass now, then one every `intervalMs`. */
export class CertDuty implements Duty {
  readonly name = "certificate duties";
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> = Promise.resolve();

  constructor(
    private readonly manager: CertManager,
    private readonly intervalMs: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * Resolves after the first pass, so the duties started after this one (the syncer) find the
   * caBundle in place: on a fresh install their first writes would otherwise meet the fail-closed
   * webhooks before the API server trusts the serving certificate, and the first sync would fail.
   */
  async start(signal: AbortSignal): Promise<void> {
    this.run();
    this.timer = setInterval(() => this.run(), this.intervalMs);
    // Losing the Lease mid-pass must not wait for the pass.
    const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    await Promise.race([this.pass, aborted]);
  }

  private run(): void {
    this.pass = this.manager
      .reconcile()
      .then((state) => {
        if (state) this.metrics.certificateExpiry.set({ certificate: "ca" }, certificateWindow(state.ca.cert).notAfter / 1000);
      })
      .catch((error: unknown) => this.log.error({ err: (error as Error).message }, "certificate reconcile failed"));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.pass;
  }
}
