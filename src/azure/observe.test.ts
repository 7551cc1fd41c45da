import { test } from "node:test";
import assert from "node:assert/strict";
import { apiEndpointOf, parseArmPath, rateLimitHeadersOf, rateLimitReadings, routingRegionOf, tenantIdFromAuthorization } from "./observe.js";

test("subscription and resource provider from ARM paths, case-insensitively, lower-cased", () => {
  assert.deepEqual(parseArmPath("/subscriptions/ABC-1/providers/Microsoft.ManagedIdentity/userAssignedIdentities"), {
    subscriptionId: "abc-1",
    resourceProvider: "microsoft.managedidentity/userassignedidentities",
  });
  assert.deepEqual(parseArmPath("//Subscriptions/abc-1/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n"), {
    subscriptionId: "abc-1",
    resourceProvider: "microsoft.managedidentity/userassignedidentities",
  });
  assert.deepEqual(parseArmPath("/subscriptions/abc-1"), { subscriptionId: "abc-1" });
  assert.deepEqual(parseArmPath("/subscriptions"), {});
  assert.deepEqual(parseArmPath("/tenant/oauth2/v2.0/token"), {});
});

test("routing region is the part of x-ms-routing-request-id before the first colon", () => {
  assert.equal(routingRegionOf("WESTEUROPE:20261123T000000Z:0d7c8f0a-1111-2222-3333-444455556666"), "westeurope");
  assert.equal(routingRegionOf("eastus2"), "eastus2");
  assert.equal(routingRegionOf(":20261123T000000Z:x"), undefined);
  assert.equal(routingRegionOf(""), undefined);
  assert.equal(routingRegionOf(undefined), undefined);
});

test("every x-ms-ratelimit-remaining-* header is kept (lower-cased names), nothing else", () => {
  const headers: [string, string][] = [
    ["X-Ms-Ratelimit-Remaining-Subscription-Reads", "11999"],
    ["x-ms-ratelimit-remaining-tenant-reads", "11998"],
    ["x-ms-ratelimit-remaining-subscription-global-reads", "15999"],
    ["x-ms-request-id", "abc"],
    ["retry-after", "1"],
  ];
  assert.deepEqual(rateLimitHeadersOf(headers), {
    "x-ms-ratelimit-remaining-subscription-reads": "11999",
    "x-ms-ratelimit-remaining-tenant-reads": "11998",
    "x-ms-ratelimit-remaining-subscription-global-reads": "15999",
  });
});

test("rate limit readings: scope and type from the header name, multi-quota values split, junk dropped", () => {
  assert.deepEqual(
    rateLimitReadings({
      "x-ms-ratelimit-remaining-subscription-reads": "11999",
      "x-ms-ratelimit-remaining-tenant-writes": " 1199 ",
      "x-ms-ratelimit-remaining-subscription-resource-requests": "599",
      "x-ms-ratelimit-remaining-microsoft.consumption-tenant-requests": "QueriesPerHour:496,QueriesPerMin:37",
      "x-ms-ratelimit-remaining-subscription-deletes": "n/a",
      "x-ms-request-id": "1",
    }),
    [
      { scope: "subscription", type: "reads", remaining: 11999 },
      { scope: "tenant", type: "writes", remaining: 1199 },
      { scope: "subscription", type: "resourceRequests", remaining: 599 },
      { scope: "microsoft.consumption", type: "tenant-requests.QueriesPerHour", remaining: 496 },
      { scope: "microsoft.consumption", type: "tenant-requests.QueriesPerMin", remaining: 37 },
    ],
  );
});

test("tenant ID from the bearer token's tid claim; anything unparsable gives none", () => {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const token = `${encode({ alg: "RS256" })}.${encode({ tid: "72F988BF-86F1-41AF-91AB-2D7CD011DB47", aud: "x" })}.sig`;
  assert.equal(tenantIdFromAuthorization(`Bearer ${token}`), "72f988bf-86f1-41af-91ab-2d7cd011db47");
  assert.equal(tenantIdFromAuthorization(`bearer ${token}`), "72f988bf-86f1-41af-91ab-2d7cd011db47");
  assert.equal(tenantIdFromAuthorization(undefined), undefined);
  assert.equal(tenantIdFromAuthorization("Basic abc"), undefined);
  assert.equal(tenantIdFromAuthorization("Bearer not-a-jwt"), undefined);
  assert.equal(tenantIdFromAuthorization(`Bearer x.${Buffer.from("{nope").toString("base64url")}.y`), undefined);
  assert.equal(tenantIdFromAuthorization(`Bearer x.${encode({ tid: 7 })}.y`), undefined);
});

test("api endpoint label: the last three host labels, IP addresses whole", () => {
  assert.equal(apiEndpointOf("management.azure.com"), "management.azure.com");
  assert.equal(apiEndpointOf("WestEurope.Management.Azure.com"), "management.azure.com");
  assert.equal(apiEndpointOf("127.0.0.1"), "127.0.0.1");
  assert.equal(apiEndpointOf("[::1]"), "::1");
});
