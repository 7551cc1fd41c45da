/**
 * A token bucket (pure, the clock is passed in): `burst` tokens at most, refilled at `perSecond`.
 * take() spends one token if there is one; nothing waits, so the caller decides what a refusal means.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    nowMs: number,
  ) {
    if (!(burst >= 1) || !(perSecond > 0)) throw new Error(`a token bucket needs burst >= 1 and a positive rate, not ${burst} and ${perSecond}`);
    this.tokens = burst;
    this.last = nowMs;
  }

  take(nowMs: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, nowMs - this.last) / 1000) * this.perSecond);
    this.last = Math.max(this.last, nowMs);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
