// Azure misbehaving in every way the fake can, while --azureidentity.prune is on and the cluster holds
// operator-owned identities: a sync during the fault deletes nothing and writes nothing wrong, the
// fault shows in the metrics, and the first sync after the fault is cleared converges.
// One table row per fault; `npm run test:soak` (SOAK=1) repeats the table and adds pairs of faults.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import type { AzureIdentity } from "../src/kube/resources.js";
import { OWNED_SELECTOR } from "../src/kube/resources.js";
import type { SyncSummary } from "../src/syncer/syncer.js";
import { FakeAzure, faults, type FakeFault, type FakeIdentity, type FakeRequest } from "./azure/fake.js";
import { ControlPlane } from "./controlplane/controlplane.js";
import { applyOperatorRbac, operatorWrites, startOperator } from "./support/operator.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB_A = "00000000-0000-0000-0000-0000000000f1";
const SUB_B = "00000000-0000-0000-0000-0000000000f2";
const NAMESPACES = ["az-1", "az-2", "az-3"];
const SOAK = process.env.SOAK === "1";
const PAGE_SIZE = 4;
const ATTEMPT_TIMEOUT_MS = 400;
const SUBSCRIPTIONS = { A: SUB_A, B: SUB_B } as const;

type Mode = "configured" | "discovered";
type Which = keyof typeof SUBSCRIPTIONS;

interface AzureFault {
  name: string;
  /** Subscriptions from --azure.subscription, or all the credential can list. */
  mode: Mode;
  /** The subscription the fault hits: an MSI removed from it just before must survive the faulted sync. */
  hits: Which;
  /** Puts the fault in place and returns what clears it. */
  inject: (fake: FakeAzure) => () => void;
  /** The faulted sync is reported as failed (a subscription that is simply not listed is no failure to Azure). */
  fails: boolean;
  /** Seen in the faulted sync's /metrics besides azuremsi_sync_runs_total{result="failed"}. */
  metric?: RegExp;
  /** Seen in the faulted sync's log. */
  log?: RegExp;
  /** The fault removes a subscription from the model (two of those cannot be combined). */
  removesSubscription?: boolean;
}

const providers = (which: Which) => new RegExp(`/subscriptions/${SUBSCRIPTIONS[which]}/providers`, "i");
const laterPage = (which: Which) => new RegExp(`/subscriptions/${SUBSCRIPTIONS[which]}/providers.*\\$skiptoken=`, "i");
const requestsWithStatus = (status: number) => new RegExp(`azurerm_api_request_count\\{[^}]*statusCode="${status}"[^}]*\\} [1-9]`);

/** A rule until cleared. */
const rule = (match: RegExp | ((request: FakeRequest) => boolean) | undefined, fault: FakeFault) => (fake: FakeAzure) => {
  const injected = fake.inject({ ...(match ? { match } : {}), times: Infinity, fault });
  return () => injected.cancel();
};

/** The subscription disappears from Azure (with its identities) and comes back when cleared. */
const vanish = (which: Which) => (fake: FakeAzure) => {
  const subscriptionId = SUBSCRIPTIONS[which];
  const saved = fake.model.identities(subscriptionId).map((msi) => ({ ...msi }));
  fake.model.removeSubscription(subscriptionId);
  return () => {
    fake.model.addSubscription({ subscriptionId });
    for (const msi of saved) fake.model.addIdentity(msi);
  };
};

const FAULTS: AzureFault[] = [
  {
    name: "429 storm with Retry-After on every Resource Manager request (subscription discovery fails)",
    mode: "discovered",
    hits: "A",
    inject: rule(undefined, faults.throttle(1)),
    fails: true,
    metric: requestsWithStatus(429),
  },
  {
    name: "429 storm with Retry-After on one subscription's listing",
    mode: "configured",
    hits: "B",
    inject: rule(providers("B"), faults.throttle(1)),
    fails: true,
    metric: requestsWithStatus(429),
  },
  {
    name: "500 on every attempt",
    mode: "configured",
    hits: "A",
    inject: rule(providers("A"), faults.status(500)),
    fails: true,
    metric: /azurerm_api_request_count\{[^}]*statusCode="500"[^}]*\} 3\b/,
  },
  {
    name: "503 with Retry-After on every attempt",
    mode: "discovered",
    hits: "B",
    inject: rule(providers("B"), faults.status(503, 1)),
    fails: true,
    metric: requestsWithStatus(503),
  },
  {
    name: "connection reset before any answer",
    mode: "discovered",
    hits: "A",
    inject: rule(providers("A"), faults.reset()),
    fails: true,
    metric: requestsWithStatus(0),
  },
  {
    name: `answers slower than the ${ATTEMPT_TIMEOUT_MS} ms attempt timeout`,
    mode: "configured",
    hits: "A",
    inject: rule(providers("A"), faults.delay(5_000)),
    fails: true,
    metric: requestsWithStatus(0),
  },
  {
    name: "a page failing mid-listing (500 on every page after the first)",
    mode: "discovered",
    hits: "A",
    inject: rule(laterPage("A"), faults.status(500)),
    fails: true,
    metric: requestsWithStatus(500),
  },
  {
    name: "malformed JSON on a page after the first",
    mode: "configured",
    hits: "A",
    inject: rule(laterPage("A"), faults.malformed()),
    fails: true,
    log: /Azure listing incomplete/,
  },
  {
    name: "token endpoint rejects the client secret (401 AADSTS7000215)",
    mode: "discovered",
    hits: "A",
    inject: rule(undefined, faults.tokenError({ status: 401, error: "invalid_client", aadsts: 7000215, description: "Invalid client secret provided." })),
    fails: true,
    log: /AADSTS7000215/,
  },
  {
    name: "token endpoint 503 on every attempt",
    mode: "configured",
    hits: "B",
    inject: rule((request) => request.kind === "token", faults.status(503)),
    fails: true,
    log: /Azure listing incomplete/,
  },
  {
    name: "configured subscription deleted: 404 SubscriptionNotFound when it is read",
    mode: "configured",
    hits: "B",
    inject: vanish("B"),
    fails: true,
    metric: requestsWithStatus(404),
    removesSubscription: true,
  },
  {
    name: "subscription deleted after it was listed: 404 SubscriptionNotFound on its identity listing",
    mode: "discovered",
    hits: "B",
    inject: rule(providers("B"), faults.armError(404, "SubscriptionNotFound")),
    fails: true,
    metric: requestsWithStatus(404),
  },
  {
    name: "subscription missing from the subscription list",
    mode: "discovered",
    hits: "B",
    inject: vanish("B"),
    fails: false,
    log: /not in the Azure listing/,
    removesSubscription: true,
  },
];

/** Every pair of faults of the same mode that can be in place together (soak only). */
function faultPairs(): AzureFault[] {
  const pairs: AzureFault[] = [];
  for (const [i, first] of FAULTS.entries()) {
    for (const second of FAULTS.slice(i + 1)) {
      if (first.mode !== second.mode || (first.removesSubscription && second.removesSubscription)) continue;
      pairs.push({
        name: `${first.name} + ${second.name}`,
        mode: first.mode,
        hits: first.hits,
        inject: (fake) => {
          const clears = [first.inject(fake), second.inject(fake)];
          return () => clears.reverse().forEach((clear) => clear());
        },
        // A fault aimed at a subscription that the other fault removed never fires.
        fails:
          (first.fails && !(second.removesSubscription && second.hits === first.hits)) ||
          (second.fails && !(first.removesSubscription && first.hits === second.hits)),
      });
    }
  }
  return pairs;
}

interface SyncResult {
  summary?: SyncSummary;
  error?: Error;
  scrape: string;
  logs: Record<string, unknown>[];
  startedAt: number;
}

describe("Azure faults with prune on: nothing deleted or wrongly written, errors counted, the next sync converges", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let azureEnv: Record<string, string>;
  let custom: CustomObjectsApi;
  let round = 0;

  /** namespace/name of every identity the model asks for. */
  const wanted = (): string[] =>
    fake.model
      .identities()
      .flatMap((msi) => (msi.tags.k8snamespace ?? "").split(",").map((namespace) => ({ msi, namespace: namespace.trim().toLowerCase() })))
      .filter(({ namespace }) => NAMESPACES.includes(namespace))
      .map(({ msi, namespace }) => `${namespace}/${msi.name}-${msi.clientId}`)
      .sort();

  const owned = async (): Promise<AzureIdentity[]> =>
    (
      (await custom.listClusterCustomObject({ group: GROUP, version: "v1", plural: "azureidentities", labelSelector: OWNED_SELECTOR })) as {
        items: AzureIdentity[];
      }
    ).items;
  const keysOf = (identities: AzureIdentity[]) => identities.map((identity) => `${identity.metadata?.namespace}/${identity.metadata?.name}`).sort();

  const sync = async (mode: Mode): Promise<SyncResult> => {
    const startedAt = Date.now();
    const subscriptions = mode === "configured" ? [`--azure.subscription=${SUB_A}`, `--azure.subscription=${SUB_B}`] : [];
    const op = await startOperator(plane, azureEnv, ["sync", "--once", "--azureidentity.prune", ...subscriptions], {
      start: false,
      azureAttemptTimeoutMs: ATTEMPT_TIMEOUT_MS,
    });
    try {
      const summary = await op.app.syncOnce();
      return { summary, scrape: await op.metrics.registry.metrics(), logs: op.logs, startedAt };
    } catch (error) {
      return { error: error as Error, scrape: await op.metrics.registry.metrics(), logs: op.logs, startedAt };
    } finally {
      await op.stop();
    }
  };

  const addMsi = (which: Which, name: string): FakeIdentity =>
    fake.model.addIdentity({
      subscriptionId: SUBSCRIPTIONS[which],
      resourceGroup: `rg-${which.toLowerCase()}`,
      name,
      tags: { k8snamespace: which === "A" ? "az-1" : "az-3, az-2" },
    });

  const assertConverged = async (converge: SyncResult, what: string) => {
    assert.equal(converge.summary?.result, "success", `${what}: ${converge.error?.message ?? JSON.stringify(converge.summary)}`);
    const identities = await owned();
    assert.deepEqual(keysOf(identities), wanted(), `${what}: each wanted identity exactly once, nothing else`);
    const resourceIds = identities.map((identity) => `${identity.metadata?.namespace}${identity.spec?.resourceID}`);
    assert.equal(new Set(resourceIds).size, resourceIds.length, `${what}: one identity per MSI and namespace`);
  };

  /** One fault: a sync during it, checks, the fault cleared, a sync that must converge. */
  const exercise = async (fault: AzureFault, report: (message: string) => void) => {
    round++;
    const stale = fake.model.identities(SUBSCRIPTIONS[fault.hits])[0];
    assert.ok(stale, "an MSI to remove");
    fake.model.removeIdentity(stale);
    const staleKey = `${fault.hits === "A" ? "az-1" : "az-3"}/${stale.name}-${stale.clientId}`;
    addMsi("A", `new-${round}`);
    const before = keysOf(await owned());
    assert.ok(before.includes(staleKey), `the stale identity ${staleKey} is in the cluster`);

    const clear = fault.inject(fake);
    let faulted: SyncResult;
    try {
      faulted = await sync(fault.mode);
    } finally {
      clear();
    }
    const context = `${fault.name}: ${faulted.error?.message ?? JSON.stringify(faulted.summary)}`;
    const after = keysOf(await owned());
    assert.deepEqual(
      before.filter((key) => !after.includes(key)),
      [],
      `${context}: nothing deleted`,
    );
    const writes = operatorWrites(await plane.auditEvents(), faulted.startedAt);
    const allowedCreates = new Set(wanted());
    const wrong = writes.filter((event) => event.verb !== "create" || !allowedCreates.has(`${event.objectRef?.namespace}/${event.objectRef?.name}`));
    assert.deepEqual(
      wrong.map((event) => `${event.verb} ${event.objectRef?.namespace}/${event.objectRef?.name}`),
      [],
      `${context}: only creates of wanted identities`,
    );
    if (fault.fails) {
      assert.ok(faulted.error || faulted.summary?.result === "failed", `${context}: reported as failed`);
      assert.match(faulted.scrape, /azuremsi_sync_runs_total\{result="failed"\} 1\b/, `${context}: failed run counted`);
    }
    if (fault.metric) assert.match(faulted.scrape, fault.metric, `${context}: metric`);
    if (fault.log)
      assert.match(`${faulted.error?.message ?? ""}\n${faulted.logs.map((line) => JSON.stringify(line)).join("\n")}`, fault.log, `${context}: logged`);

    const wantedNow = wanted();
    const unwanted = after.filter((key) => !wantedNow.includes(key));
    const faultedRequests = fake.requests.filter((request) => request.at >= faulted.startedAt && request.fault !== undefined).length;
    const converged = await sync(fault.mode);
    await assertConverged(converged, `after ${fault.name}`);
    assert.ok(unwanted.includes(staleKey));
    assert.equal(converged.summary?.deleted, unwanted.length, `after ${fault.name}: the stale identity is pruned now`);
    report(
      `${fault.name}: ${faultedRequests} Azure requests faulted, ${writes.length} writes (all wanted creates), 0 deletes during the fault; then ${converged.summary?.created} created, ${converged.summary?.deleted} pruned, converged`,
    );
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start({ pageSize: PAGE_SIZE })]);
    azureEnv = fake.credentialEnv();
    await applyOperatorRbac(plane);
    custom = plane.api("admin", CustomObjectsApi);
    const core = plane.api("admin", CoreV1Api);
    for (const name of NAMESPACES) await core.createNamespace({ body: { metadata: { name } } });
    // Enough MSIs in A for several pages, whatever the rounds remove.
    const perSubscription = SOAK ? { A: 80, B: 80 } : { A: 3 * PAGE_SIZE + FAULTS.length, B: FAULTS.length + 2 };
    for (let i = 0; i < perSubscription.A; i++) addMsi("A", `a-${String(i).padStart(3, "0")}`);
    for (let i = 0; i < perSubscription.B; i++) addMsi("B", `b-${String(i).padStart(3, "0")}`);
    for (const mode of ["configured", "discovered"] as const) await assertConverged(await sync(mode), `baseline (${mode})`);
  });
  after(async () => {
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  for (const fault of FAULTS) test(fault.name, { timeout: 60_000 }, (t) => exercise(fault, (message) => t.diagnostic(message)));

  if (SOAK) {
    test("soak: the table again in random order, three times, then every compatible pair of faults", { timeout: 30 * 60_000 }, async (t) => {
      let exercised = 0;
      const report = () => exercised++;
      for (let repeat = 0; repeat < 3; repeat++) {
        for (const fault of [...FAULTS].sort(() => Math.random() - 0.5)) await exercise(fault, report);
      }
      for (const pair of faultPairs()) await exercise(pair, report);
      t.diagnostic(`${exercised} faulted syncs (single faults and pairs), each followed by a converging sync`);
    });
  }
});
