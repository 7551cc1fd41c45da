// The informer's life cycle without an API server: a list that never answers stands for a cache
// that is still syncing when its owner gives up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import { KubeConfig, type V1ConfigMap, type V1Namespace } from "@kubernetes/client-node";
import { kubeClients } from "./clients.js";
import { Informer, InformerStoppedError } from "./informer.js";

const hangingInformer = () =>
  new Informer<V1ConfigMap>(new KubeConfig(), { path: "/api/v1/configmaps", list: () => new Promise(() => undefined), listTimeoutMs: 600_000 });

test("stop() releases every caller still waiting for the first sync", async () => {
  const informer = hangingInformer();
  informer.start();
  const waiting = [informer.waitForSync(), informer.waitForSync()];
  informer.stop();
  for (const wait of waiting) await assert.rejects(wait, InformerStoppedError);
  assert.equal(informer.synced, false);
});

test("an aborted signal releases one waiter without stopping the informer", async () => {
  const informer = hangingInformer();
  informer.start();
  const controller = new AbortController();
  const mine = informer.waitForSync(controller.signal);
  const other = informer.waitForSync();
  controller.abort();
  await assert.rejects(mine, InformerStoppedError);
  informer.stop();
  await assert.rejects(other, InformerStoppedError);
  await assert.rejects(informer.waitForSync(AbortSignal.abort()), InformerStoppedError);
});

test("on() returns the way to unsubscribe; the handler count shows what is left", () => {
  const informer = hangingInformer();
  const calls: string[] = [];
  const off = [informer.on("add", () => calls.push("add")), informer.on("delete", () => calls.push("delete"))];
  assert.equal(informer.handlerCount, 2);
  for (const unsubscribe of off) unsubscribe();
  off[0]!(); // twice is harmless
  assert.equal(informer.handlerCount, 0);
  informer.observe({ metadata: { name: "x", namespace: "y", resourceVersion: "1" } });
  assert.deepEqual(calls, []);
});

/**
 * A local API server whose lists answer and whose watches never do (accepted, then silent): the
 * black-holed connection of issue 22 item 6. Against f48d249 client-node's Watch waited for the
 * answer with no deadline, and stop() could not reach it: both tests below then time out.
 */
async function silentWatchServer() {
  const watches: IncomingMessage[] = [];
  let onWatch: (() => void) | undefined;
  const server = createServer((request, response) => {
    if (new URL(request.url ?? "/", "http://x").searchParams.get("watch") === "true") {
      watches.push(request);
      onWatch?.();
      return; // never answered
    }
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ kind: "NamespaceList", apiVersion: "v1", metadata: { resourceVersion: "7" }, items: [] }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return {
    kubeConfig,
    watches,
    nextWatch: () => new Promise<IncomingMessage>((resolve) => (onWatch = () => resolve(watches.at(-1)!))),
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

test("a watch that gets no answer fails at its connect deadline, and the informer tries again", { timeout: 10_000 }, async () => {
  const api = await silentWatchServer();
  const errors: string[] = [];
  let failed: (() => void) | undefined;
  const { core } = kubeClients(api.kubeConfig);
  const informer = new Informer<V1Namespace>(api.kubeConfig, {
    path: "/api/v1/namespaces",
    list: (params) => core.listNamespace(params),
    watchConnectTimeoutMs: 100,
    backoff: { initialMs: 1, maxMs: 1 },
    onError: (error) => {
      errors.push(error.message);
      failed?.();
    },
  });
  try {
    const firstWatch = api.nextWatch();
    const firstFailure = new Promise<void>((resolve) => (failed = resolve));
    informer.start();
    await informer.waitForSync();
    const abandoned = new Promise((resolve) => void firstWatch.then((request) => request.socket.once("close", resolve)));
    await firstFailure;
    assert.match(errors[0] ?? "", /^watch \/api\/v1\/namespaces: no answer within 100 ms$/);
    await abandoned; // its connection closed, not left open on the silent server
    await api.nextWatch(); // and a fresh watch follows
  } finally {
    informer.stop();
    await api.close();
  }
});

test("stop() ends a watch whose answer has not come, closing its connection", { timeout: 10_000 }, async () => {
  const api = await silentWatchServer();
  const { core } = kubeClients(api.kubeConfig);
  const informer = new Informer<V1Namespace>(api.kubeConfig, { path: "/api/v1/namespaces", list: (params) => core.listNamespace(params) });
  try {
    const watching = api.nextWatch();
    informer.start();
    const request = await watching;
    const closed = new Promise((resolve) => request.socket.once("close", resolve));
    informer.stop();
    await closed;
  } finally {
    await api.close();
  }
});
