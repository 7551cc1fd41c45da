// reconcileNamespace against a real API server: real informer caches (src/kube/caches.ts) and the
// real IdentityWriter, both as the operator's service account (RBAC from manifests/).
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import pino, { type Logger } from "pino";
import type { Msi } from "../azure/types.js";
import { ControlPlane } from "../../test/controlplane/controlplane.js";
import { applyOperatorRbac, eventually, operatorWrites } from "../../test/support/operator.js";
import { namespaces as namespaceCache, lookupBindings, ownedIdentities } from "../kube/caches.js";
import { kubeClients, type KubeClients } from "../kube/clients.js";
import { statusCode } from "../kube/errors.js";
import { Informer } from "../kube/informer.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import {
  AAD_API_VERSION,
  AAD_GROUP,
  AAD_VERSION,
  AZURE_IDENTITIES,
  AZURE_IDENTITY_BINDINGS,
  MANAGED_BY_LABEL,
  type AzureIdentity,
  type AzureIdentityBinding,
} from "../kube/resources.js";
import { Metrics } from "../metrics/metrics.js";
import { template } from "../../test/support/templates.js";
import { desiredState, toAzureIdentity, type DesiredIdentity, type DesiredStateOptions } from "./desired.js";
import { reconcileNamespace, type ListingState, type NamespaceOutcome, type ReconcilerDeps } from "./reconciler.js";
import { IdentityWriter, NotLeaderError } from "./writer.js";

const SUB = "00000000-0000-0000-0000-0000000000a1";
const SUB_2 = "00000000-0000-0000-0000-0000000000b2";
const LABEL_FORMAT = "msi.azure.k8s.io/%s";
const KEYS = lookupLabelKeys(LABEL_FORMAT)!;

const OPTIONS: DesiredStateOptions = {
  namespaceTemplate: template('{{index .Tags "k8snamespace"}}'),
  resourceNameTemplate: template("{{ .Name }}-{{ .ClientId }}"),
  labelFormat: LABEL_FORMAT,
  ignoredNamespaces: new Set(["kube-system"]),
  namespaced: true,
};

function msi(name: string, tag: string, clientId: string, subscriptionId = SUB): Msi {
  return {
    id: `/subscriptions/${subscriptionId}/resourceGroups/RG-Apps/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`,
    name,
    location: "westeurope",
    resourceGroup: "RG-Apps",
    subscriptionId,
    clientId,
    tenantId: "t",
    principalId: "p",
    tags: { k8snamespace: tag },
    type: "Microsoft.ManagedIdentity/userAssignedIdentities",
  };
}

function listing(msis: Msi[], options: { prune?: boolean; listed?: string[] } = {}): ListingState {
  const desired = desiredState(msis, OPTIONS);
  assert.deepEqual(desired.skipped, [], "test MSIs are valid");
  return {
    desired,
    pruneAllowed: options.prune ?? false,
    listedSubscriptions: new Set((options.listed ?? [SUB]).map((id) => id.toLowerCase())),
    complete: true,
    completeMsis: msis,
    msis,
    subscriptions: (options.listed ?? [SUB]).map((id) => ({ subscriptionId: id.toLowerCase(), complete: true })),
  };
}

function wanted(state: ListingState, namespace: string, name: string): DesiredIdentity {
  const desired = state.desired.byNamespace.get(namespace)?.get(name);
  assert.ok(desired, `${namespace}/${name} is desired`);
  return desired;
}

function outcome(part: Partial<NamespaceOutcome>): NamespaceOutcome {
  return { created: 0, updated: 0, unchanged: 0, deleted: 0, bindingsUpdated: 0, errors: 0, ...part };
}

/** Samples of one counter as "label,label" -> value. */
async function samples(counter: Metrics["resourceSuccess"] | Metrics["kubeWrites"]): Promise<Record<string, number>> {
  const { values } = await counter.get();
  return Object.fromEntries(values.map((sample) => [Object.values(sample.labels).join(" "), sample.value]));
}

const silent = pino({ level: "silent" });

describe("reconcileNamespace against a real API server", () => {
  let plane: ControlPlane;
  let admin: CustomObjectsApi;
  let core: CoreV1Api;
  let clients: KubeClients;
  let identities: Informer<AzureIdentity>;
  let namespaces: ReturnType<typeof namespaceCache>;
  let bindings: Informer<AzureIdentityBinding>;

  const setup = (options: { canWrite?: () => boolean; identities?: Informer<AzureIdentity>; log?: Logger; bindingSync?: boolean } = {}) => {
    const metrics = new Metrics({ defaultMetrics: false });
    const writer = new IdentityWriter(clients.custom, options.canWrite ?? (() => true), metrics, { backoff: { initialMs: 5, maxMs: 20 } });
    const deps: ReconcilerDeps = {
      identities: options.identities ?? identities,
      namespaces,
      bindings: options.bindingSync === false ? undefined : bindings,
      lookupKeys: options.bindingSync === false ? undefined : KEYS,
      writer,
      metrics,
      log: options.log ?? silent,
    };
    return { deps, writer, metrics };
  };

  const createNamespace = async (name: string) => {
    await core.createNamespace({ body: { metadata: { name } } });
    await eventually(() => namespaces.get(undefined, name), 10_000, `namespace ${name} in the cache`);
  };
  const getIdentity = async (namespace: string, name: string) =>
    (await admin.getNamespacedCustomObject({ group: AAD_GROUP, version: AAD_VERSION, namespace, plural: AZURE_IDENTITIES, name }).catch((error: unknown) => {
      if (statusCode(error) === 404) return undefined;
      throw error;
    })) as AzureIdentity | undefined;
  const getBinding = async (namespace: string, name: string) =>
    (await admin.getNamespacedCustomObject({
      group: AAD_GROUP,
      version: AAD_VERSION,
      namespace,
      plural: AZURE_IDENTITY_BINDINGS,
      name,
    })) as AzureIdentityBinding;
  /** Creates an identity as the admin; an owned one is awaited in the cache. */
  const createIdentity = async (namespace: string, body: AzureIdentity) => {
    const created = (await admin.createNamespacedCustomObject({
      group: AAD_GROUP,
      version: AAD_VERSION,
      namespace,
      plural: AZURE_IDENTITIES,
      body,
    })) as AzureIdentity;
    if (created.metadata?.labels?.[MANAGED_BY_LABEL]) {
      await eventually(
        () => identities.get(namespace, created.metadata?.name ?? "")?.metadata?.resourceVersion === created.metadata?.resourceVersion || undefined,
        10_000,
        "identity in the cache",
      );
    }
    return created;
  };
  const createBinding = async (namespace: string, name: string, labels: Record<string, string>, spec: AzureIdentityBinding["spec"]) => {
    const created = (await admin.createNamespacedCustomObject({
      group: AAD_GROUP,
      version: AAD_VERSION,
      namespace,
      plural: AZURE_IDENTITY_BINDINGS,
      body: { apiVersion: AAD_API_VERSION, kind: "AzureIdentityBinding", metadata: { name, labels }, spec },
    })) as AzureIdentityBinding;
    if (labels[KEYS.name] && labels[KEYS.resourcegroup] && labels[KEYS.subscription]) {
      await eventually(
        () => bindings.get(namespace, name)?.metadata?.resourceVersion === created.metadata?.resourceVersion || undefined,
        10_000,
        "binding in the cache",
      );
    }
    return created;
  };
  /** A cache that lags: never started, it holds `objects` as they were and sees only what the reconciler records. */
  const laggingCache = (objects: AzureIdentity[]) => {
    const cache = new Informer<AzureIdentity>(plane.kubeConfig("operator"), {
      path: `/apis/${AAD_GROUP}/${AAD_VERSION}/${AZURE_IDENTITIES}`,
      list: () => Promise.reject(new Error("never started")),
    });
    for (const object of objects) cache.observe(structuredClone(object));
    return cache;
  };
  /** The operator's writes in `namespace` that the API server audited, up to and including those just answered. */
  const auditedWrites = async (namespace: string) => {
    return operatorWrites(await plane.auditEventsSettled())
      .filter((event) => event.objectRef?.namespace === namespace)
      .map((event) => `${event.verb} ${event.objectRef?.resource}/${event.objectRef?.name ?? ""} ${event.responseStatus?.code}`);
  };

  before(async () => {
    plane = await ControlPlane.start();
    await applyOperatorRbac(plane);
    admin = plane.api("admin", CustomObjectsApi);
    core = plane.api("admin", CoreV1Api);
    clients = kubeClients(plane.kubeConfig("operator"));
    const cacheMetrics = new Metrics({ defaultMetrics: false });
    identities = ownedIdentities(clients, silent, cacheMetrics);
    namespaces = namespaceCache(clients, silent, cacheMetrics);
    bindings = lookupBindings(clients, LABEL_FORMAT, silent, cacheMetrics)!;
    identities.start();
    namespaces.start();
    bindings.start();
    await Promise.all([identities.waitForSync(), namespaces.waitForSync(), bindings.waitForSync()]);
  });
  after(async () => {
    identities?.stop();
    namespaces?.stop();
    bindings?.stop();
    await plane?.stop();
  });

  test("a missing identity is created as desired; a second pass writes nothing, and the watch brings the same object", async () => {
    await createNamespace("r-create");
    const state = listing([msi("shop", "r-create", "c1")]);
    const desired = wanted(state, "r-create", "shop-c1");
    const { deps, writer, metrics } = setup();
    assert.deepEqual(await reconcileNamespace("r-create", state, deps), outcome({ created: 1 }));
    const stored = await getIdentity("r-create", "shop-c1");
    assert.ok(stored, "created on the server");
    const expected = toAzureIdentity(desired);
    assert.deepEqual(
      { labels: stored.metadata?.labels, annotations: stored.metadata?.annotations, spec: stored.spec },
      { labels: expected.metadata?.labels, annotations: expected.metadata?.annotations, spec: expected.spec },
    );
    assert.deepEqual(writer.writes(), { create: 1, patch: 0, delete: 0 });
    assert.deepEqual(await samples(metrics.resourceSuccess), { [`${SUB} AzureIdentity`]: 1 });

    assert.deepEqual(await reconcileNamespace("r-create", state, deps), outcome({ unchanged: 1 }));
    assert.deepEqual(writer.writes(), { create: 1, patch: 0, delete: 0 });
    await eventually(
      () => identities.get("r-create", "shop-c1")?.metadata?.resourceVersion === stored.metadata?.resourceVersion || undefined,
      10_000,
      "the watch event",
    );
    assert.deepEqual(await reconcileNamespace("r-create", state, deps), outcome({ unchanged: 1 }));
    assert.deepEqual(await auditedWrites("r-create"), ["create azureidentities/shop-c1 201"]);
  });

  test("each write's result goes into the cache at once: with a cache that sees no watch event, a second pass writes nothing", async () => {
    await createNamespace("r-observe");
    const state = listing([msi("shop", "r-observe", "c1"), msi("cart", "r-observe", "c2"), msi("gone", "r-observe", "c0")]);
    const drift = toAzureIdentity(wanted(state, "r-observe", "cart-c2"));
    const drifted = await createIdentity("r-observe", { ...drift, spec: { ...drift.spec, clientID: "tampered" } });
    const extra = await createIdentity("r-observe", toAzureIdentity(wanted(state, "r-observe", "gone-c0")));
    await createBinding("r-observe", "shop", { [KEYS.name]: "shop", [KEYS.resourcegroup]: "rg-apps", [KEYS.subscription]: SUB }, { selector: "shop" });
    const cache = laggingCache([drifted, extra]);
    const pruning = listing([msi("shop", "r-observe", "c1"), msi("cart", "r-observe", "c2")], { prune: true });
    const { deps, writer } = setup({ identities: cache });
    assert.deepEqual(await reconcileNamespace("r-observe", pruning, deps), outcome({ created: 1, updated: 1, deleted: 1, bindingsUpdated: 1 }));
    assert.deepEqual(
      cache
        .list("r-observe")
        .map((object) => object.metadata?.name)
        .sort(),
      ["cart-c2", "shop-c1"],
    );
    assert.equal(cache.get("r-observe", "cart-c2")?.spec?.clientID, drift.spec?.clientID);
    assert.equal(bindings.get("r-observe", "shop")?.spec?.azureIdentity, "shop-c1", "the patched binding is in the binding cache at once");
    assert.deepEqual(writer.writes(), { create: 1, patch: 2, delete: 1 });
    assert.deepEqual(await reconcileNamespace("r-observe", pruning, deps), outcome({ unchanged: 2 }));
    assert.deepEqual(writer.writes(), { create: 1, patch: 2, delete: 1 }, "nothing repeated");
  });

  test("a drifted owned field is patched; foreign labels and annotations are kept", async () => {
    await createNamespace("r-drift");
    const state = listing([msi("shop", "r-drift", "c1")]);
    const desired = toAzureIdentity(wanted(state, "r-drift", "shop-c1"));
    const drifted = await createIdentity("r-drift", {
      ...desired,
      metadata: {
        ...desired.metadata,
        labels: { ...desired.metadata?.labels, [KEYS.name]: "evil", "team.example/owner": "a" },
        annotations: { "note.example/why": "kept" }, // the namespaced annotation is missing
      },
      spec: { ...desired.spec, clientID: "tampered" },
    });
    const { deps, writer } = setup();
    assert.deepEqual(await reconcileNamespace("r-drift", state, deps), outcome({ updated: 1 }));
    const stored = await getIdentity("r-drift", "shop-c1");
    assert.equal(stored?.metadata?.uid, drifted.metadata?.uid);
    assert.deepEqual(stored?.metadata?.labels, { ...desired.metadata?.labels, "team.example/owner": "a" });
    assert.deepEqual(stored?.metadata?.annotations, { ...desired.metadata?.annotations, "note.example/why": "kept" });
    assert.deepEqual(stored?.spec, desired.spec);
    assert.equal(identities.get("r-drift", "shop-c1")?.metadata?.resourceVersion, stored?.metadata?.resourceVersion, "the patched object is in the cache");
    assert.deepEqual(writer.writes(), { create: 0, patch: 1, delete: 0 });
    assert.deepEqual(await auditedWrites("r-drift"), ["patch azureidentities/shop-c1 200"]);
  });

  test("an identity equal on the owned fields is not written: zero requests", async () => {
    await createNamespace("r-equal");
    const state = listing([msi("shop", "r-equal", "c1"), msi("cart", "r-equal", "c2")]);
    for (const name of ["shop-c1", "cart-c2"]) {
      const desired = toAzureIdentity(wanted(state, "r-equal", name));
      await createIdentity("r-equal", {
        ...desired,
        metadata: {
          ...desired.metadata,
          labels: { ...desired.metadata?.labels, "team.example/owner": "a" },
          annotations: { ...desired.metadata?.annotations, "note.example/why": "x" },
        },
      });
    }
    const { deps, writer, metrics } = setup();
    assert.deepEqual(await reconcileNamespace("r-equal", state, deps), outcome({ unchanged: 2 }));
    assert.deepEqual(writer.writes(), { create: 0, patch: 0, delete: 0 });
    assert.deepEqual(await samples(metrics.kubeWrites), {});
    assert.deepEqual(await auditedWrites("r-equal"), []);
  });

  test("an unowned object of a desired name is adopted (counted as created) and then cached as owned", async () => {
    await createNamespace("r-adopt");
    const state = listing([msi("shop", "r-adopt", "c1")]);
    const desired = toAzureIdentity(wanted(state, "r-adopt", "shop-c1"));
    const handMade = await createIdentity("r-adopt", {
      ...desired,
      metadata: { name: "shop-c1", labels: { "team.example/owner": "a" } },
      spec: { ...desired.spec, clientID: "hand-made" },
    });
    assert.equal(identities.get("r-adopt", "shop-c1"), undefined, "unowned objects are not in the cache");
    const { deps, writer } = setup();
    assert.deepEqual(await reconcileNamespace("r-adopt", state, deps), outcome({ created: 1 }));
    const stored = await getIdentity("r-adopt", "shop-c1");
    assert.equal(stored?.metadata?.uid, handMade.metadata?.uid);
    assert.deepEqual(stored?.metadata?.labels, { ...desired.metadata?.labels, "team.example/owner": "a" });
    assert.deepEqual(stored?.spec, desired.spec);
    assert.equal(identities.get("r-adopt", "shop-c1")?.metadata?.uid, handMade.metadata?.uid);
    assert.deepEqual(writer.writes(), { create: 1, patch: 1, delete: 0 });
    assert.deepEqual(await reconcileNamespace("r-adopt", state, deps), outcome({ unchanged: 1 }));
    assert.deepEqual(writer.writes(), { create: 1, patch: 1, delete: 0 });
  });

  test("an extra owned identity is deleted only with prune allowed, only if its subscription was listed; unowned ones never", async () => {
    await createNamespace("r-prune");
    const old = listing([msi("stale", "r-prune", "c0"), msi("other", "r-prune", "c9", SUB_2)], { listed: [SUB, SUB_2] });
    await createIdentity("r-prune", toAzureIdentity(wanted(old, "r-prune", "stale-c0")));
    const other = await createIdentity("r-prune", toAzureIdentity(wanted(old, "r-prune", "other-c9")));
    const unowned = toAzureIdentity(wanted(old, "r-prune", "stale-c0"));
    await createIdentity("r-prune", { ...unowned, metadata: { name: "hand-made", labels: {} } });

    const { deps, writer, metrics } = setup();
    // Without prune: the new MSI's identity is created, nothing is deleted.
    assert.deepEqual(await reconcileNamespace("r-prune", listing([msi("shop", "r-prune", "c1")]), deps), outcome({ created: 1 }));
    assert.ok(await getIdentity("r-prune", "stale-c0"));
    assert.deepEqual(writer.writes(), { create: 1, patch: 0, delete: 0 });

    // With prune, after a listing of SUB only: SUB's stale identity goes; SUB_2's (not listed) stays.
    const pruning = listing([msi("shop", "r-prune", "c1")], { prune: true, listed: [SUB] });
    assert.deepEqual(await reconcileNamespace("r-prune", pruning, deps), outcome({ unchanged: 1, deleted: 1 }));
    assert.equal(await getIdentity("r-prune", "stale-c0"), undefined, "pruned on the server");
    assert.equal(identities.get("r-prune", "stale-c0"), undefined, "and forgotten by the cache");
    assert.equal((await getIdentity("r-prune", "other-c9"))?.metadata?.uid, other.metadata?.uid, "an unlisted subscription's identity is kept");
    assert.ok(await getIdentity("r-prune", "hand-made"), "an unowned identity is kept");
    assert.deepEqual(writer.writes(), { create: 1, patch: 0, delete: 1 });
    assert.deepEqual(await samples(metrics.resourceSuccess), { [`${SUB} AzureIdentity`]: 2 });
    assert.deepEqual(await auditedWrites("r-prune"), ["create azureidentities/shop-c1 201", "delete azureidentities/stale-c0 200"]);
  });

  test("a terminating namespace is left alone: nothing created, patched or deleted, bindings untouched; a missing namespace gets nothing", async () => {
    await createNamespace("r-dying");
    const state = listing([msi("shop", "r-dying", "c1"), msi("cart", "r-dying", "c2"), msi("shop", "r-absent", "c1")], { prune: true });
    const cart = toAzureIdentity(wanted(state, "r-dying", "cart-c2"));
    const drifted = await createIdentity("r-dying", { ...cart, spec: { ...cart.spec, clientID: "tampered" } });
    const extra = await createIdentity("r-dying", toAzureIdentity(wanted(listing([msi("gone", "r-dying", "c0")]), "r-dying", "gone-c0")));
    const binding = await createBinding(
      "r-dying",
      "shop",
      { [KEYS.name]: "cart", [KEYS.resourcegroup]: "rg-apps", [KEYS.subscription]: SUB },
      { selector: "cart" },
    );
    // No namespace controller runs: the namespace stays Terminating with its objects.
    await core.deleteNamespace({ name: "r-dying" });
    await eventually(() => namespaces.get(undefined, "r-dying")?.metadata?.deletionTimestamp, 10_000, "r-dying terminating in the cache");

    const { deps, writer } = setup();
    assert.deepEqual(await reconcileNamespace("r-dying", state, deps), outcome({}));
    assert.deepEqual(await reconcileNamespace("r-absent", state, deps), outcome({}));
    assert.deepEqual(writer.writes(), { create: 0, patch: 0, delete: 0 });
    assert.equal((await getIdentity("r-dying", "cart-c2"))?.metadata?.resourceVersion, drifted.metadata?.resourceVersion);
    assert.equal((await getIdentity("r-dying", "gone-c0"))?.metadata?.resourceVersion, extra.metadata?.resourceVersion);
    assert.equal(await getIdentity("r-dying", "shop-c1"), undefined);
    assert.equal((await getBinding("r-dying", "shop")).metadata?.resourceVersion, binding.metadata?.resourceVersion);
    assert.deepEqual(await auditedWrites("r-dying"), []);
    assert.deepEqual(await auditedWrites("r-absent"), []);
  });

  test("binding sync: spec.azureIdentity is filled only with an identity of the binding's own namespace", async () => {
    await createNamespace("r-bind-a");
    await createNamespace("r-bind-b");
    // The MSI is tagged for r-bind-a only; r-bind-b's developer asks for it anyway.
    const state = listing([msi("shop", "r-bind-a", "c1")]);
    const lookup = { [KEYS.name]: "Shop", [KEYS.resourcegroup]: "RG-Apps", [KEYS.subscription]: SUB }; // lookups compare case-insensitively
    const own = await createBinding("r-bind-a", "shop", { ...lookup, "team.example/owner": "a" }, { selector: "shop", azureIdentity: "wrong" });
    const unlabelled = await createBinding("r-bind-a", "manual", {}, { selector: "manual", azureIdentity: "whatever" });
    const foreign = await createBinding("r-bind-b", "shop", lookup, { selector: "shop" });

    const { deps, writer, metrics } = setup();
    assert.deepEqual(await reconcileNamespace("r-bind-a", state, deps), outcome({ created: 1, bindingsUpdated: 1 }));
    assert.deepEqual(await reconcileNamespace("r-bind-b", state, deps), outcome({}));
    const patched = await getBinding("r-bind-a", "shop");
    assert.deepEqual(patched.spec, { selector: "shop", azureIdentity: "shop-c1" });
    assert.equal(patched.metadata?.labels?.["team.example/owner"], "a");
    assert.notEqual(patched.metadata?.resourceVersion, own.metadata?.resourceVersion);
    assert.equal(bindings.get("r-bind-a", "shop")?.spec?.azureIdentity, "shop-c1", "the patched binding is in the cache");
    assert.equal(
      (await getBinding("r-bind-a", "manual")).metadata?.resourceVersion,
      unlabelled.metadata?.resourceVersion,
      "a binding without the lookup labels is not touched",
    );
    const other = await getBinding("r-bind-b", "shop");
    assert.equal(other.spec?.azureIdentity, undefined, "never pointed at another namespace's identity");
    assert.equal(other.metadata?.resourceVersion, foreign.metadata?.resourceVersion);
    assert.deepEqual(writer.writes(), { create: 1, patch: 1, delete: 0 });
    assert.deepEqual(await samples(metrics.resourceSuccess), { [`${SUB} AzureIdentity`]: 1, [`${SUB} AzureIdentityBinding`]: 1 });
    // Already right: nothing more.
    assert.deepEqual(await reconcileNamespace("r-bind-a", state, deps), outcome({ unchanged: 1 }));
    assert.deepEqual(writer.writes(), { create: 1, patch: 1, delete: 0 });
    assert.deepEqual(await auditedWrites("r-bind-b"), []);
  });

  test("without binding sync configured no binding is written", async () => {
    await createNamespace("r-nobind");
    const state = listing([msi("shop", "r-nobind", "c1")]);
    const binding = await createBinding(
      "r-nobind",
      "shop",
      { [KEYS.name]: "shop", [KEYS.resourcegroup]: "rg-apps", [KEYS.subscription]: SUB },
      { selector: "shop" },
    );
    const { deps, writer } = setup({ bindingSync: false });
    assert.deepEqual(await reconcileNamespace("r-nobind", state, deps), outcome({ created: 1 }));
    assert.equal((await getBinding("r-nobind", "shop")).metadata?.resourceVersion, binding.metadata?.resourceVersion);
    assert.deepEqual(writer.writes(), { create: 1, patch: 0, delete: 0 });
  });

  test("outcome counts of one pass; a failed write (the object changed since it was cached) is counted, logged and does not stop the rest", async () => {
    await createNamespace("r-mixed");
    const state = listing([msi("new", "r-mixed", "c1"), msi("drift", "r-mixed", "c2"), msi("same", "r-mixed", "c3")], { prune: true });
    const old = listing([msi("gone", "r-mixed", "c4"), msi("changed", "r-mixed", "c5")]);
    const drift = toAzureIdentity(wanted(state, "r-mixed", "drift-c2"));
    const objects = [
      await createIdentity("r-mixed", { ...drift, spec: { ...drift.spec, clientID: "tampered" } }),
      await createIdentity("r-mixed", toAzureIdentity(wanted(state, "r-mixed", "same-c3"))),
      await createIdentity("r-mixed", toAzureIdentity(wanted(old, "r-mixed", "gone-c4"))),
      await createIdentity("r-mixed", toAzureIdentity(wanted(old, "r-mixed", "changed-c5"))),
    ];
    await createBinding("r-mixed", "new", { [KEYS.name]: "new", [KEYS.resourcegroup]: "rg-apps", [KEYS.subscription]: SUB }, { selector: "new" });
    const lagging = laggingCache(objects);
    await plane.kubectlOrThrow("admin", ["label", "azureidentity", "changed-c5", "-n", "r-mixed", "team.example/owner=b"]);

    const lines: Record<string, unknown>[] = [];
    const log = pino(
      { level: "info" },
      new Writable({
        write: (chunk: Buffer, _encoding, done) => (
          lines.push(
            ...chunk
              .toString()
              .trim()
              .split("\n")
              .map((line) => JSON.parse(line) as Record<string, unknown>),
          ),
          done()
        ),
      }),
    );
    const { deps, writer, metrics } = setup({ identities: lagging, log });
    assert.deepEqual(
      await reconcileNamespace("r-mixed", state, deps),
      outcome({ created: 1, updated: 1, unchanged: 1, deleted: 1, bindingsUpdated: 1, errors: 1 }),
    );

    assert.ok(await getIdentity("r-mixed", "new-c1"));
    assert.equal((await getIdentity("r-mixed", "drift-c2"))?.spec?.clientID, drift.spec?.clientID);
    assert.equal(await getIdentity("r-mixed", "gone-c4"), undefined);
    assert.equal((await getIdentity("r-mixed", "changed-c5"))?.metadata?.labels?.["team.example/owner"], "b", "changed since planned: not deleted");
    assert.equal((await getBinding("r-mixed", "new")).spec?.azureIdentity, "new-c1");
    assert.deepEqual(
      lagging
        .list("r-mixed")
        .map((object) => object.metadata?.name)
        .sort(),
      ["changed-c5", "drift-c2", "new-c1", "same-c3"],
    );
    assert.deepEqual(writer.writes(), { create: 1, patch: 2, delete: 2 }, "the failed delete is not retried");
    assert.deepEqual(await samples(metrics.resourceSuccess), { [`${SUB} AzureIdentity`]: 3, [`${SUB} AzureIdentityBinding`]: 1 });
    assert.deepEqual(await samples(metrics.resourceErrors), { [`${SUB} AzureIdentity`]: 1 });
    const failure = lines.find((line) => line.msg === "AzureIdentity write failed");
    assert.ok(failure, "the failure is logged");
    assert.equal(failure.name, "changed-c5");
    assert.equal(failure.action, "delete");
    assert.match(String(failure.err), /precondition|resourceVersion|Conflict/i, "the API server's own message");
  });

  test("leadership lost: NotLeaderError propagates out of the reconcile and nothing is written", async () => {
    await createNamespace("r-follower");
    const state = listing([msi("shop", "r-follower", "c1"), msi("cart", "r-follower", "c2")]);
    const { deps, writer, metrics } = setup({ canWrite: () => false });
    await assert.rejects(reconcileNamespace("r-follower", state, deps), NotLeaderError);
    assert.deepEqual(writer.writes(), { create: 0, patch: 0, delete: 0 });
    assert.deepEqual(await samples(metrics.kubeWrites), {});
    assert.deepEqual(await samples(metrics.resourceErrors), {}, "not counted as a resource error");
    assert.equal(await getIdentity("r-follower", "shop-c1"), undefined);
    assert.deepEqual(await auditedWrites("r-follower"), []);
  });
});
