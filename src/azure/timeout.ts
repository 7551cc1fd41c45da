import { RestError, type PipelinePolicy } from "@azure/core-rest-pipeline";

/**
 * Gives every attempt a deadline (headers and body), and makes a missed deadline retryable.
 *
 * The SDK's own `request.timeout` is no use here: it rejects with a plain AbortError, which the
 * retry policy rethrows at once (it retries RestErrors only), so one hung connection would fail a
 * whole subscription; and its timer is not cleared when the attempt fails otherwise (a reset), so
 * it holds the process open for the full timeout. Instead this policy aborts the attempt through
 * its own signal and reports a RestError with code ETIMEDOUT, which the SDK's exponential strategy
 * retries like the transport error it is. The caller's own abort signal keeps working.
 */
export function attemptTimeoutPolicy(timeoutMs: number): PipelinePolicy {
  return {
    name: "azureMsiOperatorAttemptTimeout",
    async sendRequest(request, next) {
      const callerSignal = request.abortSignal;
      const controller = new AbortController();
      const forward = () => controller.abort();
      callerSignal?.addEventListener("abort", forward);
      if (callerSignal?.aborted) controller.abort();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      request.abortSignal = controller.signal;
      try {
        return await next(request);
      } catch (error) {
        if (!timedOut || callerSignal?.aborted) throw error;
        throw new RestError(`no response from ${new URL(request.url).host} within ${timeoutMs} ms`, { code: "ETIMEDOUT", request });
      } finally {
        clearTimeout(timer);
        // The retry policy around us looks at this signal to tell "caller gave up" from "try again".
        request.abortSignal = callerSignal;
        callerSignal?.removeEventListener("abort", forward);
      }
    },
  };
}
