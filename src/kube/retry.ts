import { isRetryable, retryAfterMs } from "./errors.js";

export interface RetryOptions {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Stop retrying (e.g. leadership lost); the last error is rethrown. */
  shouldStop?: () => boolean;
  retryable?: (error: unknown) => boolean;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 5, baseDelayMs: 200, maxDelayMs: 10_000 };

/** Runs `operation`, retrying retryable failures with exponential backoff and jitter, honouring Retry-After. */
export async function withRetry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions = DEFAULT_RETRY): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      const retryable = (options.retryable ?? isRetryable)(error);
      if (!retryable || attempt >= options.attempts || options.shouldStop?.()) throw error;
      const backoff = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
      const delay = retryAfterMs(error) ?? backoff * (0.5 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, options.maxDelayMs)));
    }
  }
}
