import type { Logger } from "pino";
import type { CertManager } from "../../certs/manager.js";
import { certificateWindow } from "../../certs/state.js";
import type { Duty } from "../lifecycle/duty.js";
import type { Metrics } from "../metrics/metrics.js";

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
