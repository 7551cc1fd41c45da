/** What kind of endpoint a request hit. */
export type RequestKind = "token" | "openid" | "arm" | "unknown";

/** A request as fault matchers see it. */
export interface FakeRequest {
  method: string;
  /** Path only, as sent. */
  path: string;
  /** Path and query, as sent. */
  url: string;
  kind: RequestKind;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

export type FakeFault =
  /** Any status with ARM's error body (or AAD's on token endpoints); Retry-After when given; `code` overrides ARM's error code. */
  | { type: "status"; status: number; retryAfterSeconds?: number; code?: string }
  /** The normal answer, late. */
  | { type: "delay"; ms: number }
  /** The socket is destroyed before any answer. */
  | { type: "reset" }
  /** No answer, ever: the connection stays open and silent (a black-holed Azure) until the client gives up or the fake closes. */
  | { type: "hang" }
  /** 200 with a body that is not valid JSON (a truncated listing by default). */
  | { type: "malformed"; body?: string }
  /** An AAD error from the token endpoint. */
  | { type: "token-error"; status?: number; error?: string; aadsts?: number; description?: string };

export const faults = {
  throttle: (retryAfterSeconds: number): FakeFault => ({ type: "status", status: 429, retryAfterSeconds }),
  status: (status: number, retryAfterSeconds?: number): FakeFault => ({
    type: "status",
    status,
    ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
  }),
  /** An ARM error with a specific code, e.g. 404 SubscriptionNotFound for a subscription deleted after it was listed. */
  armError: (status: number, code: string): FakeFault => ({ type: "status", status, code }),
  delay: (ms: number): FakeFault => ({ type: "delay", ms }),
  reset: (): FakeFault => ({ type: "reset" }),
  hang: (): FakeFault => ({ type: "hang" }),
  malformed: (body?: string): FakeFault => ({ type: "malformed", ...(body === undefined ? {} : { body }) }),
  tokenError: (fields: Omit<Extract<FakeFault, { type: "token-error" }>, "type"> = {}): FakeFault => ({ type: "token-error", ...fields }),
};

export interface FaultRule {
  /**
   * Which requests: a predicate, or a regular expression tested against path + query. Default:
   * token requests for a token-error, Resource Manager requests for everything else.
   */
  match?: RegExp | ((request: FakeRequest) => boolean);
  /** How many matching requests get the fault (default 1; Infinity for all). */
  times?: number;
  fault: FakeFault;
}

/** A rule once injected: how often it fired so far. */
export interface InjectedFault {
  readonly served: number;
  readonly remaining: number;
  cancel(): void;
}

class ActiveFault implements InjectedFault {
  served = 0;
  private cancelled = false;
  constructor(private readonly rule: FaultRule) {}

  get remaining(): number {
    return this.cancelled ? 0 : Math.max(0, (this.rule.times ?? 1) - this.served);
  }

  cancel(): void {
    this.cancelled = true;
  }

  matches(request: FakeRequest): boolean {
    if (this.remaining <= 0) return false;
    const { match, fault } = this.rule;
    if (match === undefined) return fault.type === "token-error" ? request.kind === "token" : request.kind === "arm";
    if (match instanceof RegExp) {
      match.lastIndex = 0;
      return match.test(request.url);
    }
    return match(request);
  }

  take(): FakeFault {
    this.served++;
    return this.rule.fault;
  }
}

/** Injected faults in injection order; the first live rule that matches a request fires. */
export class FaultTable {
  private rules: ActiveFault[] = [];

  add(rule: FaultRule): InjectedFault {
    const active = new ActiveFault(rule);
    this.rules.push(active);
    return active;
  }

  next(request: FakeRequest): FakeFault | undefined {
    this.rules = this.rules.filter((rule) => rule.remaining > 0);
    return this.rules.find((rule) => rule.matches(request))?.take();
  }

  clear(): void {
    for (const rule of this.rules) rule.cancel();
    this.rules = [];
  }
}
