import { V1MicroTime, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { kubeErrorMessage, statusCode } from "../kube/errors.js";
import type { Metrics } from "../metrics/metrics.js";

export interface LeaseOptions {
  namespace: string;
  name: string;
  /** Holder identity: the pod name, else hostname plus a random suffix. */
  identity: string;
  durationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface LeadershipCallbacks {
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
 * optimistic concurrency on resourceVersion, expiry judged by our own clock from when we last saw
 * the record change (so clock skew between nodes does not matter), and `isLeader()` turns false the
 * moment the renew deadline passes, before the loop even notices, so no write happens after it.
 */
export class LeaderElector {
  private leading = false;
  private lastRenewAt = 0;
  private observedRecord = "";
  private observedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private ticking = false;
  private nudged = false;
  private cycle: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: CoordinationV1Api,
    private readonly options: LeaseOptions,
    private readonly callbacks: LeadershipCallbacks,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {}

  /** True only while a renewal succeeded within the renew deadline. */
  isLeader(): boolean {
    return this.leading && this.now() - this.lastRenewAt < this.options.renewDeadlineMs;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops campaigning; when leading, gives the Lease up so another replica takes over at once. */
  async stop(release = true): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.cycle;
    this.setLeading(false, "shutdown");
    // Not only when it was leading: a try in flight at stop() may have just taken the Lease without
    // becoming leader here. release() only touches a Lease that names this identity.
    if (release) await this.release();
  }

  /**
   * Tries to acquire now instead of at the next retry period: a watch saw the Lease released, and
   * waiting up to a whole retry period would make every handover slower than it needs to be.
   */
  nudge(): void {
    if (!this.running || this.leading) return;
    if (this.ticking) this.nudged = true;
    else this.schedule(0);
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.ticking = true;
      this.cycle = this.tick().finally(() => {
        this.ticking = false;
        const again = this.nudged;
        this.nudged = false;
        if (this.running) this.schedule(again ? 0 : this.options.retryPeriodMs);
      });
    }, delayMs);
  }

  private async tick(): Promise<void> {
    const renewedAt = await this.tryAcquireOrRenew().catch((error: unknown) => {
      // A leader failing to renew is worth a warning; a follower failing to acquire is routine.
      this.log[this.leading ? "warn" : "debug"]({ err: kubeErrorMessage(error) }, this.leading ? "lease renewal failed" : "lease acquire failed");
      return undefined;
    });
    if (!this.running) return;
    if (renewedAt !== undefined) {
      this.lastRenewAt = renewedAt;
      this.setLeading(true, "acquired");
    } else if (this.leading && !this.isLeader()) {
      this.setLeading(false, "renew deadline passed");
    }
  }

  private setLeading(leading: boolean, reason: string): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.metrics.leader.set(leading ? 1 : 0);
    this.metrics.leaderTransitions.inc({ event: leading ? "acquired" : "lost" });
    this.log.info(
      { lease: `${this.options.namespace}/${this.options.name}`, identity: this.options.identity, reason },
      leading ? "became leader" : "stopped leading",
    );
    if (leading) this.callbacks.onStartedLeading();
    else this.callbacks.onStoppedLeading();
  }

  /** The instant written as renewTime when the Lease is ours, else undefined. */
  private async tryAcquireOrRenew(): Promise<number | undefined> {
    const { namespace, name, identity } = this.options;
    const durationSeconds = Math.max(1, Math.ceil(this.options.durationMs / 1000));
    let current: V1Lease;
    try {
      current = await this.api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
      const at = this.now();
      const now = new V1MicroTime(at);
      await this.api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        },
      });
      return at;
    }
    // One instant, taken once the read is back, for judging expiry and for what we write: a clock
    // read before the round trip would stamp a takeover with a time earlier than the one it was judged at.
    const at = this.now();
    const now = new V1MicroTime(at);
    const spec = current.spec ?? {};
    // client-node hands MicroTime fields back as strings, whatever its types say.
    const record = `${spec.holderIdentity ?? ""}|${String(spec.renewTime ?? "")}|${spec.leaseDurationSeconds ?? ""}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = at;
    }
    const holder = spec.holderIdentity ?? "";
    const heldByOther = holder !== "" && holder !== identity;
    const expiresAt = this.observedAt + (spec.leaseDurationSeconds ?? 0) * 1000;
    if (heldByOther && expiresAt > at) return undefined;
    const takingOver = holder !== identity;
    await this.api.replaceNamespacedLease({
      name,
      namespace,
      body: {
        metadata: { ...current.metadata, name, namespace },
        spec: {
          ...spec,
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: takingOver || !spec.acquireTime ? now : new V1MicroTime(spec.acquireTime),
          renewTime: now,
          leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && holder !== "" ? 1 : 0),
        },
      },
    });
    return at;
  }

  /** Empties the holder and shortens the Lease, so the next candidate acquires it on its next try. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    try {
      const current = await this.api.readNamespacedLease({ name, namespace });
      if (current.spec?.holderIdentity !== identity) return;
      await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          metadata: current.metadata,
          spec: {
            ...current.spec,
            holderIdentity: "",
            leaseDurationSeconds: 1,
            // MicroTime must go out with six fractional digits, which only V1MicroTime writes.
            ...(current.spec.acquireTime ? { acquireTime: new V1MicroTime(current.spec.acquireTime) } : {}),
            renewTime: new V1MicroTime(this.now()),
          },
        },
      });
      this.log.info({ lease: `${namespace}/${name}` }, "lease released");
    } catch (error) {
      this.log.warn({ err: kubeErrorMessage(error) }, "could not release the lease; the next leader waits for it to expire");
    }
  }
}
