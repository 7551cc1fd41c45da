import type { Logger } from "pino";
import { azureStatus, type FicApi } from "../azure/fic.js";
import { lookupValuesOf, type LookupValues } from "../kube/lookup.js";
import type { Metrics } from "../metrics/metrics.js";
import type { FicListing, FicOutcome, FicReconciler } from "../model/fic.js";
import type { BackoffPolicy } from "../retry/backoff.js";
import { WorkQueue } from "../syncer/queue.js";
import {
  desiredFics,
  msiKey,
  planMsi,
  type DesiredFic,
  type FederatedCredential,
  type FicAction,
  type FicContext,
  type LabelledServiceAccount,
  type MsiFics,
  type MsiRef,
  type NamespaceShare,
  isOurFic,
  sameSelection,
  selectionOf,
} from "./plan.js";

/** What happened to one ServiceAccount's FIC (deletions are left out: the ServiceAccount may be gone). */
export type FicHappening =
  | { kind: "skipped"; fic: DesiredFic; reason: string }
  | { kind: "created" | "updated"; fic: DesiredFic }
  /** A namespace asked the MSI for more FICs than its share, the cap or Azure's limit let it have. */
  | { kind: "overShare"; msi: MsiRef; share: NamespaceShare };

/** A ServiceAccount as the controller reads it from the cache. */
export interface ServiceAccountView extends LabelledServiceAccount {
  uid?: string | undefined;
}

export interface FicControllerDeps {
  api: FicApi;
  /** issuer, this cluster's name in FIC names, lookup label keys; MSIs worked on at once (--sync.concurrency). */
  context: FicContext & { concurrency: number; namespaceCap?: number; previousClusters?: readonly string[] };
  /**
   * The labelled ServiceAccounts as the cache holds them now. Read when a key is processed; every
   * change to the cache must also be told through serviceAccountChanged() (the informer's handlers do
   * both at once), which is what keeps the controller's index of the wanted FICs current.
   */
  serviceAccounts: () => readonly ServiceAccountView[];
  /** The leadership gate, asked immediately before every Azure write. */
  canWrite: () => boolean;
  /** Aborted when the term ends: Azure calls in flight are abandoned, nothing more is written. */
  signal: AbortSignal;
  metrics: Metrics;
  log: Logger;
  /** Tells the ServiceAccount's owner (an Event on it) that its FIC was made, or was not and why. */
  report?: (happening: FicHappening) => void;
  /** A ServiceAccount whose lookup labels name no MSI tagged for its namespace (told at each full sync). */
  unmatched?: (account: ServiceAccountView, lookup: LookupValues) => void;
  /** Per-MSI retry backoff (failed listing or write, Azure's concurrent-write 409, leadership gate closed). */
  retry?: BackoffPolicy;
}

/** A retried 409 "concurrent writes" on one MSI keeps a full sync waiting for at most this many runs of the key. */
const CONFLICT_ATTEMPTS = 5;
const RETRY: BackoffPolicy = { initialMs: 500, maxMs: 30_000, jitter: 0.5 };

/** How one run of a key ended, when it did not simply succeed. */
type Trouble = "error" | "conflict" | "notLeader" | "aborted";

interface Run {
  tally: FicOutcome;
  trouble: Trouble | undefined;
}

/** One full sync waiting for the keys it enqueued. */
interface Round {
  outcome: FicOutcome;
  remaining: number;
  done: boolean;
  resolve: () => void;
  /** Per key: runs that ended in a conflict so far, and the writes they made (counted when the key settles). */
  carried: Map<string, { attempts: number; created: number; updated: number; deleted: number }>;
}

const emptyOutcome = (): FicOutcome => ({ created: 0, updated: 0, unchanged: 0, deleted: 0, skipped: 0, errors: 0 });

/**
 * Keeps this cluster's federated identity credentials right (leader only): a work queue keyed by
 * MSI, fed by ServiceAccount events and by each Azure listing. A key, when processed, lists that
 * MSI's FICs and only then reads the wanted state (ServiceAccount cache + latest listing), plans
 * (planMsi, pure) and writes. The queue runs one key at a time and runs a key again if it was added
 * meanwhile, so no two workers ever touch one MSI and none acts on a wanted state older than its
 * listing of the MSI. Every write first asks canWrite(); a revocation first checks once more, from
 * the cache as it is at that instant, that the FIC is still unwanted.
 */
export class FicController implements FicReconciler {
  private readonly queue: WorkQueue;
  private readonly abort = new AbortController();
  private readonly signal: AbortSignal;
  private readonly refs = new Map<string, MsiRef>();
  private readonly holdingOurs = new Map<string, MsiRef>();
  /** Per MSI, the FICs for this cluster's issuer that are not ours, as its last listing found them (for the audit). */
  private readonly foreign = new Map<string, { msi: MsiRef; fics: FederatedCredential[] }>();
  private readonly pending = new Map<string, Round[]>();
  private readonly running = new Map<string, Round[]>();
  private listing: FicListing | undefined;
  /** Bumped on every ServiceAccount change and listing: the wanted index below is valid for one version. */
  private version = 0;
  private index: { version: number; byMsi: Map<string, MsiFics>; unmatched: ServiceAccountView[] } | undefined;
  private stopped = false;

  constructor(private readonly deps: FicControllerDeps) {
    this.signal = AbortSignal.any([deps.signal, this.abort.signal]);
    this.queue = new WorkQueue(
      deps.context.concurrency,
      (key) => this.process(key),
      // process() catches everything; this is for a bug, so it is loud.
      (key, error) => deps.log.error({ msi: key, err: (error as Error).message }, "federated identity credential reconcile failed"),
      deps.retry ?? RETRY,
    );
    this.signal.addEventListener("abort", () => void this.stop(), { once: true });
    if (this.signal.aborted) void this.stop();
  }

  /** MSIs with a key waiting or running. */
  get queued(): number {
    return this.queue.length;
  }

  /** MSIs due for a retry. */
  get retrying(): number {
    return this.queue.retrying;
  }

  /** Both: 0 once nothing is left to do. */
  get busy(): number {
    return this.queued + this.retrying;
  }

  async sync(listing: FicListing): Promise<FicOutcome> {
    if (this.stopped) return emptyOutcome();
    this.listing = listing;
    this.version++;
    const { byMsi, unmatched } = this.wanted();
    for (const account of unmatched) {
      this.deps.log.debug({ serviceAccount: `${account.namespace}/${account.name}` }, "ServiceAccount's lookup labels name no MSI tagged for its namespace");
      const lookup = lookupValuesOf(account.labels, this.deps.context.lookupKeys);
      if (lookup) this.deps.unmatched?.(account, lookup);
    }
    const targets = new Map<string, MsiRef>(this.holdingOurs);
    for (const msi of listing.scan) targets.set(msiKey(msi), msi);
    for (const [key, entry] of byMsi) targets.set(key, entry.msi);
    let resolve!: () => void;
    const settled = new Promise<void>((done) => (resolve = done));
    const round: Round = { outcome: emptyOutcome(), remaining: targets.size, done: false, resolve, carried: new Map() };
    if (targets.size === 0) this.finishRound(round);
    for (const [key, msi] of targets) {
      this.refs.set(key, msi);
      let waiting = this.pending.get(key);
      if (!waiting) this.pending.set(key, (waiting = []));
      waiting.push(round);
      this.queue.add(key);
    }
    await settled;
    for (const [name, value] of Object.entries(round.outcome) as [string, number][]) this.deps.metrics.ficObjects.set({ outcome: name }, value);
    return round.outcome;
  }

  /**
   * A ServiceAccount was added, changed or deleted (`before`/`after` undefined for an add/delete):
   * the MSIs it wanted before and wants now are processed again.
   */
  serviceAccountChanged(before: LabelledServiceAccount | undefined, after: LabelledServiceAccount | undefined): void {
    if (this.stopped) return;
    this.version++;
    const listing = this.listing;
    // Before the first listing nothing is known about MSIs; the first full sync looks at every one.
    if (!listing) return;
    // Only the selection decides what an account wants: with lookup labels, the client-id annotation
    // the webhook fills changes nothing; without them, the annotation is the selection.
    const keys = this.deps.context.lookupKeys;
    if (before && after && sameSelection(selectionOf(before, keys), selectionOf(after, keys))) return;
    const accounts = [before, after].filter((account): account is LabelledServiceAccount => account !== undefined);
    for (const [key, entry] of desiredFics(accounts, listing.desired, this.deps.context).byMsi) {
      this.refs.set(key, entry.msi);
      this.queue.add(key);
    }
  }

  stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.abort.abort(new Error("FIC controller stopped"));
      this.queue.stop();
      for (const rounds of [...this.pending.values(), ...this.running.values()]) for (const round of rounds) this.finishRound(round);
      this.pending.clear();
    }
    return this.queue.shutdown();
  }

  /** The FICs wanted now, by MSI: from the index while no ServiceAccount or listing changed since it was built. */
  private wanted(): { byMsi: Map<string, MsiFics>; unmatched: ServiceAccountView[] } {
    if (!this.listing) return { byMsi: new Map(), unmatched: [] };
    if (this.index?.version !== this.version) {
      const { byMsi, unmatched } = desiredFics(this.deps.serviceAccounts(), this.listing.desired, this.deps.context);
      this.index = { version: this.version, byMsi, unmatched };
    }
    return this.index;
  }

  private async process(key: string): Promise<void> {
    this.running.set(key, this.pending.get(key) ?? []);
    this.pending.delete(key);
    let run: Run = { tally: emptyOutcome(), trouble: "error" };
    try {
      run = await this.reconcile(key);
    } finally {
      this.afterRun(key, run);
    }
  }

  private async reconcile(key: string): Promise<Run> {
    const tally = emptyOutcome();
    const msi = this.refs.get(key);
    if (!msi || !this.listing || this.stopped) return { tally, trouble: undefined };
    const where = { msi: describe(msi) };
    let actual;
    try {
      actual = await this.deps.api.list(msi, this.signal);
    } catch (error) {
      if (this.signal.aborted) return { tally, trouble: "aborted" };
      // Without this MSI's FICs nothing is known about it: no write, and certainly no revocation.
      tally.errors++;
      this.deps.log.error({ ...where, err: (error as Error).message }, "listing federated identity credentials failed");
      return { tally, trouble: "error" };
    }
    this.recordForeign(key, msi, actual);
    // Read after the listing of the MSI, not when the key was added: nothing older than what Azure said.
    const wanted = this.wanted().byMsi.get(key)?.wanted ?? [];
    const { issuer, cluster, namespaceCap, previousClusters } = this.deps.context;
    const owner = { issuer, cluster, previousClusters: previousClusters ?? [] };
    const actions = planMsi(wanted, actual, { ...owner, mayRevoke: this.listing.complete, namespaceCap: namespaceCap ?? 0 });
    tally.unchanged = wanted.length - actions.filter((action) => action.kind === "create" || action.kind === "update" || action.kind === "skip").length;
    let trouble: Trouble | undefined;
    for (const action of actions) {
      if (action.kind === "share") {
        this.tellShare(msi, action.share);
        continue;
      }
      const result = await this.apply(key, msi, action, tally);
      if (result === "error") trouble = "error";
      else if (result) {
        trouble = result;
        break;
      }
    }
    if (actual.some((fic) => isOurFic(fic, owner)) || actions.some((action) => action.kind === "create")) this.holdingOurs.set(key, msi);
    else this.holdingOurs.delete(key);
    return { tally, trouble };
  }

  private tellShare(msi: MsiRef, share: NamespaceShare): void {
    const { namespace, asked, slots, reason } = share;
    this.deps.log.warn(
      { msi: describe(msi), namespace, asked, slots, share: share.share, reason },
      "namespace asks for more of the MSI's federated identity credentials than it has",
    );
    this.deps.report?.({ kind: "overShare", msi, share });
  }

  private async apply(key: string, msi: MsiRef, action: Exclude<FicAction, { kind: "share" }>, tally: FicOutcome): Promise<Trouble | undefined> {
    const { log, metrics } = this.deps;
    const where = { msi: describe(msi) };
    if (action.kind === "skip") {
      tally.skipped++;
      metrics.ficSkipped.inc({ reason: action.why });
      log.warn(
        { ...where, fic: action.fic.name, serviceAccount: `${action.fic.namespace}/${action.fic.serviceAccount}`, reason: action.reason },
        "federated identity credential skipped",
      );
      this.deps.report?.({ kind: "skipped", fic: action.fic, reason: action.reason });
      return undefined;
    }
    if (this.signal.aborted) return "aborted";
    const verb = action.kind === "delete" ? "delete" : "put";
    const name = action.kind === "delete" ? action.name : action.fic.name;
    if (action.kind === "delete" && !this.stillUnwanted(key, action)) {
      // Wanted again since the plan (an event arrived during an earlier write): the key's next run plans anew.
      log.info({ ...where, fic: name }, "federated identity credential wanted again: not revoked");
      this.queue.add(key);
      return undefined;
    }
    // Nothing awaited between this check and the request: a deposed leader sends no write.
    if (!this.deps.canWrite()) {
      metrics.ficWrites.inc({ verb, result: "not_leader" });
      log.warn({ ...where, fic: name, action: action.kind }, "federated identity credential write refused: not the leader");
      return "notLeader";
    }
    try {
      if (action.kind === "delete") await this.deps.api.remove(msi, action.name, this.signal);
      else await this.deps.api.put(msi, action.fic, this.signal);
    } catch (error) {
      if (this.signal.aborted) return "aborted";
      metrics.ficWrites.inc({ verb, result: "error" });
      tally.errors++;
      if (azureStatus(error) === 409 && /Concurrent/i.test((error as Error).message)) {
        // Another writer on this MSI (Azure allows one at a time): this key runs again after its backoff.
        log.warn({ ...where, fic: name, action: action.kind }, "federated identity credential write conflicted with another writer: retried later");
        return "conflict";
      }
      log.error({ ...where, action: action.kind, err: (error as Error).message }, "federated identity credential write failed");
      return "error";
    }
    metrics.ficWrites.inc({ verb, result: "success" });
    if (action.kind === "delete") {
      tally.deleted++;
      log.info({ ...where, fic: action.name, subject: action.subject }, "federated identity credential revoked");
    } else {
      tally[action.kind === "create" ? "created" : "updated"]++;
      this.deps.report?.({ kind: action.kind === "create" ? "created" : "updated", fic: action.fic });
      log.info(
        { ...where, fic: action.fic.name, subject: action.fic.subject },
        action.kind === "create" ? "federated identity credential created" : "federated identity credential updated",
      );
    }
    return undefined;
  }

  /** FICs for this cluster's issuer not made by the operator, by MSI, from the listings already made (no Azure call). */
  foreignFederatedCredentials(): { msi: MsiRef; fics: FederatedCredential[] }[] {
    return [...this.foreign.values()];
  }

  private recordForeign(key: string, msi: MsiRef, actual: readonly FederatedCredential[]): void {
    // Ours is what isOurFic says (the current prefix, or an earlier name's exact FIC for its subject).
    const fics = actual.filter((fic) => fic.issuer === this.deps.context.issuer && !isOurFic(fic, this.deps.context));
    if (fics.length > 0) this.foreign.set(key, { msi, fics });
    else this.foreign.delete(key);
  }

  /**
   * Whether a planned revocation still stands, computed afresh from the cache and the listing as
   * they are now: its name is unwanted, and so is its subject, unless it is the duplicate of a FIC
   * that stays for that subject (an older cluster name's, after a rename).
   */
  private stillUnwanted(key: string, action: { name: string; subject: string; keeps?: string }): boolean {
    const listing = this.listing;
    if (!listing?.complete || this.stopped) return false;
    const now = desiredFics(this.deps.serviceAccounts(), listing.desired, this.deps.context).byMsi.get(key)?.wanted ?? [];
    if (now.some((fic) => fic.name === action.name)) return false;
    const forSubject = now.find((fic) => fic.subject === action.subject);
    return forSubject === undefined || action.keeps !== undefined;
  }

  private afterRun(key: string, run: Run): void {
    const rounds = this.running.get(key) ?? [];
    this.running.delete(key);
    const { trouble, tally } = run;
    if (trouble === undefined) this.queue.forget(key);
    // A closed gate may open again within the term (a late renewal); a term that ended aborted the signal.
    else if (trouble !== "aborted" && !this.stopped) this.queue.retryLater(key);
    for (const round of rounds) {
      if (round.done) continue;
      const carried = round.carried.get(key) ?? { attempts: 0, created: 0, updated: 0, deleted: 0 };
      if (trouble === "conflict" && !this.stopped && ++carried.attempts < CONFLICT_ATTEMPTS) {
        // The sync waits for the retry: a 409 from a concurrent writer is not a failure yet.
        carried.created += tally.created;
        carried.updated += tally.updated;
        carried.deleted += tally.deleted;
        round.carried.set(key, carried);
        let waiting = this.pending.get(key);
        if (!waiting) this.pending.set(key, (waiting = []));
        waiting.push(round);
        continue;
      }
      const outcome = round.outcome;
      outcome.created += carried.created + tally.created;
      outcome.updated += carried.updated + tally.updated;
      outcome.deleted += carried.deleted + tally.deleted;
      // FICs an earlier run of this key made show as unchanged in the last one.
      outcome.unchanged += Math.max(0, tally.unchanged - carried.created - carried.updated);
      outcome.skipped += tally.skipped;
      outcome.errors += tally.errors;
      if (--round.remaining === 0) this.finishRound(round);
    }
    if (rounds.length === 0 && tally.created + tally.updated + tally.deleted + tally.errors > 0) {
      const msi = this.refs.get(key);
      this.deps.log.info({ msi: msi ? describe(msi) : key, ...tally }, "federated identity credentials reconciled after a ServiceAccount event");
    }
  }

  private finishRound(round: Round): void {
    if (round.done) return;
    round.done = true;
    round.resolve();
  }
}

function describe(msi: MsiRef): string {
  return `${msi.subscriptionId}/${msi.resourceGroup}/${msi.name}`;
}
