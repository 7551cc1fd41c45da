import { randomUUID } from "node:crypto";
import type { FakeRequest } from "./faults.js";
import { identityJson, subscriptionJson, type FakeModel } from "./model.js";

/** One answer of the fake's Resource Manager. */
export interface ArmAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** Whose quota the request used (reads unless said), for the x-ms-ratelimit-remaining-* headers. */
  quota?: { scope: "subscription"; subscriptionId: string; operation?: "reads" | "writes" | "deletes" } | { scope: "tenant" };
}

export function armError(status: number, code: string, message: string, headers?: Record<string, string>): ArmAnswer {
  return { status, body: { error: { code, message } }, ...(headers ? { headers } : {}) };
}

const ERROR_CODES: Readonly<Record<number, string>> = {
  400: "BadRequest",
  403: "AuthorizationFailed",
  404: "NotFound",
  408: "RequestTimeout",
  409: "Conflict",
  429: "SubscriptionRequestsThrottled",
  500: "InternalServerError",
  502: "BadGateway",
  503: "ServiceUnavailable",
  504: "GatewayTimeout",
};

/** The error ARM would send with an injected status. */
export function injectedArmError(status: number, subscriptionId: string | undefined): ArmAnswer {
  const code = ERROR_CODES[status] ?? (status >= 500 ? "InternalServerError" : "BadRequest");
  const message =
    status === 429
      ? `Number of 'read' requests for subscription '${subscriptionId ?? "(tenant)"}' actor '${randomUUID()}' exceeded. Please try again after the time given in Retry-After. Refer to https://aka.ms/arm-throttling`
      : status >= 500
        ? `Encountered internal server error. Diagnostic information: timestamp '${new Date().toISOString()}', subscription id '${subscriptionId ?? ""}', tracking id '${randomUUID()}', request correlation id '${randomUUID()}'.`
        : `Injected ${status} from the fake.`;
  return armError(status, code, message);
}

const PROVIDER = "providers/microsoft\\.managedidentity/userassignedidentities";
const ROUTES = {
  subscriptions: /^\/subscriptions\/?$/i,
  subscription: /^\/subscriptions\/([^/]+)\/?$/i,
  bySubscription: new RegExp(`^/subscriptions/([^/]+)/${PROVIDER}/?$`, "i"),
  byResourceGroup: new RegExp(`^/subscriptions/([^/]+)/resourcegroups/([^/]+)/${PROVIDER}/?$`, "i"),
  identity: new RegExp(`^/subscriptions/([^/]+)/resourcegroups/([^/]+)/${PROVIDER}/([^/]+)/?$`, "i"),
};

export function resourceNotFound(type: string, name: string, resourceGroup: string): ArmAnswer {
  return armError(
    404,
    "ResourceNotFound",
    `The Resource '${type}/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

export function subscriptionOfPath(path: string): string | undefined {
  const match = /^\/subscriptions\/([^/]+)/i.exec(path);
  return match ? decodeURIComponent(match[1]!) : undefined;
}

/** Resource Manager's read API for subscriptions and user-assigned identities, paged like ARM. */
export class FakeArm {
  constructor(
    private readonly model: FakeModel,
    private readonly baseUrl: () => string,
    private readonly pageSize: () => number,
  ) {}

  /** Answers an authenticated request (the caller has checked the bearer token). */
  answer(request: FakeRequest): ArmAnswer {
    const url = new URL(request.url, "https://fake.invalid");
    const path = decodeURIComponent(url.pathname);
    const apiVersion = url.searchParams.get("api-version");
    if (!apiVersion) return armError(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
    if (request.method !== "GET") return armError(405, "MethodNotAllowed", `The fake serves reads only; ${request.method} ${path} is not supported.`);
    const skipToken = url.searchParams.get("$skiptoken");
    let match: RegExpExecArray | null;

    if (ROUTES.subscriptions.test(path)) {
      const listed = this.page(this.model.subscriptions().map(subscriptionJson), skipToken, "/subscriptions", apiVersion);
      return { ...listed, quota: { scope: "tenant" } };
    }
    if ((match = ROUTES.subscription.exec(path))) {
      const subscription = this.model.subscription(match[1]!);
      if (!subscription) return subscriptionNotFound(match[1]!);
      return { status: 200, body: subscriptionJson(subscription), quota: { scope: "subscription", subscriptionId: subscription.subscriptionId } };
    }
    if ((match = ROUTES.bySubscription.exec(path))) {
      const subscription = this.model.subscription(match[1]!);
      if (!subscription) return subscriptionNotFound(match[1]!);
      const canonical = `/subscriptions/${subscription.subscriptionId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities`;
      const listed = this.page(this.model.identities(subscription.subscriptionId).map(identityJson), skipToken, canonical, apiVersion);
      return { ...listed, quota: { scope: "subscription", subscriptionId: subscription.subscriptionId } };
    }
    if ((match = ROUTES.byResourceGroup.exec(path))) {
      const [, subscriptionId, resourceGroup] = match as unknown as [string, string, string];
      const subscription = this.model.subscription(subscriptionId);
      if (!subscription) return subscriptionNotFound(subscriptionId);
      const identities = this.model.identities(subscription.subscriptionId, resourceGroup);
      if (!this.model.hasResourceGroup(subscription.subscriptionId, resourceGroup))
        return armError(404, "ResourceGroupNotFound", `Resource group '${resourceGroup}' could not be found.`);
      const canonical = `/subscriptions/${subscription.subscriptionId}/resourcegroups/${resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities`;
      const listed = this.page(identities.map(identityJson), skipToken, canonical, apiVersion);
      return { ...listed, quota: { scope: "subscription", subscriptionId: subscription.subscriptionId } };
    }
    if ((match = ROUTES.identity.exec(path))) {
      const [, subscriptionId, resourceGroup, name] = match as unknown as [string, string, string, string];
      const subscription = this.model.subscription(subscriptionId);
      if (!subscription) return subscriptionNotFound(subscriptionId);
      const identity = this.model.identity({ subscriptionId, resourceGroup, name });
      if (!identity) return resourceNotFound("Microsoft.ManagedIdentity/userAssignedIdentities", name, resourceGroup);
      return { status: 200, body: identityJson(identity), quota: { scope: "subscription", subscriptionId: subscription.subscriptionId } };
    }
    return armError(404, "NotFound", `The fake has no route for GET ${path}.`);
  }

  private page(items: unknown[], skipToken: string | null, canonicalPath: string, apiVersion: string): ArmAnswer {
    return listPage(items, { skipToken, nextBase: `${this.baseUrl()}${canonicalPath}`, apiVersion, size: this.pageSize() });
  }
}

export interface PageRequest {
  /** The `$skiptoken` of the request, null on the first page. */
  skipToken: string | null;
  /** The absolute URL (no query) that `nextLink` points at. */
  nextBase: string;
  apiVersion: string;
  size: number;
  /** Query parameters that `nextLink` carries on, e.g. `$top`. */
  carry?: Record<string, string>;
}

/** One page of `items`: `nextLink` is absolute and carries `$skiptoken`; the last page has none. */
export function listPage(items: unknown[], request: PageRequest): ArmAnswer {
  let offset = 0;
  if (request.skipToken !== null) {
    const decoded = decodeSkipToken(request.skipToken);
    if (decoded === undefined) return armError(400, "InvalidSkipToken", `The provided skip token '${request.skipToken}' is not valid.`);
    offset = decoded;
  }
  const size = Math.max(1, request.size);
  const value = items.slice(offset, offset + size);
  const carried = Object.entries(request.carry ?? {})
    .map(([name, item]) => `&${name}=${encodeURIComponent(item)}`)
    .join("");
  const next =
    offset + size < items.length
      ? `${request.nextBase}?api-version=${encodeURIComponent(request.apiVersion)}${carried}&$skiptoken=${encodeSkipToken(offset + size)}`
      : undefined;
  return { status: 200, body: { value, ...(next ? { nextLink: next } : {}) } };
}

export function subscriptionNotFound(subscriptionId: string): ArmAnswer {
  return armError(404, "SubscriptionNotFound", `The subscription '${subscriptionId}' could not be found.`);
}

// Opaque to clients, as ARM's are; an offset inside.
function encodeSkipToken(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset })).toString("base64url");
}

function decodeSkipToken(token: string): number | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    const offset = typeof parsed === "object" && parsed !== null ? (parsed as { o?: unknown }).o : undefined;
    return typeof offset === "number" && Number.isSafeInteger(offset) && offset >= 0 ? offset : undefined;
  } catch {
    return undefined;
  }
}
