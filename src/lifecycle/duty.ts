import type { Logger } from "pino";

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

/** Builds a fresh leader-only duty for each term as leader (so nothing of an old term survives). */
export type LeaderDutyFactory = () => Duty;

interface Running {
  duty: Duty;
  abort: AbortController;
  started: Promise<void>;
}

/**
 * Runs the duties every replica has in the order given, and the leader-only duties while this
 * replica leads; stops each group in reverse order. One lifecycle for the whole process.
 */
export class DutyManager {
  private readonly always: Running[] = [];
  private term: Running[] = [];
  private termChange: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly leaderDuties: readonly LeaderDutyFactory[],
    private readonly log: Logger,
  ) {}

  /** Starts one duty every replica has, after the ones before it are running. */
  async startDuty(duty: Duty): Promise<void> {
    if (this.stopped) return;
    const running = launch(duty);
    this.always.push(running);
    await running.started;
  }

  /** Leadership gained: a fresh set of leader-only duties, in order. Serialised with losing it. */
  startLeading(): Promise<void> {
    this.termChange = this.termChange.then(async () => {
      if (this.stopped) return;
      const term: Running[] = [];
      this.term = term;
      for (const factory of this.leaderDuties) {
        if (this.term !== term) return;
        const running = launch(factory());
        term.push(running);
        await running.started.catch((error: unknown) =>
          this.log.error({ duty: running.duty.name, err: (error as Error).message }, "leader duty failed to start"),
        );
      }
    });
    return this.termChange;
  }

  /** Leadership lost (or shutdown): leader-only duties aborted and stopped, newest first. */
  stopLeading(): Promise<void> {
    const term = this.term;
    this.term = [];
    for (const running of term) running.abort.abort(new Error("leadership lost"));
    const stopping = stopAll(term, this.log);
    this.termChange = this.termChange.then(() => stopping);
    return stopping;
  }

  /** Everything stopped, leader duties first, then the others newest first. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.stopLeading();
    await this.termChange;
    for (const running of this.always) running.abort.abort(new Error("shutting down"));
    await stopAll(this.always.splice(0), this.log);
  }
}

function launch(duty: Duty): Running {
  const abort = new AbortController();
  return { duty, abort, started: duty.start(abort.signal) };
}

async function stopAll(runnings: readonly Running[], log: Logger): Promise<void> {
  for (const { duty, started } of [...runnings].reverse()) {
    // A duty that failed to start may still hold resources; stop() cleans up either way.
    await started.catch(() => undefined);
    await duty.stop().catch((error: unknown) => log.error({ duty: duty.name, err: (error as Error).message }, "duty failed to stop"));
  }
}
