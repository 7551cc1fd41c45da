// The Syncer at the end of a term, without a control plane: caches filled by hand, Azure listed by a
// function the test controls, and Kubernetes writes sent by the real client to a local HTTP server
// that answers when the test says so.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CustomObjectsApi, KubeConfig, type V1Namespace } from "@kubernetes/client-node";
import pino from "pino";
import type { Msi, SubscriptionListing } from "../azure/types.js";
import { Informer } from "../kube/informer.js";
import type { AzureIdentity } from "../kube/resources.js";
import { openTerm } from "../lifecycle/term.js";
import { Metrics } from "../metrics/metrics.js";
import { template } from "../../test/support/templates.js";
import { Syncer, type SyncerOptions } from "./syncer.js";
import { IdentityWriter } from "./writer.js";

const OPTIONS: SyncerOptions = {
  intervalMs: 3_600_000,
  watch: false,
  lockTimeMs: 0,
  prune: false,
  bindingSync: false,
  concurrency: 1,
  labelFormat: "",
  desiredOptions: () => ({
    namespaceTemplate: template('{{index .Tags "k8snamespace"}}'),
    resourceNameTemplate: template("{{ .Name }}-{{ .ClientId }}"),
    labelFormat: "",
    ignoredNamespaces: new Set(),
    namespaced: true,
  }),
};

const MSI: Msi = {
  id: "/subscriptions/SUB-1/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app",
  name: "app",
  location: "westeurope",
  resourceGroup: "RG",
  subscriptionId: "SUB-1",
  clientId: "app-client",
  tenantId: "t",
  principalId: "p",
  tags: { k8snamespace: "team-a" },
  type: "Microsoft.ManagedIdentity/userAssignedIdentities",
};

const listing = (): SubscriptionListing[] => [{ subscriptionId: "SUB-1", identities: [MSI], skipped: [], complete: true, pages: 1, durationMs: 1 }];

/** A cache that is never started: the test puts objects in. */
function cache<T extends V1Namespace | AzureIdentity>(path: string): Informer<T> {
  return new Informer<T>(new KubeConfig(), { path, list: () => new Promise(() => undefined) });
}

/** An API server stand-in: each request waits until the test answers it. */
async function heldServer() {
  const pending: { request: IncomingMessage; response: ServerResponse }[] = [];
  const arrivals: (() => void)[] = [];
  let received = 0;
  const server = createServer((request, response) => {
    received++;
    pending.push({ request, response });
    for (const arrived of arrivals.splice(0)) arrived();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "fake", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: "operator", token: "t" }],
    contexts: [{ name: "fake", cluster: "fake", user: "operator" }],
    currentContext: "fake",
  });
  return {
    api: kubeConfig.makeApiClient(CustomObjectsApi),
    get received() {
      return received;
    },
    /** The next request not yet answered. */
    async next() {
      while (pending.length === 0) await new Promise<void>((resolve) => arrivals.push(resolve));
      return pending.shift()!;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function answer500(response: ServerResponse): void {
  response.writeHead(500, { "content-type": "application/json" });
  response.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message: "etcd is away", code: 500 }));
}

/** Log lines, parsed, as the syncer writes them. */
function capturedLog() {
  const lines: { msg?: string; namespace?: string }[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg?: string; namespace?: string }) });
  return { log, lines };
}

function setup(listAzure: (signal: AbortSignal) => Promise<SubscriptionListing[]>, api: CustomObjectsApi, retryMs = 60_000) {
  const open = openTerm(1, () => true);
  const metrics = new Metrics();
  const namespaces = cache<V1Namespace>("/api/v1/namespaces");
  namespaces.observe({ metadata: { name: "team-a", resourceVersion: "1" }, status: { phase: "Active" } });
  const { log, lines } = capturedLog();
  const writer = new IdentityWriter(api, open.term.canWrite, metrics, { signal: open.term.signal, backoff: { initialMs: retryMs, maxMs: retryMs } });
  const syncer = new Syncer(OPTIONS, {
    listAzure,
    identities: cache<AzureIdentity>("/apis/aadpodidentity.k8s.io/v1/azureidentities"),
    namespaces,
    bindings: undefined,
    writer,
    metrics,
    log,
    signal: open.term.signal,
  });
  return { ...open, syncer, metrics, lines };
}

test(
  "defect 9 (issue 22): a write asleep in its retry backoff is woken by the end of the term and gives up; stop() resolves only after it",
  { timeout: 20_000 },
  async () => {
    // At f48d249 Syncer.stop() returned at once while the write slept (60 s here), and the write woke
    // in whatever term came next, with the plan of the old listing.
    const server = await heldServer();
    try {
      const { syncer, term, end, metrics, lines } = setup(async () => listing(), server.api);
      syncer.start();
      answer500((await server.next()).response);
      // The first attempt's answer has arrived: the write now sleeps before its second attempt.
      while (((await metrics.kubeWrites.get()).values.find((value) => value.labels.result === "error")?.value ?? 0) < 1)
        await new Promise((resolve) => setImmediate(resolve));
      end(new Error("leadership lost"));
      assert.equal(term.canWrite(), false);
      await syncer.stop();
      assert.ok(
        lines.some((line) => line.msg === "namespace reconcile stopped: no longer the leader" && line.namespace === "team-a"),
        "the reconcile gave up (NotLeaderError) before stop() resolved",
      );
      assert.equal(server.received, 1, "no second attempt");
      assert.ok(!lines.some((line) => line.msg === "AzureIdentity write failed"), "giving up is not counted as a failed write");
    } finally {
      await server.close();
    }
  },
);

test("stop() waits for a write in flight, then the write's outcome is a give-up, not a retry", { timeout: 20_000 }, async () => {
  const server = await heldServer();
  try {
    const { syncer, end, lines } = setup(async () => listing(), server.api, 10);
    syncer.start();
    const request = await server.next();
    end(new Error("leadership lost"));
    let stopped = false;
    const stopping = syncer.stop().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(stopped, false, "the create is still in flight");
    answer500(request.response);
    await stopping;
    assert.equal(server.received, 1, "no retry after the term ended");
    assert.ok(lines.some((line) => line.msg === "namespace reconcile stopped: no longer the leader"));
  } finally {
    await server.close();
  }
});

test("defect 7 (issue 22): the end of the term during a sync now aborts the running listing and starts no fresh one", { timeout: 20_000 }, async () => {
  // At f48d249 a sync now waited for the whole running sync, then started a fresh listing that the
  // end of the term did not abort.
  const signals: AbortSignal[] = [];
  const listAzure = (signal: AbortSignal) => {
    signals.push(signal);
    return new Promise<SubscriptionListing[]>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true }));
  };
  const server = await heldServer();
  try {
    const { syncer, end, lines } = setup(listAzure, server.api);
    syncer.start();
    const syncNow = syncer.fullSyncFresh();
    assert.equal(signals.length, 1, "the first sync is listing");
    end(new Error("leadership lost"));
    assert.equal(signals[0]!.aborted, true, "its listing is aborted at once");
    await assert.rejects(syncNow, /leadership lost/);
    await syncer.stop();
    assert.equal(signals.length, 1, "no fresh listing after the term ended");
    assert.equal(server.received, 0);
    assert.ok(!lines.some((line) => line.msg === "sync failed"), "a sync cut short by the end of the term is no failure");
  } finally {
    await server.close();
  }
});
