/** HTTP status of an error thrown by client-node's generated APIs (ApiException.code), if any. */
export function statusCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** Milliseconds the API server asked us to wait (Retry-After on 429/503), if it said. */
export function retryAfterMs(error: unknown): number | undefined {
  const headers = (error as { headers?: Record<string, string> } | null)?.headers;
  const value = headers?.["retry-after"] ?? headers?.["Retry-After"];
  const seconds = value === undefined ? NaN : Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/** The API server's own message from a Status body, falling back to the error text. */
export function kubeErrorMessage(error: unknown): string {
  const body = (error as { body?: unknown } | null)?.body;
  const parsed = typeof body === "string" ? safeJson(body) : body;
  const message = (parsed as { message?: unknown } | null)?.message;
  if (typeof message === "string") return message;
  const status = statusCode(error);
  const text = error instanceof Error ? error.message.split("\n")[0] ?? error.message : String(error);
  return status ? `HTTP ${status}: ${text}` : text;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Conflicts, throttling and transient server errors are worth another try; the rest is not. */
export function isRetryable(error: unknown): boolean {
  const status = statusCode(error);
  if (status === undefined) return true; // network error
  return status === 409 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}
