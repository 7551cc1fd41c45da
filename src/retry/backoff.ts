// The one retry model: exponential backoff with jitter, used for a request retried in place
// (withRetry), for a work-queue key retried later (WorkQueue.retryLater) and for an informer's
// re-list. Azure calls are retried by the Azure SDK's own pipeline (src/azure/clients.ts).

export interface BackoffPolicy {
  /** Delay after the first failure. */
  initialMs: number;
  /** No delay grows beyond this. */
  maxMs: number;
  /** Multiplier per further failure (default 2). */
  factor?: number;
  /** Spread: a delay d becomes a random value in [d * (1 - jitter), d] (default 0: none). */
  jitter?: number;
}

/** The delay after `failures` consecutive failures (1 = the first). */
export function backoffDelay(policy: BackoffPolicy, failures: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, failures - 1);
  const base = Math.min(policy.maxMs, policy.initialMs * (policy.factor ?? 2) ** exponent);
  const jitter = policy.jitter ?? 0;
  return base * (1 - jitter * random());
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it is aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error("aborted");
}

export interface RetryOptions {
  attempts: number;
  backoff: BackoffPolicy;
  /** Which errors are worth another attempt. */
  retryable: (error: unknown) => boolean;
  /** A delay the server asked for (e.g. Retry-After), taken instead of the backoff when given. */
  retryAfterMs?: (error: unknown) => number | undefined;
  /** Stop retrying (e.g. leadership lost); the last error is rethrown. */
  shouldStop?: () => boolean;
  signal?: AbortSignal;
}

/** Runs `operation`, retrying retryable failures with backoff; the last error is rethrown. */
export async function withRetry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!options.retryable(error) || attempt >= options.attempts || options.shouldStop?.() || options.signal?.aborted) throw error;
      const asked = options.retryAfterMs?.(error);
      const delay = Math.min(options.backoff.maxMs, asked ?? backoffDelay(options.backoff, attempt));
      await sleep(delay, options.signal);
    }
  }
}
