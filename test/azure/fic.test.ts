// The fake's federated identity credential (FIC) routes against Azure's own examples, and the real
// @azure/arm-msi client against them: each route, each rule Azure enforces, paging and faults.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { ManagedServiceIdentityClient } from "@azure/arm-msi";
import { RestError } from "@azure/core-rest-pipeline";
import { FakeAzure, faults, MAX_FEDERATED_CREDENTIALS, type FakeIdentity } from "./fake.js";
import { rawRequest, type RawAnswer } from "./http.js";
import { bearer, FAST_RETRY, msiClient } from "./sdk.js";

const FIXTURES = new URL("../../../shared/fixtures/azure-arm-examples/2024-11-30/", import.meta.url);
const MSI_API = "2024-11-30";
const AUDIENCE = "api://AzureADTokenExchange";
const ISSUER = "https://oidc.prod-aks.azure.com/TenantGUID/IssuerGUID";

interface FicExample {
  parameters: Record<string, string> & { parameters: { properties: Record<string, unknown> } };
  responses: Record<string, { body: Record<string, unknown> & { value?: unknown[]; nextLink?: string } }>;
}

const example = (file: string): FicExample => JSON.parse(readFileSync(new URL(file, FIXTURES), "utf8")) as FicExample;

let fake: FakeAzure;
let msi: FakeIdentity;
let client: ManagedServiceIdentityClient;
let auth: string;

function ficUrl(identity: Pick<FakeIdentity, "subscriptionId" | "resourceGroup" | "name">, name?: string, query = `api-version=${MSI_API}`): string {
  const base = `${fake.url}/subscriptions/${identity.subscriptionId}/resourceGroups/${identity.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${identity.name}/federatedIdentityCredentials`;
  return `${base}${name === undefined ? "" : `/${name}`}${query ? `?${query}` : ""}`;
}

function put(identity: FakeIdentity, name: string, body: unknown): Promise<RawAnswer> {
  return rawRequest(ficUrl(identity, name), {
    method: "PUT",
    headers: { authorization: auth, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const properties = (subject: string, issuer = ISSUER) => ({ properties: { issuer, subject, audiences: [AUDIENCE] } });
const sdkFic = (subject: string, issuer = ISSUER) => ({ issuer, subject, audiences: [AUDIENCE] });

function armErrorOf(answer: RawAnswer): { code: string; message: string } {
  return (answer.json as { error: { code: string; message: string } }).error;
}

/** The RestError a rejected SDK call threw, with Azure's error code. */
async function restError(call: Promise<unknown>): Promise<RestError & { code: string }> {
  const error = await call.then(
    () => assert.fail("expected the call to fail"),
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof RestError, String(error));
  return error as RestError & { code: string };
}

beforeEach(async () => {
  fake = await FakeAzure.start();
  msi = fake.addIdentity({ subscriptionId: "c267c0e7-0a73-4789-9e17-d26aeb0904e5", resourceGroup: "rgName", name: "identityName" });
  client = msiClient(fake, msi.subscriptionId);
  auth = await bearer(fake);
});
afterEach(async () => {
  await fake.close();
});

describe("FIC routes answer in the shapes of Azure's examples", () => {
  test("PUT creates (201) then updates (200) as FederatedIdentityCredentialCreate.json; GET returns the same", async () => {
    const documented = example("FederatedIdentityCredentialCreate.json");
    const name = documented.parameters.federatedIdentityCredentialResourceName!;
    const created = await put(msi, name, documented.parameters.parameters);
    assert.equal(created.status, 201, created.text);
    assert.deepEqual(created.json, documented.responses["201"]!.body);
    const updated = await put(msi, name, documented.parameters.parameters);
    assert.equal(updated.status, 200, updated.text);
    assert.deepEqual(updated.json, documented.responses["200"]!.body);
    const got = await rawRequest(ficUrl({ ...msi, name: "IDENTITYNAME" }, name.toUpperCase()), { headers: { authorization: auth } });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.json, documented.responses["200"]!.body, "names as stored, whatever the path's case");
    assert.match(String(created.headers["x-ms-ratelimit-remaining-subscription-writes"]), /^\d+$/, "a write uses the write quota");
    assert.match(String(got.headers["x-ms-ratelimit-remaining-subscription-reads"]), /^\d+$/);
  });

  test("LIST pages match FederatedIdentityCredentialList.json, nextLink included, $top honoured", async () => {
    const documented = example("FederatedIdentityCredentialList.json").responses["200"]!.body;
    fake.addFederatedCredential(msi, { name: "ficResourceName", issuer: ISSUER, subject: "system:serviceaccount:ns:svcaccount" });
    fake.addFederatedCredential(msi, { name: "second", issuer: ISSUER, subject: "system:serviceaccount:ns:other" });
    fake.pageSize = 1;
    const first = await rawRequest(ficUrl(msi), { headers: { authorization: auth } });
    assert.equal(first.status, 200, first.text);
    const page = first.json as { value: unknown[]; nextLink: string };
    assert.deepEqual(Object.keys(page).sort(), Object.keys(documented).sort());
    assert.deepEqual(page.value, documented.value);
    const next = new URL(page.nextLink);
    assert.equal(next.origin, fake.url, "nextLink is absolute, on the endpoint the client was given");
    // The example names the identity "identityName" in IDs but "resourceName" in its path.
    assert.equal(next.pathname.toLowerCase(), new URL(documented.nextLink!).pathname.toLowerCase().replace("/resourcename/", "/identityname/"));
    assert.equal(next.searchParams.get("api-version"), MSI_API);
    assert.ok(next.searchParams.get("$skiptoken"));
    const last = (await rawRequest(page.nextLink, { headers: { authorization: auth } })).json as { value: { name: string }[]; nextLink?: string };
    assert.deepEqual(
      last.value.map((item) => item.name),
      ["second"],
    );
    assert.equal(last.nextLink, undefined, "the last page has no nextLink");

    fake.pageSize = 100;
    const topped = (await rawRequest(ficUrl(msi, undefined, `api-version=${MSI_API}&$top=1`), { headers: { authorization: auth } })).json as {
      value: unknown[];
      nextLink: string;
    };
    assert.equal(topped.value.length, 1);
    assert.equal(new URL(topped.nextLink).searchParams.get("$top"), "1", "nextLink carries $top on");
    const badTop = await rawRequest(ficUrl(msi, undefined, `api-version=${MSI_API}&$top=0`), { headers: { authorization: auth } });
    assert.equal(badTop.status, 400);
  });
});

describe("the real ManagedServiceIdentityClient against the FIC routes", () => {
  test("createOrUpdate, get, list and delete (200, then 204 when absent)", async () => {
    const created = await client.federatedIdentityCredentials.createOrUpdate(
      "rgName",
      "identityName",
      "team-a-app",
      sdkFic("system:serviceaccount:team-a:app"),
    );
    assert.deepEqual(created, {
      id: "/subscriptions/c267c0e7-0a73-4789-9e17-d26aeb0904e5/resourcegroups/rgName/providers/Microsoft.ManagedIdentity/userAssignedIdentities/identityName/federatedIdentityCredentials/team-a-app",
      name: "team-a-app",
      type: "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
      issuer: ISSUER,
      subject: "system:serviceaccount:team-a:app",
      audiences: [AUDIENCE],
    });
    const got = await client.federatedIdentityCredentials.get("rgName", "identityName", "team-a-app");
    assert.deepEqual(got, created);
    const changed = await client.federatedIdentityCredentials.createOrUpdate(
      "rgName",
      "identityName",
      "team-a-app",
      sdkFic("system:serviceaccount:team-a:web"),
    );
    assert.equal(changed.subject, "system:serviceaccount:team-a:web");
    assert.equal(fake.federatedCredentials(msi).length, 1, "an update is not a second credential");

    await client.federatedIdentityCredentials.delete("rgName", "identityName", "team-a-app");
    await client.federatedIdentityCredentials.delete("rgName", "identityName", "team-a-app");
    assert.deepEqual(
      fake.federatedCredentialRequests(["PUT", "DELETE"]).map((request) => [request.method, request.status]),
      [
        ["PUT", 201],
        ["PUT", 200],
        ["DELETE", 200],
        ["DELETE", 204],
      ],
    );
    const missing = await restError(client.federatedIdentityCredentials.get("rgName", "identityName", "team-a-app"));
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.code, "ResourceNotFound");
  });

  test("list follows nextLink over every page; byPage with top gives pages of that size", async () => {
    for (let index = 0; index < 7; index++) fake.addFederatedCredential(msi, { name: `fic-${index}`, issuer: ISSUER, subject: `sub-${index}` });
    fake.pageSize = 3;
    const listed = [];
    for await (const credential of client.federatedIdentityCredentials.list("rgName", "identityName")) listed.push(credential.name);
    assert.deepEqual(listed, ["fic-0", "fic-1", "fic-2", "fic-3", "fic-4", "fic-5", "fic-6"]);
    assert.equal(fake.federatedCredentialRequests(["GET"]).length, 3);

    fake.pageSize = 100;
    const sizes = [];
    for await (const page of client.federatedIdentityCredentials.list("rgName", "identityName", { top: 2 }).byPage()) sizes.push(page.length);
    assert.deepEqual(sizes, [2, 2, 2, 1]);
  });

  test(`at most ${MAX_FEDERATED_CREDENTIALS} per identity: the 21st new name is refused with 400, an update or a freed slot is fine`, async () => {
    fake.ficWriteMs = 1;
    const fics = client.federatedIdentityCredentials;
    for (let index = 0; index < MAX_FEDERATED_CREDENTIALS; index++) await fics.createOrUpdate("rgName", "identityName", `fic-${index}`, sdkFic(`sub-${index}`));
    const refused = await restError(fics.createOrUpdate("rgName", "identityName", "fic-20", sdkFic("sub-20")));
    assert.equal(refused.statusCode, 400);
    assert.equal(refused.code, "BadRequest");
    assert.match(refused.message, /already has the maximum of 20 federated identity credentials/);
    assert.equal(fake.federatedCredentials(msi).length, 20);

    const updated = await fics.createOrUpdate("rgName", "identityName", "FIC-7", sdkFic("sub-7-changed"));
    assert.equal(updated.name, "fic-7", "names are case-insensitive: FIC-7 is fic-7");
    await fics.delete("rgName", "identityName", "fic-0");
    const now = await fics.createOrUpdate("rgName", "identityName", "fic-20", sdkFic("sub-20"));
    assert.equal(now.name, "fic-20");
    // Another identity has its own 20.
    fake.addIdentity({ subscriptionId: msi.subscriptionId, resourceGroup: msi.resourceGroup, name: "other" });
    await fics.createOrUpdate("rgName", "other", "fic-0", sdkFic("sub-0"));
  });

  test("two overlapping writes on one identity: one wins, the other gets 409 ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity", async () => {
    fake.ficWriteMs = 300;
    const fics = client.federatedIdentityCredentials;
    const results = await Promise.allSettled([
      fics.createOrUpdate("rgName", "identityName", "first", sdkFic("sub-first")),
      fics.createOrUpdate("rgName", "identityName", "second", sdkFic("sub-second")),
    ]);
    assert.equal(results.filter((result) => result.status === "fulfilled").length, 1);
    const rejected = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
    assert.ok(rejected?.reason instanceof RestError);
    const conflict = rejected.reason as RestError & { code: string };
    assert.equal(conflict.statusCode, 409);
    assert.equal(conflict.code, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity");
    assert.equal(
      conflict.message,
      "Too many Federated Identity Credentials are written concurrently for the managed identity '/subscriptions/c267c0e7-0a73-4789-9e17-d26aeb0904e5/resourcegroups/rgName/providers/microsoft.managedidentity/userassignedidentities/identityName'. Concurrent Federated Identity Credentials writes under the same managed identity are not supported.",
    );
    assert.equal(fake.federatedCredentials(msi).length, 1);
    assert.deepEqual(
      fake
        .federatedCredentialRequests(["PUT"])
        .map((request) => request.status)
        .sort(),
      [201, 409],
      "the 409 is not retried",
    );

    // A DELETE is a write too.
    const [created] = fake.federatedCredentials(msi);
    const [putResult, deleteResult] = await Promise.allSettled([
      fics.createOrUpdate("rgName", "identityName", "third", sdkFic("sub-third")),
      fics.delete("rgName", "identityName", created!.name),
    ]);
    assert.deepEqual([putResult.status, deleteResult.status].sort(), ["fulfilled", "rejected"]);

    // Sequential writes, and parallel writes on different identities, are fine.
    fake.addIdentity({ subscriptionId: msi.subscriptionId, resourceGroup: msi.resourceGroup, name: "other" });
    await Promise.all([
      fics.createOrUpdate("rgName", "identityName", "fourth", sdkFic("sub-fourth")),
      fics.createOrUpdate("rgName", "other", "fourth", sdkFic("sub-fourth")),
    ]);
    await fics.createOrUpdate("rgName", "identityName", "fifth", sdkFic("sub-fifth"));
  });

  test("faults: a 429 with Retry-After is waited for, a reset is retried, a 500 past the retries fails; every attempt is logged", async () => {
    const fics = client.federatedIdentityCredentials;
    fake.inject({ match: /federatedIdentityCredentials\/throttled\?/, fault: faults.throttle(1) });
    await fics.createOrUpdate("rgName", "identityName", "throttled", sdkFic("sub-throttled"));
    const [throttled, retried] = fake.federatedCredentialRequests(["PUT"]);
    assert.deepEqual([throttled?.status, retried?.status], [429, 201]);
    const waited = retried!.at - throttled!.at;
    assert.ok(waited >= 950 && waited < 2_500, `retried after ${waited} ms`);

    fake.inject({ match: (request) => request.method === "DELETE", fault: faults.reset() });
    await fics.delete("rgName", "identityName", "throttled");
    assert.deepEqual(
      fake.federatedCredentialRequests(["DELETE"]).map((request) => request.status),
      [0, 200],
    );
    assert.equal(fake.federatedCredentials(msi).length, 0);

    fake.inject({ match: /federatedIdentityCredentials\?/, times: Infinity, fault: faults.status(500) });
    const failed = await restError(fics.list("rgName", "identityName").next());
    assert.equal(failed.statusCode, 500);
    assert.equal(fake.federatedCredentialRequests(["GET"]).length, FAST_RETRY.maxRetries + 1);
  });
});

describe("Azure's rules on FIC requests", () => {
  test("names: 3-120 letters, digits, hyphens and underscores, starting with a letter or digit", async () => {
    for (const name of ["ab", "x".repeat(121), "-abc", "_abc", "a.b", "a b", "ünï"]) {
      const answer = await put(msi, encodeURIComponent(name), properties(`sub-${name}`));
      assert.equal(answer.status, 400, name);
      assert.deepEqual(armErrorOf(answer), { code: "BadRequest", message: `Federated Identity Credential name '${name}' is invalid.` });
    }
    for (const name of ["abc", "x".repeat(120), "0a_-", "A-1"]) assert.equal((await put(msi, name, properties(`sub-${name}`))).status, 201, name);
    assert.equal(fake.federatedCredentials(msi).length, 4);
    // The SDK declares the pattern but sends the request anyway: Azure's answer is what the caller sees.
    const before = fake.federatedCredentialRequests().length;
    const refused = await restError(client.federatedIdentityCredentials.createOrUpdate("rgName", "identityName", "ab", sdkFic("s")));
    assert.equal(refused.statusCode, 400);
    assert.equal(refused.message, "Federated Identity Credential name 'ab' is invalid.");
    assert.equal(fake.federatedCredentialRequests().length, before + 1);
  });

  test("bodies: issuer https, subject non-empty, exactly one audience, properties present", async () => {
    const cases: [unknown, string, string][] = [
      ["{not json", "InvalidRequestContent", "The request content was invalid and could not be deserialized"],
      [{}, "BadRequest", "Federated Identity Credential from HTTP body has empty properties"],
      [{ properties: {} }, "BadRequest", "Federated Identity Credential from HTTP body has empty properties"],
      [
        { properties: { issuer: ISSUER, audiences: [AUDIENCE] } },
        "BadRequest",
        "Federated Identity Credential must specify 'issuer', 'subject' and 'audience'.",
      ],
      [{ properties: { issuer: ISSUER, subject: "", audiences: [AUDIENCE] } }, "BadRequest", "must specify 'issuer', 'subject' and 'audience'"],
      [{ properties: { subject: "s", audiences: [AUDIENCE] } }, "BadRequest", "must specify 'issuer', 'subject' and 'audience'"],
      [{ properties: { issuer: ISSUER, subject: "s" } }, "BadRequest", "must specify 'issuer', 'subject' and 'audience'"],
      [{ properties: { issuer: ISSUER, subject: "s", audiences: [] } }, "BadRequest", "Federated identity credentials must have exactly one audience."],
      [{ properties: { issuer: ISSUER, subject: "s", audiences: [AUDIENCE, "api://other"] } }, "BadRequest", "must have exactly one audience"],
      [{ properties: { issuer: ISSUER, subject: "s", audiences: AUDIENCE } }, "BadRequest", "must have exactly one audience"],
      [properties("s", "http://kubernetes.default.svc"), "BadRequest", "issuer 'http://kubernetes.default.svc' must be an https URL"],
      [properties("s", "kubernetes.default.svc"), "BadRequest", "must be an https URL"],
      [properties("s".repeat(601)), "BadRequest", "subject must be at most 600 characters"],
    ];
    for (const [body, code, message] of cases) {
      const answer = await put(msi, "fic", body);
      assert.equal(answer.status, 400, `${JSON.stringify(body)}: ${answer.text}`);
      assert.equal(armErrorOf(answer).code, code);
      assert.ok(armErrorOf(answer).message.includes(message), armErrorOf(answer).message);
    }
    assert.equal(fake.federatedCredentials(msi).length, 0, "nothing refused was stored");
  });

  test("one (issuer, subject) pair per identity: another name for it is refused with 400; other identities may have it", async () => {
    assert.equal((await put(msi, "first", properties("system:serviceaccount:ns:sa"))).status, 201);
    const duplicate = await put(msi, "second", properties("system:serviceaccount:ns:sa"));
    assert.equal(duplicate.status, 400);
    assert.equal(armErrorOf(duplicate).message, "Issuer and subject combination already exists for this Managed Identity.");
    assert.equal((await put(msi, "first", properties("system:serviceaccount:ns:sa"))).status, 200, "the same name again is an update");
    assert.equal((await put(msi, "second", properties("system:serviceaccount:ns:SA"))).status, 201, "subjects compare case-sensitively");
    assert.equal((await put(msi, "third", properties("system:serviceaccount:ns:sa", "https://other.example"))).status, 201);
    const other = fake.addIdentity({ subscriptionId: msi.subscriptionId, resourceGroup: msi.resourceGroup, name: "other" });
    assert.equal((await put(other, "first", properties("system:serviceaccount:ns:sa"))).status, 201);
  });

  test("unknown identity, subscription or credential: 404 in ARM's shape; no api-version: 400", async () => {
    const ghost = { ...msi, name: "ghost" };
    for (const [url, method] of [
      [ficUrl(ghost), "GET"],
      [ficUrl(ghost, "fic"), "GET"],
      [ficUrl(ghost, "fic"), "PUT"],
      [ficUrl(ghost, "fic"), "DELETE"],
    ] as const) {
      const answer = await rawRequest(url, {
        method,
        headers: { authorization: auth, "content-type": "application/json" },
        body: JSON.stringify(properties("s")),
      });
      assert.equal(answer.status, 404, `${method} ${url}`);
      assert.deepEqual(armErrorOf(answer), { code: "ResourceNotFound", message: "The parent user-assigned identity doesn't exist." });
    }
    const noFic = await rawRequest(ficUrl(msi, "absent"), { headers: { authorization: auth } });
    assert.equal(noFic.status, 404);
    assert.equal(armErrorOf(noFic).code, "ResourceNotFound");
    const noSub = await rawRequest(ficUrl({ ...msi, subscriptionId: "99999999-9999-9999-9999-999999999999" }), { headers: { authorization: auth } });
    assert.equal(armErrorOf(noSub).code, "SubscriptionNotFound");
    const noVersion = await rawRequest(ficUrl(msi, undefined, ""), { headers: { authorization: auth } });
    assert.equal(noVersion.status, 400);
    assert.equal(armErrorOf(noVersion).code, "MissingApiVersionParameter");
    const anonymous = await rawRequest(ficUrl(msi));
    assert.equal(anonymous.status, 401, "FIC routes need a bearer token like every ARM route");
  });

  test("deleting the identity deletes its FICs: the same name again starts with none", async () => {
    const fics = client.federatedIdentityCredentials;
    await fics.createOrUpdate("rgName", "identityName", "one", sdkFic("sub-one"));
    await fics.createOrUpdate("rgName", "identityName", "two", sdkFic("sub-two"));
    assert.equal(fake.removeIdentity(msi), true);
    const gone = await restError(fics.list("rgName", "identityName").next());
    assert.equal(gone.statusCode, 404);
    fake.addIdentity({ subscriptionId: msi.subscriptionId, resourceGroup: msi.resourceGroup, name: msi.name });
    const listed = [];
    for await (const credential of fics.list("rgName", "identityName")) listed.push(credential);
    assert.deepEqual(listed, []);

    await fics.createOrUpdate("rgName", "identityName", "three", sdkFic("sub-three"));
    fake.removeSubscription(msi.subscriptionId);
    fake.addIdentity({ subscriptionId: msi.subscriptionId, resourceGroup: msi.resourceGroup, name: msi.name });
    assert.deepEqual(fake.federatedCredentials(msi), [], "a removed subscription takes its identities' FICs along");
  });
});
