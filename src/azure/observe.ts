import type { PipelinePolicy, PipelineRequest } from "@azure/core-rest-pipeline";
import { isIP } from "node:net";

/** One attempt at one Resource Manager call (retries are attempts of their own), for metrics. */
export interface AzureRequestInfo {
  method: string;
  url: string;
  /** The host shortened to its last three labels ("management.azure.com"), as the Go original labels it. */
  apiEndpoint: string;
  /** 0 when no response came (connection reset, timeout). */
  statusCode: number;
  durationMs: number;
  /** 1 for the first try, 2 for the first retry, ... */
  attempt: number;
  subscriptionId?: string;
  tenantId?: string;
  /** Lower-cased `namespace/type`, e.g. "microsoft.managedidentity/userassignedidentities". */
  resourceProvider?: string;
  /** Lower-cased, e.g. "westeurope". */
  routingRegion?: string;
  /** Every `x-ms-ratelimit-remaining-*` response header, names lower-cased. */
  rateLimitHeaders: Record<string, string>;
  /** The transport error code when there was no response (ECONNRESET, ETIMEDOUT, ...). */
  errorCode?: string;
}

export type AzureRequestObserver = (info: AzureRequestInfo) => void;

const SUBSCRIPTION_PATH = /^\/subscriptions\/([^/?]+)/i;
const PROVIDER_PATH = /\/providers\/([^/]+)\/([^/?]+)/i;
const RATE_LIMIT_PREFIX = "x-ms-ratelimit-remaining-";

/** Subscription and resource provider of an ARM path, lower-cased. */
export function parseArmPath(pathname: string): { subscriptionId?: string; resourceProvider?: string } {
  const path = `/${pathname.replace(/^\/+/, "")}`;
  const subscription = SUBSCRIPTION_PATH.exec(path)?.[1];
  const provider = PROVIDER_PATH.exec(path);
  return {
    ...(subscription ? { subscriptionId: decodeURIComponent(subscription).toLowerCase() } : {}),
    ...(provider ? { resourceProvider: `${provider[1]}/${provider[2]}`.toLowerCase() } : {}),
  };
}

/** "WESTEUROPE:20261123T000000Z:uuid" -> "westeurope". */
export function routingRegionOf(header: string | undefined): string | undefined {
  const region = header?.split(":", 1)[0]?.trim();
  return region ? region.toLowerCase() : undefined;
}

export function rateLimitHeadersOf(headers: Iterable<[string, string]>): Record<string, string> {
  const found: Record<string, string> = {};
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (lower.startsWith(RATE_LIMIT_PREFIX)) found[lower] = value;
  }
  return found;
}

export interface RateLimitReading {
  scope: string;
  type: string;
  remaining: number;
}

// The Go original's label for this one header differs from the pattern of all the others; kept.
const TYPE_OVERRIDES: Readonly<Record<string, string>> = { "subscription-resource-requests": "resourceRequests" };

/**
 * `x-ms-ratelimit-remaining-subscription-reads: 11999` -> scope "subscription", type "reads".
 * Multi-quota values ("QueriesPerHour:496,QueriesPerMin:37") give one reading per quota, typed
 * "<type>.<quota>". Values that are not numbers are dropped.
 */
export function rateLimitReadings(rateLimitHeaders: Readonly<Record<string, string>>): RateLimitReading[] {
  const readings: RateLimitReading[] = [];
  for (const [name, value] of Object.entries(rateLimitHeaders)) {
    const lower = name.toLowerCase();
    if (!lower.startsWith(RATE_LIMIT_PREFIX)) continue;
    const rest = lower.slice(RATE_LIMIT_PREFIX.length);
    const dash = rest.indexOf("-");
    if (dash <= 0) continue;
    const scope = rest.slice(0, dash);
    const type = TYPE_OVERRIDES[rest] ?? rest.slice(dash + 1);
    const text = value.trim();
    if (/^-?\d+$/.test(text)) {
      readings.push({ scope, type, remaining: Number(text) });
      continue;
    }
    for (const part of text.split(",")) {
      const [quota, amount] = part.split(":", 2).map((piece) => piece.trim());
      if (quota && amount !== undefined && /^-?\d+$/.test(amount)) readings.push({ scope, type: `${type}.${quota}`, remaining: Number(amount) });
    }
  }
  return readings;
}

/**
 * The tenant a request was made for, from the `tid` claim of its bearer token. The token is only
 * decoded, not verified: this feeds a metric label, never a decision.
 */
export function tenantIdFromAuthorization(header: string | undefined): string | undefined {
  const token = /^Bearer\s+(\S+)$/i.exec(header ?? "")?.[1];
  const payload = token?.split(".")[1];
  if (!payload) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    const tid = typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>).tid : undefined;
    return typeof tid === "string" && tid !== "" ? tid.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

/** "eastus.management.azure.com" -> "management.azure.com"; an IP address stays whole. */
export function apiEndpointOf(hostname: string): string {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  if (isIP(host) !== 0) return host;
  return host.split(".").slice(-3).join(".");
}

/**
 * A policy for the per-attempt part of the pipeline (after signing, so the bearer token is on the
 * request and token acquisition is not counted as ARM latency). The observer must not break a
 * call: whatever it throws is swallowed.
 */
export function observerPolicy(observer: AzureRequestObserver): PipelinePolicy {
  const attempts = new WeakMap<PipelineRequest, number>();
  return {
    name: "azureMsiOperatorObserver",
    async sendRequest(request, next) {
      const attempt = (attempts.get(request) ?? 0) + 1;
      attempts.set(request, attempt);
      const started = performance.now();
      const report = (statusCode: number, headers: Iterable<[string, string]>, errorCode?: string) => {
        const url = new URL(request.url);
        const headerMap = new Map([...headers].map(([name, value]) => [name.toLowerCase(), value]));
        const info: AzureRequestInfo = {
          method: request.method,
          url: request.url,
          apiEndpoint: apiEndpointOf(url.hostname),
          statusCode,
          durationMs: performance.now() - started,
          attempt,
          ...parseArmPath(url.pathname),
          ...optional("tenantId", tenantIdFromAuthorization(request.headers.get("authorization"))),
          ...optional("routingRegion", routingRegionOf(headerMap.get("x-ms-routing-request-id"))),
          rateLimitHeaders: rateLimitHeadersOf(headerMap),
          ...optional("errorCode", errorCode),
        };
        try {
          observer(info);
        } catch {
          // A metrics bug must not turn into a failed Azure call.
        }
      };
      try {
        const response = await next(request);
        report(response.status, response.headers);
        return response;
      } catch (error) {
        const failure = error as { statusCode?: number; code?: string; response?: { headers: Iterable<[string, string]> } };
        report(failure.statusCode ?? 0, failure.response?.headers ?? [], failure.code);
        throw error;
      }
    },
  };
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}
