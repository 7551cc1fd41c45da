// The informer's life cycle without an API server: a list that never answers stands for a cache
// that is still syncing when its owner gives up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
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
