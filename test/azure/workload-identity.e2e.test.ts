// Workload identity end to end: a real kube-apiserver mints service-account tokens (TokenRequest,
// audience api://AzureADTokenExchange), the fake's Entra verifies them with the JWKS the API server
// publishes at /openid/v1/jwks, and WorkloadIdentityCredential gets a managed identity's token only
// through a FIC for that service account.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { ControlPlane } from "../controlplane/controlplane.js";
import { FakeAzure, type FakeIdentity } from "./fake.js";
import { decodeJwt } from "./jwt.js";
import { armScope, msiClient, workloadIdentityCredential } from "./sdk.js";

// The control plane's --service-account-issuer.
const ISSUER = "https://kubernetes.default.svc";
const AUDIENCE = "api://AzureADTokenExchange";
const NAMESPACE = "team-a";

describe("workload identity with tokens from the real API server", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let msi: FakeIdentity;
  let core: CoreV1Api;
  let dir: string;

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start({ crds: false }), FakeAzure.start()]);
    dir = mkdtempSync(join(tmpdir(), "wi-e2e-"));
    core = plane.api("admin", CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    for (const name of ["app", "other"]) await core.createNamespacedServiceAccount({ namespace: NAMESPACE, body: { metadata: { name } } });
    msi = fake.addIdentity({ subscriptionId: "00000000-aaaa-bbbb-cccc-000000000001", resourceGroup: "rg-team-a", name: "team-a-app" });
    // Entra reads the issuer's keys over the network; here they come from the API server as admin.
    fake.trustIssuer(ISSUER, async () => {
      const { status, body } = await plane.adminGet("/openid/v1/jwks");
      if (status !== 200) throw new Error(`GET /openid/v1/jwks: ${status} ${body}`);
      return JSON.parse(body) as unknown;
    });
  });
  after(async () => {
    await Promise.all([plane?.stop(), fake?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A projected-token file as the workload identity webhook mounts it, from a real TokenRequest. */
  async function tokenFile(serviceAccount: string, audience = AUDIENCE): Promise<string> {
    const answer = await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace: NAMESPACE,
      body: { spec: { audiences: [audience], expirationSeconds: 3600 } },
    });
    const token = answer.status?.token;
    assert.ok(token, "TokenRequest returned a token");
    const path = join(dir, `${serviceAccount}-${Date.now()}`);
    writeFileSync(path, token);
    return path;
  }

  const tokenOf = async (serviceAccount: string, audience?: string) =>
    workloadIdentityCredential(fake, msi.clientId, await tokenFile(serviceAccount, audience)).getToken(armScope(fake));

  test("the API server's issuer and keys are what the fake verifies against", async () => {
    const discovery = await plane.adminGet("/.well-known/openid-configuration");
    assert.equal((JSON.parse(discovery.body) as { issuer: string }).issuer, ISSUER);
    const jwks = JSON.parse((await plane.adminGet("/openid/v1/jwks")).body) as { keys: { kid: string; alg: string }[] };
    const path = await tokenFile("app");
    const token = decodeJwt(readFileSync(path, "utf8"));
    assert.ok(token);
    assert.deepEqual([token.claims.iss, token.claims.sub, token.claims.aud], [ISSUER, `system:serviceaccount:${NAMESPACE}:app`, [AUDIENCE]]);
    assert.ok(
      jwks.keys.some((key) => key.kid === token.header.kid && key.alg === token.header.alg),
      "the token names a published key",
    );
  });

  test("with a FIC made through ARM for the service account: a token, which ARM accepts; without: AADSTS70021", async () => {
    await assert.rejects(tokenOf("app"), /AADSTS70021: No matching federated identity record found for presented assertion/);
    const fics = msiClient(fake, msi.subscriptionId).federatedIdentityCredentials;
    await fics.createOrUpdate(msi.resourceGroup, msi.name, "team-a-app", {
      issuer: ISSUER,
      subject: `system:serviceaccount:${NAMESPACE}:app`,
      audiences: [AUDIENCE],
    });

    const token = await tokenOf("app");
    assert.ok(token?.token);
    const identities = msiClient(fake, msi.subscriptionId, { getToken: async () => token }).userAssignedIdentities;
    const read = await identities.get(msi.resourceGroup, msi.name);
    assert.equal(read.clientId, msi.clientId, "ARM took the managed identity's token");
    const exchanges = fake.tokenRequests().filter((request) => request.clientAuth === "assertion");
    assert.deepEqual(
      exchanges.map((request) => [request.clientId, request.status]),
      [
        [msi.clientId, 401],
        [msi.clientId, 200],
      ],
    );

    await assert.rejects(
      tokenOf("other"),
      /AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:team-a:other'/,
    );
    await assert.rejects(
      tokenOf("app", ISSUER),
      /AADSTS700212: No matching federated identity record found for presented assertion audience 'https:\/\/kubernetes\.default\.svc'/,
    );

    await fics.delete(msi.resourceGroup, msi.name, "team-a-app");
    await assert.rejects(tokenOf("app"), /AADSTS70021:/);
  });
});
