/**
 * One leadership term: from a gain of the Lease to its loss (or shutdown). Every leader-only
 * component gets the term it runs in and asks it before each write, so a write of an old term can
 * never land in a later one, even one that woke from a backoff sleep after the Lease came back.
 */
export interface Term {
  /** Strictly increasing per gain of the Lease. */
  readonly generation: number;
  /** Aborted the moment the term ends (loss, shutdown, a newer gain). */
  readonly signal: AbortSignal;
  /**
   * True only while this term is the current one, not aborted, and the elector says we hold the
   * Lease (within the renew deadline, observed holder = us). Bound to its term: pass it on as is.
   */
  canWrite(this: void): boolean;
}

/** A term and the one way to end it; only its owner (the DutyManager, `sync --once`) holds `end`. */
export interface OpenTerm {
  readonly term: Term;
  end(this: void, reason: Error): void;
}

/**
 * Opens a term. `holdsLease` is the elector's judgement (always true without a Lease); `isCurrent`
 * says whether no newer term has begun since, so a term the manager has moved past refuses writes
 * even before its signal's listeners have run.
 */
export function openTerm(generation: number, holdsLease: () => boolean, isCurrent: () => boolean = () => true): OpenTerm {
  const abort = new AbortController();
  const term: Term = {
    generation,
    signal: abort.signal,
    canWrite: () => !abort.signal.aborted && isCurrent() && holdsLease(),
  };
  return {
    term,
    end: (reason) => {
      if (!abort.signal.aborted) abort.abort(reason);
    },
  };
}
