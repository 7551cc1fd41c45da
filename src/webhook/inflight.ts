/**
 * How many bytes of admission bodies the webhook server holds at once, decided from the declared
 * Content-Length before a byte of the body is read (pure: the server takes and gives back).
 *
 * Anyone in the cluster can reach the webhook, so without a bound a few clients posting maximal
 * reviews back to back make the process buffer and parse them all at once and outgrow its memory
 * limit. Beyond the bound the server answers 429 at once; the API server retries after Retry-After.
 *
 * The API server's own reviews of the guarded kinds are a few KiB. So that a flood of large bodies
 * cannot crowd them out, a large body (over `smallBytes`) may fill the budget only up to
 * `limitBytes - reserveBytes`; small ones may use all of it. Each request is also charged
 * `overheadBytes` (request objects, the parser, the answer), so a flood of tiny requests is bounded
 * in count as well.
 */
export interface InflightLimits {
  limitBytes: number;
  /** Kept for small bodies: large ones are refused once they would leave less than this free. */
  reserveBytes: number;
  /** Bodies up to this size (declared) are "small". */
  smallBytes: number;
  /** Charged per request on top of its body. */
  overheadBytes: number;
}

/** A body of unknown length (chunked) is charged the most it may grow to. */
export type Declared = { bytes: number } | { unknownUpTo: number };

export class InflightBudget {
  private used = 0;

  constructor(readonly limits: InflightLimits) {
    const { limitBytes, reserveBytes, smallBytes, overheadBytes } = limits;
    if (!(limitBytes > 0) || !(reserveBytes >= 0) || !(reserveBytes < limitBytes) || !(smallBytes >= 0) || !(overheadBytes >= 0))
      throw new Error(`an in-flight budget needs 0 <= reserve < limit and sizes >= 0, not ${JSON.stringify(limits)}`);
  }

  /** Bytes held by requests in flight now. */
  get inUse(): number {
    return this.used;
  }

  /** The bytes charged for the request (give them back with release), or undefined: refuse it. */
  take(declared: Declared): number | undefined {
    const body = "bytes" in declared ? declared.bytes : declared.unknownUpTo;
    const small = "bytes" in declared && body <= this.limits.smallBytes;
    const charge = body + this.limits.overheadBytes;
    const ceiling = small ? this.limits.limitBytes : this.limits.limitBytes - this.limits.reserveBytes;
    // The first request is always admitted, however large: otherwise a limit below one maximal body would refuse it forever.
    if (this.used > 0 && this.used + charge > ceiling) return undefined;
    this.used += charge;
    return charge;
  }

  release(charge: number): void {
    this.used = Math.max(0, this.used - charge);
  }
}

/** The declared size of a request's body from its headers (no Content-Length and not chunked: no body). */
export function declaredBody(headers: { "content-length"?: string | undefined; "transfer-encoding"?: string | undefined }, bodyLimit: number): Declared {
  if (headers["transfer-encoding"] !== undefined) return { unknownUpTo: bodyLimit };
  const length = headers["content-length"];
  if (length === undefined) return { bytes: 0 };
  // Node's parser refuses a malformed Content-Length before we see it; charge the most if one got through anyway.
  const bytes = Number(length);
  return Number.isSafeInteger(bytes) && bytes >= 0 ? { bytes } : { unknownUpTo: bodyLimit };
}
