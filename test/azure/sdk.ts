// The real Azure SDK clients pointed at a FakeAzure, for the tests of the fake itself. They are
// built directly (not through src/azure) so that these tests pin the fake to the SDK, whatever
// src does with it; the settings are the ones src/azure/clients.ts uses for a custom cloud.
import { ManagedServiceIdentityClient } from "@azure/arm-msi";
import { ClientAssertionCredential, ClientSecretCredential, WorkloadIdentityCredential, type TokenCredential } from "@azure/identity";
import assert from "node:assert/strict";
import type { FakeAzure } from "./fake.js";
import { tokenRequest } from "./http.js";

/** Fast SDK retries so fault tests take seconds; Retry-After is still honoured as sent. */
export const FAST_RETRY = { maxRetries: 3, retryDelayInMs: 20, maxRetryDelayInMs: 100 };

// The fake's authority host is unknown to MSAL: without this MSAL would ask login.microsoftonline.com about it.
const authority = (fake: FakeAzure) => ({ authorityHost: fake.url, disableInstanceDiscovery: true, retryOptions: FAST_RETRY });

/** The fake's service principal, with its client secret. */
export function secretCredential(fake: FakeAzure): TokenCredential {
  return new ClientSecretCredential(fake.tenantId, fake.app.clientId, fake.app.clientSecret, authority(fake));
}

/** A client (e.g. a managed identity's client ID) proving itself with a JWT, as workload identity does. */
export function assertionCredential(fake: FakeAzure, clientId: string, assertion: string | (() => Promise<string>), tenantId = fake.tenantId): TokenCredential {
  const getAssertion = typeof assertion === "string" ? async () => assertion : assertion;
  return new ClientAssertionCredential(tenantId, clientId, getAssertion, authority(fake));
}

/** What a pod with the workload identity webhook's env gets: the token read from a projected file. */
export function workloadIdentityCredential(fake: FakeAzure, clientId: string, tokenFilePath: string, tenantId = fake.tenantId): TokenCredential {
  return new WorkloadIdentityCredential({ tenantId, clientId, tokenFilePath, ...authority(fake) });
}

export function msiClient(fake: FakeAzure, subscriptionId: string, credential: TokenCredential = secretCredential(fake)): ManagedServiceIdentityClient {
  return new ManagedServiceIdentityClient(credential, subscriptionId, {
    endpoint: fake.url,
    credentialScopes: [`${fake.audience}/.default`],
    retryOptions: FAST_RETRY,
  });
}

/** The Resource Manager scope of the fake, for getToken(). */
export const armScope = (fake: FakeAzure): string => `${fake.audience}/.default`;

/** An `Authorization` header value from the fake's token endpoint, for raw requests to its ARM. */
export async function bearer(fake: FakeAzure): Promise<string> {
  const answer = await tokenRequest(fake.url, fake.tenantId, {
    grant_type: "client_credentials",
    client_id: fake.app.clientId,
    client_secret: fake.app.clientSecret,
    scope: `${fake.audience}/.default`,
  });
  assert.equal(answer.status, 200, answer.text);
  return `Bearer ${(answer.json as { access_token: string }).access_token}`;
}
