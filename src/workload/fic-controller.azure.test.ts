// The FIC controller through the real @azure/arm-msi client against the local fake of Azure, which
// enforces Azure's rules: 20 FICs per MSI, no concurrent writes to one MSI, throttling.
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { createAzureClients } from "../azure/clients.js";
import { resolveEnvironment } from "../azure/environment.js";
import { ficApi, type FicApi } from "../azure/fic.js";
import { Metrics } from "../metrics/metrics.js";
import { FakeAzure, faults, type FakeIdentity } from "../../test/azure/fake.js";
import { FicController, type ServiceAccountView } from "./fic-controller.js";
import { account, CLUSTER, context, identity, ISSUER, state, SUB } from "./fixtures.js";
import { FIC_AUDIENCE } from "./names.js";
import type { MsiRef } from "./plan.js";

describe("FicController against the Azure fake", () => {
  let fake: FakeAzure;
  let metrics: Metrics;
  let controller: FicController;
  let msi: FakeIdentity;
  let ref: MsiRef;
  let api: FicApi;
  let accounts: ServiceAccountView[];

  const want = (...names: string[]) => {
    accounts.splice(0, accounts.length, ...names.map((name) => account("team-a", name, ref)));
  };
  const sync = (complete = true, scan: MsiRef[] = []) => controller.sync({ desired: state(identity("team-a", ref)), complete, scan });
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
    const clients = createAzureClients({
      environment,
      retry: { maxRetries: 3, retryDelayInMs: 20, maxRetryDelayInMs: 200 },
      userAgent: "azure-msi-operator (replica-u)",
    });
    api = ficApi(clients);
  });
  beforeEach(() => {
    // A fresh controller per test: it remembers which MSIs held its FICs, and those are another test's.
    metrics = new Metrics({ defaultMetrics: false });
    accounts = [];
    controller = new FicController({
      api,
      context: { ...context, concurrency: 4 },
      serviceAccounts: () => accounts,
      canWrite: () => true,
      signal: new AbortController().signal,
      metrics,
      log: pino({ level: "silent" }),
      retry: { initialMs: 20, maxMs: 100 },
    });
    fake.clearFaults();
    msi = fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg-fic", name: `msi-${Math.random().toString(36).slice(2, 8)}` });
    ref = { subscriptionId: SUB, resourceGroup: msi.resourceGroup, name: msi.name };
  });
  afterEach(() => controller.stop());
  after(async () => fake?.close());

  test("many FICs for one MSI are written one at a time: Azure's concurrent-write 409 never fires", async () => {
    want("a", "b", "c", "d", "e", "f");
    const outcome = await sync();
    assert.deepEqual(outcome, { created: 6, updated: 0, unchanged: 0, deleted: 0, skipped: 0, errors: 0 });
    assert.equal(names().length, 6);
    assert.equal(fake.federatedCredentialRequests(["PUT"]).filter((request) => request.status === 409).length, 0);
    assert.match(
      fake.federatedCredentialRequests(["PUT"])[0]?.userAgent ?? "",
      /^azure-msi-operator \(replica-u\) azsdk-js-arm-msi\//,
      "the replica named first",
    );
    const before = ficWrites();
    assert.deepEqual(await sync(), { created: 0, updated: 0, unchanged: 6, deleted: 0, skipped: 0, errors: 0 });
    assert.equal(ficWrites(), before, "zero writes when every FIC is right");
  });

  test("Azure's 20: the creates past it are skipped and counted, nobody's FIC deleted to make room", async () => {
    for (let i = 0; i < 19; i++)
      fake.model.putFederatedCredential(msi, { name: `theirs-${i}`, issuer: "https://ci.example/", subject: `repo:${i}`, audiences: [FIC_AUDIENCE] });
    want("a", "b", "c");
    const outcome = await sync();
    assert.deepEqual([outcome.created, outcome.skipped, outcome.errors], [1, 2, 0]);
    assert.equal(names().length, 20);
    assert.match(await metrics.registry.getSingleMetricAsString("azuremsi_fic_skipped_total"), /reason="limit"\} 2/);
  });

  test("a 409 from another writer is retried by the queue, 429s by the SDK; a listing that fails writes and revokes nothing", async () => {
    const isPut = (request: { method: string; path: string }) => request.method === "PUT" && /federatedIdentityCredentials/.test(request.path);
    const conflict = fake.inject({
      match: isPut,
      times: 1,
      fault: faults.armError(409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"),
    });
    fake.inject({ match: isPut, times: 2, fault: faults.throttle(0) });
    want("a");
    assert.deepEqual(await sync(), { created: 1, updated: 0, unchanged: 0, deleted: 0, skipped: 0, errors: 0 }, "the sync waited for the retry");
    assert.equal(conflict.served, 1);
    assert.deepEqual(names(), [`${CLUSTER}_team-a_a`]);
    fake.inject({
      match: (request) => request.method === "GET" && /federatedIdentityCredentials/.test(request.path),
      times: Infinity,
      fault: faults.status(500),
    });
    const before = ficWrites();
    want();
    const outcome = await sync(true, [ref]);
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
    assert.equal((await sync(false, [ref])).deleted, 0);
    assert.equal(names().length, 2);
    assert.equal((await sync(true, [ref])).deleted, 1);
    assert.deepEqual(names(), ["other_team-a_gone"]);
  });
});
