import type { Logger } from "pino";
import { TokenBucket } from "../retry/token-bucket.js";

/**
 * A warning that hostile or broken clients could make the server repeat per request: at most `burst`
 * lines at once and `perMinute` a minute after that (src/retry/token-bucket.ts); the lines left out
 * are counted and the next line says how many.
 */
export class ThrottledLog {
  private readonly bucket: TokenBucket;
  private suppressed = 0;

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    burst = 5,
    perMinute = 6,
  ) {
    this.bucket = new TokenBucket(burst, perMinute / 60, now());
  }

  warn(fields: Record<string, unknown>, message: string): void {
    if (!this.bucket.take(this.now())) {
      this.suppressed++;
      return;
    }
    this.log.warn({ ...fields, suppressedBefore: this.suppressed }, message);
    this.suppressed = 0;
  }
}
