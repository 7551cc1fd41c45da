// The FIC syncer through the real @azure/arm-msi client against the local fake of Azure, which
// enforces Azure's rules: 20 FICs per MSI, no concurrent writes to one MSI, throttling.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { createAzureClients } from "../azure/clients.js";
import { resolveEnvironment } from "../azure/environment.js";
import { ficApi, type FicApi } from "../azure/fic.js";
import { Metrics } from "../metrics/metrics.js";
import { FakeAzure, faults, type FakeIdentity } from "../../test/azure/fake.js";
import { FicSyncer } from "./fic-syncer.js";
import { clusterNameFor, FIC_AUDIENCE } from "./names.js";
import { msiKey, type DesiredFic, type MsiFics } from "./plan.js";

const ISSUER = "https://oidc.example/c1/";
const CLUSTER = clusterNameFor(ISSUER);
const SUB = "00000000-0000-0000-0000-0000000000c9";

describe("FicSyncer against the Azure fake", () => {
  let fake: FakeAzure;
  let metrics: Metrics;
  let syncer: FicSyncer;
  let msi: FakeIdentity;
  let api: FicApi;

  const want = (...names: string[]): Map<string, MsiFics> => {
    const ref = { subscriptionId: SUB, resourceGroup: msi.resourceGroup, name: msi.name };
    const wanted: DesiredFic[] = names.map((name) => ({
      name: `${CLUSTER}_team-a_${name}`,
      issuer: ISSUER,
      subject: `system:serviceaccount:team-a:${name}`,
      audiences: [FIC_AUDIENCE],
      namespace: "team-a",
      serviceAccount: name,
    }));
    return new Map([[msiKey(ref), { msi: ref, wanted }]]);
  };
  const names = () =>
    fake.model
      .federatedCredentials(msi)
      .map((fic) => fic.name)
      .sort();
  const ficWrites = () => fake.federatedCredentialRequests(["PUT", "DELETE"]).length;

  before(async () => {
    fake = await FakeAzure.start();
    Object.assign(process.env, fake.credentialEnv());
    const environment = await resolveEnvironment("AZUREPUBLICCLOUD", process.env);
    const clients = createAzureClients({ environment, retry: { maxRetries: 3, retryDelayInMs: 20, maxRetryDelayInMs: 200 } });
    api = ficApi(clients);
  });
  beforeEach(() => {
    // A fresh syncer per test: it remembers which MSIs held its FICs, and those are another test's.
    metrics = new Metrics({ defaultMetrics: false });
    syncer = new FicSyncer(api, { issuer: ISSUER, cluster: CLUSTER, concurrency: 4 }, metrics, pino({ level: "silent" }));
    fake.clearFaults();
    msi = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-fic", name: `msi-${Math.random().toString(36).slice(2, 8)}` });
  });
  after(async () => fake?.close());

  test("many FICs for one MSI are written one at a time: Azure's concurrent-write 409 never fires", async () => {
    const wanted = want("a", "b", "c", "d", "e", "f");
    const outcome = await syncer.sync({ wanted, scan: [], complete: true });
    assert.deepEqual(outcome, { created: 6, updated: 0, unchanged: 0, deleted: 0, skipped: 0, errors: 0 });
    assert.equal(names().length, 6);
    assert.equal(fake.federatedCredentialRequests(["PUT"]).filter((request) => request.status === 409).length, 0);
    const before = ficWrites();
    assert.deepEqual(await syncer.sync({ wanted, scan: [], complete: true }), { created: 0, updated: 0, unchanged: 6, deleted: 0, skipped: 0, errors: 0 });
    assert.equal(ficWrites(), before, "zero writes when every FIC is right");
  });

  test("Azure's 20: the creates past it are skipped and counted, nobody's FIC deleted to make room", async () => {
    for (let i = 0; i < 19; i++)
      fake.model.putFederatedCredential(msi, { name: `theirs-${i}`, issuer: "https://ci.example/", subject: `repo:${i}`, audiences: [FIC_AUDIENCE] });
    const outcome = await syncer.sync({ wanted: want("a", "b", "c"), scan: [], complete: true });
    assert.deepEqual([outcome.created, outcome.skipped, outcome.errors], [1, 2, 0]);
    assert.equal(names().length, 20);
    assert.match(await metrics.registry.getSingleMetricAsString("azuremsi_fic_skipped_total"), /reason="limit"\} 2/);
  });

  test("a 409 from another writer and 429s are retried; a listing that fails writes and revokes nothing", async () => {
    fake.inject({
      match: (request) => request.method === "PUT" && /federatedIdentityCredentials/.test(request.path),
      times: 1,
      fault: faults.armError(409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"),
    });
    fake.inject({ match: (request) => request.method === "PUT" && /federatedIdentityCredentials/.test(request.path), times: 2, fault: faults.throttle(0) });
    assert.deepEqual((await syncer.sync({ wanted: want("a"), scan: [], complete: true })).errors, 0);
    assert.deepEqual(names(), [`${CLUSTER}_team-a_a`]);
    fake.inject({
      match: (request) => request.method === "GET" && /federatedIdentityCredentials/.test(request.path),
      times: Infinity,
      fault: faults.status(500),
    });
    const before = ficWrites();
    const outcome = await syncer.sync({ wanted: new Map(), scan: [{ subscriptionId: SUB, resourceGroup: msi.resourceGroup, name: msi.name }], complete: true });
    assert.equal(outcome.errors, 1);
    assert.equal(ficWrites(), before, "nothing written or deleted without this MSI's FIC list");
    assert.deepEqual(names(), [`${CLUSTER}_team-a_a`]);
  });

  test("an incomplete listing never revokes; a complete one revokes only this cluster's", async () => {
    fake.model.putFederatedCredential(msi, {
      name: `${CLUSTER}_team-a_gone`,
      issuer: ISSUER,
      subject: "system:serviceaccount:team-a:gone",
      audiences: [FIC_AUDIENCE],
    });
    fake.model.putFederatedCredential(msi, {
      name: "other_team-a_gone",
      issuer: "https://oidc.example/c2/",
      subject: "system:serviceaccount:team-a:gone",
      audiences: [FIC_AUDIENCE],
    });
    const scan = [{ subscriptionId: SUB, resourceGroup: msi.resourceGroup, name: msi.name }];
    assert.equal((await syncer.sync({ wanted: new Map(), scan, complete: false })).deleted, 0);
    assert.equal(names().length, 2);
    assert.equal((await syncer.sync({ wanted: new Map(), scan, complete: true })).deleted, 1);
    assert.deepEqual(names(), ["other_team-a_gone"]);
  });
});
