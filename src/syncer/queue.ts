/**
 * A keyed work queue like client-go's: a key waits at most once; a key added while it is being
 * processed runs again afterwards (so no event is lost); at most `concurrency` keys run at once.
 */
export class WorkQueue {
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

  get length(): number {
    return this.waiting.size + this.active.size;
  }

  /** Resolves once nothing is waiting or running. */
  drain(): Promise<void> {
    if (this.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops waiting keys; running ones finish. */
  stop(): void {
    this.stopped = true;
    this.waiting.clear();
    this.order.length = 0;
    this.dirty.clear();
    this.settle();
  }

  private pump(): void {
    while (this.active.size < this.concurrency && this.order.length > 0) {
      const key = this.order.shift()!;
      this.waiting.delete(key);
      this.active.add(key);
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
