import { type BackoffPolicy, type RetryOptions } from "../retry/backoff.js";
import { isRetryableWrite, retryAfterMs, type WriteVerb } from "./errors.js";

/** One write request retried in place: 200 ms doubling to 10 s, jittered, at most 5 attempts. */
export const KUBE_WRITE_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 10_000, jitter: 0.5 };

/** How a Kubernetes write of `verb` is retried (Retry-After honoured on 429/503). */
export function kubeWriteRetry(verb: WriteVerb, overrides: Partial<RetryOptions> = {}): RetryOptions {
  return { attempts: 5, backoff: KUBE_WRITE_BACKOFF, retryable: (error) => isRetryableWrite(verb, error), retryAfterMs, ...overrides };
}
