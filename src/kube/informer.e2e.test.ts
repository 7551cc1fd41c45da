import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, type V1ConfigMap } from "@kubernetes/client-node";
import { ControlPlane } from "../../test/controlplane/controlplane.js";
import { kubeConfigVia, TcpProxy } from "../../test/support/tcp-proxy.js";
import { Informer } from "./informer.js";

async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function eventuallyAsync(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}

/** Requests the API server has finished for namespaced ConfigMaps, by verb (its own apiserver_request_total). */
async function configMapRequests(plane: ControlPlane, verb: "LIST" | "WATCH"): Promise<number> {
  const { body } = await plane.adminGet("/metrics");
  return body
    .split("\n")
    .filter(
      (line) =>
        line.startsWith("apiserver_request_total{") &&
        line.includes('resource="configmaps"') &&
        line.includes('scope="namespace"') &&
        line.includes(`verb="${verb}"`),
    )
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

describe("Informer against a real API server", () => {
  let plane: ControlPlane;
  let core: CoreV1Api;
  before(async () => {
    plane = await ControlPlane.start({ crds: false });
    core = plane.api("admin", CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "cache" } } });
  });
  after(async () => plane?.stop());

  test("lists in pages, then sees adds, updates and deletes of selected objects only", async () => {
    for (let i = 0; i < 7; i++) {
      await core.createNamespacedConfigMap({ namespace: "cache", body: { metadata: { name: `cm-${i}`, labels: { owned: i % 2 === 0 ? "yes" : "no" } } } });
    }
    const events: string[] = [];
    const informer = new Informer<V1ConfigMap>(plane.kubeConfig("admin"), {
      path: "/api/v1/configmaps",
      labelSelector: "owned=yes",
      pageSize: 2,
      list: (params) => core.listConfigMapForAllNamespaces(params),
    });
    informer.on("add", (cm) => events.push(`add ${cm.metadata?.name}`));
    informer.on("update", (cm) => events.push(`update ${cm.metadata?.name}`));
    informer.on("delete", (cm) => events.push(`delete ${cm.metadata?.name}`));
    informer.start();
    try {
      await informer.waitForSync();
      assert.deepEqual(
        informer
          .list("cache")
          .map((cm) => cm.metadata?.name)
          .sort(),
        ["cm-0", "cm-2", "cm-4", "cm-6"],
      );
      await core.patchNamespacedConfigMap({ namespace: "cache", name: "cm-0", body: [{ op: "add", path: "/data", value: { a: "b" } }] });
      await core.deleteNamespacedConfigMap({ namespace: "cache", name: "cm-2" });
      await core.createNamespacedConfigMap({ namespace: "cache", body: { metadata: { name: "cm-new", labels: { owned: "yes" } } } });
      await core.createNamespacedConfigMap({ namespace: "cache", body: { metadata: { name: "cm-other", labels: { owned: "no" } } } });
      await eventually(() => events.includes("add cm-new") && events.includes("delete cm-2") && events.includes("update cm-0"));
      assert.equal(informer.get("cache", "cm-0")?.data?.a, "b");
      assert.equal(informer.get("cache", "cm-2"), undefined);
      assert.equal(informer.get("cache", "cm-other"), undefined);
      assert.equal(informer.size, 4);
    } finally {
      informer.stop();
    }
  });

  test("re-watches when the server ends a watch, missing nothing", async () => {
    const informer = new Informer<V1ConfigMap>(plane.kubeConfig("admin"), {
      path: "/api/v1/namespaces/cache/configmaps",
      watchTimeoutSeconds: 1,
      list: (params) => core.listNamespacedConfigMap({ namespace: "cache", ...params }),
    });
    const [listsBefore, watchesBefore] = [await configMapRequests(plane, "LIST"), await configMapRequests(plane, "WATCH")];
    informer.start();
    try {
      await informer.waitForSync();
      const lists = await configMapRequests(plane, "LIST");
      assert.ok(lists > listsBefore, "the informer's list is counted");
      // The server ends the first watch after 1-1.25 s: the API server counts a watch once it is over.
      const ended = await eventuallyAsync(async () => (await configMapRequests(plane, "WATCH")) > watchesBefore, 15_000);
      assert.ok(ended, "the server ended a watch");
      await core.createNamespacedConfigMap({ namespace: "cache", body: { metadata: { name: "after-rewatch" } } });
      await eventually(() => informer.get("cache", "after-rewatch") !== undefined);
      assert.equal(await configMapRequests(plane, "LIST"), lists, "caught up by watching again from its resourceVersion, not by re-listing");
    } finally {
      informer.stop();
    }
  });

  test("a failing list is retried until it succeeds (never gives up)", async () => {
    // Its own object: what earlier tests left in the namespace is theirs.
    await core.createNamespacedConfigMap({ namespace: "cache", body: { metadata: { name: "listed-after-retries" } } });
    let calls = 0;
    const errors: string[] = [];
    const informer = new Informer<V1ConfigMap>(plane.kubeConfig("admin"), {
      path: "/api/v1/namespaces/cache/configmaps",
      backoff: { initialMs: 50, maxMs: 100 },
      list: (params) => (++calls <= 2 ? Promise.reject(new Error(`refused ${calls}`)) : core.listNamespacedConfigMap({ namespace: "cache", ...params })),
      onError: (error) => errors.push(error.message),
    });
    informer.start();
    try {
      await informer.waitForSync();
      assert.equal(calls, 3);
      assert.deepEqual(errors, ["refused 1", "refused 2"]);
      assert.ok(informer.get("cache", "listed-after-retries"), "the third list's content is in the cache");
    } finally {
      informer.stop();
    }
  });

  test("a silent watch (connection open, nothing forwarded) is abandoned and the cache catches up", async () => {
    const apiPort = Number(new URL(plane.server).port);
    const proxy = await TcpProxy.start(() => apiPort);
    const viaProxy = kubeConfigVia(plane.kubeConfig("admin"), proxy.port);
    const proxied = viaProxy.makeApiClient(CoreV1Api);
    const errors: string[] = [];
    const informer = new Informer<V1ConfigMap>(viaProxy, {
      path: "/api/v1/namespaces/cache/configmaps",
      watchTimeoutSeconds: 3,
      idleGraceMs: 1_000,
      backoff: { initialMs: 50, maxMs: 200 },
      list: (params) => proxied.listNamespacedConfigMap({ namespace: "cache", ...params }),
      onError: (error) => errors.push(error.message),
    });
    informer.start();
    try {
      await informer.waitForSync();
      // The watch is open once an object created after the list reaches the cache.
      await core.createNamespacedConfigMap({ namespace: "cache", body: { metadata: { name: "before-silence" } } });
      await eventually(() => informer.get("cache", "before-silence") !== undefined);
      proxy.freeze();
      await core.createNamespacedConfigMap({ namespace: "cache", body: { metadata: { name: "while-silent" } } });
      await eventually(() => informer.get("cache", "while-silent") !== undefined, 15_000);
      assert.ok(
        errors.some((message) => /outlived its \d+s timeout/.test(message)),
        `the idle watchdog fired: ${errors.join("; ")}`,
      );
    } finally {
      informer.stop();
      await proxy.close();
    }
  });
});
