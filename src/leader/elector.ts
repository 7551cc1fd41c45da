import { V1MicroTime, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { abortable } from "../kube/clients.js";
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

/**
 * The longest a release at shutdown may take. It only speeds up the handover (the Lease expires anyway
 * after its duration), and shutdown has to end within --shutdown.delay + 10 s even when the API server
 * does not answer.
 */
export const RELEASE_TIMEOUT_MS = 5_000;

/** What one try found: the Lease is ours (renewed or taken at `at`), or someone else holds it. */
type TryResult = { kind: "held"; at: number } | { kind: "other"; holder: string };

export interface LeadershipCallbacks {
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
 * optimistic concurrency on resourceVersion, expiry judged by our own clock from when we last saw
 * the record change (so clock skew between nodes does not matter), and `isLeader()` turns false the
 * moment the renew deadline passes, before the loop even notices, so no write happens after it, or the
 * moment a try finds another holder (the Lease deleted and re-created by another replica). Every try
 * has a deadline, the renew deadline (for a leader: what is left of it), so a request that never gets
 * an answer cannot keep the loop from noticing the loss and campaigning again.
 */
export class LeaderElector {
  private leading = false;
  private lastRenewAt = 0;
  /** The holder the last try saw; a leader whose try saw another one is leader no more. */
  private observedHolder = "";
  private observedRecord = "";
  private observedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** When the scheduled try fires (epoch ms), while one is scheduled and not yet running. */
  private nextTryAt: number | undefined;
  private running = false;
  private ticking = false;
  private nudged = false;
  private cycle: Promise<void> = Promise.resolve();
  /** Aborted by stop(): ends the try in flight at once. */
  private stopping = new AbortController();
  /** The stop in progress or done; a second stop() (the duty's, then the manager's) waits for it. */
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly api: CoordinationV1Api,
    private readonly options: LeaseOptions,
    private readonly callbacks: LeadershipCallbacks,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {}

  /** True only while a renewal succeeded within the renew deadline and no try since saw another holder. */
  isLeader(): boolean {
    return this.leading && this.observedHolder === this.options.identity && this.now() - this.lastRenewAt < this.options.renewDeadlineMs;
  }

  /**
   * In how many ms the next try is due (0: at once), or undefined while none is scheduled (a try is
   * running, or campaigning stopped). What a test checks instead of waiting to see nothing happen.
   */
  nextTryInMs(): number | undefined {
    return this.nextTryAt === undefined ? undefined : Math.max(0, this.nextTryAt - Date.now());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = new AbortController();
    this.stopped = undefined;
    this.schedule(0);
  }

  /**
   * Stops campaigning (a try in flight is abandoned); when leading, gives the Lease up so another
   * replica takes over at once. Resolves within RELEASE_TIMEOUT_MS whatever the API server does;
   * stopping again only waits for the first stop.
   */
  stop(release = true): Promise<void> {
    this.stopped ??= this.halt(release);
    return this.stopped;
  }

  private async halt(release: boolean): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.nextTryAt = undefined;
    this.stopping.abort(new Error("leader election stopped"));
    await this.cycle;
    this.setLeading(false, "shutdown");
    // Not only when it was leading: a try in flight at stop() may have just taken the Lease without
    // becoming leader here. release() only touches a Lease that names this identity.
    if (release) await this.release(AbortSignal.timeout(Math.min(this.options.renewDeadlineMs, RELEASE_TIMEOUT_MS)));
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
    this.nextTryAt = Date.now() + delayMs;
    this.timer = setTimeout(() => {
      this.nextTryAt = undefined;
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
    if (this.leading && !this.isLeader()) this.setLeading(false, "renew deadline passed");
    // A leader may take what is left of its renew deadline, a candidate one renew deadline.
    const budgetMs = this.leading ? this.lastRenewAt + this.options.renewDeadlineMs - this.now() : this.options.renewDeadlineMs;
    const deadline = AbortSignal.timeout(Math.max(1, budgetMs));
    const signal = AbortSignal.any([this.stopping.signal, deadline]);
    const result = await this.tryAcquireOrRenew(signal).catch((error: unknown) => {
      const err = deadline.aborted ? `no answer within ${Math.max(1, budgetMs)} ms` : kubeErrorMessage(error);
      // A leader failing to renew is worth a warning; a follower failing to acquire is routine.
      this.log[this.leading ? "warn" : "debug"]({ err }, this.leading ? "lease renewal failed" : "lease acquire failed");
      return undefined;
    });
    if (!this.running) return;
    if (result?.kind === "held") {
      this.lastRenewAt = result.at;
      this.observedHolder = this.options.identity;
      this.setLeading(true, "acquired");
    } else if (result?.kind === "other") {
      this.observedHolder = result.holder;
      if (this.leading) this.setLeading(false, `the Lease is held by ${result.holder}`);
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

  /** Ours (with the instant written as renewTime), or whose it is. */
  private async tryAcquireOrRenew(signal: AbortSignal): Promise<TryResult> {
    const { namespace, name, identity } = this.options;
    const durationSeconds = Math.max(1, Math.ceil(this.options.durationMs / 1000));
    const options = abortable(signal);
    let current: V1Lease;
    try {
      current = await this.api.readNamespacedLease({ name, namespace }, options);
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
      const at = this.now();
      const now = new V1MicroTime(at);
      await this.api.createNamespacedLease(
        {
          namespace,
          body: {
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        },
        options,
      );
      return { kind: "held", at };
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
    if (heldByOther && expiresAt > at) return { kind: "other", holder };
    const takingOver = holder !== identity;
    await this.api.replaceNamespacedLease(
      {
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
      },
      options,
    );
    return { kind: "held", at };
  }

  /** Empties the holder and shortens the Lease, so the next candidate acquires it on its next try. */
  private async release(signal: AbortSignal): Promise<void> {
    const { namespace, name, identity } = this.options;
    const options = abortable(signal);
    try {
      const current = await this.api.readNamespacedLease({ name, namespace }, options);
      if (current.spec?.holderIdentity !== identity) return;
      await this.api.replaceNamespacedLease(
        {
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
        },
        options,
      );
      this.log.info({ lease: `${namespace}/${name}` }, "lease released");
    } catch (error) {
      const err = signal.aborted ? "no answer in time" : kubeErrorMessage(error);
      this.log.warn({ err }, "could not release the lease; the next leader waits for it to expire");
    }
  }
}
