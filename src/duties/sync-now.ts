import { V1MicroTime, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { kubeErrorMessage, statusCode } from "../kube/errors.js";
import type { Informer } from "../kube/informer.js";
import type { Duty, Term } from "../lifecycle/duty.js";
import type { SyncSummary } from "../syncer/syncer.js";
import { decideSyncNow, handledAnnotations, SYNC_NOW_ANNOTATION, syncNowState } from "../syncer/sync-now.js";

export interface SyncNowDeps {
  /** The leader Lease cache every replica keeps (LeaseDuty starts it). */
  lease: Informer<V1Lease>;
  coordination: CoordinationV1Api;
  namespace: string;
  name: string;
  /** --sync.request.interval. */
  minIntervalMs: number;
  /** The term it runs in: asked before the Lease write, and its end ends the sync now running. */
  term: Term;
  /** One full sync with a fresh Azure listing; rejects, starting nothing, once the term has ended. */
  syncNow: () => Promise<SyncSummary>;
  log: Logger;
  now?: () => number;
}

const CONFLICT_RETRIES = 5;

/**
 * The leader's half of "sync now": watches the Lease for a request value it has not handled, records
 * it as handled on the Lease (so no later leader runs it again), then runs the sync. Requests closer
 * than the minimum interval to the last handled one wait for it, with one log line each. When the
 * term ends (Lease lost, SIGTERM) the running sync is aborted with it (its listing takes the term's
 * signal) and no later one starts; stop() waits only for that abort, not for a whole sync.
 */
export class SyncNowDuty implements Duty {
  readonly name = "sync now";
  private readonly unsubscribe: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private deferredLogged: string | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly deps: SyncNowDeps) {
    this.now = deps.now ?? Date.now;
  }

  async start(): Promise<void> {
    const changed = (lease: V1Lease) => {
      if (lease.metadata?.name === this.deps.name) this.check();
    };
    this.unsubscribe.push(this.deps.lease.on("add", changed), this.deps.lease.on("update", changed));
    this.check();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    await this.chain;
  }

  /** One check at a time: a request seen while a sync runs is looked at once it is done. */
  private check(): void {
    this.chain = this.chain
      .then(() => this.handle())
      .catch((error: unknown) => {
        const err = (error as Error).message;
        if (this.deps.term.signal.aborted) this.deps.log.info({ err }, "sync now cut short: the term ended");
        else this.deps.log.error({ err }, "sync now failed");
      });
  }

  private mayGoOn(): boolean {
    return !this.stopped && !this.deps.term.signal.aborted && this.deps.term.canWrite();
  }

  private async handle(): Promise<void> {
    if (!this.mayGoOn()) return;
    const lease = this.deps.lease.get(this.deps.namespace, this.deps.name);
    const decision = decideSyncNow(syncNowState(lease?.metadata?.annotations), this.now(), this.deps.minIntervalMs);
    if (decision.kind === "none") return;
    const lock = { annotation: SYNC_NOW_ANNOTATION, value: decision.value };
    if (decision.kind === "defer") {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.check(), decision.untilMs - this.now());
      if (this.deferredLogged !== decision.value) {
        this.deferredLogged = decision.value;
        this.deps.log.info(
          { ...lock, until: new Date(decision.untilMs).toISOString(), minIntervalSeconds: this.deps.minIntervalMs / 1000 },
          "sync now requested too soon after the last one: deferred (--sync.request.interval)",
        );
      }
      return;
    }
    if (!(await this.markHandled(decision.value)) || !this.mayGoOn()) return;
    this.deps.log.info(lock, "sync now requested: full sync with a fresh Azure listing");
    await this.deps.syncNow();
  }

  /** Writes the handled value onto the Lease (optimistic, retried on conflict); false when another value or leader won. */
  private async markHandled(value: string): Promise<boolean> {
    const { coordination, namespace, name } = this.deps;
    for (let attempt = 0; ; attempt++) {
      const current = await coordination.readNamespacedLease({ name, namespace });
      const state = syncNowState(current.metadata?.annotations);
      if (state.requested !== value || state.handled === value || !this.mayGoOn()) return false;
      const spec = current.spec ?? {};
      const body: V1Lease = {
        ...current,
        metadata: { ...current.metadata, annotations: { ...current.metadata?.annotations, ...handledAnnotations(value, this.now()) } },
        // client-node hands MicroTimes back as strings; only V1MicroTime writes the six digits the API wants.
        spec: {
          ...spec,
          ...(spec.acquireTime ? { acquireTime: new V1MicroTime(spec.acquireTime) } : {}),
          ...(spec.renewTime ? { renewTime: new V1MicroTime(spec.renewTime) } : {}),
        },
      };
      try {
        await coordination.replaceNamespacedLease({ name, namespace, body });
        return true;
      } catch (error) {
        if (statusCode(error) !== 409 || attempt >= CONFLICT_RETRIES) {
          this.deps.log.warn({ err: kubeErrorMessage(error) }, "could not record the sync now request as handled; trying again at the next Lease change");
          return false;
        }
      }
    }
  }
}
