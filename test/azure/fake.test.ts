// The Azure fake against Azure's own examples, and the real SDK (through src/azure) against the fake.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createAzureClients, type AzureClients } from "../../src/azure/clients.js";
import { resolveEnvironment } from "../../src/azure/environment.js";
import { AzureListingError, listManagedIdentities, SubscriptionDiscoveryError } from "../../src/azure/listing.js";
import type { AzureRequestInfo } from "../../src/azure/observe.js";
import { FakeAzure, faults } from "./fake.js";
import { rawRequest, shapeOf, tokenRequest } from "./http.js";
import { bearer, FAST_RETRY } from "./sdk.js";

const FIXTURES = new URL("../../../shared/fixtures/azure-arm-examples/", import.meta.url);
const MSI_API = "2024-11-30";
const SUBSCRIPTIONS_API = "2022-12-01";

interface Example {
  parameters: Record<string, string>;
  responses: { "200": { body: Record<string, unknown> & { value?: Record<string, unknown>[]; nextLink?: string } } };
}

function example(path: string): Example {
  return JSON.parse(readFileSync(new URL(path, FIXTURES), "utf8")) as Example;
}

let fake: FakeAzure;
let observed: AzureRequestInfo[];

/** The operator's path: env vars as a pod would have them, the environment file, DefaultAzureCredential. */
async function clientsFor(options: { attemptTimeoutMs?: number; env?: Record<string, string> } = {}): Promise<AzureClients> {
  for (const name of ["AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_CERTIFICATE_PATH"])
    delete process.env[name];
  Object.assign(process.env, fake.credentialEnv(), options.env);
  const environment = await resolveEnvironment("AZUREPUBLICCLOUD", process.env);
  return createAzureClients({
    environment,
    observer: (info) => observed.push(info),
    retry: FAST_RETRY,
    ...(options.attemptTimeoutMs ? { attemptTimeoutMs: options.attemptTimeoutMs } : {}),
  });
}

beforeEach(async () => {
  fake = await FakeAzure.start();
  observed = [];
});
afterEach(async () => {
  await fake.close();
});

describe("the fake answers in the shapes of Azure's own examples", () => {
  test("GET of one identity equals IdentityGet.json, whatever the path's case", async () => {
    const { body } = example("2024-11-30/IdentityGet.json").responses["200"];
    fake.addIdentity({
      subscriptionId: "subid",
      resourceGroup: "rgName",
      name: "identityName",
      location: "eastus",
      clientId: "4024ab25-56a8-4370-aea6-6389221caf29",
      principalId: "25cc773c-7f05-40fc-a104-32d2300754ad",
      tenantId: "b6c948ef-f6b5-4384-8354-da3a15eca969",
      isolationScope: "None",
      tags: { key1: "value1", key2: "value2" },
    });
    const auth = await bearer(fake);
    for (const path of ["/subscriptions/subid/resourceGroups/rgName", "/SUBSCRIPTIONS/SUBID/resourcegroups/RGNAME"]) {
      const answer = await rawRequest(`${fake.url}${path}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/IDENTITYNAME?api-version=${MSI_API}`, {
        headers: { authorization: auth },
      });
      assert.equal(answer.status, 200, answer.text);
      // Same resource, same answer: ARM returns names as stored, not as asked.
      assert.deepEqual(answer.json, body);
    }
  });

  test("identity list pages match IdentityListBySubscription.json and IdentityListByResourceGroup.json, nextLink included", async () => {
    fake.pageSize = 1;
    fake.addIdentity({
      subscriptionId: "subid",
      resourceGroup: "rgName",
      name: "identityName",
      location: "eastus",
      clientId: "4024ab25-56a8-4370-aea6-6389221caf29",
      principalId: "25cc773c-7f05-40fc-a104-32d2300754ad",
      tenantId: "b6c948ef-f6b5-4384-8354-da3a15eca969",
      isolationScope: "Regional",
      tags: { key1: "value1", key2: "value2" },
    });
    fake.addIdentity({ subscriptionId: "subid", resourceGroup: "rgName", name: "second", tags: { key1: "a", key2: "b" } });
    const auth = await bearer(fake);
    for (const [file, path] of [
      ["2024-11-30/IdentityListBySubscription.json", "/subscriptions/subid/providers/Microsoft.ManagedIdentity/userAssignedIdentities"],
      ["2024-11-30/IdentityListByResourceGroup.json", "/subscriptions/subid/resourceGroups/rgName/providers/Microsoft.ManagedIdentity/userAssignedIdentities"],
    ] as const) {
      const documented = example(file).responses["200"].body;
      if (file.includes("ByResourceGroup"))
        fake.updateIdentity({ subscriptionId: "subid", resourceGroup: "rgName", name: "identityName" }, { isolationScope: "None" });
      const first = await rawRequest(`${fake.url}${path}?api-version=${MSI_API}`, { headers: { authorization: auth } });
      assert.equal(first.status, 200, first.text);
      const page = first.json as { value: unknown[]; nextLink: string };
      assert.deepEqual(Object.keys(page).sort(), Object.keys(documented).sort(), file);
      assert.deepEqual(page.value, documented.value, file);
      const documentedNext = new URL(documented.nextLink!);
      const next = new URL(page.nextLink);
      assert.equal(next.origin, fake.url, "nextLink is absolute, on the endpoint the client was given");
      assert.equal(next.pathname.toLowerCase(), documentedNext.pathname.toLowerCase(), file);
      assert.equal(next.searchParams.get("api-version"), MSI_API);
      assert.match(page.nextLink, /[?&]\$skiptoken=[^&]+/);
      const last = await rawRequest(page.nextLink, { headers: { authorization: auth } });
      assert.equal(last.status, 200);
      const lastPage = last.json as Record<string, unknown>;
      assert.deepEqual(Object.keys(lastPage), ["value"], "the last page has no nextLink");
      assert.deepEqual(shapeOf(lastPage.value), shapeOf(documented.value));
    }
  });

  test("subscriptions match GetSubscription.json and GetSubscriptions.json", async () => {
    const one = example("subscriptions-2022-12-01/GetSubscription.json").responses["200"].body;
    const list = example("subscriptions-2022-12-01/GetSubscriptions.json").responses["200"].body;
    const seed = (documented: Record<string, unknown>) => {
      const fields = documented as {
        subscriptionId: string;
        tenantId: string;
        displayName: string;
        authorizationSource: string;
        subscriptionPolicies: { locationPlacementId: string; quotaId: string; spendingLimit: "Off" };
        managedByTenants: { tenantId: string }[];
        tags: Record<string, string>;
      };
      fake.addSubscription({ ...fields, state: "Enabled", managedByTenants: fields.managedByTenants.map((tenant) => tenant.tenantId) });
    };
    seed(one);
    const auth = await bearer(fake);
    const got = await rawRequest(`${fake.url}/subscriptions/${one.subscriptionId as string}?api-version=${SUBSCRIPTIONS_API}`, {
      headers: { authorization: auth },
    });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.json, one);

    for (const documented of list.value!) seed(documented);
    const listed = await rawRequest(`${fake.url}/subscriptions?api-version=${SUBSCRIPTIONS_API}`, { headers: { authorization: auth } });
    assert.deepEqual((listed.json as { value: unknown }).value, list.value);
    fake.pageSize = 1;
    const paged = (await rawRequest(`${fake.url}/subscriptions?api-version=${SUBSCRIPTIONS_API}`, { headers: { authorization: auth } })).json as Record<
      string,
      unknown
    >;
    assert.deepEqual(Object.keys(paged).sort(), Object.keys(list).sort());
    assert.match(paged.nextLink as string, new RegExp(`^${fake.url}/subscriptions\\?api-version=${SUBSCRIPTIONS_API}&\\$skiptoken=`));
  });

  test("errors in ARM's shape: 401 without or with a bad token, 404 for unknown subscription, identity and group, 400 without api-version", async () => {
    fake.addIdentity({ subscriptionId: "s1", resourceGroup: "rg", name: "known" });
    const auth = await bearer(fake);
    const msiPath = (rg: string, name: string) =>
      `${fake.url}/subscriptions/s1/resourceGroups/${rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}?api-version=${MSI_API}`;
    const cases: [string, Record<string, string>, number, string][] = [
      [msiPath("rg", "known"), {}, 401, "AuthenticationFailed"],
      [msiPath("rg", "known"), { authorization: "Bearer not-issued-here" }, 401, "InvalidAuthenticationToken"],
      [`${fake.url}/subscriptions/nope?api-version=${SUBSCRIPTIONS_API}`, { authorization: auth }, 404, "SubscriptionNotFound"],
      [msiPath("rg", "unknown"), { authorization: auth }, 404, "ResourceNotFound"],
      [
        `${fake.url}/subscriptions/s1/resourceGroups/nogroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=${MSI_API}`,
        { authorization: auth },
        404,
        "ResourceGroupNotFound",
      ],
      [`${fake.url}/subscriptions/s1/providers/Microsoft.ManagedIdentity/userAssignedIdentities`, { authorization: auth }, 400, "MissingApiVersionParameter"],
    ];
    for (const [url, headers, status, code] of cases) {
      const answer = await rawRequest(url, { headers });
      assert.equal(answer.status, status, `${url}: ${answer.text}`);
      assert.deepEqual(shapeOf(answer.json), { error: { code: "string", message: "string" } });
      assert.equal((answer.json as { error: { code: string } }).error.code, code);
      if (status === 401) assert.match(String(answer.headers["www-authenticate"]), /^Bearer authorization_uri="[^"]+", error="invalid_token"/);
    }
  });

  test("ARM headers: request IDs, routing region, a read quota that goes down", async () => {
    fake.addIdentity({ subscriptionId: "s1", resourceGroup: "rg", name: "known" });
    const auth = await bearer(fake);
    const url = `${fake.url}/subscriptions/s1/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=${MSI_API}`;
    const first = await rawRequest(url, { headers: { authorization: auth } });
    const second = await rawRequest(url, { headers: { authorization: auth } });
    assert.match(String(first.headers["x-ms-request-id"]), /^[0-9a-f-]{36}$/);
    assert.match(String(first.headers["x-ms-routing-request-id"]), /^WESTEUROPE:\d{8}T\d{6}Z:[0-9a-f-]{36}$/);
    const remaining = (answer: typeof first) => Number(answer.headers["x-ms-ratelimit-remaining-subscription-reads"]);
    assert.ok(remaining(first) > 0 && remaining(second) === remaining(first) - 1, `${remaining(first)} then ${remaining(second)}`);
  });

  test("the token endpoint checks client ID, secret and scope and answers with AAD's error JSON", async () => {
    const discovery = await rawRequest(`${fake.url}/${fake.tenantId}/v2.0/.well-known/openid-configuration`);
    const metadata = discovery.json as Record<string, string>;
    for (const key of ["authorization_endpoint", "token_endpoint", "issuer", "jwks_uri"]) assert.equal(typeof metadata[key], "string", key);
    assert.equal(metadata.token_endpoint, `${fake.url}/${fake.tenantId}/oauth2/v2.0/token`);

    const base = { grant_type: "client_credentials", client_id: fake.app.clientId, client_secret: fake.app.clientSecret, scope: `${fake.audience}/.default` };
    const ok = await tokenRequest(fake.url, fake.tenantId, base);
    assert.deepEqual(shapeOf(ok.json), { access_token: "string", expires_in: "number", ext_expires_in: "number", token_type: "string" });
    const cases: [Record<string, string>, number, string, number][] = [
      [{ ...base, client_secret: "wrong" }, 401, "invalid_client", 7000215],
      [{ ...base, client_id: "00000000-0000-0000-0000-000000000000" }, 400, "unauthorized_client", 700016],
      [{ ...base, scope: "https://management.azure.com/.default" }, 400, "invalid_resource", 500011],
    ];
    for (const [form, status, error, aadsts] of cases) {
      const answer = await tokenRequest(fake.url, fake.tenantId, form);
      assert.equal(answer.status, status, answer.text);
      const body = answer.json as {
        error: string;
        error_description: string;
        error_codes: number[];
        trace_id: string;
        correlation_id: string;
        timestamp: string;
      };
      assert.equal(body.error, error);
      assert.deepEqual(body.error_codes, [aadsts]);
      assert.match(body.error_description, new RegExp(`^AADSTS${aadsts}: `));
      assert.match(body.trace_id, /^[0-9a-f-]{36}$/);
    }
    const wrongTenant = await tokenRequest(fake.url, "11111111-1111-1111-1111-111111111111", base);
    assert.equal((wrongTenant.json as { error: string }).error, "invalid_tenant");
  });
});

describe("the real SDK through src/azure against the fake", () => {
  test("250 identities in 3 pages of 100, with a token from the fake's Entra endpoint", async () => {
    const sub = fake.addSubscription({ displayName: "Team apps" });
    const made = fake.addIdentities(sub.subscriptionId, 250, (index) => ({ tags: { k8snamespace: `team-${index % 3}` } }));
    const clients = await clientsFor();
    const [listing, ...others] = await listManagedIdentities(clients, { subscriptionIds: [sub.subscriptionId] });
    assert.equal(others.length, 0);
    assert.ok(listing);
    assert.equal(listing.error, undefined);
    assert.equal(listing.complete, true);
    assert.equal(listing.pages, 3);
    assert.equal(listing.displayName, "Team apps");
    assert.equal(listing.identities.length, 250);
    assert.equal(new Set(listing.identities.map((msi) => msi.id)).size, 250);
    const sample = made[137]!;
    assert.deepEqual(
      listing.identities.find((msi) => msi.name === sample.name),
      {
        id: `/subscriptions/${sub.subscriptionId}/resourcegroups/rg-fake/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${sample.name}`,
        name: sample.name,
        location: "westeurope",
        resourceGroup: "rg-fake",
        subscriptionId: sub.subscriptionId,
        clientId: sample.clientId,
        tenantId: fake.tenantId,
        principalId: sample.principalId,
        tags: { k8snamespace: "team-2" },
        type: "Microsoft.ManagedIdentity/userAssignedIdentities",
      },
    );

    const tokens = fake.tokenRequests();
    assert.equal(tokens.length, 1, "one token for every call");
    assert.equal(tokens[0]!.status, 200);
    assert.equal(tokens[0]!.clientId, fake.app.clientId);
    assert.equal(tokens[0]!.scope, `${fake.audience}/.default`);
    assert.equal(fake.requests.filter((request) => request.kind === "openid").length, 1, "MSAL read the tenant's metadata from the fake");
    const pages = fake.requestsTo(/\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\?/i, "arm");
    assert.equal(pages.length, 3);
    assert.deepEqual(
      pages.map((page) => [page.status, page.url.includes("$skiptoken=")]),
      [
        [200, false],
        [200, true],
        [200, true],
      ],
    );
    assert.ok(fake.tokenRequests()[0]!.at <= pages[0]!.at, "the token came first");

    // The metrics hook saw every ARM call, with the labels the Go original derives.
    assert.equal(observed.length, fake.armRequests().length);
    const page = observed.find((info) => info.url.includes("userAssignedIdentities"))!;
    assert.equal(page.statusCode, 200);
    assert.equal(page.subscriptionId, sub.subscriptionId.toLowerCase());
    assert.equal(page.tenantId, fake.tenantId.toLowerCase());
    assert.equal(page.resourceProvider, "microsoft.managedidentity/userassignedidentities");
    assert.equal(page.routingRegion, "westeurope");
    assert.equal(page.apiEndpoint, "127.0.0.1");
    assert.match(page.rateLimitHeaders["x-ms-ratelimit-remaining-subscription-reads"] ?? "", /^\d+$/);
  });

  test("a 429 with Retry-After: 1 is retried about a second later and the listing completes", async () => {
    const sub = fake.addSubscription();
    fake.addIdentities(sub.subscriptionId, 250);
    const throttle = fake.inject({ match: /\$skiptoken=/, times: 1, fault: faults.throttle(1) });
    const clients = await clientsFor();
    const [listing] = await listManagedIdentities(clients, { subscriptionIds: [sub.subscriptionId] });
    assert.equal(throttle.served, 1);
    assert.equal(listing?.complete, true, listing?.error?.message);
    assert.equal(listing?.identities.length, 250);
    const pages = fake.requestsTo(/userAssignedIdentities\?/i, "arm");
    assert.deepEqual(
      pages.map((page) => page.status),
      [200, 429, 200, 200],
    );
    const [, throttled, retried] = pages as [unknown, (typeof pages)[number], (typeof pages)[number]];
    assert.equal(retried.url, throttled.url, "the same page again");
    const waited = retried.at - throttled.at;
    assert.ok(waited >= 950 && waited < 2_500, `retried after ${waited} ms`);
    assert.deepEqual(
      observed.filter((info) => info.url.includes("$skiptoken")).map((info) => [info.statusCode, info.attempt]),
      [
        [429, 1],
        [200, 2],
        [200, 1],
      ],
    );
  });

  test("5xx past the retries, malformed JSON and connection resets mark their subscription incomplete; the others complete", async () => {
    const [a, b, c] = [fake.addSubscription(), fake.addSubscription(), fake.addSubscription()];
    fake.addIdentities(a.subscriptionId, 150);
    fake.addIdentities(b.subscriptionId, 3);
    fake.addIdentities(c.subscriptionId, 3);
    const okSub = fake.addSubscription();
    fake.addIdentities(okSub.subscriptionId, 5);
    fake.inject({ match: new RegExp(`${a.subscriptionId}/.*\\$skiptoken=`), times: Infinity, fault: faults.malformed() });
    fake.inject({ match: new RegExp(`${b.subscriptionId}/providers`), times: Infinity, fault: faults.status(500) });
    fake.inject({ match: new RegExp(`${c.subscriptionId}/providers`), times: Infinity, fault: faults.reset() });
    const clients = await clientsFor();
    const listings = await listManagedIdentities(clients, { subscriptionIds: [a, b, c, okSub].map((sub) => sub.subscriptionId) });
    const [malformed, failing, reset, fine] = listings as [
      (typeof listings)[number],
      (typeof listings)[number],
      (typeof listings)[number],
      (typeof listings)[number],
    ];

    assert.equal(malformed.complete, false);
    assert.equal(malformed.identities.length, 100, "the first page is kept");
    assert.equal(malformed.pages, 1);
    assert.ok(malformed.error instanceof AzureListingError);
    assert.match(malformed.error.message, /listing identities \(page 2\) failed/);
    assert.equal(fake.requestsTo(new RegExp(`${a.subscriptionId}/.*skiptoken`)).length, 1, "a 200 with a broken body is not retried");

    assert.equal(failing.complete, false);
    assert.equal(failing.identities.length, 0);
    assert.ok(failing.error instanceof AzureListingError);
    assert.equal(failing.error.statusCode, 500);
    assert.equal(failing.error.code, "InternalServerError");
    assert.equal(fake.requestsTo(new RegExp(`${b.subscriptionId}/providers`)).length, FAST_RETRY.maxRetries + 1);

    assert.equal(reset.complete, false);
    assert.ok(reset.error instanceof AzureListingError);
    assert.equal(reset.error.code, "ECONNRESET");
    const resets = fake.requestsTo(new RegExp(`${c.subscriptionId}/providers`));
    assert.deepEqual(
      resets.map((request) => request.status),
      [0, 0, 0, 0],
    );

    assert.equal(fine.complete, true);
    assert.equal(fine.identities.length, 5);
    assert.equal(fine.error, undefined);
  });

  test("a reset or a 503 once is retried and invisible in the result", async () => {
    const sub = fake.addSubscription();
    fake.addIdentities(sub.subscriptionId, 120);
    fake.inject({ match: /\$skiptoken=/, fault: faults.reset() });
    fake.inject({ match: /\$skiptoken=/, fault: faults.status(503) });
    const clients = await clientsFor();
    const [listing] = await listManagedIdentities(clients, { subscriptionIds: [sub.subscriptionId] });
    assert.equal(listing?.complete, true, listing?.error?.message);
    assert.equal(listing?.identities.length, 120);
    assert.deepEqual(
      fake.requestsTo(/\$skiptoken=/).map((request) => request.status),
      [0, 503, 200],
    );
  });

  test("a slow answer is abandoned at the attempt deadline and retried; one that never comes fails the subscription", async () => {
    const [slowOnce, slowAlways] = [fake.addSubscription(), fake.addSubscription()];
    fake.addIdentities(slowOnce.subscriptionId, 2);
    fake.addIdentities(slowAlways.subscriptionId, 2);
    fake.inject({ match: new RegExp(`${slowOnce.subscriptionId}/providers`), times: 1, fault: faults.delay(5_000) });
    fake.inject({ match: new RegExp(`${slowAlways.subscriptionId}/providers`), times: Infinity, fault: faults.delay(5_000) });
    const clients = await clientsFor({ attemptTimeoutMs: 300 });
    const started = Date.now();
    const [once, always] = await listManagedIdentities(clients, { subscriptionIds: [slowOnce.subscriptionId, slowAlways.subscriptionId] });
    assert.ok(Date.now() - started < 4_000, "nobody waited for the slow answers");
    assert.equal(once?.complete, true, once?.error?.message);
    assert.equal(once?.identities.length, 2);
    assert.equal(always?.complete, false);
    assert.ok(always?.error instanceof AzureListingError);
    assert.equal(always.error.code, "ETIMEDOUT");
    assert.match(always.error.message, /within 300 ms/);
    assert.equal(fake.requestsTo(new RegExp(`${slowAlways.subscriptionId}/providers`)).length, FAST_RETRY.maxRetries + 1);
    assert.ok(observed.some((info) => info.errorCode === "ETIMEDOUT" && info.statusCode === 0));
  });

  test("token endpoint failures: a transient one is retried, a rejected secret fails every subscription without an ARM call", async () => {
    const sub = fake.addSubscription();
    fake.addIdentities(sub.subscriptionId, 1);
    fake.inject({ match: (request) => request.kind === "token", fault: faults.status(503) });
    const [retried] = await listManagedIdentities(await clientsFor(), { subscriptionIds: [sub.subscriptionId] });
    assert.equal(retried?.complete, true, retried?.error?.message);
    assert.deepEqual(
      fake.tokenRequests().map((request) => request.status),
      [503, 200],
    );

    fake.clearRequests();
    fake.inject({
      fault: faults.tokenError({ status: 401, error: "invalid_client", aadsts: 7000215, description: "Invalid client secret provided." }),
      times: Infinity,
    });
    const [rejected] = await listManagedIdentities(await clientsFor(), { subscriptionIds: [sub.subscriptionId] });
    assert.equal(rejected?.complete, false);
    assert.match(rejected?.error?.message ?? "", /AADSTS7000215/);
    assert.equal(fake.armRequests().length, 0);

    fake.clearFaults();
    fake.clearRequests();
    const [wrongSecret] = await listManagedIdentities(await clientsFor({ env: { AZURE_CLIENT_SECRET: "not-the-secret" } }), {
      subscriptionIds: [sub.subscriptionId],
    });
    assert.equal(wrongSecret?.complete, false);
    assert.match(wrongSecret?.error?.message ?? "", /AADSTS7000215/);
    assert.deepEqual(
      fake.tokenRequests().map((request) => request.status),
      [401],
    );
  });

  test("without configured subscriptions every subscription the credential sees is listed", async () => {
    const subs = [fake.addSubscription({ displayName: "one" }), fake.addSubscription({ displayName: "two" }), fake.addSubscription({ displayName: "three" })];
    fake.addIdentities(subs[0]!.subscriptionId, 2);
    fake.addIdentities(subs[2]!.subscriptionId, 5);
    const clients = await clientsFor();
    const listings = await listManagedIdentities(clients);
    assert.deepEqual(
      listings.map((listing) => [listing.subscriptionId, listing.displayName, listing.tenantId, listing.complete, listing.identities.length]),
      subs.map((sub, index) => [sub.subscriptionId, sub.displayName, fake.tenantId, true, [2, 0, 5][index]]),
    );
    assert.equal(fake.requestsTo(/^\/subscriptions\?api-version=/).length, 1);

    fake.inject({ match: /^\/subscriptions\?/, times: Infinity, fault: faults.status(500) });
    await assert.rejects(
      listManagedIdentities(clients),
      (error: unknown) =>
        error instanceof SubscriptionDiscoveryError && /listing the subscriptions the credential can read failed after 0 found/.test(error.message),
    );
  });

  test("subscriptions are listed a bounded number at a time", async () => {
    const subs = Array.from({ length: 8 }, () => fake.addSubscription());
    for (const sub of subs) fake.addIdentities(sub.subscriptionId, 1);
    fake.inject({ match: /userAssignedIdentities\?/, times: Infinity, fault: faults.delay(150) });
    const clients = await clientsFor();
    const listings = await listManagedIdentities(clients, { concurrency: 3 });
    assert.equal(listings.filter((listing) => listing.complete).length, 8);
    assert.ok(fake.peakInFlight > 1 && fake.peakInFlight <= 3, `peak ${fake.peakInFlight} requests at once`);
  });

  test("configured subscriptions: each is read first (an unknown one fails alone), duplicates are listed once", async () => {
    const sub = fake.addSubscription();
    fake.addIdentities(sub.subscriptionId, 2);
    const unknown = "99999999-9999-9999-9999-999999999999";
    const clients = await clientsFor();
    const listings = await listManagedIdentities(clients, { subscriptionIds: [sub.subscriptionId, unknown, sub.subscriptionId.toUpperCase(), " "] });
    assert.equal(listings.length, 2);
    assert.equal(listings[0]?.complete, true);
    const missing = listings[1]!;
    assert.equal(missing.subscriptionId, unknown);
    assert.equal(missing.complete, false);
    assert.ok(missing.error instanceof AzureListingError);
    assert.equal(missing.error.stage, "subscription");
    assert.equal(missing.error.statusCode, 404);
    assert.equal(missing.error.code, "SubscriptionNotFound");
    assert.equal(fake.requestsTo(new RegExp(`${unknown}/providers`)).length, 0, "no identity listing for a subscription that does not exist");
  });

  test("changes to the model show on the next listing; malformed items are skipped with reasons", async () => {
    const sub = fake.addSubscription();
    const [first, second] = fake.addIdentities(sub.subscriptionId, 3, () => ({ tags: { k8snamespace: "team-a" } })) as [
      ReturnType<FakeAzure["addIdentity"]>,
      ReturnType<FakeAzure["addIdentity"]>,
    ];
    fake.addIdentity({
      subscriptionId: sub.subscriptionId,
      resourceGroup: "rg",
      name: "no-client",
      mangle: (json) => ({ ...json, properties: { ...(json.properties as object), clientId: undefined } }),
    });
    fake.addIdentity({ subscriptionId: sub.subscriptionId, resourceGroup: "rg", name: "no-id", mangle: ({ id: _id, ...rest }) => rest });
    const clients = await clientsFor();
    const [before] = await listManagedIdentities(clients, { subscriptionIds: [sub.subscriptionId] });
    assert.equal(before?.complete, true);
    assert.equal(before?.identities.length, 3);
    assert.deepEqual(before?.skipped, [
      {
        id: `/subscriptions/${sub.subscriptionId}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/no-client`,
        reason: "no clientId",
      },
      { id: "no-id", reason: "no resource ID" },
    ]);

    fake.updateIdentity(first, { clientId: "11111111-2222-3333-4444-555555555555", tags: { k8snamespace: "team-b" } });
    fake.removeIdentity(second);
    const [after] = await listManagedIdentities(clients, { subscriptionIds: [sub.subscriptionId] });
    assert.equal(after?.identities.length, 2);
    const changed = after?.identities.find((msi) => msi.name === first.name);
    assert.equal(changed?.clientId, "11111111-2222-3333-4444-555555555555");
    assert.deepEqual(changed?.tags, { k8snamespace: "team-b" });
    assert.equal(
      after?.identities.some((msi) => msi.name === second.name),
      false,
    );
  });
});
