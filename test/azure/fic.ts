// The federated identity credential (FIC) routes of Microsoft.ManagedIdentity (api-version
// 2024-11-30, what @azure/arm-msi 2.2.0 sends), with the rules Azure enforces on them. Sources:
// the REST examples in shared/fixtures/azure-arm-examples/2024-11-30 for the shapes, and
// https://learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations
// ("Errors", "Concurrent updates aren't supported") for the refusals.
import type { FakeRequest } from "./faults.js";
import { armError, listPage, resourceNotFound, subscriptionNotFound, type ArmAnswer } from "./arm.js";
import { federatedCredentialJson, type FakeFederatedCredential, type FakeIdentity, type FakeModel } from "./model.js";

/** "A maximum of 20 federated identity credentials can be added to an application or user-assigned managed identity." */
export const MAX_FEDERATED_CREDENTIALS = 20;
/** The documented length limit of issuer, subject and each audience. */
const MAX_FIELD_LENGTH = 600;
/** Alphanumeric, dash, underscore, 3-120 characters, the first alphanumeric (the pattern the SDK declares, but does not check). */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]{2,119}$/;
const ROUTE =
  /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.managedidentity\/userassignedidentities\/([^/]+)\/federatedidentitycredentials(?:\/([^/]+))?\/?$/i;

export function isFederatedCredentialPath(path: string): boolean {
  return ROUTE.test(safeDecode(path));
}

export interface FederatedCredentialRouteContext {
  model: FakeModel;
  baseUrl: () => string;
  pageSize: () => number;
  /** How long one PUT or DELETE takes; two overlapping writes on one identity conflict. */
  writeMs: () => number;
  /** A timer the fake cancels on close(). */
  sleep: (ms: number) => Promise<void>;
}

interface Target {
  identity: FakeIdentity;
  name: string | undefined;
  apiVersion: string;
  url: URL;
  quota: NonNullable<ArmAnswer["quota"]>;
}

export class FederatedCredentialRoutes {
  /** Lower-cased IDs of identities with a FIC write under way. */
  private readonly writing = new Set<string>();

  constructor(private readonly context: FederatedCredentialRouteContext) {}

  /** Answers an authenticated request to a FIC path (isFederatedCredentialPath). */
  async answer(request: FakeRequest, body: string): Promise<ArmAnswer> {
    const target = this.target(request);
    if ("status" in target) return target;
    const { name } = target;
    if (name === undefined) {
      if (request.method === "GET") return this.list(target);
      return armError(405, "MethodNotAllowed", `The requested resource does not support http method '${request.method}'.`);
    }
    if (!NAME.test(name)) return badRequest(`Federated Identity Credential name '${name}' is invalid.`);
    switch (request.method) {
      case "GET":
        return this.get(target, name);
      case "PUT":
        return this.put(target, name, body);
      case "DELETE":
        return this.remove(target, name);
      default:
        return armError(405, "MethodNotAllowed", `The requested resource does not support http method '${request.method}'.`);
    }
  }

  private target(request: FakeRequest): Target | ArmAnswer {
    const url = new URL(request.url, "https://fake.invalid");
    const match = ROUTE.exec(safeDecode(url.pathname));
    if (!match) return armError(404, "NotFound", `The fake has no route for ${request.method} ${url.pathname}.`);
    const [, subscriptionId, resourceGroup, identityName, name] = match as unknown as [string, string, string, string, string | undefined];
    const apiVersion = url.searchParams.get("api-version");
    if (!apiVersion) return armError(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
    const subscription = this.context.model.subscription(subscriptionId);
    if (!subscription) return subscriptionNotFound(subscriptionId);
    const identity = this.context.model.identity({ subscriptionId, resourceGroup, name: identityName });
    if (!identity) return parentNotFound();
    const operation = request.method === "PUT" ? "writes" : request.method === "DELETE" ? "deletes" : "reads";
    return { identity, name, apiVersion, url, quota: { scope: "subscription", subscriptionId: subscription.subscriptionId, operation } };
  }

  private list({ identity, apiVersion, url, quota }: Target): ArmAnswer {
    const topText = url.searchParams.get("$top");
    const top = topText === null ? undefined : Number(topText);
    if (top !== undefined && !(Number.isSafeInteger(top) && top >= 1))
      return badRequest(`The value '${topText}' of the query parameter '$top' is invalid: it must be a positive integer.`);
    // The documented nextLink spells it $skipToken; ARM's own listings spell it $skiptoken.
    const skipToken = url.searchParams.get("$skiptoken") ?? url.searchParams.get("$skipToken");
    const items = this.context.model.federatedCredentials(identity).map((credential) => federatedCredentialJson(identity, credential));
    const listed = listPage(items, {
      skipToken,
      nextBase: `${this.context.baseUrl()}${collectionPath(identity)}`,
      apiVersion,
      size: Math.min(this.context.pageSize(), top ?? Infinity),
      ...(topText === null ? {} : { carry: { $top: topText } }),
    });
    return { ...listed, quota };
  }

  private get({ identity, quota }: Target, name: string): ArmAnswer {
    const credential = this.context.model.federatedCredential(identity, name);
    if (!credential) return credentialNotFound(identity, name);
    return { status: 200, body: federatedCredentialJson(identity, credential), quota };
  }

  private async put({ identity, quota }: Target, name: string, body: string): Promise<ArmAnswer> {
    const parsed = parseCredential(body);
    if ("status" in parsed) return parsed;
    return this.write(identity, async () => {
      const model = this.context.model;
      const existing = model.federatedCredential(identity, name);
      const clash = model
        .federatedCredentials(identity)
        .find((other) => other !== existing && other.issuer === parsed.issuer && other.subject === parsed.subject);
      if (clash) return badRequest("Issuer and subject combination already exists for this Managed Identity.");
      if (!existing && model.federatedCredentials(identity).length >= MAX_FEDERATED_CREDENTIALS) return tooMany(identity, name);
      // The name is the key and immutable: an update keeps the name as first written.
      const stored = model.putFederatedCredential(identity, { ...parsed, name: existing?.name ?? name });
      return { status: existing ? 200 : 201, body: federatedCredentialJson(identity, stored), quota };
    });
  }

  private async remove({ identity, quota }: Target, name: string): Promise<ArmAnswer> {
    return this.write(identity, async () => {
      const removed = this.context.model.removeFederatedCredential(identity, name);
      return { status: removed ? 200 : 204, body: "", quota };
    });
  }

  /**
   * A write holds its identity for writeMs. Azure refuses a second FIC write on the same identity
   * while one is under way (409) rather than queueing it, so callers must write one at a time.
   */
  private async write(identity: FakeIdentity, apply: () => Promise<ArmAnswer>): Promise<ArmAnswer> {
    const id = armIdentityId(identity);
    const lock = id.toLowerCase();
    if (this.writing.has(lock)) {
      return armError(
        409,
        "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
        `Too many Federated Identity Credentials are written concurrently for the managed identity '${id}'. Concurrent Federated Identity Credentials writes under the same managed identity are not supported.`,
      );
    }
    this.writing.add(lock);
    try {
      await this.context.sleep(this.context.writeMs());
      // The identity may have been deleted while the write was under way.
      if (!this.context.model.identity(identity)) return parentNotFound();
      return await apply();
    } finally {
      this.writing.delete(lock);
    }
  }
}

/** The checks Azure documents for a PUT body; the first failing one answers. */
function parseCredential(body: string): Omit<FakeFederatedCredential, "name"> | ArmAnswer {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (error) {
    return armError(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: '${(error as Error).message}'.`);
  }
  const properties = typeof json === "object" && json !== null ? (json as { properties?: unknown }).properties : undefined;
  if (typeof properties !== "object" || properties === null || Object.keys(properties).length === 0)
    return badRequest("Federated Identity Credential from HTTP body has empty properties");
  const { issuer, subject, audiences } = properties as Record<string, unknown>;
  if (typeof issuer !== "string" || issuer === "" || typeof subject !== "string" || subject === "" || audiences === undefined || audiences === null)
    return badRequest("The request format was unexpected. Federated Identity Credential must specify 'issuer', 'subject' and 'audience'.");
  if (!Array.isArray(audiences) || audiences.length !== 1 || typeof audiences[0] !== "string" || audiences[0] === "")
    return badRequest("Federated identity credentials must have exactly one audience.");
  if (!isHttpsUrl(issuer)) return badRequest(`The federated identity credential issuer '${issuer}' must be an https URL.`);
  for (const [field, value] of [
    ["issuer", issuer],
    ["subject", subject],
    ["audience", audiences[0]],
  ] as const)
    if (value.length > MAX_FIELD_LENGTH) return badRequest(`The federated identity credential ${field} must be at most ${MAX_FIELD_LENGTH} characters.`);
  return { issuer, subject, audiences: [audiences[0]] };
}

function isHttpsUrl(text: string): boolean {
  try {
    return new URL(text).protocol === "https:";
  } catch {
    return false;
  }
}

function badRequest(message: string): ArmAnswer {
  return armError(400, "BadRequest", message);
}

// The documented message for a FIC route under an identity that does not exist.
function parentNotFound(): ArmAnswer {
  return armError(404, "ResourceNotFound", "The parent user-assigned identity doesn't exist.");
}

function credentialNotFound(identity: FakeIdentity, name: string): ArmAnswer {
  return resourceNotFound(`Microsoft.ManagedIdentity/userAssignedIdentities/${identity.name}/federatedIdentityCredentials`, name, identity.resourceGroup);
}

// Azure documents the limit but not the words of this refusal; this says what happened and why.
function tooMany(identity: FakeIdentity, name: string): ArmAnswer {
  return badRequest(
    `Federated Identity Credential '${name}' cannot be created: the managed identity '${armIdentityId(identity)}' already has the maximum of ${MAX_FEDERATED_CREDENTIALS} federated identity credentials.`,
  );
}

// As Azure names the identity in FIC errors: provider and type in lower case, names as stored.
function armIdentityId(identity: FakeIdentity): string {
  return `/subscriptions/${identity.subscriptionId}/resourcegroups/${identity.resourceGroup}/providers/microsoft.managedidentity/userassignedidentities/${identity.name}`;
}

function collectionPath(identity: FakeIdentity): string {
  return `/subscriptions/${identity.subscriptionId}/resourcegroups/${identity.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${identity.name}/federatedIdentityCredentials`;
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
