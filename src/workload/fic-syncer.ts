import type { Logger } from "pino";
import type { FicApi } from "../azure/fic.js";
import type { Metrics } from "../metrics/metrics.js";
import { withRetry, type BackoffPolicy } from "../retry/backoff.js";
import { azureStatus } from "../azure/fic.js";
import { msiKey, planMsi, type DesiredFic, type FicAction, type MsiFics, type MsiRef } from "./plan.js";

export interface FicOutcome {
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  skipped: number;
  errors: number;
}

/** What happened to one ServiceAccount's FIC (deletions are left out: the ServiceAccount may be gone). */
export type FicHappening = { kind: "skipped"; fic: DesiredFic; reason: string } | { kind: "created" | "updated"; fic: DesiredFic };

export interface FicPass {
  /** FICs wanted, by MSI (from the desired state and the labelled ServiceAccounts). */
  wanted: Map<string, MsiFics>;
  /** MSIs to look at besides the wanted ones: every listed MSI after a fresh listing. */
  scan: readonly MsiRef[];
  /** The last Azure listing was complete and error-free: only then is anything revoked. */
  complete: boolean;
}

/** Azure refuses concurrent FIC writes on one MSI with 409: such a write is tried again after a pause. */
const CONFLICT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 8_000, jitter: 0.5 };

/**
 * Keeps this cluster's federated identity credentials right (leader only). One MSI's writes go one
 * at a time (Azure does not allow concurrent ones); MSIs go in parallel, bounded. Remembers which MSIs
 * held its FICs, so a pass triggered by a ServiceAccount event looks at those without listing Azure.
 */
export class FicSyncer {
  private readonly holdingOurs = new Map<string, MsiRef>();

  constructor(
    private readonly api: FicApi,
    private readonly context: { issuer: string; cluster: string; /** MSIs worked on at once (--sync.concurrency). */ concurrency: number },
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** Tells the ServiceAccount's owner (an Event on it) that its FIC was made, or was not and why. */
    private readonly report: (happening: FicHappening) => void = () => undefined,
  ) {}

  async sync(pass: FicPass, signal?: AbortSignal): Promise<FicOutcome> {
    const targets = new Map<string, MsiRef>(this.holdingOurs);
    for (const msi of pass.scan) targets.set(msiKey(msi), msi);
    for (const [key, entry] of pass.wanted) targets.set(key, entry.msi);
    const outcome: FicOutcome = { created: 0, updated: 0, unchanged: 0, deleted: 0, skipped: 0, errors: 0 };
    const queue = [...targets];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [key, msi] = next;
        await this.syncMsi(key, msi, pass, outcome, signal);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.context.concurrency, queue.length) }, worker));
    for (const [name, value] of Object.entries(outcome) as [string, number][]) this.metrics.ficObjects.set({ outcome: name }, value);
    return outcome;
  }

  private async syncMsi(key: string, msi: MsiRef, pass: FicPass, outcome: FicOutcome, signal?: AbortSignal): Promise<void> {
    const wanted = pass.wanted.get(key)?.wanted ?? [];
    let actual;
    try {
      actual = await this.api.list(msi, signal);
    } catch (error) {
      // Without this MSI's FICs nothing is known about it: no write, and certainly no revocation.
      outcome.errors++;
      this.log.error({ msi: describe(msi), err: (error as Error).message }, "listing federated identity credentials failed");
      return;
    }
    const actions = planMsi(wanted, actual, { ...this.context, mayRevoke: pass.complete });
    outcome.unchanged += wanted.length - actions.filter((action) => action.kind !== "delete").length;
    for (const action of actions) await this.apply(msi, action, outcome, signal);
    const ours = actual.some((fic) => fic.name.startsWith(`${this.context.cluster}_`)) || actions.some((action) => action.kind === "create");
    if (ours) this.holdingOurs.set(key, msi);
    else this.holdingOurs.delete(key);
  }

  private async apply(msi: MsiRef, action: FicAction, outcome: FicOutcome, signal?: AbortSignal): Promise<void> {
    const where = { msi: describe(msi) };
    if (action.kind === "skip") {
      outcome.skipped++;
      this.metrics.ficSkipped.inc({ reason: /limit/.test(action.reason) ? "limit" : "conflict" });
      this.log.warn(
        { ...where, fic: action.fic.name, serviceAccount: `${action.fic.namespace}/${action.fic.serviceAccount}`, reason: action.reason },
        "federated identity credential skipped",
      );
      this.report({ kind: "skipped", fic: action.fic, reason: action.reason });
      return;
    }
    const verb = action.kind === "delete" ? "delete" : "put";
    try {
      await withRetry(() => (action.kind === "delete" ? this.api.remove(msi, action.name, signal) : this.api.put(msi, action.fic, signal)), {
        attempts: 5,
        backoff: CONFLICT_BACKOFF,
        retryable: (error) => azureStatus(error) === 409 && /Concurrent/i.test((error as Error).message),
        signal,
      });
      this.metrics.ficWrites.inc({ verb, result: "success" });
      if (action.kind === "delete") {
        outcome.deleted++;
        this.log.info({ ...where, fic: action.name, subject: action.subject }, "federated identity credential revoked");
      } else {
        outcome[action.kind === "create" ? "created" : "updated"]++;
        this.report({ kind: action.kind === "create" ? "created" : "updated", fic: action.fic });
        this.log.info(
          { ...where, fic: action.fic.name, subject: action.fic.subject },
          action.kind === "create" ? "federated identity credential created" : "federated identity credential updated",
        );
      }
    } catch (error) {
      outcome.errors++;
      this.metrics.ficWrites.inc({ verb, result: "error" });
      this.log.error({ ...where, action: action.kind, err: (error as Error).message }, "federated identity credential write failed");
    }
  }
}

function describe(msi: MsiRef): string {
  return `${msi.subscriptionId}/${msi.resourceGroup}/${msi.name}`;
}
