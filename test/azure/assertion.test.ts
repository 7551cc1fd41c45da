// The fake's Entra token endpoint for client assertions (workload identity federation), through the
// real ClientAssertionCredential and WorkloadIdentityCredential from @azure/identity, with service-
// account-shaped JWTs signed by keys made here: a token only for a matching FIC, Entra's errors otherwise.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueCert } from "../../certs/pki.js";
import { ensureTestCa } from "../support/test-ca.js";
import { FakeAzure, JWT_BEARER, type FakeIdentity } from "./fake.js";
import { rawRequest, tokenRequest } from "./http.js";
import { publicJwk, signJwt, type Jwks, type JwtAlgorithm } from "./jwt.js";
import { armScope, assertionCredential, msiClient, workloadIdentityCredential } from "./sdk.js";

const ISSUER = "https://oidc.cluster-a.example/issuer";
const SUBJECT = "system:serviceaccount:team-a:app";
const AUDIENCE = "api://AzureADTokenExchange";

interface SigningKey {
  privateKey: KeyObject;
  kid: string;
  alg: JwtAlgorithm;
  jwks: Jwks;
}

function signingKey(alg: JwtAlgorithm, kid: string): SigningKey {
  const { privateKey, publicKey } = alg === "RS256" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, kid, alg, jwks: { keys: [publicJwk(publicKey, kid, alg)] } };
}

let fake: FakeAzure;
let msi: FakeIdentity;
let key: SigningKey;

/** A token shaped like kube-apiserver's TokenRequest answer (claims and header), valid for an hour. */
function serviceAccountToken(claims: Record<string, unknown> = {}, signer: SigningKey = key, header: { kid?: string } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(
    {
      aud: [AUDIENCE],
      exp: now + 3600,
      iat: now,
      nbf: now,
      iss: ISSUER,
      jti: "1f0c3c39-3a64-4d39-8f5c-6a1bb1e0f0a1",
      "kubernetes.io": { namespace: "team-a", serviceaccount: { name: "app", uid: "5c1e8a2e-7d57-4d0b-9f7e-2b1a8c1f3e11" } },
      sub: SUBJECT,
      ...claims,
    },
    signer.privateKey,
    { alg: signer.alg, kid: header.kid ?? signer.kid },
  );
}

/** The token request ClientAssertionCredential makes, by hand, to see Entra's answer on the wire. */
function assertionRequest(assertion: string, clientId = msi.clientId, type = JWT_BEARER) {
  return tokenRequest(fake.url, fake.tenantId, {
    grant_type: "client_credentials",
    client_id: clientId,
    client_assertion_type: type,
    client_assertion: assertion,
    scope: armScope(fake),
  });
}

beforeEach(async () => {
  fake = await FakeAzure.start();
  msi = fake.addIdentity({ subscriptionId: "00000000-1111-2222-3333-444444444444", resourceGroup: "rg", name: "team-a-app" });
  key = signingKey("RS256", "cluster-a-key-1");
  fake.trustIssuer(ISSUER, key.jwks);
  fake.addFederatedCredential(msi, { name: "team-a-app", issuer: ISSUER, subject: SUBJECT });
});
afterEach(async () => {
  await fake.close();
});

describe("a client assertion matching a FIC gets a token", () => {
  test("ClientAssertionCredential: the managed identity's token, which ARM accepts", async () => {
    const token = await assertionCredential(fake, msi.clientId, serviceAccountToken()).getToken(armScope(fake));
    assert.ok(token?.token);
    assert.ok(token.expiresOnTimestamp > Date.now() + 3_000_000);
    const [request] = fake.tokenRequests();
    assert.deepEqual([request?.status, request?.clientId, request?.clientAuth], [200, msi.clientId, "assertion"]);
    const identityUrl = `${fake.url}/subscriptions/${msi.subscriptionId}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/team-a-app?api-version=2024-11-30`;
    const read = await rawRequest(identityUrl, { headers: { authorization: `Bearer ${token.token}` } });
    assert.equal(read.status, 200, read.text);
    const claims = JSON.parse(Buffer.from(token.token.split(".")[1]!, "base64url").toString()) as Record<string, string>;
    assert.deepEqual([claims.appid, claims.oid, claims.tid], [msi.clientId, msi.principalId, msi.tenantId], "a token of the identity, not of the fake's app");
  });

  test("WorkloadIdentityCredential reading the token file; an ES256 issuer; several FICs on one identity", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fic-token-"));
    try {
      const file = join(dir, "azure-identity-token");
      writeFileSync(file, `${serviceAccountToken()}\n`);
      assert.ok((await workloadIdentityCredential(fake, msi.clientId, file).getToken(armScope(fake)))?.token);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const ec = signingKey("ES256", "cluster-b-ec");
    fake.trustIssuer("https://oidc.cluster-b.example", ec.jwks);
    fake.addFederatedCredential(msi, { name: "cluster-b", issuer: "https://oidc.cluster-b.example", subject: SUBJECT });
    const fromB = serviceAccountToken({ iss: "https://oidc.cluster-b.example" }, ec);
    assert.ok((await assertionCredential(fake, msi.clientId, fromB).getToken(armScope(fake)))?.token);
    assert.equal((await assertionRequest(serviceAccountToken())).status, 200, "cluster A's FIC still matches");
  });

  test("the FIC made through ARM with the SDK is the one Entra checks: deleted, the token is refused", async () => {
    const other = fake.addIdentity({ subscriptionId: msi.subscriptionId, resourceGroup: msi.resourceGroup, name: "via-arm" });
    const fics = msiClient(fake, msi.subscriptionId).federatedIdentityCredentials;
    await fics.createOrUpdate("rg", "via-arm", "app", { issuer: ISSUER, subject: SUBJECT, audiences: [AUDIENCE] });
    assert.ok((await assertionCredential(fake, other.clientId, serviceAccountToken()).getToken(armScope(fake)))?.token);
    await fics.delete("rg", "via-arm", "app");
    await assert.rejects(
      assertionCredential(fake, other.clientId, serviceAccountToken()).getToken(armScope(fake)),
      /AADSTS70021: No matching federated identity record/,
    );
    fake.removeIdentity(other);
    const gone = await assertionRequest(serviceAccountToken(), other.clientId);
    assert.deepEqual([gone.status, (gone.json as { error: string }).error], [400, "unauthorized_client"], "a deleted identity is an unknown client");
  });
});

describe("Entra's refusals, on the wire and through the SDK", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: { name: string; assertion: () => string; setup?: () => void; status: number; error: string; aadsts: number; description: RegExp }[] = [
    {
      name: "wrong subject",
      assertion: () => serviceAccountToken({ sub: "system:serviceaccount:team-b:app" }),
      status: 401,
      error: "invalid_client",
      aadsts: 700213,
      description:
        /^AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:team-b:app'\. Check your federated identity credential Subject, Audience and Issuer against the presented assertion\./,
    },
    {
      name: "wrong issuer",
      assertion: () => serviceAccountToken({ iss: "https://oidc.elsewhere.example" }),
      status: 401,
      error: "invalid_client",
      aadsts: 700211,
      description: /^AADSTS700211: No matching federated identity record found for presented assertion issuer 'https:\/\/oidc\.elsewhere\.example'\./,
    },
    {
      name: "issuer differing by a trailing slash",
      assertion: () => serviceAccountToken({ iss: `${ISSUER}/` }),
      status: 401,
      error: "invalid_client",
      aadsts: 700211,
      description: /presented assertion issuer/,
    },
    {
      name: "wrong audience",
      assertion: () => serviceAccountToken({ aud: ["https://kubernetes.default.svc"] }),
      status: 401,
      error: "invalid_client",
      aadsts: 700212,
      description: /^AADSTS700212: No matching federated identity record found for presented assertion audience 'https:\/\/kubernetes\.default\.svc'\./,
    },
    {
      name: "expired",
      assertion: () => serviceAccountToken({ iat: now() - 7200, nbf: now() - 7200, exp: now() - 3600 }),
      status: 401,
      error: "invalid_client",
      aadsts: 700024,
      description:
        /^AADSTS700024: Client assertion is not within its valid time range\. Current time: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z, assertion valid from \S+Z, expiry time of assertion \S+Z\. /,
    },
    {
      name: "not valid yet",
      assertion: () => serviceAccountToken({ nbf: now() + 600, exp: now() + 4200 }),
      status: 401,
      error: "invalid_client",
      aadsts: 700024,
      description: /not within its valid time range/,
    },
    {
      name: "signed by another key under the published kid",
      assertion: () => serviceAccountToken({}, signingKey("RS256", key.kid)),
      status: 401,
      error: "invalid_client",
      aadsts: 700027,
      description: /^AADSTS700027: Client assertion contains an invalid signature\./,
    },
    {
      name: "signed by a key the issuer does not publish",
      assertion: () => serviceAccountToken({}, signingKey("RS256", "rotated-away")),
      status: 401,
      error: "invalid_client",
      aadsts: 7000272,
      description:
        /^AADSTS7000272: The certificate with identifier rotated-away used to sign the federated credential could not be found in the metadata of identity provider https:\/\/oidc\.cluster-a\.example\/issuer\./,
    },
    {
      name: "a payload changed after signing",
      assertion: () => {
        const [header, , signature] = serviceAccountToken().split(".");
        const forged = Buffer.from(JSON.stringify({ iss: ISSUER, sub: SUBJECT, aud: AUDIENCE, exp: now() + 3600, admin: true })).toString("base64url");
        return `${header}.${forged}.${signature}`;
      },
      status: 401,
      error: "invalid_client",
      aadsts: 700027,
      description: /invalid signature/,
    },
    {
      name: "alg none",
      assertion: () => {
        const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
        return `${encode({ alg: "none", typ: "JWT" })}.${encode({ iss: ISSUER, sub: SUBJECT, aud: AUDIENCE, exp: now() + 3600 })}.AAAA`;
      },
      status: 401,
      error: "invalid_client",
      aadsts: 5002738,
      description: /'none' is not a supported signing algorithm/,
    },
    {
      name: "not a JWT",
      assertion: () => "not-a-jwt",
      status: 400,
      error: "invalid_request",
      aadsts: 50027,
      description: /^AADSTS50027: JWT token is invalid or malformed\./,
    },
    {
      name: "no FIC on the identity",
      setup: () => fake.model.removeFederatedCredential(msi, "team-a-app"),
      assertion: () => serviceAccountToken(),
      status: 401,
      error: "invalid_client",
      aadsts: 70021,
      description:
        /^AADSTS70021: No matching federated identity record found for presented assertion\. Assertion Issuer: 'https:\/\/oidc\.cluster-a\.example\/issuer'\. Assertion Subject: 'system:serviceaccount:team-a:app'\. Assertion Audience: 'api:\/\/AzureADTokenExchange'\./,
    },
    {
      name: "an issuer whose keys cannot be had",
      setup: () => fake.entra.issuers.forget(ISSUER),
      assertion: () => serviceAccountToken(),
      status: 400,
      error: "invalid_request",
      aadsts: 50166,
      description: /^AADSTS50166: Request to External OIDC endpoint failed\./,
    },
  ];

  for (const refusal of cases) {
    test(`${refusal.name}: ${refusal.status} ${refusal.error} AADSTS${refusal.aadsts}`, async () => {
      refusal.setup?.();
      const assertion = refusal.assertion();
      const answer = await assertionRequest(assertion);
      assert.equal(answer.status, refusal.status, answer.text);
      const body = answer.json as { error: string; error_codes: number[]; error_description: string };
      assert.equal(body.error, refusal.error);
      assert.deepEqual(body.error_codes, [refusal.aadsts]);
      assert.match(body.error_description, refusal.description);
      assert.match(body.error_description, / Trace ID: [0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} Timestamp: /);
      await assert.rejects(assertionCredential(fake, msi.clientId, assertion).getToken(armScope(fake)), new RegExp(`AADSTS${refusal.aadsts}:`));
      assert.ok(
        fake.tokenRequests().every((request) => request.status === refusal.status),
        "no token was issued",
      );
    });
  }

  test("an unknown client ID, a wrong assertion type, or a token of another identity's FIC", async () => {
    const unknown = await assertionRequest(serviceAccountToken(), "99999999-0000-0000-0000-000000000000");
    assert.deepEqual([unknown.status, (unknown.json as { error_codes: number[] }).error_codes], [400, [700016]]);
    const wrongType = await assertionRequest(serviceAccountToken(), msi.clientId, "urn:ietf:params:oauth:client-assertion-type:saml2-bearer");
    assert.deepEqual([wrongType.status, (wrongType.json as { error_codes: number[] }).error_codes], [400, [90014]]);
    // The FIC belongs to msi: another identity with none of its own gets nothing from the same token.
    const stranger = fake.addIdentity({ subscriptionId: msi.subscriptionId, resourceGroup: msi.resourceGroup, name: "stranger" });
    const borrowed = await assertionRequest(serviceAccountToken(), stranger.clientId);
    assert.deepEqual([borrowed.status, (borrowed.json as { error_codes: number[] }).error_codes], [401, [70021]]);
    // The fake's app registration has no FICs either.
    const app = await assertionRequest(serviceAccountToken(), fake.app.clientId);
    assert.deepEqual([app.status, (app.json as { error_codes: number[] }).error_codes], [401, [70021]]);
  });
});

describe("issuer keys from a URL", () => {
  let server: Server;
  let served: { status: number; body: unknown };
  let jwksUri: string;

  beforeEach(async () => {
    const pem = await issueCert(await ensureTestCa(), {
      commonName: "jwks",
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
      usage: "server",
      validityMs: 3_600_000,
    });
    served = { status: 200, body: key.jwks };
    server = createServer({ key: pem.key, cert: pem.cert }, (_req, res) => {
      res.writeHead(served.status, { "content-type": "application/json" });
      res.end(JSON.stringify(served.body));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    jwksUri = `https://127.0.0.1:${(server.address() as { port: number }).port}/openid/v1/jwks`;
    fake.trustIssuer(ISSUER, { jwksUri });
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test("keys are read from the URL on each assertion: a rotation shows at once, an outage is AADSTS50166", async () => {
    assert.equal((await assertionRequest(serviceAccountToken())).status, 200);
    const rotated = signingKey("RS256", "cluster-a-key-2");
    served = { status: 200, body: rotated.jwks };
    const stale = await assertionRequest(serviceAccountToken());
    assert.deepEqual((stale.json as { error_codes: number[] }).error_codes, [7000272], "the old key is gone from the issuer's metadata");
    assert.equal((await assertionRequest(serviceAccountToken({}, rotated))).status, 200);
    served = { status: 503, body: { error: "down" } };
    assert.deepEqual(((await assertionRequest(serviceAccountToken({}, rotated))).json as { error_codes: number[] }).error_codes, [50166]);
    served = { status: 200, body: { not: "a jwks" } };
    assert.deepEqual(((await assertionRequest(serviceAccountToken({}, rotated))).json as { error_codes: number[] }).error_codes, [50166]);
  });

  test("bad registrations are refused with a clear error", () => {
    assert.throws(() => fake.trustIssuer("http://oidc.example", key.jwks), /issuer "http:\/\/oidc\.example" must be an https URL/);
    assert.throws(() => fake.trustIssuer("not a url", key.jwks), /issuer "not a url" is not a URL/);
    assert.throws(() => fake.trustIssuer(ISSUER, { keys: "nope" } as unknown as Jwks), /a JWKS document needs a "keys" array/);
    assert.throws(() => fake.trustIssuer(ISSUER, { keys: [{ n: "x" }] }), /keys\[0\] is not a JWK/);
    assert.throws(() => fake.trustIssuer(ISSUER, { jwksUri: "http://127.0.0.1/jwks" }), /jwksUri of .* must be an https URL/);
  });
});
