import { backoffDelay, type BackoffPolicy } from "../retry/backoff.js";

/**
 * A keyed work queue like client-go's rate-limited one: a key waits at most once; a key added while
 * it is being processed runs again afterwards (so no event is lost); at most `concurrency` keys run
 * at once; `retryLater` adds a key again after its own growing backoff, `forget` resets it.
 */
export class WorkQueue {
  private readonly failures = new Map<string, number>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private readonly waiting = new Set<string>();
  private readonly order: string[] = [];
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private idleWaiters: (() => void)[] = [];
  private stopped = false;

  constructor(
    private readonly concurrency: number,
    private readonly worker: (key: string) => Promise<void>,
    private readonly onError: (key: string, error: unknown) => void,
    private readonly retry: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000 },
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    this.waiting.add(key);
    this.order.push(key);
    this.pump();
  }

  /** Adds `key` again after its backoff (1 s, doubling up to 1 min by default); once per key at a time. */
  retryLater(key: string): void {
    if (this.stopped || this.retryTimers.has(key)) return;
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    const timer = setTimeout(
      () => {
        this.retryTimers.delete(key);
        this.add(key);
      },
      backoffDelay(this.retry, failures),
    );
    this.retryTimers.set(key, timer);
  }

  /** The key succeeded: its next failure starts the backoff from the beginning. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Keys with a retry scheduled. */
  get retrying(): number {
    return this.retryTimers.size;
  }

  get length(): number {
    return this.waiting.size + this.active.size;
  }

  /** Resolves once nothing is waiting or running. */
  drain(): Promise<void> {
    if (this.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops waiting keys and scheduled retries; running ones finish (shutdown() waits for them). */
  stop(): void {
    this.stopped = true;
    for (const timer of this.retryTimers.values()) clearTimeout(timer);
    this.retryTimers.clear();
    this.failures.clear();
    this.waiting.clear();
    this.order.length = 0;
    this.dirty.clear();
    this.settle();
  }

  /** stop(), then resolves once no key is running any more: nothing of the queue is left in flight. */
  shutdown(): Promise<void> {
    this.stop();
    return this.drain();
  }

  private pump(): void {
    while (this.active.size < this.concurrency && this.order.length > 0) {
      const key = this.order.shift()!;
      this.waiting.delete(key);
      this.active.add(key);
      // run() never rejects: a failing worker is reported to onError.
      void this.run(key);
    }
    this.settle();
  }

  private async run(key: string): Promise<void> {
    try {
      await this.worker(key);
    } catch (error) {
      this.onError(key, error);
    } finally {
      this.active.delete(key);
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
  }

  private settle(): void {
    if (this.length > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
