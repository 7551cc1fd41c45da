import type { Logger } from "pino";
import { backoffDelay, sleep, type BackoffPolicy } from "../retry/backoff.js";
import { openTerm, type OpenTerm, type Term } from "./term.js";

export type { Term } from "./term.js";

/**
 * A long-running part of the operator, as controller-runtime's Runnable: the informers, the servers,
 * the Lease, the syncer, the certificate duties. Started once and stopped once; a leader-only duty is
 * started each time this replica gains the Lease and stopped each time it loses it, as a new instance.
 */
export interface Duty {
  readonly name: string;
  /** Resolves once the duty is running; `signal` is aborted when it is to stop before that. */
  start(signal: AbortSignal): Promise<void>;
  /** Idempotent; resolves once nothing of the duty is left running. */
  stop(): Promise<void>;
}

/**
 * Builds a fresh leader-only duty for a term as leader (so nothing of an old term survives). The
 * duty asks the term before every write and ends what it does when the term's signal is aborted.
 */
export type LeaderDutyFactory = (term: Term) => Duty;

/** Several duties as one: started in order (a later one only once the earlier ones run), stopped in reverse. */
export function dutySequence(name: string, duties: readonly Duty[]): Duty {
  const started: Duty[] = [];
  return {
    name,
    async start(signal) {
      for (const duty of duties) {
        signal.throwIfAborted();
        started.push(duty);
        await duty.start(signal);
      }
    },
    async stop() {
      for (const duty of started.splice(0).reverse()) await duty.stop();
    },
  };
}

interface Running {
  duty: Duty;
  started: Promise<void>;
}

/** The leader duties of one term, as far as they were started. */
interface TermRun {
  open: OpenTerm;
  duties: Running[];
}

/** A leader duty that has not started yet: what /healthz reports once it has lasted. */
interface StartFailure {
  duty: string;
  attempts: number;
  since: number;
  error: string;
}

export interface DutyManagerOptions {
  /** The elector's judgement that this replica holds the Lease; always true without a Lease. */
  holdsLease?: () => boolean;
  /** Pause between attempts to start a leader duty that failed. */
  startBackoff?: BackoffPolicy;
  /** How long a leader duty may keep failing to start before /healthz fails (see unhealthy()). */
  unhealthyAfterMs?: number;
  now?: () => number;
}

/** A failing start: 1 s doubling to 30 s, so a transient fault (issuer discovery, a lazy import) heals within seconds. */
export const LEADER_START_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000, jitter: 0.2 };
/** Long enough for transients to heal (about 7 attempts), short against a term of hours with no syncer. */
export const LEADER_START_UNHEALTHY_AFTER_MS = 120_000;

/**
 * Runs the duties every replica has in the order given, and the leader-only duties while this
 * replica leads; stops each group in reverse order. One lifecycle for the whole process.
 *
 * Terms: each gain of the Lease opens a new `Term` (generation + 1) at once, each loss ends the
 * latest one at once (its signal aborted, its canWrite() false), before anything is stopped. The
 * slow part, starting and stopping duties, runs one transition at a time in `settle()`, which looks
 * at where things stand when it runs, not at the event that queued it: any interleaving of gains
 * and losses ends with the duties of the latest term running if that term is still open, and with
 * nothing running otherwise. A new term starts only after the old one has stopped.
 */
export class DutyManager {
  private readonly always: (Running & { abort: AbortController })[] = [];
  private generation = 0;
  /** The term of the latest gain (open or already ended). */
  private latest: OpenTerm | undefined;
  /** The term whose duties are started or starting. */
  private running: TermRun | undefined;
  private transitions: Promise<void> = Promise.resolve();
  private failure: StartFailure | undefined;
  /** No more terms: shutdown has begun. */
  private leadingClosed = false;
  private stopped = false;
  private readonly holdsLease: () => boolean;
  private readonly startBackoff: BackoffPolicy;
  private readonly unhealthyAfterMs: number;
  private readonly now: () => number;

  constructor(
    private readonly leaderDuties: readonly LeaderDutyFactory[],
    private readonly log: Logger,
    options: DutyManagerOptions = {},
  ) {
    this.holdsLease = options.holdsLease ?? (() => true);
    this.startBackoff = options.startBackoff ?? LEADER_START_BACKOFF;
    this.unhealthyAfterMs = options.unhealthyAfterMs ?? LEADER_START_UNHEALTHY_AFTER_MS;
    this.now = options.now ?? Date.now;
  }

  /** The generation of the latest term (0 before the first gain). */
  get currentGeneration(): number {
    return this.generation;
  }

  /**
   * Why /healthz should fail, or undefined. A leader duty that keeps failing to start is retried
   * for the whole term, but a replica holding the Lease with no syncer for long is worse than a
   * restart: after `unhealthyAfterMs` of failures the kubelet restarts the process, whose shutdown
   * releases the Lease to a replica that may do better. (Releasing the Lease ourselves instead
   * would, on a fault every replica shares, bounce it between them, each building a term's caches
   * again, and hide the fault from the restart count.)
   */
  unhealthy(): string | undefined {
    const failure = this.failure;
    if (!failure || this.now() - failure.since < this.unhealthyAfterMs) return undefined;
    const seconds = Math.round((this.now() - failure.since) / 1000);
    return `leader duty "${failure.duty}" has failed to start for ${seconds} s (${failure.attempts} attempts): ${failure.error}`;
  }

  /** Starts one duty every replica has, after the ones before it are running. */
  async startDuty(duty: Duty): Promise<void> {
    if (this.stopped) return;
    const abort = new AbortController();
    const running = { duty, abort, started: duty.start(abort.signal) };
    this.always.push(running);
    await running.started;
  }

  /**
   * Leadership gained: a new term at once, its duties started once the previous term's have
   * stopped. Resolves when the transitions queued so far are done (the term running, or ended).
   */
  startLeading(): Promise<void> {
    if (this.leadingClosed) return this.transitions;
    // A gain without a loss in between (never sent by the elector) still never leaves two terms.
    this.latest?.end(new Error("a newer term began"));
    const generation = ++this.generation;
    const open: OpenTerm = openTerm(generation, this.holdsLease, () => this.latest === open);
    this.latest = open;
    return this.enqueue();
  }

  /**
   * Leadership lost (or, with `final`, shutdown: no term begins again): the term ends at once,
   * so nothing of it writes any more; resolves once nothing of it runs.
   */
  stopLeading(final = false): Promise<void> {
    if (final) this.leadingClosed = true;
    this.latest?.end(new Error(final ? "shutting down" : "leadership lost"));
    return this.enqueue();
  }

  /** Everything stopped, leader duties first, then the others newest first. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.stopLeading(true);
    for (const running of this.always) running.abort.abort(new Error("shutting down"));
    await stopAll(this.always.splice(0), this.log);
  }

  private enqueue(): Promise<void> {
    // settle() never rejects.
    this.transitions = this.transitions.then(() => this.settle());
    return this.transitions;
  }

  /** One transition towards "the latest term's duties run if it is open, nothing else runs". */
  private async settle(): Promise<void> {
    const run = this.running;
    if (run && (run.open !== this.latest || run.open.term.signal.aborted)) {
      await stopAll(run.duties.splice(0), this.log);
      this.running = undefined;
      this.failure = undefined;
    }
    const open = this.latest;
    if (this.running || !open || open.term.signal.aborted) return;
    const next: TermRun = { open, duties: [] };
    this.running = next;
    for (const factory of this.leaderDuties) {
      if (!(await this.startLeaderDuty(factory, next))) return;
    }
  }

  /**
   * Starts one leader duty for the term, a fresh instance per attempt, retried with backoff while
   * the term lasts. False when the term ended first (the later duties then never start).
   */
  private async startLeaderDuty(factory: LeaderDutyFactory, run: TermRun): Promise<boolean> {
    const { term } = run.open;
    for (let attempt = 1; ; attempt++) {
      if (term.signal.aborted) return false;
      const running = launch(factory, term);
      const { duty } = running;
      run.duties.push(running);
      try {
        await running.started;
        this.failure = undefined;
        return true;
      } catch (error) {
        if (term.signal.aborted) return false;
        // A duty that failed to start may hold what it started before failing: stopped before the next attempt.
        run.duties.splice(run.duties.indexOf(running), 1);
        await stopAll([running], this.log);
        const delayMs = backoffDelay(this.startBackoff, attempt);
        const err = (error as Error).message;
        this.failure = { duty: duty.name, attempts: attempt, since: this.failure?.since ?? this.now(), error: err };
        this.log.error(
          { duty: duty.name, attempt, retryInMs: Math.round(delayMs), generation: term.generation, err },
          "leader duty failed to start; trying again",
        );
        const woken = await sleep(delayMs, term.signal).then(
          () => true,
          () => false,
        );
        if (!woken) return false;
      }
    }
  }
}

/** A leader duty built and started; a factory or start() that throws at once is a failed start like any other. */
function launch(factory: LeaderDutyFactory, term: Term): Running {
  const failed = (error: unknown) => Promise.reject(error instanceof Error ? error : new Error(String(error)));
  let duty: Duty;
  try {
    duty = factory(term);
  } catch (error) {
    return { duty: { name: "leader duty", start: () => failed(error), stop: async () => undefined }, started: failed(error) };
  }
  try {
    return { duty, started: duty.start(term.signal) };
  } catch (error) {
    return { duty, started: failed(error) };
  }
}

async function stopAll(runnings: readonly Running[], log: Logger): Promise<void> {
  for (const { duty, started } of [...runnings].reverse()) {
    // A duty that failed to start may still hold resources; stop() cleans up either way.
    await started.catch(() => undefined);
    await duty.stop().catch((error: unknown) => log.error({ duty: duty.name, err: (error as Error).message }, "duty failed to stop"));
  }
}
