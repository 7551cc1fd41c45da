// Ctrl-C and SIGTERM only set a flag: the walk-through notices it at its next wait or step, and the
// main flow then stops everything in order. A second signal (a terminal sends SIGINT to the whole
// process group and the launcher forwards it once more) changes nothing.

export class StoppedError extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`stopped by ${signal}`);
  }
}

export class StopRequest {
  private received: NodeJS.Signals | undefined;
  private resolveRequested!: (signal: NodeJS.Signals) => void;
  readonly requested = new Promise<NodeJS.Signals>((resolve) => (this.resolveRequested = resolve));

  get signal(): NodeJS.Signals | undefined {
    return this.received;
  }

  request(signal: NodeJS.Signals): void {
    if (this.received) return;
    this.received = signal;
    this.resolveRequested(signal);
  }

  throwIfRequested(): void {
    if (this.received) throw new StoppedError(this.received);
  }
}

export interface WaitOptions {
  timeoutMs: number;
  what: string;
  stop: StopRequest;
  /** Throws when waiting longer is pointless (e.g. the operator exited). */
  check?: () => void;
  intervalMs?: number;
}

/** Polls `probe` until it returns something other than undefined/false; stops early on a signal. */
export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    options.stop.throwIfRequested();
    options.check?.();
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${options.what}: not within ${options.timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}
