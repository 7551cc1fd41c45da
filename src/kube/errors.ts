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
  const text = error instanceof Error ? (error.message.split("\n")[0] ?? error.message) : String(error);
  return status ? `HTTP ${status}: ${text}` : text;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export type WriteVerb = "create" | "patch" | "delete";

/**
 * Whether a failed write is worth another attempt: network errors, throttling (429) and server
 * errors. A 409 is a conflict worth retrying only for a patch; for a create it means AlreadyExists
 * (the writer adopts the object), for a delete a failed precondition (the object changed: the next
 * reconcile decides again).
 */
export function isRetryableWrite(verb: WriteVerb, error: unknown): boolean {
  const status = statusCode(error);
  if (status === undefined) return true;
  if (status === 409) return verb === "patch";
  return status === 429 || status >= 500;
}
